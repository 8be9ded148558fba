#include "server/tokenizer/sentencepiece_tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "server/util/status_macros.h"

namespace mcserve::tokenizer {
namespace {

constexpr absl::string_view kMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's space

absl::Status FileError(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer model '", path, "' ", what));
}

// bos or eos: the config's id when it names one (a control piece, or an id
// past the pieces), else the SentencePiece model's own.
absl::StatusOr<int32_t> PickSpecial(const SpmProcessor& sp, const std::string& path,
                                    absl::string_view name, std::optional<int32_t> configured,
                                    int own, int32_t vocab_size) {
  if (!configured.has_value()) {
    if (own < 0) return FileError(path, absl::StrCat("defines no ", name, " and none was given"));
    return own;
  }
  const int32_t id = *configured;
  if (id < 0 || id >= vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " ", id, " is not in [0, vocab_size ", vocab_size, ")"));
  }
  if (id < sp.piece_size() && !sp.is_control(id)) {
    return FileError(path, absl::StrCat("has piece '", sp.piece(id), "' at ", name, " ", id,
                                        ", which must be a control piece (the model's own ", name,
                                        " is ", own, ")"));
  }
  return id;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Load(
    const std::string& model_path, int32_t vocab_size, std::optional<int32_t> bos_id,
    std::optional<int32_t> eos_id) {
  if (model_path.empty()) {
    return absl::InvalidArgumentError("no SentencePiece model (tokenizer.model) path given");
  }
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(model_path, ec);
  if (!std::filesystem::exists(st)) {
    return absl::NotFoundError(absl::StrCat("tokenizer model '", model_path, "' not found"));
  }
  if (!std::filesystem::is_regular_file(st)) return FileError(model_path, "is not a file");
  absl::StatusOr<std::unique_ptr<SpmProcessor>> loaded = SpmProcessor::Load(model_path);
  if (absl::IsFailedPrecondition(loaded.status())) return loaded.status();  // no shim
  if (!loaded.ok()) {
    return FileError(model_path, absl::StrCat("is not a valid SentencePiece model: ",
                                              loaded.status().message()));
  }
  std::unique_ptr<SpmProcessor> sp = *std::move(loaded);
  if (sp->piece_size() > vocab_size) {
    return FileError(model_path,
                     absl::StrCat("has ", sp->piece_size(),
                                  " pieces, more than the model's vocab_size ", vocab_size));
  }
  ASSIGN_OR_RETURN(const int32_t bos,
                   PickSpecial(*sp, model_path, "bos_id", bos_id, sp->bos_id(), vocab_size));
  ASSIGN_OR_RETURN(const int32_t eos,
                   PickSpecial(*sp, model_path, "eos_id", eos_id, sp->eos_id(), vocab_size));
  std::unique_ptr<SentencePieceTokenizer> t(
      new SentencePieceTokenizer(model_path, std::move(sp), vocab_size, bos, eos));
  RETURN_IF_ERROR(t->BuildTable());
  RETURN_IF_ERROR(t->CheckStreamsMatchDecode());
  return t;
}

SentencePieceTokenizer::SentencePieceTokenizer(std::string path, std::unique_ptr<SpmProcessor> sp,
                                               int32_t vocab_size, int32_t bos_id, int32_t eos_id)
    : path_(std::move(path)),
      sp_(std::move(sp)),
      vocab_size_(vocab_size),
      bos_id_(bos_id),
      eos_id_(eos_id) {}

absl::Status SentencePieceTokenizer::BuildTable() {
  const int n = sp_->piece_size();
  table_.pieces.resize(n);
  is_sampleable_.assign(vocab_size_, false);
  for (int id = 0; id < n; ++id) {
    Piece& p = table_.pieces[id];
    const absl::string_view raw = sp_->piece(id);
    if (sp_->is_byte(id)) {
      int byte = 0;
      if (raw.size() != 6 || !absl::StartsWith(raw, "<0x") ||
          !absl::SimpleHexAtoi(raw.substr(3, 2), &byte)) {
        return FileError(
            path_, absl::StrCat("has a byte piece '", raw, "' (id ", id, ") that is not <0xNN>"));
      }
      p.kind = PieceKind::kByte;
      p.text = std::string(1, static_cast<char>(byte));
    } else if (sp_->is_control(id)) {
      p.kind = PieceKind::kControl;
    } else if (sp_->is_unknown(id)) {
      p.kind = PieceKind::kUnknown;
      ASSIGN_OR_RETURN(p.text, SpmDecode({id}));
    } else {
      p.kind = PieceKind::kText;
      p.leading_marker = absl::StartsWith(raw, kMarker);
      p.text = absl::StrReplaceAll(raw, {{kMarker, " "}});
    }
    const bool text =
        p.kind == PieceKind::kByte || (p.kind == PieceKind::kText && !sp_->is_unused(id));
    is_sampleable_[id] = text;
  }
  is_sampleable_[eos_id_] = true;
  for (int32_t id = 0; id < vocab_size_; ++id) {
    if (is_sampleable_[id]) sampleable_.push_back(id);
  }
  return DetectStartSpace();
}

int32_t SentencePieceTokenizer::tokenizer_vocab_size() const {
  return std::max({static_cast<int32_t>(table_.pieces.size()), bos_id_ + 1, eos_id_ + 1});
}

absl::StatusOr<std::string> SentencePieceTokenizer::SpmDecode(const std::vector<int>& ids) const {
  return sp_->Decode(ids);
}

absl::StatusOr<std::vector<int32_t>> SentencePieceTokenizer::Encode(absl::string_view text) const {
  ASSIGN_OR_RETURN(const std::vector<int> ids, sp_->Encode(text));
  return std::vector<int32_t>(ids.begin(), ids.end());
}

absl::StatusOr<std::string> SentencePieceTokenizer::Decode(absl::Span<const int32_t> ids) const {
  RETURN_IF_ERROR(CheckIds(ids, vocab_size_));
  std::vector<int> known;  // padding has no text, and SentencePiece does not know it
  known.reserve(ids.size());
  for (int32_t id : ids) {
    if (static_cast<size_t>(id) < table_.pieces.size()) known.push_back(id);
  }
  return SpmDecode(known);
}

std::string SentencePieceTokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= table_.pieces.size()) return "";
  return table_.pieces[id].text;
}

bool SentencePieceTokenizer::Sampleable(int32_t id) const {
  return id >= 0 && id < vocab_size_ && is_sampleable_[id];
}

std::unique_ptr<TextStream> SentencePieceTokenizer::NewStream(bool at_text_start) const {
  return std::make_unique<PieceStream>(&table_, at_text_start);
}

}  // namespace mcserve::tokenizer
