// mcserve-randmodel: writes a model with seeded random weights, for tests,
// benchmarks and the placeholder default model.
//
//   mcserve-randmodel --out=DIR [--aggregation=grm --rule=delta --decay=scalar ...]
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "server/model/config.h"
#include "server/model/weights.h"
#include "server/util/flags_help.h"

ABSL_FLAG(std::string, out, "", "Output directory");
ABSL_FLAG(uint64_t, seed, 1, "Random seed");
ABSL_FLAG(int32_t, vocab_size, 258, "");
ABSL_FLAG(int32_t, d_model, 128, "");
ABSL_FLAG(int32_t, n_layers, 2, "");
ABSL_FLAG(int32_t, n_heads, 4, "");
ABSL_FLAG(int32_t, head_dim, 32, "");
ABSL_FLAG(int32_t, d_ff, 384, "");
ABSL_FLAG(std::string, rule, "delta", "hebbian | delta");
ABSL_FLAG(std::string, decay, "scalar", "none | scalar");
ABSL_FLAG(std::string, aggregation, "grm", "none | residual | mean | grm | soup | ssc");
ABSL_FLAG(int32_t, segment_length, 32, "");
ABSL_FLAG(int32_t, top_k, 2, "ssc only");
ABSL_FLAG(std::string, boundary, "continue", "continue | reset");
ABSL_FLAG(bool, tie_embeddings, false, "");
ABSL_FLAG(std::string, dtype, "F32", "F32 | BF16 | F16");

int main(int argc, char** argv) {
  mcserve::SetFlagsHelp(
      "mcserve-randmodel --out=DIR [--aggregation=grm --rule=delta --decay=scalar ...]",
      {"tools/randmodel.cc"});
  absl::ParseCommandLine(argc, argv);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::cerr << "mcserve-randmodel: --out is required\n";
    return 2;
  }
  // Build the config through the strict parser so bad flag values are named.
  const std::string json = absl::StrCat(
      R"({"model_type":"mc-lm","vocab_size":)", absl::GetFlag(FLAGS_vocab_size), R"(,"d_model":)",
      absl::GetFlag(FLAGS_d_model), R"(,"n_layers":)", absl::GetFlag(FLAGS_n_layers),
      R"(,"n_heads":)", absl::GetFlag(FLAGS_n_heads), R"(,"head_dim":)",
      absl::GetFlag(FLAGS_head_dim), R"(,"d_ff":)", absl::GetFlag(FLAGS_d_ff),
      R"(,"tie_embeddings":)", absl::GetFlag(FLAGS_tie_embeddings) ? "true" : "false",
      R"(,"memory":{"rule":")", absl::GetFlag(FLAGS_rule), R"(","decay":")",
      absl::GetFlag(FLAGS_decay), R"("},"mc":{"aggregation":")", absl::GetFlag(FLAGS_aggregation),
      R"(","segment_length":)", absl::GetFlag(FLAGS_segment_length), R"(,"top_k":)",
      absl::GetFlag(FLAGS_top_k), R"(,"boundary":")", absl::GetFlag(FLAGS_boundary),
      R"("},"tokenizer":{"type":"byte","bos_id":256,"eos_id":257}})");
  auto config = mcserve::model::ModelConfig::FromJson(json);
  if (!config.ok()) {
    std::cerr << "mcserve-randmodel: " << config.status() << "\n";
    return 2;
  }
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  mcserve::model::StDtype st = mcserve::model::StDtype::kF32;
  if (dtype == "BF16")
    st = mcserve::model::StDtype::kBF16;
  else if (dtype == "F16")
    st = mcserve::model::StDtype::kF16;
  else if (dtype != "F32") {
    std::cerr << "mcserve-randmodel: --dtype must be F32, BF16 or F16\n";
    return 2;
  }
  absl::Status s = mcserve::model::WriteRandomModel(*config, out, absl::GetFlag(FLAGS_seed), st);
  if (!s.ok()) {
    std::cerr << "mcserve-randmodel: " << s << "\n";
    return 1;
  }
  std::cout << "wrote " << out << "\n";
  return 0;
}
