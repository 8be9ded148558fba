#include "server/rpc/generation_service.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "proto/wire/request_decoding.h"
#include "server/model/cache_tensors.h"
#include "server/rpc/fan_out_reactor.h"
#include "server/rpc/generate_reactor.h"
#include "server/rpc/proto_convert.h"
#include "server/rpc/snapshot_reactors.h"
#include "server/rpc/status.h"
#include "server/rpc/tokenize.h"

namespace mcserve::rpc {
namespace {

constexpr uint32_t kDefaultListPageSize = 100;
constexpr uint32_t kMaxListPageSize = 1000;

// ServiceOptions::testonly_leak_bytes_per_request.
void Leak(int64_t bytes) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* kept = new std::vector<std::unique_ptr<char[]>>();
  auto block = std::make_unique<char[]>(static_cast<size_t>(bytes));
  std::memset(block.get(), 0x5a, static_cast<size_t>(bytes));
  absl::MutexLock l(&mu);
  kept->push_back(std::move(block));
}

uint64_t RandomSeed() {
  thread_local absl::BitGen gen;
  return absl::Uniform<uint64_t>(gen);
}

v1::ModelInfo DescribeModel(const engine::Engine& e, const ServiceOptions& o) {
  const model::ModelConfig& c = e.model().config();
  v1::ModelInfo m;
  m.set_model_type(c.model_type);
  m.set_model_path(o.model_path);
  m.set_vocab_size(c.vocab_size);
  m.set_d_model(c.d_model);
  m.set_n_layers(c.n_layers);
  m.set_n_heads(c.n_heads);
  m.set_head_dim(c.head_dim);
  m.set_d_ff(c.d_ff);
  m.set_memory_rule(std::string(model::RuleName(c.rule)));
  m.set_memory_decay(c.scalar_decay ? "scalar" : "none");
  m.set_aggregation(std::string(model::AggregationName(c.aggregation)));
  m.set_segment_length(c.segment_length);
  m.set_top_k(c.top_k);
  m.set_boundary(std::string(model::BoundaryName(c.boundary)));
  m.set_bos_id(e.tokenizer().bos_id());
  m.set_eos_id(e.tokenizer().eos_id());
  m.set_num_parameters(e.model().weights().num_parameters);
  m.set_weights_dtype(std::string(model::StDtypeName(e.model().weights().file_dtype)));
  m.set_checkpoint_dtype(std::string(model::CkptDtypeName(e.model().options().ckpt_dtype)));
  m.set_device(e.model().options().device.str());
  m.set_max_prompt_tokens(o.limits.max_prompt_tokens);
  m.set_max_tokens_limit(o.limits.max_tokens_limit);
  m.set_default_max_tokens(o.limits.default_max_tokens);
  m.set_checkpoint_bytes(e.checkpoint_bytes());
  m.set_state_bytes(e.state_bytes());
  m.set_num_v_heads(c.state_heads());
  m.set_head_v_dim(c.value_dim());
  m.set_conv_size(c.is_fla() ? c.fla.conv_size : 0);
  m.set_output_gate(!c.is_fla() || c.fla.use_gate);
  if (c.HasGate()) m.set_mc_router(std::string(model::RouterName(c.router)));
  m.set_mc_source(c.mc_source);
  m.set_memory_kind(std::string(model::MemoryKindName(c.memory_kind)));
  if (c.is_deep()) {
    m.set_memory_expansion(c.deep.expansion);
    m.set_memory_chunk(c.deep.chunk);
    m.set_memory_lr_max(c.deep.lr_max);
    m.set_memory_momentum(c.deep.momentum);
    m.set_memory_grad_clip(c.deep.grad_clip);
  }
  DescribeTokenizer(e.tokenizer(), *m.mutable_tokenizer());
  return m;
}

// `o` with the limits that come from the model rather than from flags.
ServiceOptions WithModelLimits(ServiceOptions o, const engine::Engine& e) {
  o.limits.vocab_size = e.model().config().vocab_size;
  return o;
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(ToGrpc(s));
  return r;
}

// Answers a unary session RPC with the engine's SessionInfo, its id as the
// caller sees it.
engine::Engine::SessionCallback AnswerSession(grpc::ServerUnaryReactor* r, const CallerScope& scope,
                                              v1::Session* response) {
  return [r, scope, response](absl::StatusOr<engine::SessionInfo> info) {
    if (info.ok()) {
      ToProto(*info, *response);
      response->set_session_id(scope.Show(info->id));
    }
    r->Finish(ToGrpc(info.status()));
  };
}

// A stream refused before it starts (authentication): finishes at once.
template <typename T>
class RefusedWriter : public grpc::ServerWriteReactor<T> {
 public:
  explicit RefusedWriter(const absl::Status& s) { this->Finish(ToGrpc(s)); }
  void OnDone() override { delete this; }
};
class RefusedImport : public grpc::ServerReadReactor<v1::ImportSessionRequest> {
 public:
  explicit RefusedImport(const absl::Status& s) { Finish(ToGrpc(s)); }
  void OnDone() override { delete this; }
};

}  // namespace

GenerationService::GenerationService(engine::Engine* engine, ServiceOptions options)
    : engine_(engine),
      options_(WithModelLimits(std::move(options), *engine)),
      model_info_(DescribeModel(*engine, options_)) {}

absl::StatusOr<CallerScope> GenerationService::Allow(
    const grpc::CallbackServerContext* ctx, Method m,
    const google::protobuf::Message* request) const {
  CallerScope scope;
  if (options_.auth != nullptr) {
    absl::StatusOr<Principal> p = options_.auth->Check(*ctx, m);
    if (!p.ok()) return p.status();
    scope = CallerScope(*p);
  }
  if (request != nullptr) {
    if (std::string defect = wire::RequestDefect(*request); !defect.empty()) {
      return absl::InvalidArgumentError(defect);
    }
  }
  return scope;
}

grpc::ServerWriteReactor<v1::GenerateResponse>* GenerationService::Generate(
    grpc::CallbackServerContext* ctx, const v1::GenerateRequest* request) {
  absl::StatusOr<CallerScope> scope = Allow(ctx, Method::kGenerate, request);
  if (!scope.ok()) return new RefusedWriter<v1::GenerateResponse>(scope.status());
  if (options_.testonly_leak_bytes_per_request > 0) Leak(options_.testonly_leak_bytes_per_request);
  if (request->n() > 1) {
    return new FanOutReactor(engine_, options_.limits, *scope, *request, RandomSeed(), RandomSeed(),
                             &open_streams_);
  }
  return new GenerateReactor(engine_, options_.limits, *scope, *request, RandomSeed(), RandomSeed(),
                             &open_streams_);
}

grpc::ServerUnaryReactor* GenerationService::Abort(grpc::CallbackServerContext* ctx,
                                                   const v1::AbortRequest* request,
                                                   v1::AbortResponse* /*response*/) {
  absl::StatusOr<CallerScope> scope = Allow(ctx, Method::kAbort, request);
  if (!scope.ok()) return FinishNow(ctx, scope.status());

  if (request->request_id().empty()) {
    return FinishNow(ctx, absl::InvalidArgumentError("request_id is required"));
  }
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  engine_->Cancel(scope->Request(request->request_id()),
                  [r](absl::Status s) { r->Finish(ToGrpc(s)); });
  return r;
}

grpc::ServerUnaryReactor* GenerationService::CreateSession(grpc::CallbackServerContext* ctx,
                                                           const v1::CreateSessionRequest* request,
                                                           v1::Session* response) {
  absl::StatusOr<CallerScope> scope = Allow(ctx, Method::kCreateSession, request);
  if (!scope.ok()) return FinishNow(ctx, scope.status());

  absl::StatusOr<std::string> id =
      scope->NewSession(request->session_id(), options_.limits, "session_id");
  if (!id.ok()) return FinishNow(ctx, id.status());
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  engine_->CreateSession(*id, AnswerSession(r, *scope, response));
  return r;
}

grpc::ServerUnaryReactor* GenerationService::GetSession(grpc::CallbackServerContext* ctx,
                                                        const v1::GetSessionRequest* request,
                                                        v1::Session* response) {
  absl::StatusOr<CallerScope> scope = Allow(ctx, Method::kGetSession, request);
  if (!scope.ok()) return FinishNow(ctx, scope.status());

  absl::StatusOr<std::string> id =
      scope->Session(request->session_id(), options_.limits, "session_id");
  if (!id.ok()) return FinishNow(ctx, id.status());
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  engine_->GetSession(*id, AnswerSession(r, *scope, response));
  return r;
}

grpc::ServerUnaryReactor* GenerationService::DeleteSession(
    grpc::CallbackServerContext* ctx, const v1::DeleteSessionRequest* request,
    v1::DeleteSessionResponse* /*response*/) {
  absl::StatusOr<CallerScope> scope = Allow(ctx, Method::kDeleteSession, request);
  if (!scope.ok()) return FinishNow(ctx, scope.status());

  absl::StatusOr<std::string> id =
      scope->Session(request->session_id(), options_.limits, "session_id");
  if (!id.ok()) return FinishNow(ctx, id.status());
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  engine_->DeleteSession(*id, [r](absl::Status st) { r->Finish(ToGrpc(st)); });
  return r;
}

grpc::ServerUnaryReactor* GenerationService::ListSessions(grpc::CallbackServerContext* ctx,
                                                          const v1::ListSessionsRequest* request,
                                                          v1::ListSessionsResponse* response) {
  absl::StatusOr<CallerScope> scope = Allow(ctx, Method::kListSessions, request);
  if (!scope.ok()) return FinishNow(ctx, scope.status());

  if (request->page_size() > kMaxListPageSize) {
    return FinishNow(
        ctx, absl::InvalidArgumentError(absl::StrCat("page_size must be at most ", kMaxListPageSize,
                                                     ", got ", request->page_size())));
  }
  const size_t page_size = request->page_size() == 0 ? kDefaultListPageSize : request->page_size();
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  engine_->DescribeSessions([r, scope = *scope, response, page_size,
                             after = request->page_token()](std::vector<engine::SessionInfo> all) {
    std::vector<std::pair<std::string, const engine::SessionInfo*>> shown;
    for (const engine::SessionInfo& info : all) {
      if (!scope.Sees(info.id)) continue;
      std::string id = scope.Show(info.id);
      if (id > after) shown.emplace_back(std::move(id), &info);
    }
    std::sort(shown.begin(), shown.end());
    for (size_t i = 0; i < shown.size() && i < page_size; ++i) {
      v1::Session* out = response->add_sessions();
      ToProto(*shown[i].second, *out);
      out->set_session_id(shown[i].first);
    }
    if (shown.size() > page_size) response->set_next_page_token(shown[page_size - 1].first);
    r->Finish(grpc::Status::OK);
  });
  return r;
}

grpc::ServerUnaryReactor* GenerationService::ForkSession(grpc::CallbackServerContext* ctx,
                                                         const v1::ForkSessionRequest* request,
                                                         v1::Session* response) {
  absl::StatusOr<CallerScope> scope = Allow(ctx, Method::kForkSession, request);
  if (!scope.ok()) return FinishNow(ctx, scope.status());

  absl::StatusOr<std::string> parent =
      scope->Session(request->session_id(), options_.limits, "session_id");
  if (!parent.ok()) return FinishNow(ctx, parent.status());
  absl::StatusOr<std::string> child =
      scope->NewSession(request->new_session_id(), options_.limits, "new_session_id");
  if (!child.ok()) return FinishNow(ctx, child.status());
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  engine_->ForkSession(*parent, *child, AnswerSession(r, *scope, response));
  return r;
}

grpc::ServerWriteReactor<v1::SessionSnapshotChunk>* GenerationService::ExportSession(
    grpc::CallbackServerContext* ctx, const v1::ExportSessionRequest* request) {
  absl::StatusOr<CallerScope> scope = Allow(ctx, Method::kExportSession, request);
  if (!scope.ok()) return new RefusedWriter<v1::SessionSnapshotChunk>(scope.status());
  return new ExportReactor(engine_, options_.limits, *scope, *request, &open_streams_);
}

grpc::ServerReadReactor<v1::ImportSessionRequest>* GenerationService::ImportSession(
    grpc::CallbackServerContext* ctx, v1::Session* response) {
  absl::StatusOr<CallerScope> scope = Allow(ctx, Method::kImportSession, nullptr);
  if (!scope.ok()) return new RefusedImport(scope.status());
  return new ImportReactor(engine_, options_.limits, *scope, response, &open_streams_);
}

grpc::ServerUnaryReactor* GenerationService::GetModelInfo(grpc::CallbackServerContext* ctx,
                                                          const v1::GetModelInfoRequest* request,
                                                          v1::ModelInfo* response) {
  if (absl::Status s = Allow(ctx, Method::kGetModelInfo, request).status(); !s.ok())
    return FinishNow(ctx, s);

  *response = model_info_;
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* ctx,
                                                      const v1::TokenizeRequest* request,
                                                      v1::TokenizeResponse* response) {
  if (absl::Status s = Allow(ctx, Method::kTokenize, request).status(); !s.ok())
    return FinishNow(ctx, s);

  return FinishNow(ctx, rpc::Tokenize(engine_->tokenizer(), *request, *response));
}

grpc::ServerUnaryReactor* GenerationService::Detokenize(grpc::CallbackServerContext* ctx,
                                                        const v1::DetokenizeRequest* request,
                                                        v1::DetokenizeResponse* response) {
  if (absl::Status s = Allow(ctx, Method::kDetokenize, request).status(); !s.ok())
    return FinishNow(ctx, s);

  return FinishNow(ctx,
                   rpc::Detokenize(engine_->tokenizer(), options_.limits, *request, *response));
}

grpc::ServerUnaryReactor* GenerationService::GetServerStatus(
    grpc::CallbackServerContext* ctx, const v1::GetServerStatusRequest* request,
    v1::ServerStatus* response) {
  if (absl::Status s = Allow(ctx, Method::kGetServerStatus, request).status(); !s.ok())
    return FinishNow(ctx, s);

  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  // Through the engine thread, so it reflects every command answered before.
  engine_->GetStatus([r, response](engine::EngineStatus s) {
    response->set_running_requests(s.running);
    response->set_waiting_requests(s.waiting);
    response->set_sessions(s.sessions);
    response->set_max_sessions(s.max_sessions);
    response->set_checkpoint_slots_used(s.checkpoint_slots_used);
    response->set_checkpoint_slots_total(s.checkpoint_slots_total);
    response->set_draining(s.draining);
    response->set_host_checkpoint_slots_used(s.host_checkpoint_slots_used);
    response->set_host_checkpoint_slots_total(s.host_checkpoint_slots_total);
    response->set_lossy_sessions(s.lossy_sessions);
    response->set_checkpoints_offloaded(s.evictions.offloads);
    response->set_checkpoints_fetched(s.evictions.fetches);
    response->set_checkpoints_dropped(s.evictions.drops);
    response->set_checkpoints_merged(s.evictions.merges);
    r->Finish(grpc::Status::OK);
  });
  return r;
}

}  // namespace mcserve::rpc
