// A SentencePiece tokenizer (libsentencepiece): the tokenizer.model of
// Llama, Mistral and the fla checkpoints.
//
// Ids: the model's pieces are ids [0, pieces); the model's vocab_size may be
// larger (padding, or added tokens this tokenizer knows nothing of), never
// smaller. bos and eos come from the model's config when it names them and
// must then be control pieces of the SentencePiece model or ids past its
// pieces; unset, they are the SentencePiece model's own. They may be one id
// (some models use one control piece for both): it is then eos, and
// sampleable.
//
// Sampleable: every normal, user-defined and byte piece, and eos. Never
// bos (unless it is eos) or other control pieces, unused pieces, padding, nor the unknown
// piece: it stands for text the tokenizer could not represent, decodes to a
// placeholder (" \u2047 "), and with byte_fallback encoding never makes it.
//
// libsentencepiece is loaded apart from the process (spm_processor.h).
//
// Text: Decode is SentencePieceProcessor::Decode (padding skipped); streams
// follow the same rules id by id (piece_stream.h). At load the server checks
// that the two agree on every piece, so a model whose decoder does more
// (e.g. denormalization rules) is refused rather than streamed wrongly.
#ifndef MCSERVE_SERVER_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_
#define MCSERVE_SERVER_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/tokenizer/piece_stream.h"
#include "server/tokenizer/spm_processor.h"
#include "server/tokenizer/tokenizer.h"

namespace mcserve::tokenizer {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Loads `model_path` (a tokenizer.model). NOT_FOUND when the file is
  // missing; INVALID_ARGUMENT, naming the file, when it is not a
  // SentencePiece model, when it has more pieces than `vocab_size`, when
  // bos/eos are unusable, or when its decoder cannot be streamed;
  // FAILED_PRECONDITION when libsentencepiece's shim cannot be loaded.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Load(
      const std::string& model_path, int32_t vocab_size, std::optional<int32_t> bos_id,
      std::optional<int32_t> eos_id);

  absl::string_view kind() const override { return "sentencepiece"; }
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t tokenizer_vocab_size() const override;
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  const std::string& model_path() const override { return path_; }
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const override;
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const override;
  std::string TokenBytes(int32_t id) const override;
  bool Sampleable(int32_t id) const override;
  const std::vector<int32_t>& sampleable_ids() const override { return sampleable_; }
  std::unique_ptr<TextStream> NewStream(bool at_text_start) const override;

  StartSpace start_space() const { return table_.start_space; }

 private:
  SentencePieceTokenizer(std::string path, std::unique_ptr<SpmProcessor> sp, int32_t vocab_size,
                         int32_t bos_id, int32_t eos_id);
  absl::Status BuildTable();
  // Load-time probes (sentencepiece_probes.cc): which leading spaces the
  // decoder drops, and that streams agree with Decode on every piece.
  absl::Status DetectStartSpace();
  absl::Status CheckStreamsMatchDecode() const;
  // SentencePiece's Decode of `ids` (all below its piece count).
  absl::StatusOr<std::string> SpmDecode(const std::vector<int>& ids) const;

  const std::string path_;
  const std::unique_ptr<SpmProcessor> sp_;
  const int32_t vocab_size_;
  const int32_t bos_id_;
  const int32_t eos_id_;
  PieceTable table_;
  std::vector<int32_t> sampleable_;
  std::vector<bool> is_sampleable_;  // by id, vocab_size_ entries
};

}  // namespace mcserve::tokenizer

#endif  // MCSERVE_SERVER_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_
