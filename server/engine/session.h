// A session: one sequence's state (a handle into the state store) and its
// token accounting.
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
#include "server/state/prefix_index.h"
#include "server/state/state_store.h"

namespace mcserve::engine {

struct Session {
  std::string id;
  bool ephemeral = false;   // one-shot: freed with its request
  state::SeqState state;    // invalid until the session first needs it
  state::TokenChain chain;  // tokens since BOS, for the prefix cache
  // The prefix cache scope its chain starts from: its owner's
  // (state::RootKey), so owners never share cached prefixes.
  uint64_t cache_root = state::kRootKey;
  int64_t position = 0;  // tokens fed
  int32_t pending_token = 0;
  RequestId busy_with = 0;  // request in flight; 0 when idle
  bool broken = false;      // an internal error left the state unusable
  // No text has come out of the history yet (it is BOS, perhaps with ids
  // that have no text): SentencePiece then drops the dummy-prefix space of
  // the next piece. Kept by the engine from each request's text stream.
  bool text_at_start = true;
  absl::Time last_used;
  // Changes whenever the history may have (a request ended, the session was
  // made): what durable storage compares (session_store.h).
  uint64_t version = 0;

  int64_t num_tokens() const { return position + 1; }
  // The history of a new session: BOS pending, nothing fed (the model state
  // is the caller's to set).
  void StartHistory(int32_t bos_id, int32_t segment_length, uint64_t root) {
    position = 0;
    pending_token = bos_id;
    text_at_start = true;
    cache_root = root;
    chain = state::TokenChain(segment_length, root);
  }
};

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_SESSION_H_
