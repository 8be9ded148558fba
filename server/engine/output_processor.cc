#include "server/engine/output_processor.h"

#include <algorithm>

#include "absl/strings/match.h"

namespace mcserve::engine {

std::string OutputProcessor::Add(int32_t token) {
  ++generated_;
  if (token == tok_.eos_id() && !params_.ignore_eos) {
    reason_ = FinishReason::kEos;
    return Close();
  }
  if (std::find(params_.stop_token_ids.begin(), params_.stop_token_ids.end(), token) !=
      params_.stop_token_ids.end()) {
    reason_ = FinishReason::kStop;
    matched_id_ = token;
    return Close();
  }
  if (model::ByteTokenizer::IsByte(token)) bytes_.push_back(static_cast<char>(token));
  for (const std::string& s : params_.stop) {
    if (absl::EndsWith(bytes_, s)) {
      reason_ = FinishReason::kStop;
      matched_str_ = s;
      std::string out = Release(bytes_.size() - s.size());
      return out + utf8_.Flush();
    }
  }
  if (generated_ >= params_.max_tokens) {
    reason_ = FinishReason::kLength;
    return Close();
  }
  return Release(bytes_.size() - HeldBack());
}

std::string OutputProcessor::Close() {
  std::string out = Release(bytes_.size());
  return out + utf8_.Flush();
}

size_t OutputProcessor::HeldBack() const {
  size_t held = 0;
  for (const std::string& s : params_.stop) {
    const size_t max_len = std::min(s.size() - 1, bytes_.size() - released_);
    for (size_t len = max_len; len > held; --len) {
      if (absl::EndsWith(bytes_, absl::string_view(s).substr(0, len))) {
        held = len;
        break;
      }
    }
  }
  return held;
}

std::string OutputProcessor::Release(size_t upto) {
  std::string out;
  for (; released_ < upto; ++released_) {
    out += utf8_.Push(static_cast<uint8_t>(bytes_[released_]));
  }
  return out;
}

}  // namespace mcserve::engine
