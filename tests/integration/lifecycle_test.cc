// Health, reflection, startup errors and shutdown of the real server binary.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "server/model/weights.h"
#include "tests/integration/server_fixture.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

namespace refl = grpc::reflection::v1alpha;

using LifecycleTest = ServerTest;

TEST_F(LifecycleTest, HealthSaysServing) {
  auto all = client().Health("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(*all);
}

TEST_F(LifecycleTest, ReflectionListsTheService) {
  auto stub = refl::ServerReflection::NewStub(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto stream = stub->ServerReflectionInfo(&ctx);
  refl::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  refl::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::vector<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.push_back(s.name());
  EXPECT_NE(std::find(names.begin(), names.end(), "mcserve.v1.Generation"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "grpc.health.v1.Health"), names.end());
  // The descriptors are there too, so generic tools can call the methods.
  refl::ServerReflectionRequest by_symbol;
  by_symbol.set_file_containing_symbol("mcserve.v1.Generation");
  ASSERT_TRUE(stream->Write(by_symbol));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// Starts `request` on `server`, sends SIGTERM once the first response has
// arrived, and returns the whole stream. Expects the server to exit 0.
Completion SigtermDuringStream(ServerProcess& server, const v1::GenerateRequest& request) {
  absl::Notification started;
  Completion c;
  std::thread t([&] {
    c.status = server.client().Generate(request, [&](const v1::GenerateResponse& r) {
      c.last = r;
      if (!started.HasBeenNotified()) started.Notify();
    });
  });
  started.WaitForNotification();
  EXPECT_EQ(server.Signal(SIGTERM), 0) << server.Log();
  t.join();
  return c;
}

TEST(ShutdownTest, SigtermMidStreamDrainsAndExitsZero) {
  auto p = ServerProcess::Start(TestModelDir(),
                                {"--shutdown_grace=300ms", "--max_tokens_limit=1000000"});
  ASSERT_TRUE(p.ok()) << p.status();
  ServerProcess& server = **p;
  const Completion c = SigtermDuringStream(server, LongRequest("long", 1000000));
  // The stream got its final message: aborted at the grace deadline.
  EXPECT_TRUE(c.status.ok()) << c.status << "\n" << server.Log();
  EXPECT_EQ(c.last.finish_reason(), v1::FINISH_REASON_ABORTED);
  EXPECT_NE(server.Log().find("grace period over"), std::string::npos);
}

TEST(ShutdownTest, SigtermLetsShortStreamsFinish) {
  auto p = ServerProcess::Start(TestModelDir(), {"--shutdown_grace=20s"});
  ASSERT_TRUE(p.ok()) << p.status();
  const Completion c = SigtermDuringStream(**p, LongRequest("short", 200));
  EXPECT_TRUE(c.status.ok()) << c.status;
  EXPECT_EQ(c.last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(c.last.usage().completion_tokens(), 200u);
}

// Startup with a broken model directory fails with a message naming the problem.
class StartupErrorTest : public ::testing::Test {
 protected:
  std::string Good() {
    const std::string dir = FreshDir("startup");
    model::ModelConfig c = SmallConfig(model::MemoryRule::kHebbian, false, model::Aggregation::kGrm,
                                       4, model::Boundary::kContinue);
    EXPECT_TRUE(model::WriteRandomModel(c, dir, 1).ok());
    return dir;
  }
  void ExpectFails(const std::string& dir, const std::string& message_part) {
    ProcessResult r = RunServerToExit({absl::StrCat("--model=", dir), "--listen=127.0.0.1:0"});
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find(message_part), std::string::npos) << r.output;
  }
  static void Rewrite(const std::string& path, const std::string& from, const std::string& to) {
    std::ifstream in(path);
    std::string s((std::istreambuf_iterator<char>(in)), {});
    const size_t at = s.find(from);
    ASSERT_NE(at, std::string::npos);
    s.replace(at, from.size(), to);
    std::ofstream(path, std::ios::trunc) << s;
  }
};

TEST_F(StartupErrorTest, MissingDirectory) { ExpectFails("/nonexistent/model", "cannot open"); }

TEST_F(StartupErrorTest, TruncatedWeights) {
  const std::string dir = Good();
  const std::string f = dir + "/model.safetensors";
  std::filesystem::resize_file(f, std::filesystem::file_size(f) - 100);
  ExpectFails(dir, "file truncated?");
}

TEST_F(StartupErrorTest, BadHeader) {
  const std::string dir = Good();
  std::ofstream(dir + "/model.safetensors", std::ios::trunc | std::ios::binary)
      << "\xff\xff\xff\xff garbage";
  ExpectFails(dir, "bad header");
}

TEST_F(StartupErrorTest, UnknownConfigValue) {
  const std::string dir = Good();
  Rewrite(dir + "/config.json", "\"grm\"", "\"gated\"");
  ExpectFails(dir, "field 'mc.aggregation' has unknown value 'gated'");
}

TEST_F(StartupErrorTest, MissingTensor) {
  const std::string dir = Good();
  // The delta rule needs b_proj, which a hebbian model's file lacks.
  Rewrite(dir + "/config.json", "\"hebbian\"", "\"delta\"");
  ExpectFails(dir, "missing tensor 'layers.0.mixer.b_proj.weight'");
}

TEST_F(StartupErrorTest, WrongShape) {
  const std::string dir = Good();
  Rewrite(dir + "/config.json", "\"d_ff\": 48", "\"d_ff\": 40");
  ExpectFails(dir, "tensor 'layers.0.mlp.gate_proj.weight' has shape [48, 32], expected [40, 32]");
}

TEST_F(StartupErrorTest, BadFlag) {
  const std::string dir = Good();
  ProcessResult r = RunServerToExit({absl::StrCat("--model=", dir), "--checkpoint_dtype=fp8"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("unknown checkpoint dtype 'fp8'"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace mcserve::testing
