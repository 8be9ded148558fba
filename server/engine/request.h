// What the rpc layer hands the engine (NewRequest) and what the engine
// streams back (GenerateUpdate through a StreamChannel). Plain data, no gRPC.
#ifndef MCSERVE_SERVER_ENGINE_REQUEST_H_
#define MCSERVE_SERVER_ENGINE_REQUEST_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace mcserve::engine {

// Validated generation parameters (the rpc layer applies defaults).
struct RequestParams {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  uint64_t seed = 0;
  int32_t max_tokens = 0;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  // vLLM's logits adjustments (model/logits_processor.h); defaults: off.
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int32_t min_tokens = 0;
  std::vector<std::pair<int32_t, float>> logit_bias;  // ascending ids
  bool include_stop_str_in_output = false;
  bool return_logprobs = false;
  int32_t top_logprobs = 0;
  // -1: off. Else every prompt token's log-probability with this many top
  // alternatives (on the first update); the prefix cache is not used.
  int32_t prompt_logprobs = -1;
};

enum class FinishReason { kNone, kLength, kStop, kEos, kCancelled, kAborted };

// Lower-case name for logs and metric labels ("length", "stop", ...).
constexpr const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kEos:
      return "eos";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kAborted:
      return "aborted";
    case FinishReason::kNone:
      break;
  }
  return "none";
}

struct TokenOut {
  int32_t id = 0;
  bool has_logprob = false;  // return_logprobs was set
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // with top_logprobs
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t cached_prompt_tokens = 0;  // of prompt_tokens, supplied by the prefix cache
  int32_t completion_tokens = 0;
  int64_t session_tokens = 0;
  int32_t checkpoints = 0;
};

// One message of a request's stream. The last one has `finished` set, or a
// non-OK `status` when the request failed before or while running.
struct GenerateUpdate {
  std::vector<TokenOut> tokens;
  // With RequestParams::prompt_logprobs: one per prompt token, on the
  // request's first update only.
  std::vector<TokenOut> prompt_logprobs;
  std::string text;
  bool finished = false;
  FinishReason reason = FinishReason::kNone;
  std::optional<std::string> matched_stop_str;
  std::optional<int32_t> matched_token_id;
  Usage usage;
  absl::Status status;
};

// Where the engine sends a request's updates. Implementations are
// thread-safe and never block: Send only queues.
class StreamChannel {
 public:
  virtual ~StreamChannel() = default;
  virtual void Send(GenerateUpdate update) = 0;
};

struct NewRequest {
  std::string request_id;       // unique among requests in flight
  std::string session_id;       // empty: one-shot
  std::vector<int32_t> prompt;  // token ids, without BOS
  RequestParams params;
  std::shared_ptr<StreamChannel> channel;
};

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_REQUEST_H_
