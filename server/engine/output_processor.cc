#include "server/engine/output_processor.h"

#include <algorithm>

#include "absl/strings/match.h"

namespace mcserve::engine {

OutputProcessor::OutputProcessor(const RequestParams& params, const tokenizer::Tokenizer& tok)
    : params_(params), tok_(tok), stream_(tok.NewStream(/*at_text_start=*/true)) {}

void OutputProcessor::SetContext(bool at_text_start, absl::Span<const int32_t> context) {
  stream_ = tok_.NewStream(at_text_start);
  // Once text has come out the start-of-text rule is over: the rest of the
  // context cannot change what the generation's text is.
  for (size_t i = 0; i < context.size() && stream_->at_text_start(); ++i) {
    stream_->Push(context[i]);
  }
  // The context's unfinished character, if any, is its own (U+FFFD there).
  stream_->Flush();
}

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
  text_ += stream_->Push(token);
  if (generated_ >= params_.min_tokens) {
    if (std::optional<std::string> out = MatchStop()) return *std::move(out);
  }
  if (generated_ >= params_.max_tokens) {
    reason_ = FinishReason::kLength;
    return Close();
  }
  return Release(text_.size() - HeldBack());
}

std::string OutputProcessor::Close() {
  text_ += stream_->Flush();
  std::string out = Release(text_.size());
  return out + utf8_.Flush();
}

std::optional<std::string> OutputProcessor::MatchStop() {
  // No stop string starts before released_ (HeldBack keeps every partial
  // match), so only the new text can complete one. The first to end wins,
  // as if the text had come byte by byte; ties go to the earlier string.
  size_t best_end = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& s : params_.stop) {
    const size_t at = text_.find(s, released_);
    if (at != std::string::npos && at + s.size() < best_end) {
      best_end = at + s.size();
      best = &s;
    }
  }
  if (best == nullptr) return std::nullopt;
  reason_ = FinishReason::kStop;
  matched_str_ = *best;
  std::string out =
      Release(params_.include_stop_str_in_output ? best_end : best_end - best->size());
  return out + utf8_.Flush();
}

size_t OutputProcessor::HeldBack() const {
  size_t held = 0;
  for (const std::string& s : params_.stop) {
    const size_t max_len = std::min(s.size() - 1, text_.size() - released_);
    for (size_t len = max_len; len > held; --len) {
      if (absl::EndsWith(text_, absl::string_view(s).substr(0, len))) {
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
    out += utf8_.Push(static_cast<uint8_t>(text_[released_]));
  }
  return out;
}

}  // namespace mcserve::engine
