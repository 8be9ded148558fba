// Helpers for driving Generate in tests.
#ifndef MCSERVE_TESTS_SUPPORT_GENERATE_HELPERS_H_
#define MCSERVE_TESTS_SUPPORT_GENERATE_HELPERS_H_

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "client/mcserve_client.h"

namespace mcserve::testing {

// Everything one Generate stream returned, joined.
struct Completion {
  absl::Status status;
  std::vector<uint32_t> tokens;
  std::string text;
  std::vector<v1::TokenLogprob> logprobs;
  std::vector<v1::TokenLogprob> prompt_logprobs;
  int prompt_logprob_messages = 0;  // messages that carried prompt_logprobs
  int responses = 0;
  v1::GenerateResponse last;  // holds finish_reason and usage when finished
  std::string request_id;
};

Completion Collect(client::Client& c, const v1::GenerateRequest& req,
                   const client::CallOptions& opts = {});

// A request for `prompt` with greedy decoding (or `seed` sampling if set).
v1::GenerateRequest TextRequest(const std::string& prompt, uint32_t max_tokens,
                                const std::string& session_id = "", int64_t seed = -1);
// A greedy request that runs until stopped: max_tokens tokens, EOS ignored.
v1::GenerateRequest LongRequest(const std::string& prompt, uint32_t max_tokens,
                                const std::string& session_id = "");
v1::GenerateRequest TokenRequest(const std::vector<uint32_t>& ids, uint32_t max_tokens,
                                 const std::string& session_id = "", int64_t seed = -1);

// A stream that cannot end on its own (a LongRequest of `max_tokens`,
// far more than a test waits for, with `request_id` set), for tests that
// need a request still running when their next call lands, however slow
// the machine: the constructor returns once its first message has arrived
// (or the call failed: Running() says which), and Stop() ends it with
// Abort.
class RunningStream {
 public:
  RunningStream(client::Client& c, v1::GenerateRequest request);
  // Cancels the call if the test did not Stop() it (no Abort: a test that
  // failed early may hold the only stream its connection allows).
  ~RunningStream();

  // Streaming: a first message came and neither a last one nor an error.
  bool Running() const { return started_ok_ && !ended_ && !returned_; }
  // Whether its last message (the one with a finish reason) has arrived.
  bool Ended() const { return ended_; }

  // Aborts it through `via` (by default the client it runs on; a test
  // whose connection allows one stream at a time passes another; the call
  // is cancelled if the Abort fails) and returns what it streamed: OK with
  // FINISH_REASON_CANCELLED unless it had already ended. Again: the same.
  Completion Stop(client::Client* via = nullptr);

 private:
  void Cancel();  // TryCancel()s the call if it is still in flight

  client::Client& client_;
  const std::string request_id_;
  absl::Notification started_;
  std::atomic<bool> started_ok_{false}, ended_{false}, returned_{false};
  std::mutex mu_;
  grpc::ClientContext* context_ = nullptr;  // under mu_, while the call runs
  Completion got_;                          // under mu_ until the thread is joined
  std::thread thread_;
};

}  // namespace mcserve::testing

#endif  // MCSERVE_TESTS_SUPPORT_GENERATE_HELPERS_H_
