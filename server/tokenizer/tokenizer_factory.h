// Builds the tokenizer a model names. The spec is plain data, so the model
// loader (server/model/config.h) and the engine's overrides fill it without
// this library depending on either (server/engine/model_tokenizer.h maps a
// ModelConfig to it).
#ifndef MCSERVE_SERVER_TOKENIZER_TOKENIZER_FACTORY_H_
#define MCSERVE_SERVER_TOKENIZER_TOKENIZER_FACTORY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/tokenizer/tokenizer.h"

namespace mcserve::tokenizer {

struct TokenizerSpec {
  enum class Type { kByte, kSentencePiece };
  Type type = Type::kByte;
  int32_t vocab_size = 0;  // the model's (embedding rows)
  // kByte: required. kSentencePiece: unset takes the SentencePiece model's
  // own; set, it must be one of its control pieces or an id past its pieces.
  std::optional<int32_t> bos_id;
  std::optional<int32_t> eos_id;
  std::string model_path;  // kSentencePiece: the tokenizer.model file
};

// NOT_FOUND when the SentencePiece model file is missing; INVALID_ARGUMENT,
// naming the file or the field, for everything else that is wrong.
absl::StatusOr<std::unique_ptr<const Tokenizer>> CreateTokenizer(const TokenizerSpec& spec);

}  // namespace mcserve::tokenizer

#endif  // MCSERVE_SERVER_TOKENIZER_TOKENIZER_FACTORY_H_
