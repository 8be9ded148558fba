// SentencePieceTokenizer's load-time probes. The public API of
// libsentencepiece does not say how its decoder treats leading spaces (that
// is in the model's normalizer spec), so the tokenizer asks the decoder,
// then checks its own streaming rules against it on every piece.
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/tokenizer/sentencepiece_tokenizer.h"
#include "server/util/status_macros.h"

namespace mcserve::tokenizer {
namespace {

std::string StreamText(const PieceTable& table, const std::vector<int>& ids) {
  PieceStream s(&table, /*at_text_start=*/true);
  std::string text;
  for (int id : ids) text += s.Push(id);
  return text + s.Flush();
}

}  // namespace

absl::Status SentencePieceTokenizer::DetectStartSpace() {
  const std::vector<Piece>& pieces = table_.pieces;
  table_.start_space = StartSpace::kDropOne;
  int marked = -1;  // a piece that starts with the marker
  int space = -1;   // the piece that is only the marker
  for (size_t id = 0; id < pieces.size(); ++id) {
    if (pieces[id].kind != PieceKind::kText || !pieces[id].leading_marker) continue;
    if (marked < 0) marked = static_cast<int>(id);
    if (space < 0 && pieces[id].text == " ") space = static_cast<int>(id);
  }
  if (marked < 0) return absl::OkStatus();  // nothing to drop: the rule never applies
  ASSIGN_OR_RETURN(const std::string alone, SpmDecode({marked}));
  if (alone == pieces[marked].text) {
    table_.start_space = StartSpace::kKeep;
    return absl::OkStatus();
  }
  // Dropping: once, or for every piece while the text is empty? Only a
  // piece that is nothing but the marker tells them apart.
  if (space < 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(const std::string two, SpmDecode({space, space}));
  if (two.empty()) table_.start_space = StartSpace::kDropWhileEmpty;
  return absl::OkStatus();
}

absl::Status SentencePieceTokenizer::CheckStreamsMatchDecode() const {
  for (int id = 0; id < static_cast<int>(table_.pieces.size()); ++id) {
    for (const std::vector<int>& ids : {std::vector<int>{id}, std::vector<int>{id, id}}) {
      ASSIGN_OR_RETURN(const std::string want, SpmDecode(ids));
      const std::string got = StreamText(table_, ids);
      if (got == want) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer model '", path_, "': SentencePiece decodes ", ids.size() == 1 ? "" : "twice ",
          "piece ", id, " ('", absl::CEscape(sp_->piece(id)), "') as \"", absl::CEscape(want),
          "\" but the server's streaming decoder makes \"", absl::CEscape(got),
          "\"; decoding rules beyond SentencePiece's defaults (e.g. denormalization) are not ",
          "supported"));
    }
  }
  return absl::OkStatus();
}

}  // namespace mcserve::tokenizer
