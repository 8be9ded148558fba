// Engine-internal state of one request in flight (engine thread only).
#ifndef MCSERVE_SERVER_ENGINE_ACTIVE_REQUEST_H_
#define MCSERVE_SERVER_ENGINE_ACTIVE_REQUEST_H_

#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "server/engine/engine.h"

namespace mcserve::engine {

struct Engine::Active {
  Active(RequestId id_in, NewRequest req_in, const tokenizer::Tokenizer& tok)
      : id(id_in), req(std::move(req_in)), out(req.params, tok), rng(req.params.seed) {}

  RequestId id;
  NewRequest req;
  Session* session = nullptr;    // a table entry, or `own`
  std::unique_ptr<Session> own;  // one-shot requests own their session
  std::vector<int32_t> feed;     // the session's pending token, then the prompt
  int64_t fed = 0;               // feed tokens already prefilled
  int32_t prompt_tokens = 0;
  state::PrefixMatch prefix;  // found at submission, adopted at admission
  int64_t cached_tokens = 0;  // prompt tokens the prefix cache supplied
  // Charged to this owner's checkpoint quota: the most checkpoint bytes
  // the session can hold when the request ends (engine_quota.cc).
  std::string quota_owner;
  int64_t reserved_ckpt_bytes = 0;
  OutputProcessor out;
  model::SamplerRng rng;
  absl::Time arrival;                            // when the engine received it
  absl::Time admitted = absl::InfiniteFuture();  // left the waiting queue
  absl::Time first_token = absl::InfiniteFuture();
  absl::Time last_token = absl::InfiniteFuture();
};

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_ACTIVE_REQUEST_H_
