#include "server/server_options.h"

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/util/byte_size.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"
#include "server/util/text_file.h"

#ifndef MCSERVE_DEFAULT_MODEL_DIR
#define MCSERVE_DEFAULT_MODEL_DIR "models/default"
#endif

ABSL_FLAG(std::string, model, MCSERVE_DEFAULT_MODEL_DIR,
          "Model directory: mc-lm (config.json, model.safetensors) or an fla checkpoint "
          "(Hugging Face layout: config.json, model.safetensors[.index.json], tokenizer.model)");
ABSL_FLAG(std::string, tokenizer_model, "",
          "Serve with this SentencePiece model (tokenizer.model, its own BOS/EOS) instead of "
          "the tokenizer the model's config names");
ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "gRPC listen address (port 0: pick one)");
ABSL_FLAG(std::string, tls_cert, "",
          "Serve gRPC over TLS with this PEM certificate chain (with --tls_key); re-read when "
          "it changes");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "Mutual TLS: accept only clients with a certificate signed by a CA in this PEM file");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Seconds(10),
          "How often the TLS files are checked for a rotated certificate, key or CA");
ABSL_FLAG(std::string, health_listen, "",
          "Also serve grpc.health.v1 (and nothing else) in plaintext here, for probes that "
          "cannot speak TLS (Kubernetes' gRPC probes); empty: off");
ABSL_FLAG(std::string, health_port_file, "",
          "If set, write the bound --health_listen port here once serving");
ABSL_FLAG(std::string, auth_principals, "",
          "Require authentication: the principals file mapping bearer-token digests and "
          "client-certificate names to principals and roles (server/rpc/auth.h); empty: off");
ABSL_FLAG(int32_t, quota_sessions, 0,
          "Live sessions each principal may hold (principals-file entries may override; "
          "0: no limit)");
ABSL_FLAG(int32_t, quota_requests, 0,
          "Generate requests each principal may have queued or running (0: no limit)");
ABSL_FLAG(std::string, quota_checkpoint_bytes, "0",
          "Checkpoint bytes each principal's sessions and requests may hold or reserve "
          "(e.g. 512MiB; 0: no limit)");
ABSL_FLAG(std::string, port_file, "", "If set, write the bound gRPC port here once serving");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9400",
          "Prometheus /metrics address (port 0: pick one; empty: no metrics endpoint)");
ABSL_FLAG(std::string, metrics_tls_cert, "",
          "Serve /metrics over HTTPS with this PEM certificate chain (with --metrics_tls_key)");
ABSL_FLAG(std::string, metrics_tls_key, "", "PEM private key for --metrics_tls_cert");
ABSL_FLAG(std::string, metrics_bearer_token_file, "",
          "If set, /metrics answers only scrapes sending 'Authorization: Bearer <token>' with "
          "this file's token (Prometheus: authorization.credentials_file)");
ABSL_FLAG(int32_t, metrics_max_connections, 256,
          "Most /metrics connections served at once (each on its own thread); more wait");
ABSL_FLAG(absl::Duration, metrics_read_timeout, absl::Seconds(5),
          "A /metrics connection that sends nothing for this long is closed");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, write the bound metrics port here once serving");
ABSL_FLAG(std::string, http_listen, "",
          "OpenAI-compatible HTTP API (/v1/completions, /v1/models) on this address, e.g. "
          "127.0.0.1:8000 (port 0: pick one; empty: off)");
ABSL_FLAG(std::string, http_port_file, "",
          "If set, write the bound HTTP API port here once serving");
ABSL_FLAG(std::string, http_model_name, "",
          "The model id the HTTP API lists and accepts (default: the model directory's name)");
ABSL_FLAG(int32_t, http_max_connections, 256,
          "Most HTTP API connections served at once (each on its own thread); more wait");
ABSL_FLAG(absl::Duration, http_read_timeout, absl::Seconds(30),
          "An HTTP API connection that sends nothing for this long is closed");
ABSL_FLAG(std::string, session_dir, "",
          "Persist sessions here: each written after its requests end (every "
          "--session_save_interval) and at shutdown, restored on start");
ABSL_FLAG(absl::Duration, session_save_interval, absl::Seconds(5),
          "With --session_dir: write sessions whose history changed this often while serving, "
          "so a crash loses at most this much (0: only at shutdown)");
ABSL_FLAG(std::string, device, "cpu", "Device for the model and MC state: cpu or cuda[:N]");
ABSL_FLAG(std::string, checkpoint_dtype, "float32", "Checkpoint storage: float32 or bfloat16");
ABSL_FLAG(int32_t, max_running, 64, "Most requests decoding together (batch size)");
ABSL_FLAG(int32_t, max_waiting, 1024, "Most queued requests; beyond: RESOURCE_EXHAUSTED");
ABSL_FLAG(int32_t, prefill_tokens_per_step, 512, "Prompt tokens prefilled per engine step");
ABSL_FLAG(int32_t, prefill_piece, 256,
          "Longest parallel prefill piece in tokens; pieces span segments shorter than this, on a "
          "grid of absolute positions");
ABSL_FLAG(std::string, mc_config, "",
          "fla checkpoints: Memory Caching overlay (mc_config.json format; default: "
          "MODEL/mc_config.json if present, else plain fla with aggregation none)");
ABSL_FLAG(int32_t, max_sessions, 256, "Most live sessions");
ABSL_FLAG(std::string, checkpoint_pool, "256MiB",
          "Device memory for MC checkpoints, the tier the model reads (e.g. 256MiB, 2GiB)");
ABSL_FLAG(std::string, host_pool, "1GiB",
          "Host memory (pinned on CUDA) that checkpoints are offloaded to under pressure; "
          "0: no offloading");
ABSL_FLAG(std::string, lossy_eviction, "none",
          "When both checkpoint tiers are full: none (refuse new work with RESOURCE_EXHAUSTED), "
          "drop (forget a session's least useful checkpoint) or merge (average two adjacent "
          "ones); sessions that lose information are marked lossy");
ABSL_FLAG(bool, prefix_cache, true,
          "Start new sessions and one-shot requests from cached segment-boundary states of "
          "earlier requests with the same leading tokens");
ABSL_FLAG(std::string, prefix_cache_bytes, "64MiB",
          "Most checkpoint-pool (and state) bytes the prefix cache may keep alive");
ABSL_FLAG(absl::Duration, session_idle_ttl, absl::ZeroDuration(),
          "Delete sessions unused for this long (e.g. 30m); 0: keep until deleted");
ABSL_FLAG(int32_t, threads, 0, "Intra-op CPU threads for the model (0: LibTorch default)");
ABSL_FLAG(int32_t, max_prompt_tokens, 8192, "Longest prompt accepted, in tokens");
ABSL_FLAG(int32_t, max_tokens_limit, 4096, "Largest max_tokens a request may ask for");
ABSL_FLAG(int32_t, default_max_tokens, 256, "max_tokens when a request sets none");
ABSL_FLAG(int64_t, testonly_leak_bytes_per_request, 0,
          "Test only: leak this many bytes per Generate (the soak test's must-fail control)");
ABSL_FLAG(std::string, max_snapshot_size, "1GiB", "Largest session snapshot ImportSession accepts");
ABSL_FLAG(int32_t, max_message_bytes, 4 << 20, "Largest gRPC message accepted, bytes");
ABSL_FLAG(int32_t, grpc_max_concurrent_streams, 0,
          "Most concurrent RPCs per HTTP/2 connection (0: unlimited); more wait for a stream");
ABSL_FLAG(absl::Duration, grpc_keepalive_time, absl::Hours(2),
          "Ping a connection after this long without activity");
ABSL_FLAG(absl::Duration, grpc_keepalive_timeout, absl::Seconds(20),
          "Close a connection whose keepalive ping is not answered within this");
ABSL_FLAG(bool, grpc_keepalive_permit_without_calls, false,
          "Accept client keepalive pings on connections with no RPC open");
ABSL_FLAG(absl::Duration, grpc_http2_min_recv_ping_interval, absl::Minutes(5),
          "A client ping sooner than this after the last (no data between) is a strike");
ABSL_FLAG(int32_t, grpc_http2_max_ping_strikes, 2,
          "Strikes before the server closes the connection with GOAWAY too_many_pings "
          "(0: unlimited)");
ABSL_FLAG(absl::Duration, grpc_max_connection_age, absl::InfiniteDuration(),
          "Close connections older than this with GOAWAY, so clients reconnect and spread "
          "over replicas after a scale-up (inf: never)");
ABSL_FLAG(absl::Duration, grpc_max_connection_age_grace, absl::InfiniteDuration(),
          "How long RPCs in flight may run on after --grpc_max_connection_age");
ABSL_FLAG(absl::Duration, grpc_max_connection_idle, absl::InfiniteDuration(),
          "Close connections with no RPC for this long (inf: never)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM/SIGINT: time for in-flight requests to finish before they are aborted");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");

namespace mcserve {
namespace {

absl::Status Positive(absl::string_view flag, int64_t v, int64_t min = 1) {
  if (v < min) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be >= ", min, ", got ", v));
  }
  return absl::OkStatus();
}

// Prefixes a flag's parse error with the flag's name.
template <typename T>
absl::StatusOr<T> Flag(absl::string_view flag, absl::StatusOr<T> v) {
  if (v.ok()) return v;
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", v.status().message()));
}

}  // namespace

absl::StatusOr<ServerOptions> ServerOptionsFromFlags() {
  ASSIGN_OR_RETURN(LogLevel level, ParseLogLevel(absl::GetFlag(FLAGS_log_level)));
  SetLogLevel(level);
  ServerOptions o;
  o.model_dir = absl::GetFlag(FLAGS_model);
  o.listen = absl::GetFlag(FLAGS_listen);
  o.port_file = absl::GetFlag(FLAGS_port_file);
  o.health_listen = absl::GetFlag(FLAGS_health_listen);
  o.health_port_file = absl::GetFlag(FLAGS_health_port_file);
  o.metrics.listen = absl::GetFlag(FLAGS_metrics_listen);
  o.metrics.tls_cert_file = absl::GetFlag(FLAGS_metrics_tls_cert);
  o.metrics.tls_key_file = absl::GetFlag(FLAGS_metrics_tls_key);
  o.metrics.bearer_token_file = absl::GetFlag(FLAGS_metrics_bearer_token_file);
  o.metrics.max_connections = absl::GetFlag(FLAGS_metrics_max_connections);
  o.metrics.read_timeout = absl::GetFlag(FLAGS_metrics_read_timeout);
  o.metrics_port_file = absl::GetFlag(FLAGS_metrics_port_file);
  o.http.listen.listen = absl::GetFlag(FLAGS_http_listen);
  o.http.listen.max_connections = absl::GetFlag(FLAGS_http_max_connections);
  o.http.listen.read_timeout = absl::GetFlag(FLAGS_http_read_timeout);
  o.http.model_name = absl::GetFlag(FLAGS_http_model_name);
  if (o.http.model_name.empty()) {
    std::string dir = o.model_dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    o.http.model_name = dir.substr(dir.rfind('/') + 1);
  }
  o.http.chat_template_dir = o.model_dir;
  o.http_port_file = absl::GetFlag(FLAGS_http_port_file);
  o.session_dir = absl::GetFlag(FLAGS_session_dir);
  o.session_save_interval = absl::GetFlag(FLAGS_session_save_interval);
  if (o.session_save_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--session_save_interval must not be negative");
  }
  o.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  o.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  o.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  o.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  o.tls.reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  o.http.tls_cert_file = o.tls.cert_file;
  o.http.tls_key_file = o.tls.key_file;
  o.http.tls_client_ca_file = o.tls.client_ca_file;
  rpc::ConnectionOptions& cn = o.connections;
  cn.max_concurrent_streams = absl::GetFlag(FLAGS_grpc_max_concurrent_streams);
  cn.keepalive_time = absl::GetFlag(FLAGS_grpc_keepalive_time);
  cn.keepalive_timeout = absl::GetFlag(FLAGS_grpc_keepalive_timeout);
  cn.keepalive_permit_without_calls = absl::GetFlag(FLAGS_grpc_keepalive_permit_without_calls);
  cn.min_recv_ping_interval = absl::GetFlag(FLAGS_grpc_http2_min_recv_ping_interval);
  cn.max_ping_strikes = absl::GetFlag(FLAGS_grpc_http2_max_ping_strikes);
  cn.max_connection_age = absl::GetFlag(FLAGS_grpc_max_connection_age);
  cn.max_connection_age_grace = absl::GetFlag(FLAGS_grpc_max_connection_age_grace);
  cn.max_connection_idle = absl::GetFlag(FLAGS_grpc_max_connection_idle);
  RETURN_IF_ERROR(cn.Validate());
  o.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  try {
    o.model.device = at::Device(absl::GetFlag(FLAGS_device));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("--device: ", e.what()));
  }
  ASSIGN_OR_RETURN(o.model.ckpt_dtype,
                   model::ParseCkptDtype(absl::GetFlag(FLAGS_checkpoint_dtype)));
  o.model.prefill_piece = absl::GetFlag(FLAGS_prefill_piece);
  o.model.mc_config = absl::GetFlag(FLAGS_mc_config);
  RETURN_IF_ERROR(Positive("prefill_piece", o.model.prefill_piece));

  engine::EngineOptions& e = o.engine;
  e.max_running = absl::GetFlag(FLAGS_max_running);
  e.max_waiting = absl::GetFlag(FLAGS_max_waiting);
  e.prefill_tokens_per_step = absl::GetFlag(FLAGS_prefill_tokens_per_step);
  e.max_sessions = absl::GetFlag(FLAGS_max_sessions);
  ASSIGN_OR_RETURN(e.checkpoint_pool_bytes,
                   Flag("checkpoint_pool", ParseByteSize(absl::GetFlag(FLAGS_checkpoint_pool))));
  ASSIGN_OR_RETURN(e.host_pool_bytes,
                   Flag("host_pool", ParseByteSize(absl::GetFlag(FLAGS_host_pool))));
  absl::StatusOr<pool::LossyPolicy> lossy =
      pool::ParseLossyPolicy(absl::GetFlag(FLAGS_lossy_eviction));
  if (!lossy.ok())
    return absl::InvalidArgumentError(absl::StrCat("--lossy_eviction: ", lossy.status().message()));
  e.lossy_eviction = *lossy;
  ASSIGN_OR_RETURN(
      e.prefix_cache_bytes,
      Flag("prefix_cache_bytes", ParseByteSize(absl::GetFlag(FLAGS_prefix_cache_bytes))));
  if (!absl::GetFlag(FLAGS_prefix_cache)) e.prefix_cache_bytes = 0;
  e.session_idle_ttl = absl::GetFlag(FLAGS_session_idle_ttl);
  e.intra_op_threads = absl::GetFlag(FLAGS_threads);
  e.tokenizer_model = absl::GetFlag(FLAGS_tokenizer_model);
  RETURN_IF_ERROR(Positive("max_running", e.max_running));
  RETURN_IF_ERROR(Positive("max_waiting", e.max_waiting, 0));
  RETURN_IF_ERROR(Positive("prefill_tokens_per_step", e.prefill_tokens_per_step));
  RETURN_IF_ERROR(Positive("max_sessions", e.max_sessions, 0));
  RETURN_IF_ERROR(Positive("checkpoint_pool", e.checkpoint_pool_bytes));
  if (e.session_idle_ttl < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--session_idle_ttl must not be negative");
  }
  RETURN_IF_ERROR(Positive("threads", e.intra_op_threads, 0));

  rpc::RequestLimits& l = o.service.limits;
  l.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  l.max_tokens_limit = absl::GetFlag(FLAGS_max_tokens_limit);
  l.default_max_tokens = absl::GetFlag(FLAGS_default_max_tokens);
  ASSIGN_OR_RETURN(
      l.max_snapshot_bytes,
      Flag("max_snapshot_size", ParseByteSize(absl::GetFlag(FLAGS_max_snapshot_size))));
  RETURN_IF_ERROR(Positive("max_prompt_tokens", l.max_prompt_tokens));
  RETURN_IF_ERROR(Positive("max_tokens_limit", l.max_tokens_limit, 0));
  RETURN_IF_ERROR(Positive("default_max_tokens", l.default_max_tokens, 0));
  if (l.default_max_tokens > l.max_tokens_limit) {
    return absl::InvalidArgumentError("--default_max_tokens must not exceed --max_tokens_limit");
  }
  RETURN_IF_ERROR(Positive("max_message_bytes", o.max_message_bytes, 1024));
  o.http.max_body_bytes = static_cast<size_t>(o.max_message_bytes);
  o.service.model_path = o.model_dir;
  o.service.testonly_leak_bytes_per_request = absl::GetFlag(FLAGS_testonly_leak_bytes_per_request);
  RETURN_IF_ERROR(
      Positive("testonly_leak_bytes_per_request", o.service.testonly_leak_bytes_per_request, 0));
  if (const std::string p = absl::GetFlag(FLAGS_auth_principals); !p.empty()) {
    absl::StatusOr<std::shared_ptr<const rpc::Authenticator>> a = rpc::Authenticator::Load(p);
    if (!a.ok()) {
      return absl::Status(a.status().code(),
                          absl::StrCat("--auth_principals: ", a.status().message()));
    }
    o.service.auth = *std::move(a);
  }
  engine::OwnerLimits quota;
  quota.sessions = absl::GetFlag(FLAGS_quota_sessions);
  quota.requests = absl::GetFlag(FLAGS_quota_requests);
  ASSIGN_OR_RETURN(
      quota.checkpoint_bytes,
      Flag("quota_checkpoint_bytes", ParseByteSize(absl::GetFlag(FLAGS_quota_checkpoint_bytes))));
  RETURN_IF_ERROR(Positive("quota_sessions", quota.sessions, 0));
  RETURN_IF_ERROR(Positive("quota_requests", quota.requests, 0));
  // Without authentication every caller is one principal, "" (owner.h).
  e.owner_limits = [auth = o.service.auth, quota](absl::string_view owner) {
    return auth != nullptr ? auth->LimitsOf(owner, quota) : quota;
  };
  return o;
}

}  // namespace mcserve
