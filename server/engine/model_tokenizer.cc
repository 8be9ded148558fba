#include "server/engine/model_tokenizer.h"

#include "absl/strings/str_cat.h"

namespace mcserve::engine {

tokenizer::TokenizerSpec TokenizerSpecFor(const model::ModelConfig& config) {
  tokenizer::TokenizerSpec spec;
  spec.type = config.tokenizer == model::TokenizerKind::kSentencePiece
                  ? tokenizer::TokenizerSpec::Type::kSentencePiece
                  : tokenizer::TokenizerSpec::Type::kByte;
  spec.vocab_size = config.vocab_size;
  spec.bos_id = config.bos_id;
  spec.eos_id = config.eos_id;
  spec.model_path = config.tokenizer_path;
  return spec;
}

absl::StatusOr<std::unique_ptr<const tokenizer::Tokenizer>> LoadModelTokenizer(
    const model::ModelConfig& config, const std::string& sentencepiece_override) {
  tokenizer::TokenizerSpec spec = TokenizerSpecFor(config);
  if (!sentencepiece_override.empty()) {
    spec.type = tokenizer::TokenizerSpec::Type::kSentencePiece;
    spec.model_path = sentencepiece_override;
    spec.bos_id.reset();
    spec.eos_id.reset();
  }
  absl::StatusOr<std::unique_ptr<const tokenizer::Tokenizer>> tok =
      tokenizer::CreateTokenizer(spec);
  if (!tok.ok()) {
    return absl::Status(tok.status().code(), absl::StrCat("cannot load the model's tokenizer: ",
                                                          tok.status().message()));
  }
  return tok;
}

}  // namespace mcserve::engine
