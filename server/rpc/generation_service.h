// mcserve.v1.Generation over the gRPC callback API. Handlers validate,
// post to the engine and return; answers come back on the engine thread.
#ifndef MCSERVE_SERVER_RPC_GENERATION_SERVICE_H_
#define MCSERVE_SERVER_RPC_GENERATION_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "mcserve/v1/generation.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/rpc/auth.h"
#include "server/rpc/caller_scope.h"
#include "server/rpc/validation.h"

namespace mcserve::rpc {

struct ServiceOptions {
  RequestLimits limits;
  std::string model_path;
  // Set: every RPC must authenticate and be allowed for its role (auth.h);
  // null: no authentication.
  std::shared_ptr<const Authenticator> auth;
  // Test only (--testonly_leak_bytes_per_request): every Generate keeps this
  // many bytes for good (reachable and written, so it is resident): the
  // leak the soak test's must-fail control has to catch (tests/soak).
  int64_t testonly_leak_bytes_per_request = 0;
};

class GenerationService final : public v1::Generation::CallbackService {
 public:
  // `engine` must outlive the gRPC server this service is registered with.
  // options.limits.vocab_size is replaced by the engine's model's.
  GenerationService(engine::Engine* engine, ServiceOptions options);

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* ctx, const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* ctx, const v1::AbortRequest* request,
                                  v1::AbortResponse* response) override;
  grpc::ServerUnaryReactor* CreateSession(grpc::CallbackServerContext* ctx,
                                          const v1::CreateSessionRequest* request,
                                          v1::Session* response) override;
  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* ctx,
                                       const v1::GetSessionRequest* request,
                                       v1::Session* response) override;
  grpc::ServerUnaryReactor* DeleteSession(grpc::CallbackServerContext* ctx,
                                          const v1::DeleteSessionRequest* request,
                                          v1::DeleteSessionResponse* response) override;
  grpc::ServerUnaryReactor* ListSessions(grpc::CallbackServerContext* ctx,
                                         const v1::ListSessionsRequest* request,
                                         v1::ListSessionsResponse* response) override;
  grpc::ServerUnaryReactor* ForkSession(grpc::CallbackServerContext* ctx,
                                        const v1::ForkSessionRequest* request,
                                        v1::Session* response) override;
  grpc::ServerWriteReactor<v1::SessionSnapshotChunk>* ExportSession(
      grpc::CallbackServerContext* ctx, const v1::ExportSessionRequest* request) override;
  grpc::ServerReadReactor<v1::ImportSessionRequest>* ImportSession(grpc::CallbackServerContext* ctx,
                                                                   v1::Session* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;
  // Answered on the calling thread: the tokenizer needs no engine thread.
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* ctx,
                                       const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetServerStatus(grpc::CallbackServerContext* ctx,
                                            const v1::GetServerStatusRequest* request,
                                            v1::ServerStatus* response) override;

  // Streams (Generate, ExportSession, ImportSession) not yet fully done
  // (final status sent, reactor released). The shutdown drain waits for
  // zero so no stream is cut short.
  int open_streams() const { return open_streams_.load(std::memory_order_acquire); }

 private:
  // The caller's scope when authentication is off or it may call `m`;
  // UNAUTHENTICATED or PERMISSION_DENIED otherwise; then INVALID_ARGUMENT
  // when `request` (null: none yet) did not decode (wire::RequestDefect).
  absl::StatusOr<CallerScope> Allow(const grpc::CallbackServerContext* ctx, Method m,
                                    const google::protobuf::Message* request) const;

  std::atomic<int> open_streams_{0};
  engine::Engine* const engine_;
  const ServiceOptions options_;
  v1::ModelInfo model_info_;  // immutable after construction
};

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_GENERATION_SERVICE_H_
