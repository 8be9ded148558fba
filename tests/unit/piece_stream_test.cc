// SentencePiece's decoding rules, id by id, on a hand-made piece table
// (sentencepiece_test.cc checks them against libsentencepiece itself).
#include "server/tokenizer/piece_stream.h"

#include <gtest/gtest.h>

namespace mcserve::tokenizer {
namespace {

constexpr char kFffd[] = "\xEF\xBF\xBD";

// 0 unk, 1 bos, 2 eos, 3-9 bytes C3 A9 F0 9F 98 80 41, 10 "▁hi",
// 11 "▁", 12 "there", 13 "▁▁".
enum : int32_t {
  kUnk,
  kBos,
  kEos,
  kC3,
  kA9,
  kF0,
  k9F,
  k98,
  k80,
  kByteA,
  kHi,
  kSpace,
  kThere,
  kTwoSpaces
};

PieceTable Table(StartSpace start_space) {
  PieceTable t;
  t.start_space = start_space;
  t.pieces.push_back({PieceKind::kUnknown, " \xE2\x81\x87 ", false});
  t.pieces.push_back({PieceKind::kControl, "", false});
  t.pieces.push_back({PieceKind::kControl, "", false});
  for (int b : {0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80, 0x41}) {
    t.pieces.push_back({PieceKind::kByte, std::string(1, static_cast<char>(b)), false});
  }
  t.pieces.push_back({PieceKind::kText, " hi", true});
  t.pieces.push_back({PieceKind::kText, " ", true});
  t.pieces.push_back({PieceKind::kText, "there", false});
  t.pieces.push_back({PieceKind::kText, "  ", true});
  return t;
}

// Each id's text, then the flush.
std::vector<std::string> Stream(const PieceTable& t, const std::vector<int32_t>& ids,
                                bool at_text_start = true) {
  PieceStream s(&t, at_text_start);
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(s.Push(id));
  out.push_back(s.Flush());
  return out;
}

std::string Text(const PieceTable& t, const std::vector<int32_t>& ids, bool at_start = true) {
  std::string all;
  for (const std::string& s : Stream(t, ids, at_start)) all += s;
  return all;
}

TEST(PieceStreamTest, DropsOnlyTheFirstDummyPrefixSpace) {
  const PieceTable t = Table(StartSpace::kDropOne);
  EXPECT_EQ(Text(t, {kHi, kHi}), "hi hi");
  EXPECT_EQ(Text(t, {kBos, kHi}), "hi");     // bos has no text: still the start
  EXPECT_EQ(Text(t, {kSpace, kHi}), " hi");  // the lone marker took the drop
  EXPECT_EQ(Text(t, {kTwoSpaces, kThere}), " there");
  EXPECT_EQ(Text(t, {kHi}, /*at_start=*/false), " hi");  // continuing a text
}

TEST(PieceStreamTest, DropWhileEmptyDropsEveryLeadingMarker) {
  const PieceTable t = Table(StartSpace::kDropWhileEmpty);
  EXPECT_EQ(Text(t, {kSpace, kSpace, kHi, kHi}), "hi hi");
  EXPECT_EQ(Text(t, {kTwoSpaces, kHi}), "  hi");
}

TEST(PieceStreamTest, KeepDropsNothing) { EXPECT_EQ(Text(Table(StartSpace::kKeep), {kHi}), " hi"); }

TEST(PieceStreamTest, ByteFallbackCharacterComesOutWhole) {
  const PieceTable t = Table(StartSpace::kDropOne);
  EXPECT_EQ(Stream(t, {kHi, kF0, k9F, k98, k80, kThere}),
            (std::vector<std::string>{"hi", "", "", "", "\xF0\x9F\x98\x80", "there", ""}));
  EXPECT_EQ(Stream(t, {kC3, kA9}), (std::vector<std::string>{"", "\xC3\xA9", ""}));
}

TEST(PieceStreamTest, InvalidBytesAreOneReplacementEach) {
  const PieceTable t = Table(StartSpace::kDropOne);
  // A cut-off character: one U+FFFD per byte (SentencePiece), when the run
  // ends at a non-byte piece or at the end.
  EXPECT_EQ(
      Stream(t, {kF0, k9F, k98, kThere}),
      (std::vector<std::string>{"", "", "", std::string(kFffd) + kFffd + kFffd + "there", ""}));
  EXPECT_EQ(Stream(t, {kF0, k9F}), (std::vector<std::string>{"", "", std::string(kFffd) + kFffd}));
  // A stray continuation byte is known to be invalid at once.
  EXPECT_EQ(Stream(t, {kA9, kByteA}), (std::vector<std::string>{kFffd, "A", ""}));
  // A lead byte followed by a non-continuation.
  EXPECT_EQ(Text(t, {kC3, kByteA}), std::string(kFffd) + "A");
}

TEST(PieceStreamTest, ControlPiecesEndAByteRunAndPaddingDoesNot) {
  const PieceTable t = Table(StartSpace::kDropOne);
  EXPECT_EQ(Text(t, {kC3, kEos, kA9}), std::string(kFffd) + kFffd);
  EXPECT_EQ(Text(t, {kC3, 99, kA9}), "\xC3\xA9");  // 99: past the table
}

TEST(PieceStreamTest, ByteAndUnknownTextEndTheStart) {
  const PieceTable t = Table(StartSpace::kDropOne);
  EXPECT_EQ(Text(t, {kByteA, kHi}), "A hi");
  EXPECT_EQ(Text(t, {kUnk, kHi}), " \xE2\x81\x87  hi");
}

TEST(PieceStreamTest, AtTextStartFollowsSentencePiecesRule) {
  const PieceTable one = Table(StartSpace::kDropOne);
  PieceStream s(&one, true);
  EXPECT_TRUE(s.at_text_start());
  s.Push(kBos);
  EXPECT_TRUE(s.at_text_start());
  s.Push(kSpace);  // dropped its marker: the next piece keeps its space
  EXPECT_FALSE(s.at_text_start());

  const PieceTable all = Table(StartSpace::kDropWhileEmpty);
  PieceStream w(&all, true);
  w.Push(kSpace);
  EXPECT_TRUE(w.at_text_start());
  w.Push(kC3);  // a byte waits: it will be text
  EXPECT_FALSE(w.at_text_start());

  PieceStream later(&one, false);
  EXPECT_FALSE(later.at_text_start());
}

TEST(SpmDecodeCharTest, FollowsSentencePiecesUtf8Check) {
  size_t n = 0;
  EXPECT_TRUE(SpmDecodeChar("a", &n));
  EXPECT_EQ(n, 1u);
  EXPECT_TRUE(SpmDecodeChar("\xE2\x82\xAC", &n));
  EXPECT_EQ(n, 3u);
  EXPECT_TRUE(SpmDecodeChar("\xEF\xBF\xBD", &n));  // U+FFFD itself is valid
  EXPECT_EQ(n, 3u);
  EXPECT_TRUE(SpmDecodeChar("\xF0\x9F\x98\x80!", &n));
  EXPECT_EQ(n, 4u);
  for (const char* bad :
       {"\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82", "\x80", "\xFF"}) {
    EXPECT_FALSE(SpmDecodeChar(bad, &n)) << absl::string_view(bad).size();
    EXPECT_EQ(n, 1u);
  }
}

}  // namespace
}  // namespace mcserve::tokenizer
