// The server side of ExportSession (a server stream of snapshot chunks) and
// ImportSession (a client stream of them). Each finishes exactly once; the
// engine's answer arrives on the engine thread before any Finish, so
// neither reactor can be deleted while the engine still holds it.
#ifndef MCSERVE_SERVER_RPC_SNAPSHOT_REACTORS_H_
#define MCSERVE_SERVER_RPC_SNAPSHOT_REACTORS_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "mcserve/v1/generation.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/rpc/validation.h"

namespace mcserve::rpc {

// Bytes per SessionSnapshotChunk sent by the server.
inline constexpr size_t kSnapshotChunkBytes = 1 << 20;

class ExportReactor : public grpc::ServerWriteReactor<v1::SessionSnapshotChunk> {
 public:
  ExportReactor(engine::Engine* engine, const RequestLimits& limits,
                const v1::ExportSessionRequest& request);
  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  void WriteNext();

  std::string bytes_;
  size_t offset_ = 0;
  v1::SessionSnapshotChunk chunk_;
};

class ImportReactor : public grpc::ServerReadReactor<v1::ImportSessionRequest> {
 public:
  ImportReactor(engine::Engine* engine, const RequestLimits& limits, v1::Session* response);
  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  engine::Engine* const engine_;
  const RequestLimits& limits_;
  v1::Session* const response_;
  v1::ImportSessionRequest msg_;
  bool first_ = true;
  std::string session_id_;
  std::string bytes_;
};

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_SNAPSHOT_REACTORS_H_
