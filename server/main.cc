// mcserve: the gRPC server. Loads the model, starts the engine thread and
// the gRPC server, and on SIGTERM/SIGINT drains: health NOT_SERVING, new
// work refused, in-flight requests and snapshot streams finish (or are
// aborted at the grace deadline), then exit 0.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/engine/engine.h"
#include "server/metrics/http_exposer.h"
#include "server/metrics/metrics.h"
#include "server/metrics/rpc_interceptor.h"
#include "server/model/mc_model.h"
#include "server/rpc/generation_service.h"
#include "server/server_options.h"
#include "server/session_saver.h"
#include "server/session_store.h"
#include "server/util/clock.h"
#include "server/util/flags_help.h"
#include "server/util/log.h"

namespace mcserve {
namespace {

int Fatal(absl::string_view what, const absl::Status& s) {
  MCSERVE_LOG(kError, what).Kv("error", s.ToString());
  std::fprintf(stderr, "mcserve: %s: %s\n", std::string(what).c_str(), s.ToString().c_str());
  return 1;
}

// Writes `port` to `path` atomically (readers never see a partial file).
void WritePortFile(const std::string& path, int port) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::rename(tmp.c_str(), path.c_str());
}

// Blocks until SIGTERM or SIGINT. Both are blocked in every thread (the mask
// is set before any thread starts), so only this sigwait sees them.
int WaitForSignal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

void Drain(engine::Engine& engine, const rpc::GenerationService& service, grpc::Server& server,
           grpc::Server* health_server, absl::Duration grace) {
  server.GetHealthCheckService()->SetServingStatus(false);
  if (health_server != nullptr) health_server->GetHealthCheckService()->SetServingStatus(false);
  engine.StartDrain();
  const absl::Time deadline = absl::Now() + grace;
  // A stream (Generate, ExportSession or ImportSession) is in flight from
  // its first byte until its final status is sent; counting streams (not
  // only the engine's queues) also covers a request the engine has not
  // picked up yet, and snapshot streams the engine never queues.
  auto busy = [&engine, &service] {
    const engine::EngineStatus s = engine.Status();
    return s.running + s.waiting > 0 || service.open_streams() > 0;
  };
  while (busy() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  if (busy()) {
    MCSERVE_LOG(kWarning, "grace period over; aborting requests in flight");
    engine.AbortAll();
  }
  // Requests have ended or been aborted; wait (briefly) for their final
  // messages to be written, then close at once: nothing worth waiting for is
  // left (a snapshot stream still open past the grace is cancelled).
  const absl::Time flushed = absl::Now() + absl::Seconds(2);
  while (service.open_streams() > 0 && absl::Now() < flushed) absl::SleepFor(absl::Milliseconds(5));
  server.Shutdown(std::chrono::system_clock::now());
  if (health_server != nullptr) health_server->Shutdown(std::chrono::system_clock::now());
}

int Run(int argc, char** argv) {
  SetFlagsHelp("mcserve --model=DIR [--listen=HOST:PORT] [flags]", {"server/server_options.cc"});
  absl::ParseCommandLine(argc, argv);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<ServerOptions> opts = ServerOptionsFromFlags();
  if (!opts.ok()) return Fatal("bad flags", opts.status());
  MCSERVE_LOG(kInfo, "loading model")
      .Kv("dir", opts->model_dir)
      .Kv("device", opts->model.device.str());
  auto model = model::McModel::Load(opts->model_dir, opts->model);
  if (!model.ok()) return Fatal("cannot load model", model.status());
  metrics::Metrics metrics;
  std::unique_ptr<metrics::HttpExposer> exposer;
  if (!opts->metrics.listen.empty()) {
    absl::StatusOr<std::unique_ptr<metrics::HttpExposer>> e =
        metrics::HttpExposer::Start(opts->metrics, metrics.registry());
    if (!e.ok()) return Fatal("cannot serve metrics", e.status());
    exposer = *std::move(e);
    WritePortFile(opts->metrics_port_file, exposer->port());
    MCSERVE_LOG(kInfo, "serving metrics")
        .Kv("listen", opts->metrics.listen)
        .Kv("tls", !opts->metrics.tls_cert_file.empty())
        .Kv("auth", opts->metrics.bearer_token_file.empty() ? "none" : "bearer")
        .Kv("port", exposer->port())
        .Kv("path", "/metrics");
  }
  auto engine = engine::Engine::Create(*std::move(model), opts->engine, Clock::Real(), &metrics);
  if (!engine.ok()) return Fatal("cannot start engine", engine.status());

  std::unique_ptr<SessionStore> sessions;
  std::unique_ptr<SessionSaver> saver;
  if (!opts->session_dir.empty()) {
    absl::StatusOr<std::unique_ptr<SessionStore>> st = SessionStore::Open(opts->session_dir);
    if (!st.ok()) return Fatal("cannot open --session_dir", st.status());
    sessions = *std::move(st);
    absl::Status restored = sessions->Restore(**engine);
    if (!restored.ok()) return Fatal("cannot restore sessions", restored);
    if (opts->session_save_interval > absl::ZeroDuration()) {
      saver = std::make_unique<SessionSaver>(sessions.get(), engine->get(),
                                             opts->session_save_interval);
    }
  }

  rpc::GenerationService service(engine->get(), opts->service);
  std::unique_ptr<http::HttpFront> http_front;
  if (!opts->http.listen.listen.empty()) {
    absl::StatusOr<std::unique_ptr<http::HttpFront>> f =
        http::HttpFront::Start(opts->http, engine->get(), opts->service, &metrics);
    if (!f.ok()) return Fatal("cannot serve the HTTP API", f.status());
    http_front = *std::move(f);
    WritePortFile(opts->http_port_file, http_front->port());
    MCSERVE_LOG(kInfo, "serving the OpenAI-compatible HTTP API")
        .Kv("listen", opts->http.listen.listen)
        .Kv("port", http_front->port())
        .Kv("model", opts->http.model_name);
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      rpc::ServerCredentials(opts->tls);
  if (!creds.ok()) return Fatal("bad TLS settings", creds.status());
  builder.AddListeningPort(opts->listen, *creds, &port);
  builder.SetMaxReceiveMessageSize(opts->max_message_bytes);
  opts->connections.Apply(builder);
  builder.RegisterService(&service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<metrics::RpcMetricsFactory>(&metrics));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return Fatal("cannot listen", absl::UnavailableError(absl::StrCat("on ", opts->listen)));
  }
  // Kubernetes' gRPC probes speak plaintext only: with TLS on, they can be
  // pointed at a plaintext listener that serves nothing but grpc.health.v1.
  std::unique_ptr<grpc::Server> health_server;
  if (!opts->health_listen.empty()) {
    grpc::ServerBuilder hb;
    int health_port = 0;
    hb.AddListeningPort(opts->health_listen, grpc::InsecureServerCredentials(), &health_port);
    health_server = hb.BuildAndStart();
    if (health_server == nullptr || health_port == 0) {
      return Fatal("cannot listen for health checks",
                   absl::UnavailableError(absl::StrCat("on ", opts->health_listen)));
    }
    health_server->GetHealthCheckService()->SetServingStatus(true);
    WritePortFile(opts->health_port_file, health_port);
    MCSERVE_LOG(kInfo, "serving health checks")
        .Kv("listen", opts->health_listen)
        .Kv("port", health_port);
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  WritePortFile(opts->port_file, port);
  MCSERVE_LOG(kInfo, "serving")
      .Kv("listen", opts->listen)
      .Kv("port", port)
      .Kv("transport", !opts->tls.enabled() ? "plaintext"
                       : opts->tls.mutual() ? "mtls"
                                            : "tls");

  const int sig = WaitForSignal(signals);
  int exit_code = 0;
  MCSERVE_LOG(kInfo, "shutting down").Kv("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  Drain(**engine, service, *server, health_server.get(), opts->shutdown_grace);
  server->Wait();
  if (health_server != nullptr) health_server->Wait();
  http_front.reset();  // its requests ended with the drain
  if (saver != nullptr) saver->Stop();
  if (sessions != nullptr) {
    // Every request has ended: the sessions are at rest. A failure is
    // logged per session; the exit code says whether all were kept.
    if (!sessions->SaveAll(**engine).ok()) exit_code = 1;
  }
  engine->reset();  // before `metrics`, which it records into
  MCSERVE_LOG(kInfo, "stopped");
  return exit_code;
}

}  // namespace
}  // namespace mcserve

int main(int argc, char** argv) { return mcserve::Run(argc, argv); }
