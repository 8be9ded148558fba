#include "bench/serving/workload.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"

namespace mcserve::bench {
namespace {

int32_t Length(std::mt19937_64& rng, int32_t mean, double ratio) {
  const int32_t lo = std::max<int32_t>(1, static_cast<int32_t>(std::floor(mean * (1 - ratio))));
  const int32_t hi = std::max<int32_t>(lo, static_cast<int32_t>(std::ceil(mean * (1 + ratio))));
  return std::uniform_int_distribution<int32_t>(lo, hi)(rng);
}

}  // namespace

std::pair<int32_t, int32_t> OrdinaryIds(int32_t vocab, int32_t bos, int32_t eos) {
  const int32_t a = std::min(bos, eos), b = std::max(bos, eos);
  std::pair<int32_t, int32_t> best = {0, std::min(a, vocab)};
  for (const std::pair<int32_t, int32_t>& run :
       {std::pair<int32_t, int32_t>{a + 1, std::min(b, vocab)},
        std::pair<int32_t, int32_t>{b + 1, vocab}}) {
    if (run.second - run.first > best.second - best.first) best = run;
  }
  return best;
}

absl::StatusOr<std::vector<Conversation>> MakeWorkload(const WorkloadOptions& o) {
  if (o.conversations < 1) return absl::InvalidArgumentError("--conversations must be >= 1");
  if (!(o.rate > 0)) return absl::InvalidArgumentError("--request_rate must be > 0 (or inf)");
  if (o.session_share < 0 || o.session_share > 1) {
    return absl::InvalidArgumentError("--session_share must be in [0, 1]");
  }
  if (o.turns < 1) return absl::InvalidArgumentError("--turns must be >= 1");
  if (o.prompt_tokens < 1 || o.output_tokens < 1) {
    return absl::InvalidArgumentError("--prompt_tokens and --output_tokens must be >= 1");
  }
  if (o.range_ratio < 0 || o.range_ratio >= 1) {
    return absl::InvalidArgumentError("--range_ratio must be in [0, 1)");
  }
  if (o.token_lo < 0 || o.token_hi <= o.token_lo) {
    return absl::InvalidArgumentError(
        absl::StrCat("no prompt ids to draw from [", o.token_lo, ", ", o.token_hi, ")"));
  }
  std::mt19937_64 rng(o.seed);
  std::exponential_distribution<double> gap(std::isinf(o.rate) ? 1.0 : o.rate);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<uint32_t> token(static_cast<uint32_t>(o.token_lo),
                                                static_cast<uint32_t>(o.token_hi - 1));
  std::vector<Conversation> out(o.conversations);
  double t = 0;
  for (int32_t i = 0; i < o.conversations; ++i) {
    Conversation& c = out[i];
    if (!std::isinf(o.rate) && i > 0) t += o.poisson ? gap(rng) : 1.0 / o.rate;
    c.start_s = t;
    c.session = unit(rng) < o.session_share;
    c.turns.resize(c.session ? o.turns : 1);
    for (Turn& turn : c.turns) {
      turn.prompt.resize(Length(rng, o.prompt_tokens, o.range_ratio));
      for (uint32_t& id : turn.prompt) id = token(rng);
      turn.output_tokens = Length(rng, o.output_tokens, o.range_ratio);
    }
  }
  return out;
}

}  // namespace mcserve::bench
