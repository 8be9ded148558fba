#include "server/rpc/snapshot_reactors.h"

#include "absl/strings/str_cat.h"
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

void ImportReactor::OnReadDone(bool ok) {
  if (ok) {
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
    if (bytes_.size() + msg_.data().size() > static_cast<size_t>(limits_.max_snapshot_bytes)) {
      Finish(ToGrpc(absl::InvalidArgumentError(
          absl::StrCat("snapshot is larger than this server accepts (", limits_.max_snapshot_bytes,
                       " bytes, --max_snapshot_size)"))));
      return;
    }
    bytes_ += msg_.data();
    if (declared_ == 0) {
      // Check the header as soon as it is in: a stream that is not a
      // snapshot, or declares more than the limit, ends at this chunk.
      absl::StatusOr<size_t> size = engine::SnapshotDeclaredSize(bytes_);
      if (!size.ok()) {
        Finish(ToGrpc(size.status()));
        return;
      }
      declared_ = *size;
      if (declared_ > static_cast<size_t>(limits_.max_snapshot_bytes)) {
        Finish(ToGrpc(absl::InvalidArgumentError(
            absl::StrCat("snapshot declares ", declared_, " bytes, more than this server accepts (",
                         limits_.max_snapshot_bytes, " bytes, --max_snapshot_size)"))));
        return;
      }
      if (declared_ > 0) bytes_.reserve(declared_);
    }
    if (declared_ > 0 && bytes_.size() > declared_) {
      Finish(ToGrpc(absl::InvalidArgumentError(absl::StrCat(
          "snapshot stream is longer than the ", declared_, " bytes its header declares"))));
      return;
    }
    StartRead(&msg_);
    return;
  }
  // The client finished sending (or went away: then Finish is a no-op).
  if (first_) {
    Finish(ToGrpc(absl::InvalidArgumentError("ImportSession received no snapshot bytes")));
    return;
  }
  engine_->ImportSession(session_id_, std::move(bytes_),
                         [this](absl::StatusOr<engine::SessionInfo> info) {
                           if (info.ok()) {
                             ToProto(*info, *response_);
                             response_->set_session_id(scope_.Show(info->id));
                           }
                           Finish(ToGrpc(info.status()));
                         });
}

}  // namespace mcserve::rpc
