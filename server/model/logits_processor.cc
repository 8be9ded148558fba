#include "server/model/logits_processor.h"

#include <algorithm>
#include <limits>

namespace mcserve::model {
namespace {

bool AnyOn(const LogitsAdjustments& a) {
  return !a.logit_bias.empty() || (a.min_tokens > 0 && !a.banned_before_min.empty()) ||
         a.repetition_penalty != 1.0f || a.presence_penalty != 0.0f || a.frequency_penalty != 0.0f;
}

}  // namespace

LogitsProcessor::LogitsProcessor(LogitsAdjustments adjustments, int32_t vocab)
    : adj_(std::move(adjustments)), vocab_(vocab), active_(AnyOn(adj_)) {
  if (adj_.repetition_penalty != 1.0f) seen_.assign(static_cast<size_t>(vocab), 0);
}

void LogitsProcessor::SetPrompt(absl::Span<const int32_t> prompt) {
  if (seen_.empty()) return;
  for (int32_t t : prompt) {
    if (t >= 0 && t < vocab_) seen_[t] = 1;
  }
}

void LogitsProcessor::AddOutput(int32_t token) {
  ++generated_;
  if (!seen_.empty() && token >= 0 && token < vocab_) seen_[token] = 1;
  if (adj_.presence_penalty == 0.0f && adj_.frequency_penalty == 0.0f) return;
  auto it = std::lower_bound(counts_.begin(), counts_.end(), std::make_pair(token, 0));
  if (it != counts_.end() && it->first == token) {
    ++it->second;
  } else {
    counts_.insert(it, {token, 1});
  }
}

const float* LogitsProcessor::Apply(const float* logits, std::vector<float>& out) const {
  out.assign(logits, logits + vocab_);
  for (const auto& [id, bias] : adj_.logit_bias) out[id] += bias;
  if (generated_ < adj_.min_tokens) {
    for (int32_t id : adj_.banned_before_min) {
      if (id >= 0 && id < vocab_) out[id] = -std::numeric_limits<float>::infinity();
    }
  }
  if (!seen_.empty()) {
    const float r = adj_.repetition_penalty;
    for (int32_t id = 0; id < vocab_; ++id) {
      if (seen_[id]) out[id] = out[id] > 0.0f ? out[id] / r : out[id] * r;
    }
  }
  for (const auto& [id, n] : counts_) {
    out[id] -= static_cast<float>(n) * adj_.frequency_penalty + adj_.presence_penalty;
  }
  return out.data();
}

}  // namespace mcserve::model
