// Helpers for driving Generate in tests.
#ifndef MCSERVE_TESTS_SUPPORT_GENERATE_HELPERS_H_
#define MCSERVE_TESTS_SUPPORT_GENERATE_HELPERS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
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

}  // namespace mcserve::testing

#endif  // MCSERVE_TESTS_SUPPORT_GENERATE_HELPERS_H_
