// mcserve-randmodel: writes a model with seeded random weights, for tests,
// benchmarks and the placeholder default model.
//
//   mcserve-randmodel --out=DIR [--aggregation=grm --rule=delta --decay=scalar ...]
//   mcserve-randmodel --out=DIR --memory=mlp [--expansion=4 --mem_chunk=1 ...]
#include <iostream>
#include <nlohmann/json.hpp>

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
ABSL_FLAG(std::string, memory, "linear", "linear | mlp (deep memory, mc-model.md section 9)");
ABSL_FLAG(int32_t, expansion, 4, "mlp only: hidden width = expansion * head_dim");
ABSL_FLAG(int32_t, mem_chunk, 1, "mlp only: tokens per memory write (divides segment_length)");
ABSL_FLAG(double, lr_max, 0.5, "mlp only: largest step of a memory write");
ABSL_FLAG(bool, momentum, true, "mlp only: gated momentum of the writes");
ABSL_FLAG(double, grad_clip, 0.0, "mlp only: clip each write per head (0: off)");
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
  nlohmann::json memory = {{"rule", absl::GetFlag(FLAGS_rule)},
                           {"decay", absl::GetFlag(FLAGS_decay)}};
  if (absl::GetFlag(FLAGS_memory) != "linear") {
    memory["kind"] = absl::GetFlag(FLAGS_memory);
    memory["expansion"] = absl::GetFlag(FLAGS_expansion);
    memory["chunk"] = absl::GetFlag(FLAGS_mem_chunk);
    memory["lr_max"] = absl::GetFlag(FLAGS_lr_max);
    memory["momentum"] = absl::GetFlag(FLAGS_momentum);
    memory["grad_clip"] = absl::GetFlag(FLAGS_grad_clip);
  }
  const nlohmann::json j = {{"model_type", "mc-lm"},
                            {"vocab_size", absl::GetFlag(FLAGS_vocab_size)},
                            {"d_model", absl::GetFlag(FLAGS_d_model)},
                            {"n_layers", absl::GetFlag(FLAGS_n_layers)},
                            {"n_heads", absl::GetFlag(FLAGS_n_heads)},
                            {"head_dim", absl::GetFlag(FLAGS_head_dim)},
                            {"d_ff", absl::GetFlag(FLAGS_d_ff)},
                            {"tie_embeddings", absl::GetFlag(FLAGS_tie_embeddings)},
                            {"memory", memory},
                            {"mc",
                             {{"aggregation", absl::GetFlag(FLAGS_aggregation)},
                              {"segment_length", absl::GetFlag(FLAGS_segment_length)},
                              {"top_k", absl::GetFlag(FLAGS_top_k)},
                              {"boundary", absl::GetFlag(FLAGS_boundary)}}},
                            {"tokenizer", {{"type", "byte"}, {"bos_id", 256}, {"eos_id", 257}}}};
  const std::string json = j.dump();
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
