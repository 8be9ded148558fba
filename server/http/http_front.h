// The OpenAI-compatible HTTP front (--http_listen): POST /v1/completions
// (JSON or server-sent events), GET /v1/models, POST /v1/chat/completions
// (see below), GET /health. It drives the same engine as the gRPC
// API, with the same validation and limits (rpc::ValidateGenerate), the same
// bearer tokens and ownership (a principal's sessions and quotas are the
// same on both), and the same engine metrics, plus
// mcserve_http_requests_total{path,code}. n > 1 completions of a one-shot
// prompt: one prefill into a scratch session, n - 1 forks of it, completion i
// sampled from fork i with seed + i (equal to a one-shot run with that seed).
//
// Certificates are read once at start (gRPC's are re-read on change).
//
// Chat: /v1/chat/completions renders the messages with the model directory's
// chat template (chat_protocol.h), read at start (a template mcserve cannot
// render fails the start, naming the file and line); without one it answers
// 400 saying why.
#ifndef MCSERVE_SERVER_HTTP_HTTP_FRONT_H_
#define MCSERVE_SERVER_HTTP_HTTP_FRONT_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/engine/engine.h"
#include "server/metrics/metrics.h"
#include "server/rpc/generation_service.h"
#include "server/util/http_listener.h"

namespace httplib {
class Server;
}

namespace mcserve::http {

struct HttpFrontOptions {
  HttpListenOptions listen;  // listen.listen empty: no HTTP front
  // The name /v1/models lists and requests may give as `model` (any other
  // is 404); default: the model directory's base name.
  std::string model_name;
  // The model directory, for its chat template (chat_template.h; none:
  // /v1/chat/completions answers 400 saying why). "": no chat API.
  std::string chat_template_dir;
  // Largest request body accepted (413 beyond); mcserve sets it to
  // --max_message_bytes, the gRPC limit.
  size_t max_body_bytes = 4 << 20;
  // Both set: HTTPS with this PEM certificate chain and key (the gRPC
  // listener's, --tls_cert/--tls_key), read at start. With a client CA as
  // well, clients must present a certificate it signed; the principal still
  // comes from the bearer token.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
};

class HttpFront {
 public:
  // `engine` and `metrics` (may be null) must outlive the front; `service`
  // gives the limits and the authenticator, as for gRPC.
  static absl::StatusOr<std::unique_ptr<HttpFront>> Start(const HttpFrontOptions& options,
                                                          engine::Engine* engine,
                                                          const rpc::ServiceOptions& service,
                                                          metrics::Metrics* metrics);
  // Stops listening and waits for the connections' threads.
  ~HttpFront();
  HttpFront(const HttpFront&) = delete;
  HttpFront& operator=(const HttpFront&) = delete;

  int port() const { return port_; }

 private:
  struct Handlers;
  HttpFront(std::unique_ptr<httplib::Server> server, std::unique_ptr<Handlers> handlers, int port);

  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<Handlers> handlers_;
  int port_;
  std::thread thread_;
};

}  // namespace mcserve::http

#endif  // MCSERVE_SERVER_HTTP_HTTP_FRONT_H_
