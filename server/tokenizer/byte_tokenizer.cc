#include "server/tokenizer/byte_tokenizer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/tokenizer/utf8_stream.h"
#include "server/util/status_macros.h"

namespace mcserve::tokenizer {
namespace {

class ByteStream final : public TextStream {
 public:
  std::string Push(int32_t id) override {
    if (!ByteTokenizer::IsByte(id)) return "";
    std::string out = utf8_.Push(static_cast<uint8_t>(id));
    started_ = true;
    return out;
  }
  std::string Flush() override { return utf8_.Flush(); }
  bool at_text_start() const override { return !started_; }

 private:
  Utf8Stream utf8_;
  bool started_ = false;  // a byte was pushed: text came out or waits
};

}  // namespace

absl::StatusOr<std::unique_ptr<ByteTokenizer>> ByteTokenizer::Create(int32_t vocab_size,
                                                                     int32_t bos_id,
                                                                     int32_t eos_id) {
  for (auto [name, id] : {std::pair{"bos_id", bos_id}, std::pair{"eos_id", eos_id}}) {
    if (id < 256 || id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "byte tokenizer: ", name, " ", id, " must be in [256, vocab_size ", vocab_size, ")"));
    }
  }
  if (bos_id == eos_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte tokenizer: bos_id and eos_id are both ", bos_id));
  }
  return std::make_unique<ByteTokenizer>(vocab_size, bos_id, eos_id);
}

ByteTokenizer::ByteTokenizer(int32_t vocab_size, int32_t bos_id, int32_t eos_id)
    : vocab_size_(vocab_size), bos_id_(bos_id), eos_id_(eos_id) {
  sampleable_.reserve(257);
  for (int32_t b = 0; b < 256; ++b) sampleable_.push_back(b);
  sampleable_.push_back(eos_id_);
}

int32_t ByteTokenizer::tokenizer_vocab_size() const {
  return std::max({256, bos_id_ + 1, eos_id_ + 1});
}

absl::StatusOr<std::vector<int32_t>> ByteTokenizer::Encode(absl::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(static_cast<uint8_t>(c));
  return ids;
}

absl::StatusOr<std::string> ByteTokenizer::Decode(absl::Span<const int32_t> ids) const {
  RETURN_IF_ERROR(CheckIds(ids, vocab_size_));
  ByteStream s;
  std::string text;
  for (int32_t id : ids) text += s.Push(id);
  return text + s.Flush();
}

std::string ByteTokenizer::TokenBytes(int32_t id) const {
  return IsByte(id) ? std::string(1, static_cast<char>(id)) : std::string();
}

std::unique_ptr<TextStream> ByteTokenizer::NewStream(bool /*at_text_start*/) const {
  return std::make_unique<ByteStream>();
}

}  // namespace mcserve::tokenizer
