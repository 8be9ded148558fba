// The prefix cache over real gRPC: twenty one-shot requests that share a
// 2,000-token prefix, against the built-in model. The metrics count the hit
// tokens, every request reports its cached tokens, and the outputs are those
// of a server started with --prefix_cache=false, bit for bit.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>

#include "tests/support/generate_helpers.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/server_process.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

constexpr int kPrefix = 2000;
constexpr int kRequests = 20;
constexpr int kSegment = 32;  // models/default
constexpr int kGrid = 256;    // the default --prefill_piece, whole segments

struct Results {
  std::vector<Completion> out;
  std::vector<double> ttft_ms;
};

Results SendAll(ServerProcess& server) {
  std::vector<uint32_t> prefix;
  for (int i = 0; i < kPrefix; ++i) prefix.push_back(static_cast<uint32_t>(32 + (i * 37) % 90));
  Results run;
  for (int r = 0; r < kRequests; ++r) {
    std::vector<uint32_t> ids = prefix;
    for (int j = 0; j < 20; ++j) ids.push_back(static_cast<uint32_t>(97 + (r * 5 + j) % 26));
    v1::GenerateRequest req = TokenRequest(ids, 8);
    req.mutable_sampling_params()->set_ignore_eos(true);
    req.set_return_logprobs(true);
    const auto t0 = std::chrono::steady_clock::now();
    double ttft = -1;
    Completion c;
    c.status = server.client().Generate(req, [&](const v1::GenerateResponse& m) {
      if (ttft < 0 && m.token_ids_size() > 0) {
        ttft = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                   .count();
      }
      c.tokens.insert(c.tokens.end(), m.token_ids().begin(), m.token_ids().end());
      c.logprobs.insert(c.logprobs.end(), m.logprobs().begin(), m.logprobs().end());
      c.last = m;
    });
    run.out.push_back(c);
    run.ttft_ms.push_back(ttft);
  }
  return run;
}

TEST(PrefixCacheServerTest, SharedPrefixHitsGiveTheSameOutputsAsNoCache) {
  const std::string port_file = FreshDir("prefix_metrics") + "/port";
  auto cached = ServerProcess::Start(
      MCSERVE_DEFAULT_MODEL_DIR,
      {"--metrics_listen=127.0.0.1:0", "--metrics_port_file=" + port_file, "--threads=1"});
  ASSERT_TRUE(cached.ok()) << cached.status();
  auto plain = ServerProcess::Start(MCSERVE_DEFAULT_MODEL_DIR,
                                    {"--prefix_cache=false", "--metrics_listen=", "--threads=1"});
  ASSERT_TRUE(plain.ok()) << plain.status();

  const Results hit = SendAll(**cached);
  const Results miss = SendAll(**plain);
  // BOS + 2,020 prompt tokens; the last is fed for its logits, so whole
  // segments up to token 2,016 are cached, and a hit ends on the prefill
  // grid (--prefill_piece, 256 tokens) below that: 1,792 tokens.
  const int64_t feed = 1 + kPrefix + 20;
  const int64_t reusable = ((kPrefix + 1) / kGrid) * kGrid;
  for (int r = 0; r < kRequests; ++r) {
    ASSERT_TRUE(hit.out[r].status.ok()) << r << ": " << hit.out[r].status;
    ASSERT_TRUE(miss.out[r].status.ok()) << r << ": " << miss.out[r].status;
    EXPECT_EQ(hit.out[r].last.usage().cached_prompt_tokens(), r == 0 ? 0 : reusable) << r;
    EXPECT_EQ(miss.out[r].last.usage().cached_prompt_tokens(), 0u) << r;
    EXPECT_EQ(hit.out[r].tokens, miss.out[r].tokens) << r;
    ASSERT_EQ(hit.out[r].logprobs.size(), miss.out[r].logprobs.size());
    for (size_t i = 0; i < hit.out[r].logprobs.size(); ++i) {
      EXPECT_EQ(hit.out[r].logprobs[i].logprob(), miss.out[r].logprobs[i].logprob()) << r;
    }
  }
  const std::string m = ScrapeMetrics(ReadPortFile(port_file));
  EXPECT_EQ(SampleValue(m, "mcserve_prefix_cache_queries_total"), kRequests * feed);
  EXPECT_EQ(SampleValue(m, "mcserve_prefix_cache_hits_total"), (kRequests - 1) * reusable);
  // Blocks of whole grid pieces only (the prompt's last piece ends off the grid).
  EXPECT_EQ(SampleValue(m, "mcserve_prefix_cache_entries{tier=\"device\"}"), reusable / kSegment);

  double hit_ms = 0, miss_ms = 0;
  for (int r = 1; r < kRequests; ++r) hit_ms += hit.ttft_ms[r] / (kRequests - 1);
  for (int r = 1; r < kRequests; ++r) miss_ms += miss.ttft_ms[r] / (kRequests - 1);
  std::cout << "time to first token, mean of requests 2-" << kRequests << ": " << hit_ms
            << " ms with the prefix cache, " << miss_ms
            << " ms without (first request: " << hit.ttft_ms[0] << " / " << miss.ttft_ms[0]
            << " ms)\n";
}

}  // namespace
}  // namespace mcserve::testing
