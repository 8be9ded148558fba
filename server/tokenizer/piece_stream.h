// SentencePiece's decoder restated id by id, so that text can stream: the
// concatenation of a PieceStream's output equals
// SentencePieceProcessor::Decode (0.1.97) of the same ids. Independent of
// libsentencepiece (a PieceTable says what each id is), so the rules are
// unit-tested on hand-made tables too.
//
// The rules, for ids in order:
// - Ids past the table (padding up to the model's vocab_size) are skipped,
//   as if absent.
// - A byte piece (<0xNN>) adds its byte to the current run of bytes. A run
//   ends at the next non-byte piece or at the end, and is decoded then: each
//   valid UTF-8 character is itself, and every other byte is one U+FFFD
//   (per byte, SentencePiece's rule; Utf8Stream replaces per maximal
//   subpart). The stream releases a character as soon as its bytes are in.
// - A control piece (bos, eos, ...) has no text; the unknown piece has the
//   model's unk surface (" \u2047 " by default).
// - Any other piece is its text with U+2581 read as a space, except at the
//   start of the text: while nothing has come out yet, a piece that starts
//   with U+2581 drops it (the dummy prefix), under the table's StartSpace.
#ifndef MCSERVE_SERVER_TOKENIZER_PIECE_STREAM_H_
#define MCSERVE_SERVER_TOKENIZER_PIECE_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/tokenizer/tokenizer.h"

namespace mcserve::tokenizer {

// Which leading spaces SentencePiece's decoder drops at the start of a text.
enum class StartSpace {
  kKeep,            // neither add_dummy_prefix nor remove_extra_whitespaces
  kDropOne,         // add_dummy_prefix: the first leading U+2581 only
  kDropWhileEmpty,  // remove_extra_whitespaces: one per piece while no text
};

enum class PieceKind : uint8_t { kText, kByte, kControl, kUnknown };

struct Piece {
  PieceKind kind = PieceKind::kText;
  // kText: the piece with U+2581 as ' '; kByte: its one byte; kUnknown: the
  // unk surface; kControl: empty.
  std::string text;
  bool leading_marker = false;  // kText whose piece starts with U+2581
};

struct PieceTable {
  std::vector<Piece> pieces;  // by id
  StartSpace start_space = StartSpace::kDropOne;
};

// SentencePiece's test for one UTF-8 character at the start of `bytes`
// (string_util::IsValidDecodeUTF8): true and its length in `consumed`, or
// false with `consumed` = 1. `bytes` is not empty.
bool SpmDecodeChar(absl::string_view bytes, size_t* consumed);

class PieceStream final : public TextStream {
 public:
  // `table` must outlive the stream.
  PieceStream(const PieceTable* table, bool at_text_start);

  std::string Push(int32_t id) override;
  std::string Flush() override;
  bool at_text_start() const override;

 private:
  // Decodes the run's bytes whose characters are complete (all of them when
  // `end`: the run is over).
  std::string DrainBytes(bool end);
  std::string Emit(std::string text);

  const PieceTable* const table_;
  std::string run_;           // bytes of the current run not yet decoded
  bool text_empty_ = true;    // nothing has come out
  bool drop_space_ = true;    // SentencePiece's is_bos_ws
  bool dropped_one_ = false;  // SentencePiece's bos_ws_seen
};

}  // namespace mcserve::tokenizer

#endif  // MCSERVE_SERVER_TOKENIZER_PIECE_STREAM_H_
