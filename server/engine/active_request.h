// Engine-internal state of one request in flight (engine thread only).
#ifndef MCSERVE_SERVER_ENGINE_ACTIVE_REQUEST_H_
#define MCSERVE_SERVER_ENGINE_ACTIVE_REQUEST_H_

#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/model/logits_processor.h"

namespace mcserve::engine {

// The logits adjustments `p` asks for (EOS is banned before min_tokens
// unless it is an ordinary token, as in vLLM).
inline model::LogitsAdjustments LogitsAdjustmentsOf(const RequestParams& p, int32_t eos_id) {
  model::LogitsAdjustments a;
  a.logit_bias = p.logit_bias;
  a.min_tokens = p.min_tokens;
  a.banned_before_min = p.stop_token_ids;
  if (!p.ignore_eos) a.banned_before_min.push_back(eos_id);
  a.repetition_penalty = p.repetition_penalty;
  a.presence_penalty = p.presence_penalty;
  a.frequency_penalty = p.frequency_penalty;
  return a;
}

struct Engine::Active {
  Active(RequestId id_in, NewRequest req_in, const tokenizer::Tokenizer& tok, int32_t vocab)
      : id(id_in),
        req(std::move(req_in)),
        out(req.params, tok),
        rng(req.params.seed),
        logits(LogitsAdjustmentsOf(req.params, tok.eos_id()), vocab) {
    logits.SetPrompt(req.prompt);
  }

  RequestId id;
  NewRequest req;
  Session* session = nullptr;    // a table entry, or `own`
  std::unique_ptr<Session> own;  // one-shot requests own their session
  std::vector<int32_t> feed;     // the session's pending token, then the prompt
  int64_t fed = 0;               // feed tokens already prefilled
  int32_t prompt_tokens = 0;
  state::PrefixMatch prefix;  // found at submission, adopted at admission
  int64_t cached_tokens = 0;  // prompt tokens the prefix cache supplied
  // With params.prompt_logprobs: filled as the prompt is prefilled, handed
  // to the first update (TakePromptLogprobs).
  std::vector<TokenOut> prompt_logprobs;
  // Charged to this owner's checkpoint quota: the most checkpoint bytes
  // the session can hold when the request ends (engine_quota.cc).
  std::string quota_owner;
  int64_t reserved_ckpt_bytes = 0;
  OutputProcessor out;
  model::SamplerRng rng;
  model::LogitsProcessor logits;                 // penalties, bias, min_tokens
  std::vector<float> adjusted;                   // its output, reused every step
  absl::Time arrival;                            // when the engine received it
  absl::Time admitted = absl::InfiniteFuture();  // left the waiting queue
  absl::Time first_token = absl::InfiniteFuture();
  absl::Time last_token = absl::InfiniteFuture();
};

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_ACTIVE_REQUEST_H_
