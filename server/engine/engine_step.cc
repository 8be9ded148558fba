// The engine thread's request path: admission, one step of prefill chunks
// and a batched decode, sampling and streaming, finishing.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/engine/active_request.h"
#include "server/engine/engine.h"
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
  auto a = std::make_unique<Active>(handle, std::move(request), tokenizer_);
  a->arrival = clock_->Now();
  if (a->req.session_id.empty()) {
    a->own = std::make_unique<Session>();
    a->own->ephemeral = true;
    a->own->pending_token = tokenizer_.bos_id();
    a->session = a->own.get();
  } else {
    auto it = sessions_.find(a->req.session_id);
    if (it == sessions_.end()) {
      SendError(channel, absl::NotFoundError(absl::StrCat("session '", a->req.session_id,
                                                          "' not found (CreateSession first)")));
      return;
    }
    Session& s = *it->second;
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
  const int64_t after = static_cast<int64_t>(s.ckpts.size()) +
                        model_->CheckpointsClosed(s.position, a->req.prompt.size() + 1);
  if (options_.lossy_eviction == pool::LossyPolicy::kNone && after > pool_.device_capacity()) {
    SendError(channel,
              absl::ResourceExhaustedError(absl::StrCat(
                  "this prompt would leave the session with ", after,
                  " checkpoints, more than the device tier's ", pool_.device_capacity(),
                  " slots (raise --checkpoint_pool, or allow --lossy_eviction=drop|merge)")));
    return;
  }
  a->feed.push_back(s.pending_token);
  a->feed.insert(a->feed.end(), a->req.prompt.begin(), a->req.prompt.end());
  a->prompt_tokens = static_cast<int32_t>(a->req.prompt.size()) + (s.position == 0 ? 1 : 0);
  s.busy_with = handle;
  scheduler_.Enqueue(handle, static_cast<int64_t>(a->feed.size()) - 1);
  by_request_id_[a->req.request_id] = handle;
  active_[handle] = std::move(a);
}

void Engine::Step() {
  const StepPlan plan = scheduler_.Schedule();
  auto find = [this](RequestId id) -> Active* {
    auto it = active_.find(id);
    return it == active_.end() ? nullptr : it->second.get();
  };
  for (RequestId id : plan.admitted) {
    if (Active* a = find(id)) Admit(*a);
  }
  for (const PrefillWork& w : plan.prefills) {
    Active* a = find(w.id);
    if (a == nullptr) continue;
    const absl::Time t0 = clock_->Now();
    absl::Status s = RunPrefill(*a, w.tokens);
    if (metrics_ != nullptr) {
      metrics_->Step("prefill", 1, absl::ToDoubleSeconds(clock_->Now() - t0));
    }
    if (!s.ok()) Fail(*a, s);
  }
  scheduler_.Update(plan);
  std::vector<Active*> batch;
  for (RequestId id : plan.decodes) {
    Active* a = find(id);
    if (a == nullptr) continue;
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
  if (a.session->state_slot >= 0) return;
  absl::Status s = NewSessionState(*a.session);
  if (!s.ok()) Fail(a, s);
}

absl::Status Engine::RunPrefill(Active& a, int64_t tokens) {
  Session& s = *a.session;
  RETURN_IF_ERROR(OwnState(s));
  const bool keeps = kernels::KeepsCheckpoints(model_->config().aggregation);
  const int64_t c = model_->config().segment_length;
  for (int64_t left = tokens; left > 0;) {
    // A piece may close only as many segments as the device tier has room
    // for beside the checkpoints the session reads.
    int64_t n = left;
    if (keeps) {
      const int64_t room = pool_.device_capacity() - static_cast<int64_t>(s.ckpts.size());
      n = std::min(left, (c - s.position % c) + (std::max<int64_t>(room, 1) - 1) * c);
    }
    pool_.BeginEpoch();
    absl::StatusOr<std::vector<pool::CkptId>> fresh =
        Reserve(s, model_->CheckpointsClosed(s.position, n));
    if (!fresh.ok()) {
      if (n == tokens) return fresh.status();
      return absl::Status(
          fresh.status().code(),
          absl::StrCat(fresh.status().message(), " (the session absorbed ", tokens - left,
                       " of this step's ", tokens, " prompt tokens before this)"));
    }
    const std::vector<int32_t> slots = DeviceSlots(s.ckpts), fresh_slots = DeviceSlots(*fresh);
    model::PrefillSeq seq;
    seq.tokens = absl::MakeConstSpan(a.feed).subspan(a.fed, n);
    seq.position = s.position;
    seq.state_slot = s.state_slot;
    seq.ckpt_slots = slots;
    seq.new_ckpt_slots = fresh_slots;
    absl::StatusOr<at::Tensor> r = model_->Prefill(cache_, seq);
    if (!r.ok()) {
      for (pool::CkptId id : *fresh) pool_.Unref(id);
      s.broken = true;  // some layers may have absorbed the tokens
      MCSERVE_LOG(kError, "prefill failed")
          .Kv("id", a.req.request_id)
          .Kv("error", r.status().ToString());
      return r.status();
    }
    s.position += n;
    s.ckpts.insert(s.ckpts.end(), fresh->begin(), fresh->end());
    a.fed += n;
    s.pending_token = a.feed[a.fed];
    left -= n;
  }
  return absl::OkStatus();
}

void Engine::RunDecode(const std::vector<Active*>& batch) {
  // Sessions decode in groups whose checkpoints all fit on the device at
  // once; usually that is the whole batch. When there are several, every
  // other step runs them in reverse, starting with the group whose
  // checkpoints are still resident from the step before.
  const int64_t capacity = pool_.device_capacity();
  std::vector<std::vector<Active*>> groups(1);
  int64_t need = 0;
  for (Active* a : batch) {
    const Session& s = *a->session;
    const int64_t n =
        static_cast<int64_t>(s.ckpts.size()) + model_->CheckpointsClosed(s.position, 1);
    if (!groups.back().empty() && need + n > capacity) {
      groups.emplace_back();
      need = 0;
    }
    groups.back().push_back(a);
    need += n;
  }
  if (groups.size() > 1) {
    reverse_groups_ = !reverse_groups_;
    if (reverse_groups_) std::reverse(groups.begin(), groups.end());
  }
  for (const std::vector<Active*>& g : groups) RunDecodeGroup(g);
}

void Engine::RunDecodeGroup(const std::vector<Active*>& group) {
  pool_.BeginEpoch();
  std::vector<Active*> live;
  std::vector<std::vector<pool::CkptId>> fresh;
  for (Active* a : group) {
    Session& s = *a->session;
    absl::Status st = OwnState(s);
    absl::StatusOr<std::vector<pool::CkptId>> got =
        st.ok() ? Reserve(s, model_->CheckpointsClosed(s.position, 1)) : st;
    if (!got.ok()) {
      Fail(*a, got.status());
      continue;
    }
    live.push_back(a);
    fresh.push_back(*std::move(got));
  }
  if (live.empty()) return;
  // Slot lists are taken after every Reserve: eviction for a later session
  // may have moved an earlier one's unpinned neighbours, never its own.
  std::vector<std::vector<int32_t>> slots(live.size());
  std::vector<model::DecodeSeq> seqs(live.size());
  for (size_t i = 0; i < live.size(); ++i) {
    const Session& s = *live[i]->session;
    slots[i] = DeviceSlots(s.ckpts);
    seqs[i].token = s.pending_token;
    seqs[i].position = s.position;
    seqs[i].state_slot = s.state_slot;
    seqs[i].ckpt_slots = slots[i];
    seqs[i].new_ckpt_slot = fresh[i].empty() ? -1 : pool_.device_slot(fresh[i].front());
  }
  absl::StatusOr<model::DecodeResult> r = model_->Decode(cache_, seqs);
  if (!r.ok()) {
    MCSERVE_LOG(kError, "decode step failed")
        .Kv("batch", live.size())
        .Kv("error", r.status().ToString());
    for (size_t i = 0; i < live.size(); ++i) {
      for (pool::CkptId id : fresh[i]) pool_.Unref(id);
      live[i]->session->broken = true;
      Fail(*live[i], r.status());
    }
    return;
  }
  const int64_t vocab = r->logits.size(1);
  const float* logits = r->logits.data_ptr<float>();
  const int64_t stride = r->ckpt_weights.size(1);
  const float* weights = r->ckpt_weights.data_ptr<float>();
  for (size_t i = 0; i < live.size(); ++i) {
    Session& s = *live[i]->session;
    for (size_t j = 0; j < s.ckpts.size(); ++j) pool_.Observe(s.ckpts[j], weights[i * stride + j]);
    ++s.position;
    s.ckpts.insert(s.ckpts.end(), fresh[i].begin(), fresh[i].end());
    Emit(*live[i], logits + i * vocab);
  }
}

void Engine::Emit(Active& a, const float* logits) {
  const int32_t vocab = model_->config().vocab_size;
  const RequestParams& p = a.req.params;
  const model::SamplingConfig cfg{p.temperature, p.top_p, p.top_k};
  const int32_t token = model::SampleToken(logits, vocab, tokenizer_, cfg, a.rng);
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
  u.text = a.out.Add(token);
  if (a.out.finished()) {
    Finish(a, a.out.finish_reason(), std::move(u));
    return;
  }
  a.req.channel->Send(std::move(u));
}

void Engine::Finish(Active& a, FinishReason reason, GenerateUpdate u) {
  if (!a.out.finished()) u.text += a.out.Close();
  u.finished = true;
  u.reason = reason;
  u.matched_stop_str = a.out.matched_stop_str();
  u.matched_token_id = a.out.matched_token_id();
  u.usage.prompt_tokens = a.prompt_tokens;
  u.usage.completion_tokens = a.out.generated();
  u.usage.session_tokens = a.session->num_tokens();
  u.usage.checkpoints = static_cast<int32_t>(a.session->ckpts.size());
  MCSERVE_LOG(kInfo, "request done")
      .Kv("id", a.req.request_id)
      .Kv("session", a.req.session_id)
      .Kv("prompt_tokens", u.usage.prompt_tokens)
      .Kv("completion_tokens", u.usage.completion_tokens)
      .Kv("checkpoints", u.usage.checkpoints)
      .Kv("offloaded", a.session->eviction.offloaded)
      .Kv("fetched", a.session->eviction.fetched)
      .Kv("lossy", a.session->eviction.lossy)
      .Kv("ttft_ms", a.first_token == absl::InfiniteFuture()
                         ? -1.0
                         : absl::ToDoubleMilliseconds(a.first_token - a.arrival))
      .Kv("e2e_ms", absl::ToDoubleMilliseconds(clock_->Now() - a.arrival))
      .Kv("reason", FinishReasonName(reason));
  RecordEnd(a, FinishReasonName(reason));
  a.req.channel->Send(std::move(u));
  Release(a);
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
  RecordEnd(a, "error");
  SendError(*a.req.channel, std::move(status));
  Release(a);
}

void Engine::Release(Active& a) {
  const RequestId id = a.id;
  scheduler_.Remove(id);
  a.session->busy_with = 0;
  a.session->last_used = clock_->Now();
  if (a.session->ephemeral) FreeSessionState(*a.session);
  by_request_id_.erase(a.req.request_id);
  active_.erase(id);  // destroys `a`
}

}  // namespace mcserve::engine
