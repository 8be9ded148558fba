// The tiny SentencePiece models the spm.make_models fixture trains
// (reference/mcref/spm_tiny.py), and what python3-sentencepiece made of the
// test strings with them. Header-only: tests that include it link
// nlohmann_json and define MCSERVE_SPM_DIR.
#ifndef MCSERVE_TESTS_SUPPORT_SPM_GOLDEN_H_
#define MCSERVE_TESTS_SUPPORT_SPM_GOLDEN_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mcserve::testing {

struct SpmCase {
  std::string text;
  std::vector<int32_t> ids;  // no BOS
  std::vector<std::string> pieces;
  std::string decoded;                      // Decode(ids)
  std::string decoded_after_bos;            // Decode([bos] + ids)
  std::vector<std::string> prefix_decodes;  // Decode(ids[:k]), k = 0 .. ids.size()
};

struct SpmGolden {
  int32_t vocab_size = 0, bos_id = -1, eos_id = -1, unk_id = -1;
  std::vector<SpmCase> cases;
};

// `variant`: "" (Mistral-like: tokenizer.model) or "nmt" (SentencePiece's
// default normalizer: nmt/tokenizer.model).
// (Appended in place: GCC 12 warns falsely on a chain of `+` temporaries.)
inline std::string SpmDir(const std::string& variant = "") {
  std::string dir = MCSERVE_SPM_DIR;
  if (!variant.empty()) dir.append("/").append(variant);
  return dir;
}
inline std::string SpmModelPath(const std::string& variant = "") {
  return SpmDir(variant).append("/tokenizer.model");
}

// Reads golden.json; a test failure (and an empty golden) when it cannot.
inline SpmGolden LoadSpmGolden(const std::string& variant = "") {
  SpmGolden g;
  const std::string path = SpmDir(variant) + "/golden.json";
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path << " (the spm.make_models fixture writes it)";
    return g;
  }
  const nlohmann::json j = nlohmann::json::parse(in);
  g.vocab_size = j.at("vocab_size").get<int32_t>();
  g.bos_id = j.at("bos_id").get<int32_t>();
  g.eos_id = j.at("eos_id").get<int32_t>();
  g.unk_id = j.at("unk_id").get<int32_t>();
  for (const nlohmann::json& c : j.at("cases")) {
    SpmCase sc;
    sc.text = c.at("text").get<std::string>();
    sc.ids = c.at("ids").get<std::vector<int32_t>>();
    sc.pieces = c.at("pieces").get<std::vector<std::string>>();
    sc.decoded = c.at("decoded").get<std::string>();
    sc.decoded_after_bos = c.at("decoded_after_bos").get<std::string>();
    sc.prefix_decodes = c.at("prefix_decodes").get<std::vector<std::string>>();
    g.cases.push_back(std::move(sc));
  }
  return g;
}

}  // namespace mcserve::testing

#endif  // MCSERVE_TESTS_SUPPORT_SPM_GOLDEN_H_
