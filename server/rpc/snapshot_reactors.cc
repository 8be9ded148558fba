#include "server/rpc/snapshot_reactors.h"

#include "absl/strings/str_cat.h"
#include "proto/wire/request_decoding.h"
#include "server/engine/session_snapshot.h"
#include "server/rpc/proto_convert.h"
#include "server/rpc/status.h"

namespace mcserve::rpc {

ExportReactor::ExportReactor(engine::Engine* engine, const RequestLimits& limits,
                             const CallerScope& scope, const v1::ExportSessionRequest& request,
                             std::atomic<int>* open_streams)
    : counted_(open_streams) {
  absl::StatusOr<std::string> id = scope.Session(request.session_id(), limits, "session_id");
  if (!id.ok()) {
    {
      absl::MutexLock l(&mu_);
      finished_ = true;
    }
    Finish(ToGrpc(id.status()));
    return;
  }
  engine->ExportSession(
      *id, [this](absl::StatusOr<std::string> bytes) { OnSnapshot(std::move(bytes)); });
}

void ExportReactor::OnSnapshot(absl::StatusOr<std::string> bytes) {
  {
    absl::MutexLock l(&mu_);
    answered_ = true;
    if (!bytes.ok()) {
      if (!final_) final_ = ToGrpc(bytes.status());
    } else {
      bytes_ = *std::move(bytes);
    }
  }
  Advance();
}

void ExportReactor::Advance() {
  enum { kNone, kWrite, kFinish } action = kNone;
  grpc::Status status;
  {
    absl::MutexLock l(&mu_);
    if (!answered_ || writing_ || finished_) return;
    if (!final_ && offset_ >= bytes_.size()) final_ = grpc::Status::OK;
    if (final_) {
      status = *final_;
      finished_ = true;
      action = kFinish;
    } else {
      const size_t n = std::min(kSnapshotChunkBytes, bytes_.size() - offset_);
      chunk_.set_data(bytes_.substr(offset_, n));
      offset_ += n;
      writing_ = true;
      action = kWrite;
    }
  }
  // Outside the lock: Finish may run OnDone, and so delete this, at once.
  if (action == kWrite) StartWrite(&chunk_);
  if (action == kFinish) Finish(status);
}

void ExportReactor::OnWriteDone(bool ok) {
  {
    absl::MutexLock l(&mu_);
    writing_ = false;
    if (!ok && !final_) {
      final_ = grpc::Status(grpc::StatusCode::CANCELLED, "client went away during the export");
    }
  }
  Advance();
}

void ExportReactor::OnCancel() {
  {
    absl::MutexLock l(&mu_);
    if (!final_) final_ = grpc::Status(grpc::StatusCode::CANCELLED, "export cancelled");
  }
  // Finishes now unless the engine has not answered yet or a write is in
  // flight; then its answer or OnWriteDone does.
  Advance();
}

ImportReactor::ImportReactor(engine::Engine* engine, const RequestLimits& limits,
                             const CallerScope& scope, v1::Session* response,
                             std::atomic<int>* open_streams)
    : counted_(open_streams), engine_(engine), limits_(limits), scope_(scope), response_(response) {
  StartRead(&msg_);
}

absl::Status ImportReactor::CheckDeclared() const {
  const size_t declared = decoder_.declared_size();
  if (declared > static_cast<size_t>(limits_.max_snapshot_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot declares ", declared, " bytes, more than this server accepts (",
                     limits_.max_snapshot_bytes, " bytes, --max_snapshot_size)"));
  }
  // More checkpoints than both tiers hold can never be imported.
  const engine::EngineStatus st = engine_->Status();
  const int64_t slots = int64_t{st.checkpoint_slots_total} + st.host_checkpoint_slots_total;
  if (decoder_.declared_checkpoints() > slots) {
    return absl::ResourceExhaustedError(
        absl::StrCat("snapshot holds ", decoder_.declared_checkpoints(),
                     " checkpoints; this server's pool holds ", slots,
                     " at most (--checkpoint_pool, --host_pool)"));
  }
  return absl::OkStatus();
}

void ImportReactor::OnReadDone(bool ok) {
  if (ok) {
    if (std::string defect = wire::RequestDefect(msg_); !defect.empty()) {
      Finish(ToGrpc(absl::InvalidArgumentError(defect)));
      return;
    }
    if (first_) {
      first_ = false;
      client_session_id_ = msg_.session_id();
      // The new session is the caller's ("": the snapshot's name, in the
      // caller's namespace).
      absl::StatusOr<std::string> id = scope_.NewSession(client_session_id_, limits_, "session_id");
      if (!id.ok()) {
        Finish(ToGrpc(id.status()));
        return;
      }
      session_id_ = *std::move(id);
    } else if (!msg_.session_id().empty() && msg_.session_id() != client_session_id_) {
      Finish(ToGrpc(absl::InvalidArgumentError(
          "session_id may only be set in the first ImportSessionRequest")));
      return;
    }
    received_ += msg_.data().size();
    if (received_ > static_cast<size_t>(limits_.max_snapshot_bytes)) {
      Finish(ToGrpc(absl::InvalidArgumentError(
          absl::StrCat("snapshot is larger than this server accepts (", limits_.max_snapshot_bytes,
                       " bytes, --max_snapshot_size)"))));
      return;
    }
    // Decoded as it arrives: a stream that is not a snapshot ends at the
    // chunk that shows it, and no more than the tensors so far is held.
    if (absl::Status s = decoder_.Feed(msg_.data()); !s.ok()) {
      Finish(ToGrpc(s));
      return;
    }
    msg_.Clear();
    if (!checked_ && decoder_.declared_size() > 0) {
      checked_ = true;
      if (absl::Status s = CheckDeclared(); !s.ok()) {
        Finish(ToGrpc(s));
        return;
      }
    }
    StartRead(&msg_);
    return;
  }
  // The client finished sending (or went away: then Finish is a no-op).
  if (first_) {
    Finish(ToGrpc(absl::InvalidArgumentError("ImportSession received no snapshot bytes")));
    return;
  }
  absl::StatusOr<engine::SessionSnapshot> snap = decoder_.Finish();
  if (!snap.ok()) {
    Finish(ToGrpc(snap.status()));
    return;
  }
  engine_->ImportSession(session_id_, *std::move(snap),
                         [this](absl::StatusOr<engine::SessionInfo> info) {
                           if (info.ok()) {
                             ToProto(*info, *response_);
                             response_->set_session_id(scope_.Show(info->id));
                           }
                           Finish(ToGrpc(info.status()));
                         });
}

}  // namespace mcserve::rpc
