// One request's adjustments of the logits before sampling, with vLLM's
// semantics (SamplingParams: logit_bias, min_tokens, repetition_penalty,
// presence_penalty, frequency_penalty), applied in this order:
//   1. logit_bias[t] is added to logit t;
//   2. before min_tokens tokens were generated, the banned ids (EOS unless
//      ignore_eos, and the stop token ids) get -inf;
//   3. every token in the prompt or the output so far: a positive logit is
//      divided by repetition_penalty, a negative one multiplied by it;
//   4. every token generated n > 0 times so far loses
//      n * frequency_penalty + presence_penalty.
// Then the sampler applies temperature, top-k and top-p as before. With all
// of them off, Apply is never needed (active() is false) and the logits are
// sampled as they are.
// Thread-compatible (the engine thread owns each request's processor).
#ifndef MCSERVE_SERVER_MODEL_LOGITS_PROCESSOR_H_
#define MCSERVE_SERVER_MODEL_LOGITS_PROCESSOR_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"

namespace mcserve::model {

struct LogitsAdjustments {
  std::vector<std::pair<int32_t, float>> logit_bias;  // ids below the vocabulary
  int32_t min_tokens = 0;
  std::vector<int32_t> banned_before_min;  // EOS (unless ignore_eos) and stop ids
  float repetition_penalty = 1.0f;         // > 0; 1: off
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
};

class LogitsProcessor {
 public:
  LogitsProcessor(LogitsAdjustments adjustments, int32_t vocab);

  // Whether any adjustment is on.
  bool active() const { return active_; }
  // The prompt, for the repetition penalty (call once, before the first Apply).
  void SetPrompt(absl::Span<const int32_t> prompt);
  // A token was generated.
  void AddOutput(int32_t token);
  // `logits` (vocab floats) adjusted, written to `out`; returns out.data().
  const float* Apply(const float* logits, std::vector<float>& out) const;

 private:
  const LogitsAdjustments adj_;
  const int32_t vocab_;
  const bool active_;
  int32_t generated_ = 0;
  // Only with a repetition penalty: which ids the prompt or output hold.
  std::vector<uint8_t> seen_;
  // Only with presence or frequency penalties: (id, times generated).
  std::vector<std::pair<int32_t, int32_t>> counts_;
};

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_LOGITS_PROCESSOR_H_
