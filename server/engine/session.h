// A session: one sequence's MC state in the pools and its token accounting.
//
// Invariant: the history is `position` fed tokens plus one pending token
// (the last one, not yet fed: the next step feeds it and samples from its
// logits). A new session's history is just BOS, pending.
#ifndef MCSERVE_SERVER_ENGINE_SESSION_H_
#define MCSERVE_SERVER_ENGINE_SESSION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/engine/scheduler.h"
#include "server/pool/checkpoint_pool.h"
#include "server/pool/eviction.h"

namespace mcserve::engine {

struct Session {
  std::string id;
  bool ephemeral = false;   // one-shot: freed with its request
  int32_t state_slot = -1;  // may be shared with a fork until one writes
  int64_t position = 0;     // tokens fed
  int32_t pending_token = 0;
  std::vector<pool::CkptId> ckpts;  // oldest first
  RequestId busy_with = 0;          // request in flight; 0 when idle
  bool broken = false;              // an internal error left the state unusable
  absl::Time last_used;
  pool::EvictionStats eviction;

  int64_t num_tokens() const { return position + 1; }
};

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_SESSION_H_
