// The engine thread's ExportSession and ImportSession (session_snapshot.h).
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/engine/engine.h"
#include "server/engine/owner.h"
#include "server/engine/session_snapshot.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace mcserve::engine {
namespace {

std::vector<at::Tensor> AllTensors(const model::Weights& w) {
  std::vector<at::Tensor> all = {w.embed, w.norm, w.lm_head};
  for (const model::LayerWeights& l : w.layers) {
    for (const at::Tensor& t :
         {l.mixer_norm, l.in_proj, l.a_w, l.a_b, l.b_w, l.b_b, l.o_norm, l.o_proj, l.mlp_norm,
          l.gate_up, l.down, l.conv, l.a_log, l.dt_bias}) {
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
    absl::StatusOr<Session*> s = sessions_.Idle(id, "export");
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
  snap.n_heads = c.state_heads();
  snap.head_dim = c.head_dim;
  snap.value_dim = c.value_dim();
  snap.ckpt_rows = c.ckpt_rows();
  snap.segment_length = c.segment_length;
  snap.ckpt_dtype = model_->options().ckpt_dtype;
  snap.position = s.position;
  snap.pending_token = s.pending_token;
  state::StateImage image = store_->Export(s.state);
  const model::StateLayout& layout = model_->state_layout();
  for (size_t i = 0; i < layout.size(); ++i) {
    snap.online.push_back({layout[i].name, std::move(image.online[i])});
  }
  snap.eviction = image.eviction;
  snap.ckpt_states = std::move(image.ckpt_states);
  snap.ckpt_summary = std::move(image.ckpt_summary);
  snap.usefulness = std::move(image.usefulness);
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
  if (snap.n_layers != c.n_layers || snap.n_heads != c.state_heads() ||
      snap.head_dim != c.head_dim || snap.value_dim != c.value_dim() ||
      snap.ckpt_rows != c.ckpt_rows() || snap.segment_length != c.segment_length) {
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
  // Decoded on the calling thread: the engine thread only checks and adopts.
  absl::StatusOr<SessionSnapshot> snap = DecodeSnapshot(bytes);
  if (!snap.ok()) {
    Post([st = snap.status(), done = std::move(done)] { done(st); });  // callbacks: engine thread
    return;
  }
  ImportSession(std::move(session_id), *std::move(snap), std::move(done));
}

void Engine::ImportSession(std::string session_id, SessionSnapshot snap, SessionCallback done) {
  Post([this, id = std::move(session_id), snap = std::make_shared<SessionSnapshot>(std::move(snap)),
        done = std::move(done)] {
    absl::StatusOr<Session*> s = RestoreSession(id, std::move(*snap));
    if (!s.ok()) {
      done(s.status());
      return;
    }
    done(Describe(**s));
  });
}

absl::StatusOr<Session*> Engine::RestoreSession(const std::string& id, SessionSnapshot snapshot) {
  absl::StatusOr<SessionSnapshot> snap = std::move(snapshot);
  RETURN_IF_ERROR(CheckSnapshot(*snap));
  state::StateImage image;
  const model::StateLayout& layout = model_->state_layout();
  for (size_t i = 0; i < snap->online.size(); ++i) {
    if (i >= layout.size() || snap->online[i].name != layout[i].name) {
      return absl::InvalidArgumentError(absl::StrCat(
          "snapshot's online state '", snap->online[i].name, "' is not the model's (", i, ")"));
    }
    image.online.push_back(snap->online[i].tensor);
  }
  image.ckpt_states = std::move(snap->ckpt_states);
  image.ckpt_summary = std::move(snap->ckpt_summary);
  image.usefulness = std::move(snap->usefulness);
  image.eviction = snap->eviction;
  // "": the snapshot's id; "<owner>/": the snapshot's name under that owner.
  const std::string name =
      id.empty() ? snap->session_id
                 : (id.back() == kOwnerSeparator ? id + std::string(NameOf(snap->session_id)) : id);
  if (!IsValidId(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot's session_id is not a valid session id (1 to 128 characters of ",
                     "[A-Za-z0-9._:-], optionally under an owner)"));
  }
  // The session id is checked (taken, limit) before any state is made.
  ASSIGN_OR_RETURN(Session * s, AddSession(name));
  absl::StatusOr<state::SeqState> st = store_->Import(image, name);
  if (!st.ok()) {
    sessions_.Erase(name);
    return st.status();
  }
  s->state = *std::move(st);
  s->position = snap->position;
  s->pending_token = snap->pending_token;
  // Snapshots do not record it: a history of more than BOS is taken to
  // have produced text.
  s->text_at_start = snap->position == 0;
  s->chain.Invalidate();  // the tokens behind an imported state are unknown
  Touch(*s);
  MCSERVE_LOG(kInfo, "session imported")
      .Kv("session", s->id)
      .Kv("tokens", s->num_tokens())
      .Kv("checkpoints", store_->num_checkpoints(s->state));
  return s;
}

}  // namespace mcserve::engine
