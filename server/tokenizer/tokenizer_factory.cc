#include "server/tokenizer/tokenizer_factory.h"

#include "server/tokenizer/byte_tokenizer.h"
#include "server/tokenizer/sentencepiece_tokenizer.h"
#include "server/util/status_macros.h"

namespace mcserve::tokenizer {

absl::StatusOr<std::unique_ptr<const Tokenizer>> CreateTokenizer(const TokenizerSpec& spec) {
  if (spec.type == TokenizerSpec::Type::kSentencePiece) {
    ASSIGN_OR_RETURN(
        std::unique_ptr<SentencePieceTokenizer> t,
        SentencePieceTokenizer::Load(spec.model_path, spec.vocab_size, spec.bos_id, spec.eos_id));
    return std::unique_ptr<const Tokenizer>(std::move(t));
  }
  if (!spec.bos_id.has_value() || !spec.eos_id.has_value()) {
    return absl::InvalidArgumentError("byte tokenizer: bos_id and eos_id are required");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ByteTokenizer> t,
                   ByteTokenizer::Create(spec.vocab_size, *spec.bos_id, *spec.eos_id));
  return std::unique_ptr<const Tokenizer>(std::move(t));
}

}  // namespace mcserve::tokenizer
