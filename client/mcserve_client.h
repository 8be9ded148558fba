// A C++ client for mcserve.v1.Generation and the gRPC health service.
// Blocking calls; thread-safe (one channel, shared).
#ifndef MCSERVE_CLIENT_MCSERVE_CLIENT_H_
#define MCSERVE_CLIENT_MCSERVE_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mcserve/v1/generation.grpc.pb.h"

namespace mcserve::client {

struct CallOptions {
  absl::Duration timeout = absl::InfiniteDuration();  // per call
  std::string session_metadata;  // sent as x-session-id (for session-affine routers)
};

class Client {
 public:
  // Does not connect yet; calls fail with UNAVAILABLE if the server is down.
  explicit Client(const std::string& target);
  explicit Client(std::shared_ptr<grpc::Channel> channel);

  // Streams a completion; `on_response` runs for every message in order.
  // `context_hook`, if set, receives the call's context before it starts
  // (e.g. to TryCancel it from another thread).
  absl::Status Generate(const v1::GenerateRequest& request,
                        const std::function<void(const v1::GenerateResponse&)>& on_response,
                        const CallOptions& options = {},
                        const std::function<void(grpc::ClientContext*)>& context_hook = nullptr);

  absl::Status Abort(const std::string& request_id);
  absl::StatusOr<v1::Session> CreateSession(const std::string& session_id = "");
  absl::StatusOr<v1::Session> GetSession(const std::string& session_id);
  absl::Status DeleteSession(const std::string& session_id);
  // The caller's sessions (an admin's: everyone's), by id: every page.
  absl::StatusOr<std::vector<v1::Session>> ListSessions();
  absl::StatusOr<v1::Session> ForkSession(const std::string& session_id,
                                          const std::string& new_session_id = "");
  // The session's snapshot bytes (ExportSession's chunks joined).
  absl::StatusOr<std::string> ExportSession(const std::string& session_id);
  // Streams `snapshot` in chunks of `chunk_bytes`; `session_id` "" keeps the
  // id stored in the snapshot.
  absl::StatusOr<v1::Session> ImportSession(const std::string& snapshot,
                                            const std::string& session_id = "",
                                            size_t chunk_bytes = 1 << 20);
  absl::StatusOr<v1::ModelInfo> GetModelInfo();
  // The model's ids for `text` (BOS first with `add_bos`), and back.
  absl::StatusOr<std::vector<uint32_t>> Tokenize(const std::string& text, bool add_bos = false);
  absl::StatusOr<std::string> Detokenize(const std::vector<uint32_t>& ids);
  absl::StatusOr<v1::ServerStatus> GetServerStatus();
  // grpc.health.v1 Check: true when SERVING. `service` "" means the server.
  absl::StatusOr<bool> Health(const std::string& service = "");

  grpc::Channel* channel() { return channel_.get(); }
  // Sends "authorization: Bearer <token>" with every call ("" : none).
  // Not thread-safe against calls in flight: set it before using the client.
  void set_bearer_token(std::string token) { bearer_token_ = std::move(token); }

 private:
  void Authorize(grpc::ClientContext& ctx) const;

  std::string bearer_token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Generation::Stub> stub_;
};

absl::Status FromGrpc(const grpc::Status& s);

}  // namespace mcserve::client

#endif  // MCSERVE_CLIENT_MCSERVE_CLIENT_H_
