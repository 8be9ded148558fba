// The seam between the model loader and the tokenizers: which tokenizer a
// model's config names, and loading it.
//
// The loader fills ModelConfig's tokenizer (kByte | kSentencePiece),
// tokenizer_path (kSentencePiece: the tokenizer.model file), bos_id,
// eos_id and vocab_size; Engine::Create calls LoadModelTokenizer with them.
#ifndef MCSERVE_SERVER_ENGINE_MODEL_TOKENIZER_H_
#define MCSERVE_SERVER_ENGINE_MODEL_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/model/config.h"
#include "server/tokenizer/tokenizer.h"
#include "server/tokenizer/tokenizer_factory.h"

namespace mcserve::engine {

// The tokenizer `config` names: the byte tokenizer, or SentencePiece from
// config.tokenizer_path; bos, eos and the vocabulary size are the config's.
tokenizer::TokenizerSpec TokenizerSpecFor(const model::ModelConfig& config);

// Loads the tokenizer `config` names or, when `sentencepiece_override` is
// non-empty, that SentencePiece model with its own bos/eos (the model's
// vocab_size still bounds the ids). Errors are the factory's
// (tokenizer_factory.h), prefixed with what was being loaded.
absl::StatusOr<std::unique_ptr<const tokenizer::Tokenizer>> LoadModelTokenizer(
    const model::ModelConfig& config, const std::string& sentencepiece_override = "");

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_MODEL_TOKENIZER_H_
