// The byte tokenizer (mc-model.md §6): text is its UTF-8 bytes, ids 0-255;
// bos and eos come from the model's config; the model's vocab_size may be
// padded past them. Only the bytes and eos are ever sampled. Text never
// splits a UTF-8 character; bytes that cannot become one are U+FFFD
// (utf8_stream.h).
#ifndef MCSERVE_SERVER_TOKENIZER_BYTE_TOKENIZER_H_
#define MCSERVE_SERVER_TOKENIZER_BYTE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/tokenizer/tokenizer.h"

namespace mcserve::tokenizer {

class ByteTokenizer final : public Tokenizer {
 public:
  // INVALID_ARGUMENT unless bos and eos differ and lie in [256, vocab_size).
  static absl::StatusOr<std::unique_ptr<ByteTokenizer>> Create(int32_t vocab_size, int32_t bos_id,
                                                               int32_t eos_id);
  // Requires what Create checks.
  ByteTokenizer(int32_t vocab_size, int32_t bos_id, int32_t eos_id);

  // True for the ids that carry a byte of text.
  static bool IsByte(int32_t id) { return id >= 0 && id < 256; }

  absl::string_view kind() const override { return "byte"; }
  int32_t vocab_size() const override { return vocab_size_; }
  // The 256 bytes, bos and eos (their highest id, plus one).
  int32_t tokenizer_vocab_size() const override;
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  const std::string& model_path() const override { return no_path_; }
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const override;
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const override;
  std::string TokenBytes(int32_t id) const override;
  bool Sampleable(int32_t id) const override { return IsByte(id) || id == eos_id_; }
  const std::vector<int32_t>& sampleable_ids() const override { return sampleable_; }
  // The byte tokenizer has no start-of-text rule: `at_text_start` is unused.
  std::unique_ptr<TextStream> NewStream(bool at_text_start) const override;

 private:
  const int32_t vocab_size_;
  const int32_t bos_id_;
  const int32_t eos_id_;
  std::vector<int32_t> sampleable_;
  const std::string no_path_;
};

}  // namespace mcserve::tokenizer

#endif  // MCSERVE_SERVER_TOKENIZER_BYTE_TOKENIZER_H_
