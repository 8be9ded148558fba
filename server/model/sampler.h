// Next-token choice from logits: greedy, temperature, top-k, top-p, with a
// per-request seeded random stream, so the same seed and logits always give
// the same token. Only the tokenizer's sampleable ids are ever chosen.
#ifndef MCSERVE_SERVER_MODEL_SAMPLER_H_
#define MCSERVE_SERVER_MODEL_SAMPLER_H_

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "server/tokenizer/tokenizer.h"

namespace mcserve::model {

struct SamplingConfig {
  float temperature = 1.0f;  // 0: greedy
  float top_p = 1.0f;        // (0, 1]
  int32_t top_k = 0;         // 0: off
};

// The request's random stream; uniform draws are platform-independent.
class SamplerRng {
 public:
  explicit SamplerRng(uint64_t seed) : engine_(seed) {}
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

 private:
  std::mt19937_64 engine_;
};

// logits: `vocab` floats; ids from `tok.sampleable_ids()` below `vocab`.
int32_t SampleToken(const float* logits, int32_t vocab, const tokenizer::Tokenizer& tok,
                    const SamplingConfig& cfg, SamplerRng& rng);

struct TokenLogprobs {
  float logprob = 0.0f;                        // of the chosen token
  std::vector<std::pair<int32_t, float>> top;  // best first
};

// Log-softmax over the whole vocabulary (mc-model.md §6).
TokenLogprobs ComputeLogprobs(const float* logits, int32_t vocab, int32_t chosen, int32_t top_n);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_SAMPLER_H_
