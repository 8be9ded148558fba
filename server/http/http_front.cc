#include "server/http/http_front.h"

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/engine/owner.h"
#include "server/http/chat_protocol.h"
#include "server/http/chat_template.h"
#include "server/http/completion_runs.h"
#include "server/http/openai_protocol.h"
#include "server/http/response_writer.h"
#include "server/rpc/caller_scope.h"
#include "server/rpc/validation.h"
#include "server/util/log.h"

namespace mcserve::http {
namespace {

using nlohmann::json;

constexpr int kKeepAliveSeconds = 5;

uint64_t Random64() {
  thread_local absl::BitGen gen;
  return absl::Uniform<uint64_t>(gen);
}

// The route a request is counted under (a fixed set: no label per path).
std::string RouteOf(const std::string& path) {
  for (const char* r : {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health"}) {
    if (path == r) return r;
  }
  return "other";
}

}  // namespace

struct HttpFront::Handlers {
  engine::Engine* engine = nullptr;
  rpc::RequestLimits limits;
  std::shared_ptr<const rpc::Authenticator> auth;
  metrics::Metrics* metrics = nullptr;
  std::string model_name;
  std::string model_path;
  std::optional<ModelChatTemplate> chat;
  int64_t created = 0;  // Unix seconds, for the model list

  absl::StatusOr<rpc::CallerScope> Scope(const httplib::Request& req, rpc::Method m) const {
    if (auth == nullptr) return rpc::CallerScope();
    absl::StatusOr<rpc::Principal> p = auth->Check(req.get_header_value("Authorization"), {}, m);
    if (!p.ok()) return p.status();
    return rpc::CallerScope(*p);
  }

  void Models(const httplib::Request& req, httplib::Response& res) const {
    if (absl::Status s = Scope(req, rpc::Method::kGetModelInfo).status(); !s.ok()) {
      return SendError(res, s);
    }
    json model = {{"id", model_name},
                  {"object", "model"},
                  {"created", created},
                  {"owned_by", "mcserve"},
                  {"root", model_path},
                  {"parent", nullptr},
                  {"max_model_len", limits.max_prompt_tokens + limits.max_tokens_limit}};
    res.set_content(Dump(json{{"object", "list"}, {"data", json::array({model})}}),
                    "application/json");
  }

  void Completions(const httplib::Request& req, httplib::Response& res) const {
    absl::StatusOr<rpc::CallerScope> scope = Scope(req, rpc::Method::kGenerate);
    if (!scope.ok()) return SendError(res, scope.status());
    absl::StatusOr<CompletionCall> call = ParseCompletionRequest(req.body);
    if (!call.ok()) return SendError(res, call.status());
    Serve(*scope, *std::move(call), /*chat=*/false, res);
  }

  void Chat(const httplib::Request& req, httplib::Response& res) const {
    absl::StatusOr<rpc::CallerScope> scope = Scope(req, rpc::Method::kGenerate);
    if (!scope.ok()) return SendError(res, scope.status());
    if (!chat) {
      return SendError(res, absl::InvalidArgumentError(
                                "this model has no chat template (no chat_template.jinja, and no "
                                "chat_template in tokenizer_config.json, in the model directory), "
                                "so it cannot take chat messages; use /v1/completions with a "
                                "prompt"));
    }
    absl::StatusOr<CompletionCall> call = ParseChatRequest(req.body, *chat);
    if (!call.ok()) return SendError(res, call.status());
    Serve(*scope, *std::move(call), /*chat=*/true, res);
  }

  // Validates `call` as the gRPC API would, runs its completions and writes
  // them in the API's shape.
  void Serve(const rpc::CallerScope& scope, CompletionCall call, bool chat_api,
             httplib::Response& res) const {
    if (!call.model.empty() && call.model != model_name) {
      return SendError(res, absl::NotFoundError(absl::StrCat(
                                "The model `", call.model, "` does not exist (this server serves `",
                                model_name, "`)")));
    }
    absl::StatusOr<engine::NewRequest> nr =
        rpc::ValidateGenerate(call.request, limits, engine->tokenizer(), Random64());
    if (!nr.ok()) return SendError(res, nr.status());
    ResponseShape shape;
    shape.chat = chat_api;
    shape.id =
        absl::StrFormat("%s-%016x%016x", chat_api ? "chatcmpl" : "cmpl", Random64(), Random64());
    shape.model = model_name;
    shape.created = absl::ToUnixSeconds(absl::Now());
    shape.stream = call.stream;
    shape.include_usage = call.include_usage;
    shape.logprobs = call.logprobs >= 0;
    if (call.echo) {
      if (call.request.has_token_ids()) {
        absl::StatusOr<std::string> t = engine->tokenizer().Decode(nr->prompt);
        if (!t.ok()) return SendError(res, t.status());
        shape.echo = *std::move(t);
      } else {
        shape.echo = call.request.text();
      }
    }
    if (!nr->session_id.empty()) nr->session_id = engine::Qualify(scope.owner(), nr->session_id);
    absl::StatusOr<std::shared_ptr<CompletionRuns>> runs =
        CompletionRuns::Start(engine, scope, limits, *std::move(nr), call.n, shape.id);
    if (!runs.ok()) return SendError(res, runs.status());
    WriteCompletions(shape, *std::move(runs), engine->tokenizer(), res);
  }
};

absl::StatusOr<std::unique_ptr<HttpFront>> HttpFront::Start(const HttpFrontOptions& options,
                                                            engine::Engine* engine,
                                                            const rpc::ServiceOptions& service,
                                                            metrics::Metrics* metrics) {
  auto h = std::make_unique<Handlers>();
  h->engine = engine;
  h->limits = service.limits;
  h->limits.vocab_size = engine->model().config().vocab_size;
  h->auth = service.auth;
  h->metrics = metrics;
  h->model_name = options.model_name;
  h->model_path = service.model_path;
  if (!options.chat_template_dir.empty()) {
    absl::StatusOr<std::optional<ModelChatTemplate>> chat =
        LoadChatTemplate(options.chat_template_dir);
    if (!chat.ok()) {
      return absl::Status(chat.status().code(),
                          absl::StrCat("HTTP front: chat template: ", chat.status().message()));
    }
    h->chat = *std::move(chat);
  }
  h->created = absl::ToUnixSeconds(absl::Now());

  std::unique_ptr<httplib::Server> server;
  if (!options.tls_cert_file.empty()) {
    const char* ca =
        options.tls_client_ca_file.empty() ? nullptr : options.tls_client_ca_file.c_str();
    auto ssl = std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(),
                                                    options.tls_key_file.c_str(), ca);
    if (!ssl->is_valid()) {
      return absl::FailedPreconditionError(absl::StrCat("HTTP front TLS: cannot use certificate ",
                                                        options.tls_cert_file, " with key ",
                                                        options.tls_key_file));
    }
    server = std::move(ssl);
  } else {
    server = std::make_unique<httplib::Server>();
  }
  const Handlers* hp = h.get();
  server->Post("/v1/completions",
               [hp](const httplib::Request& q, httplib::Response& r) { hp->Completions(q, r); });
  server->Post("/v1/chat/completions",
               [hp](const httplib::Request& q, httplib::Response& r) { hp->Chat(q, r); });
  server->Get("/v1/models",
              [hp](const httplib::Request& q, httplib::Response& r) { hp->Models(q, r); });
  server->Get("/health", [](const httplib::Request&, httplib::Response& r) {
    r.set_content("ok\n", "text/plain");
  });
  server->set_error_handler([](const httplib::Request& q, httplib::Response& r) {
    if (!r.body.empty()) return;  // a handler's own error
    const absl::Status s =
        r.status == 404 ? absl::NotFoundError(absl::StrCat("no route ", q.method, " ", q.path))
        : r.status == 405
            ? absl::InvalidArgumentError(absl::StrCat(q.method, " is not allowed on ", q.path))
        : r.status == 413
            ? absl::InvalidArgumentError(
                  "body is larger than the server takes (--max_message_bytes)")
            : absl::InvalidArgumentError(absl::StrCat("bad request (HTTP ", r.status, ")"));
    SendError(r, s, r.status);
  });
  server->set_exception_handler(
      [](const httplib::Request&, httplib::Response& r, std::exception_ptr) {
        SendError(r, absl::InternalError("internal error"));
      });
  if (metrics != nullptr) {
    server->set_logger([metrics](const httplib::Request& q, const httplib::Response& r) {
      metrics->HttpFinished(RouteOf(q.path), r.status);
    });
  }
  absl::StatusOr<int> port = BindHttpServer(*server, options.listen);
  if (!port.ok()) {
    return absl::Status(port.status().code(),
                        absl::StrCat("HTTP front: ", port.status().message()));
  }
  server->set_payload_max_length(options.max_body_bytes);
  // An idle keep-alive connection holds shutdown back this long at most.
  server->set_keep_alive_timeout(kKeepAliveSeconds);
  return std::unique_ptr<HttpFront>(new HttpFront(std::move(server), std::move(h), *port));
}

HttpFront::HttpFront(std::unique_ptr<httplib::Server> server, std::unique_ptr<Handlers> handlers,
                     int port)
    : server_(std::move(server)), handlers_(std::move(handlers)), port_(port) {
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

HttpFront::~HttpFront() {
  server_->stop();
  thread_.join();
}

}  // namespace mcserve::http
