// The engine thread's ExportSession and ImportSession (session_snapshot.h).
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/engine/engine.h"
#include "server/engine/session_snapshot.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace mcserve::engine {
namespace {

std::vector<at::Tensor> AllTensors(const model::Weights& w) {
  std::vector<at::Tensor> all = {w.embed, w.norm, w.lm_head};
  for (const model::LayerWeights& l : w.layers) {
    for (const at::Tensor& t : {l.mixer_norm, l.in_proj, l.a_w, l.a_b, l.b_w, l.b_b, l.o_norm,
                                l.o_proj, l.mlp_norm, l.gate_up, l.down}) {
      if (t.defined()) all.push_back(t);
    }
  }
  return all;
}

}  // namespace

uint64_t Engine::ComputeFingerprint(const model::McModel& m) {
  return ModelFingerprint(m.config(), AllTensors(m.weights()));
}

void Engine::ExportSession(std::string session_id,
                           std::function<void(absl::StatusOr<std::string>)> done) {
  Post([this, id = std::move(session_id), done = std::move(done)] {
    absl::StatusOr<Session*> s = IdleSession(id, "export");
    if (!s.ok()) {
      done(s.status());
      return;
    }
    done(EncodeSnapshot(Snapshot(**s)));
  });
}

SessionSnapshot Engine::Snapshot(const Session& s) const {
  const model::ModelConfig& c = model_->config();
  SessionSnapshot snap;
  snap.session_id = s.id;
  snap.model_fingerprint = fingerprint_;
  snap.n_layers = c.n_layers;
  snap.n_heads = c.n_heads;
  snap.head_dim = c.head_dim;
  snap.segment_length = c.segment_length;
  snap.ckpt_dtype = model_->options().ckpt_dtype;
  snap.position = s.position;
  snap.pending_token = s.pending_token;
  snap.eviction = s.eviction;
  snap.state = cache_.state[s.state_slot].cpu();
  snap.key_sum = cache_.key_sum[s.state_slot].cpu();
  for (pool::CkptId id : s.ckpts) {
    snap.ckpt_states.push_back(pool_.state(id).cpu());
    snap.ckpt_summary.push_back(pool_.summary(id).cpu());
    snap.usefulness.push_back(pool_.usefulness(id));
  }
  return snap;
}

absl::Status Engine::CheckSnapshot(const SessionSnapshot& snap) const {
  const model::ModelConfig& c = model_->config();
  if (snap.model_fingerprint != fingerprint_) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "snapshot of session '%s' was taken with a different model (fingerprint %016x; this "
        "server's model is %016x)",
        snap.session_id, snap.model_fingerprint, fingerprint_));
  }
  if (snap.n_layers != c.n_layers || snap.n_heads != c.n_heads || snap.head_dim != c.head_dim ||
      snap.segment_length != c.segment_length) {
    return absl::FailedPreconditionError("snapshot shapes do not match the served model");
  }
  if (snap.pending_token < 0 || snap.pending_token >= c.vocab_size) {
    return absl::InvalidArgumentError("snapshot's pending token is outside the vocabulary");
  }
  const int64_t expected = model_->CheckpointsClosed(0, snap.position);
  if (static_cast<int64_t>(snap.ckpt_states.size()) > expected ||
      (!snap.eviction.lossy && static_cast<int64_t>(snap.ckpt_states.size()) != expected)) {
    return absl::InvalidArgumentError(absl::StrCat("snapshot holds ", snap.ckpt_states.size(),
                                                   " checkpoints for ", snap.position,
                                                   " tokens (expected ", expected, ")"));
  }
  return absl::OkStatus();
}

void Engine::ImportSession(std::string session_id, std::string bytes, SessionCallback done) {
  Post([this, id = std::move(session_id), bytes = std::move(bytes), done = std::move(done)] {
    absl::StatusOr<Session*> s = RestoreSession(id, bytes);
    if (!s.ok()) {
      done(s.status());
      return;
    }
    done(Describe(**s));
  });
}

absl::StatusOr<Session*> Engine::RestoreSession(const std::string& id, absl::string_view bytes) {
  absl::StatusOr<SessionSnapshot> snap = DecodeSnapshot(bytes);
  if (!snap.ok()) return snap.status();
  RETURN_IF_ERROR(CheckSnapshot(*snap));
  const int64_t n = static_cast<int64_t>(snap->ckpt_states.size());
  const int64_t free =
      (pool_.device_capacity() - pool_.device_used()) + (pool_.host_capacity() - pool_.host_used());
  if (n > free) {
    return absl::ResourceExhaustedError(
        absl::StrCat("snapshot holds ", n, " checkpoints but the pool has ", free,
                     " free slots (raise --checkpoint_pool or --host_pool)"));
  }
  ASSIGN_OR_RETURN(Session * s, AddSession(id.empty() ? snap->session_id : id));
  absl::Status st = NewSessionState(*s);
  if (!st.ok()) {
    sessions_.erase(s->id);
    return st;
  }
  cache_.state[s->state_slot].copy_(snap->state);
  cache_.key_sum[s->state_slot].copy_(snap->key_sum);
  const at::ScalarType dtype = model::CkptScalarType(model_->options().ckpt_dtype);
  for (int64_t i = 0; i < n; ++i) {
    std::optional<pool::CkptId> c =
        pool_.CreateFrom(snap->ckpt_states[i].to(dtype), snap->ckpt_summary[i]);
    if (!c) {  // counted free above, so this is a bug: undo everything
      FreeSessionState(*s);
      sessions_.erase(s->id);
      return absl::InternalError("checkpoint pool ran out of slots during import");
    }
    pool_.Observe(*c, snap->usefulness[i]);
    s->ckpts.push_back(*c);
  }
  s->position = snap->position;
  s->pending_token = snap->pending_token;
  s->eviction = snap->eviction;
  MCSERVE_LOG(kInfo, "session imported")
      .Kv("session", s->id)
      .Kv("tokens", s->num_tokens())
      .Kv("checkpoints", n);
  return s;
}

}  // namespace mcserve::engine
