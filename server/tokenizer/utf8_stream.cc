#include "server/tokenizer/utf8_stream.h"

namespace mcserve::tokenizer {
namespace {

// Valid range of the second byte after `lead` (Unicode Table 3-7).
bool ValidSecond(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0:
      return b >= 0xA0 && b <= 0xBF;
    case 0xED:
      return b >= 0x80 && b <= 0x9F;
    case 0xF0:
      return b >= 0x90 && b <= 0xBF;
    case 0xF4:
      return b >= 0x80 && b <= 0x8F;
    default:
      return b >= 0x80 && b <= 0xBF;
  }
}

int SequenceLength(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;  // never valid as a lead byte
}

}  // namespace

void Utf8Stream::AppendFresh(uint8_t byte, std::string& out) {
  const int len = SequenceLength(byte);
  if (len == 1) {
    out.push_back(static_cast<char>(byte));
  } else if (len == 0) {
    out += kReplacementChar;
  } else {
    pending_[0] = byte;
    pending_len_ = 1;
    needed_ = len;
  }
}

std::string Utf8Stream::Push(uint8_t byte) {
  std::string out;
  if (pending_len_ == 0) {
    AppendFresh(byte, out);
    return out;
  }
  const bool ok =
      pending_len_ == 1 ? ValidSecond(pending_[0], byte) : (byte >= 0x80 && byte <= 0xBF);
  if (!ok) {
    out += kReplacementChar;
    pending_len_ = 0;
    AppendFresh(byte, out);
    return out;
  }
  pending_[pending_len_++] = byte;
  if (pending_len_ == needed_) {
    out.append(reinterpret_cast<const char*>(pending_), pending_len_);
    pending_len_ = 0;
  }
  return out;
}

std::string Utf8Stream::Flush() {
  if (pending_len_ == 0) return "";
  pending_len_ = 0;
  return kReplacementChar;
}

}  // namespace mcserve::tokenizer
