// Turns a stream of bytes into valid UTF-8 text without ever splitting a
// character: bytes of an incomplete character wait for the rest. A byte
// sequence that cannot become a character is replaced by one U+FFFD (per
// maximal invalid subpart, as the Unicode standard recommends).
// Thread-compatible.
#ifndef MCSERVE_SERVER_TOKENIZER_UTF8_STREAM_H_
#define MCSERVE_SERVER_TOKENIZER_UTF8_STREAM_H_

#include <cstdint>
#include <string>

namespace mcserve::tokenizer {

inline constexpr char kReplacementChar[] = "\xEF\xBF\xBD";  // U+FFFD

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

}  // namespace mcserve::tokenizer

#endif  // MCSERVE_SERVER_TOKENIZER_UTF8_STREAM_H_
