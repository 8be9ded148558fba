// The byte tokenizer (mc-model.md §6): text is its UTF-8 bytes, ids 0-255;
// bos and eos come from the config.
#ifndef MCSERVE_SERVER_MODEL_TOKENIZER_H_
#define MCSERVE_SERVER_MODEL_TOKENIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace mcserve::model {

class ByteTokenizer {
 public:
  ByteTokenizer(int32_t bos_id, int32_t eos_id) : bos_id_(bos_id), eos_id_(eos_id) {}

  std::vector<int32_t> Encode(absl::string_view text) const;
  // True for the ids that carry a byte of text.
  static bool IsByte(int32_t id) { return id >= 0 && id < 256; }
  // Ids that may ever be sampled: the bytes and eos.
  bool Sampleable(int32_t id) const { return IsByte(id) || id == eos_id_; }

  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }

 private:
  int32_t bos_id_;
  int32_t eos_id_;
};

// Turns a stream of bytes into valid UTF-8 text without ever splitting a
// character: bytes of an incomplete character wait for the rest. A byte
// sequence that cannot become a character is replaced by one U+FFFD (per
// maximal invalid subpart, as the Unicode standard recommends).
class Utf8Stream {
 public:
  // Appends one byte; returns the text it completes (possibly empty).
  std::string Push(uint8_t byte);
  // Ends the stream: an incomplete character becomes U+FFFD.
  std::string Flush();
  bool has_pending() const { return pending_len_ > 0; }

 private:
  void AppendFresh(uint8_t byte, std::string& out);

  uint8_t pending_[4] = {0, 0, 0, 0};
  int pending_len_ = 0;
  int needed_ = 0;  // total length of the pending character
};

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_TOKENIZER_H_
