#include "server/rpc/generate_reactor.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "server/rpc/proto_convert.h"
#include "server/rpc/status.h"

namespace mcserve::rpc {
namespace {

// The engine's end of the stream: forwards to the reactor and keeps it
// alive until the engine lets go of the request.
class ReactorChannel : public engine::StreamChannel {
 public:
  explicit ReactorChannel(GenerateReactor* r) : r_(r) { r_->Ref(); }
  ~ReactorChannel() override { r_->Unref(); }
  void Send(engine::GenerateUpdate update) override { r_->Deliver(std::move(update)); }

 private:
  GenerateReactor* const r_;
};

}  // namespace

GenerateReactor::GenerateReactor(engine::Engine* engine, const RequestLimits& limits,
                                 const CallerScope& scope, const v1::GenerateRequest& request,
                                 uint64_t random_seed, uint64_t random_id,
                                 std::atomic<int>* open_streams)
    : engine_(engine), open_streams_(open_streams) {
  open_streams_->fetch_add(1, std::memory_order_acq_rel);
  absl::StatusOr<engine::NewRequest> req =
      ValidateGenerate(request, limits, engine_->tokenizer(), random_seed);
  if (!req.ok()) {
    {
      absl::MutexLock l(&mu_);
      finish_called_ = true;
    }
    Finish(ToGrpc(req.status()));
    return;
  }
  if (req->request_id.empty()) req->request_id = absl::StrFormat("req-%016x", random_id);
  request_id_ = req->request_id;  // as the client sees it
  req->request_id = scope.OwnRequest(req->request_id);
  if (!req->session_id.empty()) req->session_id = engine::Qualify(scope.owner(), req->session_id);
  req->channel = std::make_shared<ReactorChannel>(this);
  handle_ = engine_->Submit(*std::move(req));
}

void GenerateReactor::Deliver(engine::GenerateUpdate update) {
  {
    absl::MutexLock l(&mu_);
    if (finish_called_) return;
    if (!update.status.ok()) {
      final_ = ToGrpc(update.status);
    } else {
      if (!next_) {
        next_.emplace();
        next_->set_request_id(request_id_);
      }
      AppendUpdate(update, *next_);
      if (update.finished) final_ = grpc::Status::OK;
    }
  }
  Pump();
}

void GenerateReactor::Pump() {
  enum { kNone, kWrite, kFinish } action = kNone;
  grpc::Status status;
  {
    absl::MutexLock l(&mu_);
    if (writing_ || finish_called_) return;
    if (next_) {
      in_flight_ = *std::move(next_);
      next_.reset();
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

void GenerateReactor::OnWriteDone(bool ok) {
  {
    absl::MutexLock l(&mu_);
    writing_ = false;
    if (!ok) {
      // The stream broke (client gone): end it; the engine learns from OnCancel.
      if (finish_called_) return;
      next_.reset();
      final_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream closed by the client");
    }
  }
  Pump();
}

void GenerateReactor::OnCancel() {
  if (handle_ != 0) engine_->Drop(handle_);
  {
    absl::MutexLock l(&mu_);
    if (finish_called_) return;
    next_.reset();
    final_ = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
  }
  Pump();
}

void GenerateReactor::OnDone() { Unref(); }

void GenerateReactor::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

}  // namespace mcserve::rpc
