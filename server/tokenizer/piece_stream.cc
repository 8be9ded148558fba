#include "server/tokenizer/piece_stream.h"

#include "server/tokenizer/utf8_stream.h"

namespace mcserve::tokenizer {
namespace {

bool IsTrail(char c) { return (static_cast<uint8_t>(c) & 0xC0) == 0x80; }

bool IsValidCodepoint(uint32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); }

// Bytes SentencePiece's UTF-8 decoder looks at for a character led by `b`;
// before that many are in, its verdict may still change.
size_t BytesNeeded(uint8_t b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 1;
}

}  // namespace

// string_util::DecodeUTF8 and IsValidDecodeUTF8 of SentencePiece 0.1.97; a
// well-formed U+FFFD counts as valid there, and does here.
bool SpmDecodeChar(absl::string_view s, size_t* consumed) {
  const auto b = [&s](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i])); };
  const size_t len = s.size();
  *consumed = 1;
  const uint32_t b0 = b(0);
  if (b0 < 0x80) return true;
  uint32_t cp = 0;
  size_t n = 0;
  if (len >= 2 && (b0 & 0xE0) == 0xC0) {
    cp = ((b0 & 0x1F) << 6) | (b(1) & 0x3F);
    n = (IsTrail(s[1]) && cp >= 0x80) ? 2 : 0;
  } else if (len >= 3 && (b0 & 0xF0) == 0xE0) {
    cp = ((b0 & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    n = (IsTrail(s[1]) && IsTrail(s[2]) && cp >= 0x800) ? 3 : 0;
  } else if (len >= 4 && (b0 & 0xF8) == 0xF0) {
    cp = ((b0 & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    n = (IsTrail(s[1]) && IsTrail(s[2]) && IsTrail(s[3]) && cp >= 0x10000) ? 4 : 0;
  }
  if (n == 0 || !IsValidCodepoint(cp)) return false;
  *consumed = n;
  return true;
}

PieceStream::PieceStream(const PieceTable* table, bool at_text_start)
    : table_(table), text_empty_(at_text_start), drop_space_(at_text_start) {}

bool PieceStream::at_text_start() const {
  return drop_space_ && text_empty_ && !dropped_one_ && run_.empty();
}

std::string PieceStream::Emit(std::string text) {
  if (!text.empty()) text_empty_ = false;
  return text;
}

std::string PieceStream::DrainBytes(bool end) {
  std::string out;
  size_t off = 0;
  while (off < run_.size()) {
    const absl::string_view rest = absl::string_view(run_).substr(off);
    if (!end && rest.size() < BytesNeeded(static_cast<uint8_t>(rest[0]))) break;
    size_t consumed = 1;
    if (SpmDecodeChar(rest, &consumed)) {
      out.append(rest.data(), consumed);
    } else {
      out += kReplacementChar;
    }
    off += consumed;
  }
  run_.erase(0, off);
  return Emit(std::move(out));
}

std::string PieceStream::Push(int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= table_->pieces.size()) return "";  // padding
  const Piece& p = table_->pieces[id];
  if (p.kind == PieceKind::kByte) {
    run_ += p.text;
    return DrainBytes(/*end=*/false);
  }
  std::string out = DrainBytes(/*end=*/true);
  // SentencePiece decides before each non-byte piece whether it is still
  // at the start of the text.
  if (dropped_one_ || !text_empty_) drop_space_ = false;
  dropped_one_ = false;
  if (p.kind != PieceKind::kText) return out + Emit(p.text);
  if (drop_space_ && p.leading_marker && table_->start_space != StartSpace::kKeep) {
    dropped_one_ = table_->start_space == StartSpace::kDropOne;
    return out + Emit(p.text.substr(1));
  }
  return out + Emit(p.text);
}

std::string PieceStream::Flush() { return DrainBytes(/*end=*/true); }

}  // namespace mcserve::tokenizer
