// Every kind of bad input gets a clear status that names the problem, and
// the server keeps serving other sessions unchanged.
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <functional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "server/model/weights.h"
#include "tests/integration/server_fixture.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

class BadInputTest : public ServerTest {
 protected:
  static void SetUpTestSuite() {
    StartServer({"--max_prompt_tokens=64", "--max_tokens_limit=100", "--default_max_tokens=50",
                 "--max_sessions=2", "--max_message_bytes=65536",
                 "--metrics_port_file=" + MetricsPortFile()});
  }
  // Per process: ctest runs each test of this suite as its own process,
  // side by side, each with its own server.
  static const std::string& MetricsPortFile() {
    static const std::string path = FreshDir("bad_input_metrics") + "/port";
    return path;
  }

  // Calls `method` with `payload` as the raw request bytes (what a client
  // written without our stubs can send); the response is discarded.
  grpc::Status CallRaw(const std::string& method, const std::string& payload) {
    auto channel = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    grpc::Slice slice(payload);
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    return status;
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

// A proto3 string holding invalid UTF-8 does not parse. gRPC's callback API
// would answer UNIMPLEMENTED with no message before any handler runs; mcserve
// answers INVALID_ARGUMENT naming the field (proto/wire/request_decoding.h),
// counts it so, and keeps serving.
TEST_F(BadInputTest, InvalidUtf8IsInvalidArgumentNamingTheField) {
  const std::string bad = "ok \xff\xfe";
  ASSERT_TRUE(client().CreateSession("utf8-bystander").ok());

  v1::GenerateRequest text = TextRequest(bad, 4);
  Completion got = Collect(client(), text);
  EXPECT_EQ(got.status.code(), absl::StatusCode::kInvalidArgument) << got.status;
  EXPECT_EQ(got.status.message(), "field 'text' is not valid UTF-8");

  v1::GenerateRequest stop = TextRequest("ok", 4);
  stop.mutable_sampling_params()->add_stop("fine");
  stop.mutable_sampling_params()->add_stop(bad);
  got = Collect(client(), stop);
  EXPECT_EQ(got.status.code(), absl::StatusCode::kInvalidArgument) << got.status;
  EXPECT_EQ(got.status.message(), "field 'sampling_params.stop[1]' is not valid UTF-8");

  v1::GenerateRequest session = TextRequest("ok", 4, "utf8-\xc3");
  got = Collect(client(), session);
  EXPECT_EQ(got.status.code(), absl::StatusCode::kInvalidArgument) << got.status;
  EXPECT_EQ(got.status.message(), "field 'session_id' is not valid UTF-8");

  for (const auto& s : {client().GetSession("a\x80").status(), client().DeleteSession("a\x80"),
                        client().CreateSession("a\x80").status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_EQ(s.message(), "field 'session_id' is not valid UTF-8");
  }

  // Raw bytes: a string field that is not UTF-8, and bytes that are not a
  // protobuf message at all (field 1, length 5, one byte present).
  grpc::Status raw =
      CallRaw("/mcserve.v1.Generation/GetSession", std::string("\x0a\x02\xc0\xaf", 4));
  EXPECT_EQ(raw.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << raw.error_message();
  EXPECT_EQ(raw.error_message(), "field 'session_id' is not valid UTF-8");
  raw = CallRaw("/mcserve.v1.Generation/GetSession", std::string("\x0a\x05x", 3));
  EXPECT_EQ(raw.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << raw.error_message();
  EXPECT_EQ(raw.error_message(),
            "request is not a valid mcserve.v1.GetSessionRequest message (malformed protobuf wire "
            "format)");

  // Counted as what it is, and nothing was harmed.
  const std::string m = ScrapeMetrics(ReadPortFile(MetricsPortFile()));
  EXPECT_EQ(
      SampleValue(m, "mcserve_grpc_requests_total{code=\"UNIMPLEMENTED\",method=\"Generate\"}"),
      -1);
  EXPECT_GE(SampleValue(
                m, "mcserve_grpc_requests_total{code=\"INVALID_ARGUMENT\",method=\"GetSession\"}"),
            3);
  Completion after = Collect(client(), TextRequest("more", 3, "utf8-bystander"));
  EXPECT_TRUE(after.status.ok()) << after.status;
  ASSERT_TRUE(client().DeleteSession("utf8-bystander").ok());
}

// A session's second request while its first runs. The suite's server caps
// max_tokens at 100, which a fast machine finishes before the second call
// lands; this one runs a stream that only Abort ends.
TEST(BusySessionTest, ASecondRequestWhileOneRunsIsFailedPrecondition) {
  auto p = ServerProcess::Start(MCSERVE_DEFAULT_MODEL_DIR, {"--max_tokens_limit=1000000"});
  ASSERT_TRUE(p.ok()) << p.status();
  client::Client& c = (*p)->client();
  ASSERT_TRUE(c.CreateSession("busy").ok());
  v1::GenerateRequest long_one = LongRequest("long", 1000000, "busy");
  long_one.set_request_id("busy-1");
  RunningStream first(c, long_one);
  ASSERT_TRUE(first.Running()) << first.Stop().status;
  Completion second = Collect(c, TextRequest("again", 3, "busy"));
  EXPECT_EQ(second.status.code(), absl::StatusCode::kFailedPrecondition) << second.status;
  EXPECT_NE(second.status.message().find("already has a request in flight"), std::string::npos);
  EXPECT_FALSE(first.Ended());
  const Completion ended = first.Stop();
  EXPECT_TRUE(ended.status.ok()) << ended.status;
  EXPECT_EQ(ended.last.finish_reason(), v1::FINISH_REASON_CANCELLED);
  // Free again: the session serves its next request.
  EXPECT_TRUE(Collect(c, TextRequest("again", 3, "busy")).status.ok());
  ASSERT_TRUE(c.DeleteSession("busy").ok());
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
