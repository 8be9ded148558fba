#include "server/rpc/fan_out_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/engine/owner.h"
#include "server/rpc/proto_convert.h"
#include "server/rpc/status.h"

namespace mcserve::rpc {
namespace {

// An engine stream into the reactor, holding a reference until the engine
// lets go. index < 0: the prefill.
class FanOutChannel : public engine::StreamChannel {
 public:
  FanOutChannel(FanOutReactor* r, int index) : r_(r), index_(index) { r_->Ref(); }
  ~FanOutChannel() override { r_->Unref(); }
  void Send(engine::GenerateUpdate u) override {
    if (index_ < 0) {
      r_->PrefillUpdate(std::move(u));
    } else {
      r_->Deliver(index_, std::move(u));
    }
  }

 private:
  FanOutReactor* const r_;
  const int index_;
};

}  // namespace

FanOutReactor::FanOutReactor(engine::Engine* engine, const RequestLimits& limits,
                             const CallerScope& scope, const v1::GenerateRequest& request,
                             uint64_t random_seed, uint64_t random_id,
                             std::atomic<int>* open_streams)
    : engine_(engine), open_streams_(open_streams), scope_(scope), limits_(limits) {
  open_streams_->fetch_add(1, std::memory_order_acq_rel);
  absl::Status bad;
  if (request.n() > kMaxCompletions) {
    bad = absl::InvalidArgumentError(
        absl::StrCat("n must be at most ", kMaxCompletions, ", got ", request.n()));
  } else if (!request.session_id().empty()) {
    bad = absl::InvalidArgumentError(
        "n > 1 needs a one-shot request: drop session_id (or fork the session and send one "
        "request per fork)");
  }
  absl::StatusOr<engine::NewRequest> req =
      bad.ok() ? ValidateGenerate(request, limits, engine_->tokenizer(), random_seed) : bad;
  absl::StatusOr<std::string> root =
      req.ok() ? scope_.NewSession("", limits_, "session_id") : req.status();
  if (!root.ok()) {
    {
      absl::MutexLock l(&mu_);
      finish_called_ = true;
    }
    Finish(ToGrpc(root.status()));
    return;
  }
  n_ = static_cast<int>(request.n());
  request_id_ = req->request_id.empty() ? absl::StrFormat("req-%016x", random_id) : req->request_id;
  request_ = *std::move(req);
  Ref();  // held through the engine callbacks that follow
  engine_->CreateSession(*root, [this](absl::StatusOr<engine::SessionInfo> made) {
    if (!made.ok()) {
      Fail(made.status());
      Unref();
      return;
    }
    if (!AddSession(made->id)) {
      Unref();
      return;
    }
    engine::NewRequest prefill = request_;
    prefill.request_id = scope_.OwnRequest(request_id_ + "-prefill");
    prefill.session_id = made->id;
    prefill.params.max_tokens = 0;
    prefill.params.min_tokens = 0;
    prefill.channel = std::make_shared<FanOutChannel>(this, -1);
    const uint64_t h = engine_->Submit(std::move(prefill));
    {
      absl::MutexLock l(&mu_);
      handles_.push_back(h);
    }
    Unref();
  });
}

FanOutReactor::~FanOutReactor() { open_streams_->fetch_sub(1, std::memory_order_acq_rel); }

void FanOutReactor::PrefillUpdate(engine::GenerateUpdate u) {
  if (!u.status.ok()) return Fail(u.status);
  if (!u.finished) return;
  if (u.reason != engine::FinishReason::kLength) {
    // Aborted or cancelled: the prompt is not (all) in the scratch session.
    return Fail(absl::AbortedError("the shared prefill of the n completions was cut short"));
  }
  {
    absl::MutexLock l(&mu_);
    prompt_tokens_ = static_cast<uint32_t>(u.usage.prompt_tokens);
    prompt_logprobs_ = std::move(u.prompt_logprobs);
    handles_.clear();
    if (cancelled_) return;
  }
  Fork(1);
}

void FanOutReactor::Fork(int next) {
  if (next == n_) return StartCompletions();
  absl::StatusOr<std::string> child = scope_.NewSession("", limits_, "session_id");
  if (!child.ok()) return Fail(child.status());
  std::string root;
  {
    absl::MutexLock l(&mu_);
    if (cancelled_) return;
    root = sessions_[0];
  }
  Ref();
  engine_->ForkSession(root, *child, [this, next](absl::StatusOr<engine::SessionInfo> fork) {
    if (!fork.ok()) {
      Fail(fork.status());
    } else {
      if (AddSession(fork->id)) Fork(next + 1);
    }
    Unref();
  });
}

void FanOutReactor::StartCompletions() {
  std::vector<std::string> sessions;
  {
    absl::MutexLock l(&mu_);
    if (cancelled_) return;
    sessions = sessions_;
  }
  for (int i = 0; i < n_; ++i) {
    engine::NewRequest r = request_;
    r.prompt.clear();
    r.params.prompt_logprobs = -1;  // the prefill scored the prompt
    r.session_id = sessions[i];
    r.params.seed = request_.params.seed + static_cast<uint64_t>(i);
    r.request_id = scope_.OwnRequest(absl::StrCat(request_id_, "-", i));
    r.channel = std::make_shared<FanOutChannel>(this, i);
    const uint64_t h = engine_->Submit(std::move(r));
    absl::MutexLock l(&mu_);
    handles_.push_back(h);
  }
}

void FanOutReactor::Deliver(int index, engine::GenerateUpdate u) {
  {
    absl::MutexLock l(&mu_);
    if (finish_called_ || final_) return;
    if (!u.status.ok()) {
      final_ = ToGrpc(u.status);
      cancelled_ = true;
      for (uint64_t h : handles_) engine_->Drop(h);
    } else {
      if (pending_.empty() || pending_.back().index() != static_cast<uint32_t>(index)) {
        pending_.emplace_back();
        pending_.back().set_request_id(request_id_);
        pending_.back().set_index(static_cast<uint32_t>(index));
      }
      if (index == 0 && !prompt_logprobs_.empty()) {
        u.prompt_logprobs = std::move(prompt_logprobs_);  // on completion 0's first message
        prompt_logprobs_.clear();
      }
      AppendUpdate(u, pending_.back());
      if (u.finished) {
        // Each completion's usage counts the one shared prompt.
        pending_.back().mutable_usage()->set_prompt_tokens(prompt_tokens_);
        if (++finished_ == n_) final_ = grpc::Status::OK;
      }
    }
  }
  Pump();
}

void FanOutReactor::Fail(const absl::Status& s) {
  {
    absl::MutexLock l(&mu_);
    if (finish_called_ || final_) return;
    final_ = ToGrpc(s);
    cancelled_ = true;
    for (uint64_t h : handles_) engine_->Drop(h);
  }
  Pump();
}

void FanOutReactor::Pump() {
  enum { kNone, kWrite, kFinish } action = kNone;
  grpc::Status status;
  {
    absl::MutexLock l(&mu_);
    if (writing_ || finish_called_) return;
    if (!pending_.empty() && (!final_ || final_->ok())) {
      in_flight_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      action = kWrite;
    } else if (final_) {
      status = *final_;
      finish_called_ = true;
      action = kFinish;
    }
  }
  if (action == kWrite) StartWrite(&in_flight_);
  if (action == kFinish) Finish(status);
}

void FanOutReactor::OnWriteDone(bool ok) {
  {
    absl::MutexLock l(&mu_);
    writing_ = false;
    if (!ok && !finish_called_) {
      pending_.clear();
      final_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream closed by the client");
      cancelled_ = true;
      for (uint64_t h : handles_) engine_->Drop(h);
    }
  }
  Pump();
}

void FanOutReactor::OnCancel() {
  {
    absl::MutexLock l(&mu_);
    cancelled_ = true;
    for (uint64_t h : handles_) engine_->Drop(h);
    if (finish_called_) return;
    pending_.clear();
    final_ = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
  }
  Pump();
}

bool FanOutReactor::AddSession(const std::string& id) {
  {
    absl::MutexLock l(&mu_);
    if (!done_) {
      sessions_.push_back(id);
      return !cancelled_;
    }
  }
  engine_->DeleteSession(id, [](absl::Status) {});  // made after the stream ended
  return false;
}

void FanOutReactor::OnDone() {
  std::vector<std::string> sessions;
  {
    absl::MutexLock l(&mu_);
    done_ = true;
    cancelled_ = true;
    sessions = sessions_;
  }
  // Deleting a session also ends a request still running on it.
  for (const std::string& id : sessions) engine_->DeleteSession(id, [](absl::Status) {});
  Unref();
}

void FanOutReactor::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

}  // namespace mcserve::rpc
