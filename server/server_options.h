// Command-line flags of the mcserve binary, gathered into plain options.
#ifndef MCSERVE_SERVER_SERVER_OPTIONS_H_
#define MCSERVE_SERVER_SERVER_OPTIONS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/http/http_front.h"
#include "server/metrics/http_exposer.h"
#include "server/model/mc_model.h"
#include "server/rpc/connection_options.h"
#include "server/rpc/generation_service.h"
#include "server/rpc/transport_security.h"

namespace mcserve {

struct ServerOptions {
  std::string model_dir;
  std::string listen;
  std::string port_file;
  std::string health_listen;  // empty: health only on the main port
  std::string health_port_file;
  metrics::ExposerOptions metrics;  // listen empty: no metrics endpoint
  std::string metrics_port_file;
  http::HttpFrontOptions http;  // http.listen.listen empty: no HTTP API
  std::string http_port_file;
  std::string session_dir;  // empty: sessions end with the process
  // With session_dir: how often changed sessions are written while serving
  // (what a crash can lose); zero: only at shutdown.
  absl::Duration session_save_interval = absl::Seconds(5);
  int max_message_bytes = 4 << 20;
  rpc::ConnectionOptions connections;
  rpc::TlsOptions tls;
  absl::Duration shutdown_grace;
  model::ModelOptions model;
  engine::EngineOptions engine;
  rpc::ServiceOptions service;
};

// Reads the parsed flags; errors name the flag.
absl::StatusOr<ServerOptions> ServerOptionsFromFlags();

}  // namespace mcserve

#endif  // MCSERVE_SERVER_SERVER_OPTIONS_H_
