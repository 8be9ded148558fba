// The engine thread's request path: admission, one step of prefill chunks
// and a batched decode, sampling and streaming, finishing.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/engine/active_request.h"
#include "server/engine/engine.h"
#include "server/model/row_logprobs.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace mcserve::engine {
namespace {

void SendError(StreamChannel& channel, absl::Status status) {
  GenerateUpdate u;
  u.status = std::move(status);
  channel.Send(std::move(u));
}

}  // namespace

void Engine::DoSubmit(uint64_t handle, NewRequest request) {
  StreamChannel& channel = *request.channel;
  if (draining_) {
    SendError(channel, absl::UnavailableError("server is draining for shutdown; retry elsewhere"));
    return;
  }
  if (by_request_id_.count(request.request_id) != 0) {
    SendError(channel, absl::AlreadyExistsError(absl::StrCat("request_id '", request.request_id,
                                                             "' is already in flight")));
    return;
  }
  if (scheduler_.num_waiting() >= options_.max_waiting) {
    SendError(channel, absl::ResourceExhaustedError(
                           absl::StrCat("waiting queue is full (", options_.max_waiting,
                                        " requests, --max_waiting); retry later")));
    return;
  }
  auto a = std::make_unique<Active>(handle, std::move(request), *tokenizer_,
                                    model_->config().vocab_size);
  a->arrival = clock_->Now();
  if (a->req.session_id.empty()) {
    a->own = std::make_unique<Session>();
    a->own->ephemeral = true;
    a->own->StartHistory(tokenizer_->bos_id(), model_->config().segment_length,
                         state::RootKey(OwnerOf(a->req.request_id)));
    a->session = a->own.get();
  } else {
    absl::StatusOr<Session*> found = sessions_.Find(a->req.session_id);
    if (!found.ok()) {
      SendError(channel, absl::NotFoundError(absl::StrCat("session '", a->req.session_id,
                                                          "' not found (CreateSession first)")));
      return;
    }
    Session& s = **found;
    if (s.broken) {
      SendError(channel, absl::DataLossError(absl::StrCat(
                             "session '", s.id, "' was damaged by an internal error (see the ",
                             "server log); delete it")));
      return;
    }
    if (s.busy_with != 0) {
      SendError(channel, absl::FailedPreconditionError(
                             absl::StrCat("session '", s.id, "' already has a request in flight (",
                                          active_.at(s.busy_with)->req.request_id, ")")));
      return;
    }
    a->session = &s;
  }
  Session& s = *a->session;
  // Every checkpoint a session reads must fit on the device at once: refuse
  // a prompt that cannot, before any of it is absorbed.
  const int64_t held = s.state.valid() ? store_->num_checkpoints(s.state) : 0;
  absl::Status fits =
      FitsDevice(Shape(), s.position, held, static_cast<int64_t>(a->req.prompt.size()) + 1,
                 options_.lossy_eviction != pool::LossyPolicy::kNone);
  if (!fits.ok()) {
    SendError(channel, fits);
    return;
  }
  if (absl::Status q = ReserveQuota(*a); !q.ok()) {
    SendError(channel, q);
    return;
  }
  a->feed.push_back(s.pending_token);
  a->feed.insert(a->feed.end(), a->req.prompt.begin(), a->req.prompt.end());
  a->out.SetContext(s.text_at_start, a->req.prompt);
  a->prompt_tokens = static_cast<int32_t>(a->req.prompt.size()) + (s.position == 0 ? 1 : 0);
  // A new sequence may start from a cached prefix (adopted at admission);
  // at least the last token is left to feed, for its logits.
  // (Not when scoring the prompt: cached tokens have no logits.)
  if (s.position == 0 && held == 0 && s.chain.valid() && a->req.params.prompt_logprobs < 0) {
    a->prefix = store_->Lookup(a->feed, static_cast<int64_t>(a->feed.size()) - 1, s.cache_root);
  }
  s.busy_with = handle;
  Touch(s);
  scheduler_.Enqueue(handle, static_cast<int64_t>(a->feed.size()) - 1 - a->prefix.tokens);
  by_request_id_[a->req.request_id] = handle;
  active_[handle] = std::move(a);
}

template <typename F>
void Engine::Contain(absl::string_view what, const std::vector<RequestId>& ids, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    MCSERVE_LOG(kError, "engine step failed").Kv("phase", what).Kv("error", e.what());
    for (RequestId id : ids) {
      auto it = active_.find(id);
      if (it == active_.end()) continue;
      it->second->session->broken = true;  // its state may be half-written
      Fail(*it->second, absl::InternalError(absl::StrCat(what, " failed: ", e.what())));
    }
  }
}

void Engine::Step() {
  const StepPlan plan = scheduler_.Schedule();
  auto find = [this](RequestId id) -> Active* {
    auto it = active_.find(id);
    return it == active_.end() ? nullptr : it->second.get();
  };
  for (RequestId id : plan.admitted) {
    if (Active* a = find(id)) Contain("admission", {id}, [&] { Admit(*a); });
  }
  for (const PrefillWork& w : plan.prefills) {
    Active* a = find(w.id);
    if (a == nullptr) continue;
    const absl::Time t0 = clock_->Now();
    Contain("prefill", {w.id}, [&] {
      absl::Status s = RunPrefill(*a, w.tokens);
      if (!s.ok()) Fail(*a, s);
    });
    if (metrics_ != nullptr) {
      metrics_->Step("prefill", 1, absl::ToDoubleSeconds(clock_->Now() - t0));
    }
  }
  scheduler_.Update(plan);
  std::vector<Active*> batch;
  for (RequestId id : plan.decodes) {
    Active* a = find(id);
    // A request whose cached prefix went before admission has more to feed.
    if (a == nullptr || a->fed + 1 != static_cast<int64_t>(a->feed.size())) continue;
    if (a->req.params.max_tokens == 0) {
      Finish(*a, FinishReason::kLength);
      continue;
    }
    batch.push_back(a);
  }
  if (batch.empty()) return;
  const absl::Time t0 = clock_->Now();
  RunDecode(batch);
  if (metrics_ != nullptr) {
    metrics_->Step("decode", static_cast<int64_t>(batch.size()),
                   absl::ToDoubleSeconds(clock_->Now() - t0));
  }
}

void Engine::Admit(Active& a) {
  a.admitted = clock_->Now();
  Session& s = *a.session;
  if (a.prefix.tokens > 0) {
    absl::Status st = StartFromPrefix(a);
    if (st.ok()) return;
    // Gone or not restorable: prefill the whole prompt instead.
    MCSERVE_LOG(kDebug, "prefix cache hit lost").Kv("id", a.req.request_id).Kv("why", st.message());
    scheduler_.AddPrefill(a.id, a.prefix.tokens);
    a.prefix = {};
  }
  if (s.state.valid()) return;
  absl::StatusOr<state::SeqState> st = store_->Create(OwnerName(a));
  if (!st.ok()) {
    Fail(a, st.status());
    return;
  }
  s.state = *std::move(st);
  Touch(s);
}

absl::Status Engine::StartFromPrefix(Active& a) {
  Session& s = *a.session;
  ASSIGN_OR_RETURN(state::SeqState st, store_->Adopt(a.prefix, OwnerName(a)));
  const int64_t n = a.prefix.tokens;
  s.state = std::move(st);  // the session's empty state, if it had one, goes
  s.position = n;
  s.pending_token = a.feed[n];
  const int32_t c = model_->config().segment_length;
  s.chain = state::TokenChain::AfterPrefix(c, a.prefix.chain.back(), n / c);
  a.fed = n;
  a.cached_tokens = n;
  Touch(s);
  return absl::OkStatus();
}

absl::Status Engine::RunPrefill(Active& a, int64_t tokens) {
  Session& s = *a.session;
  const MemoryShape shape = Shape();
  const bool stop_at_boundary =
      store_->prefix_cache_enabled() && s.chain.valid() && store_->publishes_at_every_boundary();
  for (int64_t left = tokens; left > 0;) {
    const int64_t n =
        PrefillPiece(shape, s.position, store_->num_checkpoints(s.state), left, stop_at_boundary);
    store_->BeginStep();
    absl::StatusOr<state::Reservation> r =
        store_->Reserve(s.state, model_->CheckpointsClosed(s.position, n));
    if (!r.ok()) {
      if (left == tokens) return r.status();
      return absl::Status(
          r.status().code(),
          absl::StrCat(r.status().message(), " (the session absorbed ", tokens - left,
                       " of this step's ", tokens, " prompt tokens before this)"));
    }
    model::PrefillSeq seq;
    seq.tokens = absl::MakeConstSpan(a.feed).subspan(a.fed, n);
    seq.position = s.position;
    seq.state_slot = r->state_slot();
    seq.ckpt_slots = r->ckpt_slots();
    seq.new_ckpt_slots = r->new_ckpt_slots();
    seq.tag = a.req.request_id;
    seq.want_logits = a.req.params.prompt_logprobs >= 0;
    absl::StatusOr<at::Tensor> out = model_->Prefill(store_->tensors(), seq);
    if (!out.ok()) {
      s.broken = true;  // some layers may have absorbed the tokens
      MCSERVE_LOG(kError, "prefill failed")
          .Kv("id", a.req.request_id)
          .Kv("error", out.status().ToString());
      return out.status();  // `r` gives its new checkpoints back
    }
    store_->Commit(s.state, *std::move(r));
    if (seq.want_logits) {
      // Row j follows feed[fed + j]: the log-probability of feed[fed + j + 1].
      const absl::Span<const int32_t> next = absl::MakeConstSpan(a.feed).subspan(a.fed + 1, n);
      std::vector<model::TokenLogprobs> rows =
          model::RowLogprobs(*out, next, a.req.params.prompt_logprobs);
      for (int64_t j = 0; j < n; ++j) {
        TokenOut t;
        t.id = next[j];
        t.has_logprob = true;
        t.logprob = rows[j].logprob;
        t.top = std::move(rows[j].top);
        a.prompt_logprobs.push_back(std::move(t));
      }
    }
    s.position += n;
    a.fed += n;
    s.pending_token = a.feed[a.fed];
    // A block is published only if the model computed it in a piece from
    // grid point to grid point, as any prefill of these tokens from a grid
    // point does (the span's rounding depends on where it starts and ends).
    const int64_t grid = model_->prefill_grid();
    const int64_t from = model_->spans_segments() ? (s.position - n + grid - 1) / grid * grid : -1;
    const int64_t to = model_->spans_segments() ? s.position / grid * grid : -1;
    Advance(s, seq.tokens, from, to);
    left -= n;
  }
  return absl::OkStatus();
}

void Engine::Advance(Session& s, absl::Span<const int32_t> tokens, int64_t exact_from,
                     int64_t exact_to) {
  if (!store_->prefix_cache_enabled() || !s.chain.valid()) return;
  if (store_->lossy(s.state)) {
    s.chain.Invalidate();  // its state no longer follows from its tokens
    return;
  }
  const int64_t block = model_->config().segment_length;
  int64_t end = s.position - static_cast<int64_t>(tokens.size());
  while (!tokens.empty()) {
    const int64_t room = block - static_cast<int64_t>(s.chain.open().size());
    const size_t take = static_cast<size_t>(std::min<int64_t>(room, tokens.size()));
    s.chain.Append(tokens.subspan(0, take));
    tokens.remove_prefix(take);
    end += static_cast<int64_t>(take);
    if (!s.chain.block_full()) return;
    if (exact_from < 0 || (end > exact_from && end <= exact_to)) store_->Publish(s.state, s.chain);
    s.chain.Close();
  }
}

MemoryShape Engine::Shape() const {
  MemoryShape m;
  m.segment_length = model_->config().segment_length;
  m.keeps_checkpoints = kernels::KeepsCheckpoints(model_->config().aggregation);
  m.device_slots = store_->device_checkpoint_slots();
  return m;
}

void Engine::RunDecode(const std::vector<Active*>& batch) {
  const MemoryShape shape = Shape();
  std::vector<int64_t> needs;
  needs.reserve(batch.size());
  for (const Active* a : batch) {
    const Session& s = *a->session;
    needs.push_back(CheckpointsAfter(shape, s.position, store_->num_checkpoints(s.state), 1));
  }
  std::vector<std::vector<size_t>> groups = GroupDecodes(needs, shape.device_slots, false);
  if (groups.size() > 1) {
    reverse_groups_ = !reverse_groups_;
    if (reverse_groups_) std::reverse(groups.begin(), groups.end());
  }
  for (const std::vector<size_t>& g : groups) {
    std::vector<Active*> group;
    std::vector<RequestId> ids;
    for (size_t i : g) {
      group.push_back(batch[i]);
      ids.push_back(batch[i]->id);
    }
    Contain("decode", ids, [&] { RunDecodeGroup(group); });
  }
}

void Engine::RunDecodeGroup(const std::vector<Active*>& group) {
  store_->BeginStep();
  std::vector<Active*> live;
  std::vector<state::Reservation> res;
  for (Active* a : group) {
    Session& s = *a->session;
    absl::StatusOr<state::Reservation> r =
        store_->Reserve(s.state, model_->CheckpointsClosed(s.position, 1));
    if (!r.ok()) {
      Fail(*a, r.status());
      continue;
    }
    live.push_back(a);
    res.push_back(*std::move(r));
  }
  if (live.empty()) return;
  std::vector<model::DecodeSeq> seqs(live.size());
  for (size_t i = 0; i < live.size(); ++i) {
    const Session& s = *live[i]->session;
    seqs[i].token = s.pending_token;
    seqs[i].position = s.position;
    seqs[i].state_slot = res[i].state_slot();
    seqs[i].ckpt_slots = res[i].ckpt_slots();
    seqs[i].new_ckpt_slot = res[i].new_ckpt_slots().empty() ? -1 : res[i].new_ckpt_slots()[0];
  }
  absl::StatusOr<model::DecodeResult> r = model_->Decode(store_->tensors(), seqs);
  if (!r.ok()) {
    MCSERVE_LOG(kError, "decode step failed")
        .Kv("batch", live.size())
        .Kv("error", r.status().ToString());
    for (Active* a : live) {
      a->session->broken = true;
      Fail(*a, r.status());
    }
    return;  // the reservations give their new checkpoints back
  }
  const int64_t vocab = r->logits.size(1);
  const float* logits = r->logits.data_ptr<float>();
  const int64_t stride = r->ckpt_weights.size(1);
  const float* weights = r->ckpt_weights.data_ptr<float>();
  for (size_t i = 0; i < live.size(); ++i) {
    Session& s = *live[i]->session;
    store_->Observe(s.state, absl::MakeConstSpan(weights + i * stride, stride));
    store_->Commit(s.state, std::move(res[i]));
    ++s.position;
    const int32_t fed = s.pending_token;
    Advance(s, absl::MakeConstSpan(&fed, 1));
    Emit(*live[i], logits + i * vocab);
  }
}

void Engine::Emit(Active& a, const float* logits) {
  const int32_t vocab = model_->config().vocab_size;
  const RequestParams& p = a.req.params;
  const model::SamplingConfig cfg{p.temperature, p.top_p, p.top_k};
  const float* adjusted = a.logits.active() ? a.logits.Apply(logits, a.adjusted) : logits;
  const int32_t token = model::SampleToken(adjusted, vocab, *tokenizer_, cfg, a.rng);
  a.logits.AddOutput(token);
  a.session->pending_token = token;
  const absl::Time now = clock_->Now();
  if (a.first_token == absl::InfiniteFuture()) a.first_token = now;
  if (metrics_ != nullptr && a.last_token != absl::InfiniteFuture()) {
    metrics_->InterToken(absl::ToDoubleSeconds(now - a.last_token));
  }
  a.last_token = now;
  GenerateUpdate u;
  TokenOut t;
  t.id = token;
  if (p.return_logprobs) {
    model::TokenLogprobs lp = model::ComputeLogprobs(logits, vocab, token, p.top_logprobs);
    t.has_logprob = true;
    t.logprob = lp.logprob;
    t.top = std::move(lp.top);
  }
  u.tokens.push_back(std::move(t));
  TakePromptLogprobs(a, u);
  u.text = a.out.Add(token);
  if (a.out.finished()) {
    Finish(a, a.out.finish_reason(), std::move(u));
    return;
  }
  a.req.channel->Send(std::move(u));
}

void Engine::TakePromptLogprobs(Active& a, GenerateUpdate& u) {
  if (a.prompt_logprobs.empty()) return;
  u.prompt_logprobs = std::move(a.prompt_logprobs);
  a.prompt_logprobs.clear();
}

void Engine::Finish(Active& a, FinishReason reason, GenerateUpdate u) {
  TakePromptLogprobs(a, u);
  if (!a.out.finished()) u.text += a.out.Close();
  KeepTextState(a);
  u.finished = true;
  u.reason = reason;
  u.matched_stop_str = a.out.matched_stop_str();
  u.matched_token_id = a.out.matched_token_id();
  const state::SeqInfo info =
      a.session->state.valid() ? store_->Describe(a.session->state) : state::SeqInfo{};
  const absl::Time done = clock_->Now();  // before the client can see the end
  u.usage.prompt_tokens = a.prompt_tokens;
  u.usage.cached_prompt_tokens = static_cast<int32_t>(a.cached_tokens);
  u.usage.completion_tokens = a.out.generated();
  u.usage.session_tokens = a.session->num_tokens();
  u.usage.checkpoints = info.checkpoints;
  MCSERVE_LOG(kInfo, "request done")
      .Kv("id", a.req.request_id)
      .Kv("session", a.req.session_id)
      .Kv("prompt_tokens", u.usage.prompt_tokens)
      .Kv("cached_prompt_tokens", u.usage.cached_prompt_tokens)
      .Kv("completion_tokens", u.usage.completion_tokens)
      .Kv("checkpoints", u.usage.checkpoints)
      .Kv("offloaded", info.eviction.offloaded)
      .Kv("fetched", info.eviction.fetched)
      .Kv("lossy", info.eviction.lossy)
      .Kv("ttft_ms", a.first_token == absl::InfiniteFuture()
                         ? -1.0
                         : absl::ToDoubleMilliseconds(a.first_token - a.arrival))
      .Kv("e2e_ms", absl::ToDoubleMilliseconds(done - a.arrival))
      .Kv("reason", FinishReasonName(reason));
  RecordEnd(a, FinishReasonName(reason));
  a.req.channel->Send(std::move(u));
  Release(a, done);
}

void Engine::KeepTextState(Active& a) {
  Session& s = *a.session;
  if (a.fed + 1 == static_cast<int64_t>(a.feed.size())) {
    s.text_at_start = a.out.at_text_start();  // the whole prompt is in the history
  } else if (a.fed > 0) {
    s.text_at_start = false;  // part of it: assume it had text
  }
}

void Engine::RecordEnd(const Active& a, absl::string_view reason) {
  if (metrics_ == nullptr) return;
  const absl::Time now = clock_->Now();
  metrics::RequestRecord r;
  r.finish_reason = reason;
  r.prompt_tokens = a.prompt_tokens;
  r.generation_tokens = a.out.generated();
  if (a.admitted != absl::InfiniteFuture())
    r.queue_s = absl::ToDoubleSeconds(a.admitted - a.arrival);
  if (a.first_token != absl::InfiniteFuture()) {
    r.ttft_s = absl::ToDoubleSeconds(a.first_token - a.arrival);
  }
  r.e2e_s = absl::ToDoubleSeconds(now - a.arrival);
  metrics_->RequestFinished(r);
}

void Engine::Fail(Active& a, absl::Status status) {
  MCSERVE_LOG(kWarning, "request failed").Kv("id", a.req.request_id).Kv("error", status.ToString());
  Session& s = *a.session;
  KeepTextState(a);
  if (!s.ephemeral && !s.broken && a.cached_tokens > 0 && s.position == a.cached_tokens) {
    // Nothing was fed beyond the adopted prefix: the session goes back to
    // being new, as the failed request found it.
    s.state.Release();
    absl::StatusOr<state::SeqState> fresh = store_->Create(s.id);
    if (fresh.ok()) s.state = *std::move(fresh);
    s.StartHistory(tokenizer_->bos_id(), model_->config().segment_length, s.cache_root);
    s.broken = !fresh.ok();  // no state at all: unusable until deleted
  }
  RecordEnd(a, "error");
  const absl::Time done = clock_->Now();  // before the client can see the end
  SendError(*a.req.channel, std::move(status));
  Release(a, done);
}

void Engine::Release(Active& a, absl::Time done) {
  const RequestId id = a.id;
  scheduler_.Remove(id);
  a.session->busy_with = 0;
  a.session->last_used = done;
  a.session->version = ++last_version_;
  Touch(*a.session);
  by_request_id_.erase(a.req.request_id);
  active_.erase(id);  // destroys `a`, and a one-shot session with its state
}

void Engine::Touch(Session& s) {
  if (s.state.valid()) store_->SetRunning(s.state, s.busy_with != 0, s.last_used);
}

std::string Engine::OwnerName(const Active& a) {
  return a.req.session_id.empty() ? absl::StrCat("request ", a.req.request_id) : a.req.session_id;
}

}  // namespace mcserve::engine
