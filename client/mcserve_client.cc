#include "client/mcserve_client.h"

#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace mcserve::client {
namespace {

// Session-scoped calls carry the session id as x-session-id metadata, so a
// session-affine router (helm/mcserve/files) sends them to the session's
// replica. Only a legal header value is sent (gRPC aborts the process on
// another, e.g. invalid UTF-8); the server refuses such an id anyway.
void Route(grpc::ClientContext& ctx, const std::string& session_id) {
  if (session_id.empty()) return;
  for (char c : session_id) {
    if (c < 0x20 || c > 0x7e) return;
  }
  ctx.AddMetadata("x-session-id", session_id);
}

void Prepare(grpc::ClientContext& ctx, const CallOptions& o) {
  if (o.timeout != absl::InfiniteDuration()) {
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + o.timeout));
  }
  Route(ctx, o.session_metadata);
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

Client::Client(const std::string& target)
    : Client(grpc::CreateChannel(target, grpc::InsecureChannelCredentials())) {}

Client::Client(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)), stub_(v1::Generation::NewStub(channel_)) {}

void Client::Authorize(grpc::ClientContext& ctx) const {
  if (!bearer_token_.empty()) ctx.AddMetadata("authorization", "Bearer " + bearer_token_);
}

absl::Status Client::Generate(const v1::GenerateRequest& request,
                              const std::function<void(const v1::GenerateResponse&)>& on_response,
                              const CallOptions& options,
                              const std::function<void(grpc::ClientContext*)>& context_hook) {
  grpc::ClientContext ctx;
  Authorize(ctx);
  CallOptions o = options;
  if (o.session_metadata.empty()) o.session_metadata = request.session_id();
  Prepare(ctx, o);
  if (context_hook) context_hook(&ctx);
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader = stub_->Generate(&ctx, request);
  v1::GenerateResponse response;
  while (reader->Read(&response)) on_response(response);
  return FromGrpc(reader->Finish());
}

absl::Status Client::Abort(const std::string& request_id) {
  grpc::ClientContext ctx;
  Authorize(ctx);
  v1::AbortRequest req;
  req.set_request_id(request_id);
  v1::AbortResponse resp;
  return FromGrpc(stub_->Abort(&ctx, req, &resp));
}

absl::StatusOr<v1::Session> Client::CreateSession(const std::string& session_id) {
  grpc::ClientContext ctx;
  Authorize(ctx);
  Route(ctx, session_id);
  v1::CreateSessionRequest req;
  req.set_session_id(session_id);
  v1::Session resp;
  absl::Status s = FromGrpc(stub_->CreateSession(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<v1::Session> Client::GetSession(const std::string& session_id) {
  grpc::ClientContext ctx;
  Authorize(ctx);
  Route(ctx, session_id);
  v1::GetSessionRequest req;
  req.set_session_id(session_id);
  v1::Session resp;
  absl::Status s = FromGrpc(stub_->GetSession(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<std::vector<v1::Session>> Client::ListSessions() {
  std::vector<v1::Session> all;
  v1::ListSessionsRequest req;
  req.set_page_size(1000);
  do {
    grpc::ClientContext page_ctx;
    Authorize(page_ctx);
    v1::ListSessionsResponse resp;
    absl::Status s = FromGrpc(stub_->ListSessions(&page_ctx, req, &resp));
    if (!s.ok()) return s;
    all.insert(all.end(), resp.sessions().begin(), resp.sessions().end());
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return all;
}

absl::Status Client::DeleteSession(const std::string& session_id) {
  grpc::ClientContext ctx;
  Authorize(ctx);
  Route(ctx, session_id);
  v1::DeleteSessionRequest req;
  req.set_session_id(session_id);
  v1::DeleteSessionResponse resp;
  return FromGrpc(stub_->DeleteSession(&ctx, req, &resp));
}

absl::StatusOr<v1::Session> Client::ForkSession(const std::string& session_id,
                                                const std::string& new_session_id) {
  grpc::ClientContext ctx;
  Authorize(ctx);
  Route(ctx, session_id);
  v1::ForkSessionRequest req;
  req.set_session_id(session_id);
  req.set_new_session_id(new_session_id);
  v1::Session resp;
  absl::Status s = FromGrpc(stub_->ForkSession(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<std::string> Client::ExportSession(const std::string& session_id) {
  grpc::ClientContext ctx;
  Authorize(ctx);
  Route(ctx, session_id);
  v1::ExportSessionRequest req;
  req.set_session_id(session_id);
  std::unique_ptr<grpc::ClientReader<v1::SessionSnapshotChunk>> reader =
      stub_->ExportSession(&ctx, req);
  std::string bytes;
  v1::SessionSnapshotChunk chunk;
  while (reader->Read(&chunk)) bytes += chunk.data();
  absl::Status s = FromGrpc(reader->Finish());
  if (!s.ok()) return s;
  return bytes;
}

absl::StatusOr<v1::Session> Client::ImportSession(const std::string& snapshot,
                                                  const std::string& session_id,
                                                  size_t chunk_bytes) {
  grpc::ClientContext ctx;
  Authorize(ctx);
  Route(ctx, session_id);
  v1::Session resp;
  std::unique_ptr<grpc::ClientWriter<v1::ImportSessionRequest>> writer =
      stub_->ImportSession(&ctx, &resp);
  size_t offset = 0;
  do {
    v1::ImportSessionRequest msg;
    if (offset == 0) msg.set_session_id(session_id);
    const size_t n = std::min(chunk_bytes, snapshot.size() - offset);
    msg.set_data(snapshot.substr(offset, n));
    offset += n;
    if (!writer->Write(msg)) break;  // the server finished early: Finish says why
  } while (offset < snapshot.size());
  writer->WritesDone();
  absl::Status s = FromGrpc(writer->Finish());
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<v1::ModelInfo> Client::GetModelInfo() {
  grpc::ClientContext ctx;
  Authorize(ctx);
  v1::ModelInfo resp;
  absl::Status s = FromGrpc(stub_->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<std::vector<uint32_t>> Client::Tokenize(const std::string& text, bool add_bos) {
  grpc::ClientContext ctx;
  Authorize(ctx);
  v1::TokenizeRequest req;
  req.set_text(text);
  req.set_add_bos(add_bos);
  v1::TokenizeResponse resp;
  absl::Status s = FromGrpc(stub_->Tokenize(&ctx, req, &resp));
  if (!s.ok()) return s;
  return std::vector<uint32_t>(resp.ids().begin(), resp.ids().end());
}

absl::StatusOr<std::string> Client::Detokenize(const std::vector<uint32_t>& ids) {
  grpc::ClientContext ctx;
  Authorize(ctx);
  v1::DetokenizeRequest req;
  req.mutable_ids()->Add(ids.begin(), ids.end());
  v1::DetokenizeResponse resp;
  absl::Status s = FromGrpc(stub_->Detokenize(&ctx, req, &resp));
  if (!s.ok()) return s;
  return std::move(*resp.mutable_text());
}

absl::StatusOr<v1::ServerStatus> Client::GetServerStatus() {
  grpc::ClientContext ctx;
  Authorize(ctx);
  v1::ServerStatus resp;
  absl::Status s = FromGrpc(stub_->GetServerStatus(&ctx, v1::GetServerStatusRequest(), &resp));
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<bool> Client::Health(const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext ctx;
  Authorize(ctx);
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  absl::Status s = FromGrpc(stub->Check(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

}  // namespace mcserve::client
