#include "server/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mcserve::model {

int32_t SampleToken(const float* logits, int32_t vocab, const tokenizer::Tokenizer& tok,
                    const SamplingConfig& cfg, SamplerRng& rng) {
  const std::vector<int32_t>& all = tok.sampleable_ids();
  std::vector<int32_t> ids(all.begin(), std::lower_bound(all.begin(), all.end(), vocab));
  if (cfg.temperature == 0.0f) {
    // The best; ties to the lower id (ids ascend).
    int32_t best = ids.front();
    for (int32_t id : ids) {
      if (logits[id] > logits[best]) best = id;
    }
    return best;
  }
  // Best first; ties to the lower id, so the order is total.
  std::sort(ids.begin(), ids.end(), [logits](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  size_t keep = ids.size();
  if (cfg.top_k > 0) keep = std::min<size_t>(keep, static_cast<size_t>(cfg.top_k));
  std::vector<double> p(keep);
  const double inv_t = 1.0 / cfg.temperature;
  const double top = logits[ids[0]] * inv_t;
  for (size_t i = 0; i < keep; ++i) p[i] = std::exp(logits[ids[i]] * inv_t - top);
  double total = std::accumulate(p.begin(), p.end(), 0.0);
  if (cfg.top_p < 1.0f) {
    double cum = 0.0;
    size_t n = 0;
    while (n < keep) {
      cum += p[n++] / total;
      if (cum >= cfg.top_p) break;
    }
    keep = n;
    total = std::accumulate(p.begin(), p.begin() + keep, 0.0);
  }
  const double u = rng.Uniform() * total;
  double cum = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    cum += p[i];
    if (u < cum) return ids[i];
  }
  return ids[keep - 1];
}

TokenLogprobs ComputeLogprobs(const float* logits, int32_t vocab, int32_t chosen, int32_t top_n) {
  double m = logits[0];
  for (int32_t i = 1; i < vocab; ++i) m = std::max<double>(m, logits[i]);
  double sum = 0.0;
  for (int32_t i = 0; i < vocab; ++i) sum += std::exp(logits[i] - m);
  const double log_z = m + std::log(sum);
  TokenLogprobs out;
  out.logprob = static_cast<float>(logits[chosen] - log_z);
  if (top_n > 0) {
    std::vector<int32_t> ids(vocab);
    std::iota(ids.begin(), ids.end(), 0);
    const size_t n = std::min<size_t>(static_cast<size_t>(top_n), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [logits](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (size_t i = 0; i < n; ++i) {
      out.top.emplace_back(ids[i], static_cast<float>(logits[ids[i]] - log_z));
    }
  }
  return out;
}

}  // namespace mcserve::model
