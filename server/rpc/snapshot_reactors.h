// The server side of ExportSession (a server stream of snapshot chunks) and
// ImportSession (a client stream of them). Each finishes exactly once, on
// every path, cancellation included, and is deleted only in OnDone. Neither
// finishes between handing work to the engine and the engine's answer (its
// callback holds `this`), so the engine never calls into a deleted reactor.
//
// Both count themselves in `open_streams` from construction to deletion
// (after the final status is sent): the shutdown drain waits for them.
#ifndef MCSERVE_SERVER_RPC_SNAPSHOT_REACTORS_H_
#define MCSERVE_SERVER_RPC_SNAPSHOT_REACTORS_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "mcserve/v1/generation.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/engine/session_snapshot.h"
#include "server/rpc/caller_scope.h"
#include "server/rpc/validation.h"

namespace mcserve::rpc {

// Bytes per SessionSnapshotChunk sent by the server.
inline constexpr size_t kSnapshotChunkBytes = 1 << 20;

// Holds one count in `*count` for its lifetime.
class StreamCount {
 public:
  explicit StreamCount(std::atomic<int>* count) : count_(count) {
    count_->fetch_add(1, std::memory_order_acq_rel);
  }
  ~StreamCount() { count_->fetch_sub(1, std::memory_order_acq_rel); }
  StreamCount(const StreamCount&) = delete;
  StreamCount& operator=(const StreamCount&) = delete;

 private:
  std::atomic<int>* const count_;
};

// Asks the engine for the snapshot, then writes it one chunk at a time (one
// write in flight). A cancel while the engine prepares the snapshot
// finishes as soon as it answers, without writing; a cancel mid-stream
// finishes when the write in flight fails.
class ExportReactor : public grpc::ServerWriteReactor<v1::SessionSnapshotChunk> {
 public:
  ExportReactor(engine::Engine* engine, const RequestLimits& limits, const CallerScope& scope,
                const v1::ExportSessionRequest& request, std::atomic<int>* open_streams);
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  ~ExportReactor() override = default;
  // Engine thread: the snapshot, or why there is none.
  void OnSnapshot(absl::StatusOr<std::string> bytes);
  // Starts the next write, or the Finish once one is due; nothing while the
  // engine has not answered or a write is in flight.
  void Advance();

  StreamCount counted_;
  absl::Mutex mu_;
  bool answered_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> final_ ABSL_GUARDED_BY(mu_);  // Finish with this next
  std::string bytes_ ABSL_GUARDED_BY(mu_);
  size_t offset_ ABSL_GUARDED_BY(mu_) = 0;
  v1::SessionSnapshotChunk chunk_;  // owned by the write in flight
};

class ImportReactor : public grpc::ServerReadReactor<v1::ImportSessionRequest> {
 public:
  ImportReactor(engine::Engine* engine, const RequestLimits& limits, const CallerScope& scope,
                v1::Session* response, std::atomic<int>* open_streams);
  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  ~ImportReactor() override = default;

  StreamCount counted_;
  engine::Engine* const engine_;
  const RequestLimits& limits_;
  const CallerScope scope_;
  v1::Session* const response_;
  v1::ImportSessionRequest msg_;
  bool first_ = true;
  std::string client_session_id_;  // as the first message names it
  std::string session_id_;         // the engine's
  engine::SnapshotDecoder decoder_;
  size_t received_ = 0;
  bool checked_ = false;  // the header's declared sizes, against the limits
  // OK, or why a snapshot of the declared size could never be imported.
  absl::Status CheckDeclared() const;
};

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_SNAPSHOT_REACTORS_H_
