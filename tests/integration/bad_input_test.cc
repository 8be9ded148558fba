// Every kind of bad input gets a clear status that names the problem, and
// the server keeps serving other sessions unchanged.
#include <gtest/gtest.h>
#include <signal.h>

#include <functional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "server/model/weights.h"
#include "tests/integration/server_fixture.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

class BadInputTest : public ServerTest {
 protected:
  static void SetUpTestSuite() {
    StartServer({"--max_prompt_tokens=64", "--max_tokens_limit=100", "--default_max_tokens=50",
                 "--max_sessions=2", "--max_message_bytes=65536"});
  }
};

struct Case {
  std::string name;
  std::function<void(v1::GenerateRequest&)> mutate;
  absl::StatusCode code;
  std::string message_part;
};

TEST_F(BadInputTest, EachBadRequestGetsItsCodeAndOthersAreUnaffected) {
  // A bystander session with some history, and its expected continuation.
  ASSERT_TRUE(client().CreateSession("bystander").ok());
  ASSERT_TRUE(Collect(client(), TextRequest("bystander history", 5, "bystander")).status.ok());
  const uint64_t tokens_before = client().GetSession("bystander")->num_tokens();

  const std::vector<Case> cases = {
      {"negative temperature", [](auto& r) { r.mutable_sampling_params()->set_temperature(-1); },
       absl::StatusCode::kInvalidArgument, "sampling_params.temperature"},
      {"nan temperature", [](auto& r) { r.mutable_sampling_params()->set_temperature(NAN); },
       absl::StatusCode::kInvalidArgument, "sampling_params.temperature"},
      {"top_p zero", [](auto& r) { r.mutable_sampling_params()->set_top_p(0); },
       absl::StatusCode::kInvalidArgument, "sampling_params.top_p"},
      {"top_p above one", [](auto& r) { r.mutable_sampling_params()->set_top_p(1.5f); },
       absl::StatusCode::kInvalidArgument, "sampling_params.top_p"},
      {"top_k above vocab", [](auto& r) { r.mutable_sampling_params()->set_top_k(100000); },
       absl::StatusCode::kInvalidArgument, "sampling_params.top_k"},
      {"max_tokens above limit", [](auto& r) { r.mutable_sampling_params()->set_max_tokens(101); },
       absl::StatusCode::kInvalidArgument, "--max_tokens_limit"},
      {"prompt too long", [](auto& r) { r.set_text(std::string(65, 'x')); },
       absl::StatusCode::kInvalidArgument, "--max_prompt_tokens"},
      {"token id out of vocabulary", [](auto& r) { r.mutable_token_ids()->add_ids(9999); },
       absl::StatusCode::kInvalidArgument, "token_ids.ids[0]"},
      {"stop token out of vocabulary",
       [](auto& r) { r.mutable_sampling_params()->add_stop_token_ids(9999); },
       absl::StatusCode::kInvalidArgument, "stop_token_ids[0]"},
      {"empty stop string", [](auto& r) { r.mutable_sampling_params()->add_stop(""); },
       absl::StatusCode::kInvalidArgument, "sampling_params.stop[0]"},
      {"top_logprobs without logprobs", [](auto& r) { r.set_top_logprobs(2); },
       absl::StatusCode::kInvalidArgument, "top_logprobs"},
      {"too many top_logprobs",
       [](auto& r) {
         r.set_return_logprobs(true);
         r.set_top_logprobs(21);
       },
       absl::StatusCode::kInvalidArgument, "top_logprobs"},
      {"bad session id", [](auto& r) { r.set_session_id("no spaces allowed"); },
       absl::StatusCode::kInvalidArgument, "session_id"},
      {"unknown session", [](auto& r) { r.set_session_id("never-created"); },
       absl::StatusCode::kNotFound, "never-created"},
      {"request id with spaces", [](auto& r) { r.set_request_id("a b"); },
       absl::StatusCode::kInvalidArgument, "request_id"},
      {"oversized message", [](auto& r) { r.set_text(std::string(70000, 'x')); },
       absl::StatusCode::kResourceExhausted, ""},
  };
  for (const Case& c : cases) {
    v1::GenerateRequest r = TextRequest("ok", 4);
    c.mutate(r);
    Completion got = Collect(client(), r);
    EXPECT_EQ(got.status.code(), c.code) << c.name << ": " << got.status;
    EXPECT_NE(got.status.message().find(c.message_part), std::string::npos)
        << c.name << ": " << got.status;
  }

  // Session RPCs.
  EXPECT_EQ(client().GetSession("never-created").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client().DeleteSession("never-created").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client().GetSession("bad id!").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client().CreateSession("bystander").status().code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(client().CreateSession("second").ok());
  auto over = client().CreateSession("third");
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted) << over.status();
  EXPECT_NE(over.status().message().find("--max_sessions"), std::string::npos);
  EXPECT_EQ(client().Abort("").code(), absl::StatusCode::kInvalidArgument);

  // The bystander lost nothing and still serves.
  EXPECT_EQ(client().GetSession("bystander")->num_tokens(), tokens_before);
  Completion after = Collect(client(), TextRequest("more", 3, "bystander"));
  EXPECT_TRUE(after.status.ok()) << after.status;
  EXPECT_EQ(client().GetSession("bystander")->num_tokens(), tokens_before + 4 + 3);
  ASSERT_TRUE(client().DeleteSession("bystander").ok());
  ASSERT_TRUE(client().DeleteSession("second").ok());
}

TEST_F(BadInputTest, BusySessionIsFailedPrecondition) {
  ASSERT_TRUE(client().CreateSession("busy").ok());
  absl::Notification started;
  std::thread t([&] {
    absl::Status s =
        client().Generate(LongRequest("long", 100, "busy"), [&](const v1::GenerateResponse&) {
          if (!started.HasBeenNotified()) started.Notify();
        });
    EXPECT_TRUE(s.ok()) << s;
  });
  started.WaitForNotification();
  Completion second = Collect(client(), TextRequest("again", 3, "busy"));
  EXPECT_EQ(second.status.code(), absl::StatusCode::kFailedPrecondition) << second.status;
  EXPECT_NE(second.status.message().find("already has a request in flight"), std::string::npos);
  t.join();
  ASSERT_TRUE(client().DeleteSession("busy").ok());
}

// A model whose vocabulary is padded past the byte tokenizer's 258 ids:
// token ids are checked against the served model's vocab_size.
TEST(PaddedVocabTest, TokenIdsAreCheckedAgainstTheModelsVocabSize) {
  const std::string dir = FreshDir("padded_vocab");
  model::ModelConfig config = SmallConfig(model::MemoryRule::kDelta, true, model::Aggregation::kGrm,
                                          /*segment_length=*/8, model::Boundary::kContinue);
  config.vocab_size = 300;
  ASSERT_TRUE(model::WriteRandomModel(config, dir, /*seed=*/3).ok());
  auto p = ServerProcess::Start(dir);
  ASSERT_TRUE(p.ok()) << p.status();
  ServerProcess& server = **p;
  auto info = server.client().GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->vocab_size(), 300u);

  v1::GenerateRequest ok = TokenRequest({'h', 'i', 290}, 4);
  ok.mutable_sampling_params()->add_stop_token_ids(295);
  const Completion got = Collect(server.client(), ok);
  EXPECT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.last.usage().prompt_tokens(), 4u);  // BOS + 3 ids

  const Completion prompt_id = Collect(server.client(), TokenRequest({'h', 300}, 4));
  EXPECT_EQ(prompt_id.status.code(), absl::StatusCode::kInvalidArgument) << prompt_id.status;
  EXPECT_EQ(prompt_id.status.message(), "token_ids.ids[1] = 300 is not below vocab_size 300");

  v1::GenerateRequest stop_id = TokenRequest({'h'}, 4);
  stop_id.mutable_sampling_params()->add_stop_token_ids(295);
  stop_id.mutable_sampling_params()->add_stop_token_ids(300);
  const Completion stop = Collect(server.client(), stop_id);
  EXPECT_EQ(stop.status.code(), absl::StatusCode::kInvalidArgument) << stop.status;
  EXPECT_EQ(stop.status.message(),
            "sampling_params.stop_token_ids[1] = 300 is not below vocab_size 300");
  EXPECT_EQ(server.Signal(SIGTERM), 0) << server.Log();
}

}  // namespace
}  // namespace mcserve::testing
