// Health, reflection, startup errors and shutdown of the real server binary.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
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

// A model whose snapshots are many ExportSession chunks: 128 KiB per
// checkpoint (2 layers x 4 heads x 64 x 64 floats), one per 8 tokens.
const std::string& LargeStateModelDir() {
  static const std::string* dir = [] {
    auto* d = new std::string(FreshDir("large_state_model"));
    model::ModelConfig c = SmallConfig(model::MemoryRule::kDelta, true, model::Aggregation::kGrm,
                                       /*segment_length=*/8, model::Boundary::kContinue);
    c.d_model = 256;
    c.n_heads = 4;
    c.head_dim = 64;
    absl::Status s = model::WriteRandomModel(c, *d, /*seed=*/5);
    if (!s.ok()) ADD_FAILURE() << s;
    return d;
  }();
  return *dir;
}

// Starts a server on LargeStateModelDir() holding session `id` with a
// snapshot of about 8 MiB, and returns the server and the snapshot.
std::unique_ptr<ServerProcess> StartWithLargeSession(const std::string& id, std::string* snapshot) {
  auto p = ServerProcess::Start(LargeStateModelDir(), {"--shutdown_grace=20s"});
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return nullptr;
  client::Client& c = (*p)->client();
  EXPECT_TRUE(c.CreateSession(id).ok());
  EXPECT_TRUE(Collect(c, TextRequest(std::string(511, 'x'), 1, id)).status.ok());
  absl::StatusOr<std::string> bytes = c.ExportSession(id);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (bytes.ok()) *snapshot = *std::move(bytes);
  EXPECT_GT(snapshot->size(), 6u << 20);
  return *std::move(p);
}

// A channel of its own without BDP probing, so a stream the test does not
// read stays at HTTP/2's initial window: the server cannot write it all ahead.
std::unique_ptr<v1::Generation::Stub> SlowStub(const ServerProcess& server) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  return v1::Generation::NewStub(
      grpc::CreateCustomChannel(server.address(), grpc::InsecureChannelCredentials(), args));
}

// Waits until the server no longer reports SERVING (draining, or gone).
void WaitUntilNotServing(client::Client& c) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    absl::StatusOr<bool> serving = c.Health();
    if (!serving.ok() || !*serving) return;
    absl::SleepFor(absl::Milliseconds(5));
  }
  ADD_FAILURE() << "the server kept serving after SIGTERM";
}

TEST(ShutdownTest, ExportCancelledMidStreamLeavesTheServerServing) {
  std::string whole;
  std::unique_ptr<ServerProcess> server = StartWithLargeSession("big", &whole);
  ASSERT_NE(server, nullptr);
  {
    auto stub = SlowStub(*server);
    grpc::ClientContext ctx;
    v1::ExportSessionRequest req;
    req.set_session_id("big");
    auto reader = stub->ExportSession(&ctx, req);
    v1::SessionSnapshotChunk chunk;
    ASSERT_TRUE(reader->Read(&chunk));
    EXPECT_EQ(chunk.data().size(), 1u << 20);
    ctx.TryCancel();
    while (reader->Read(&chunk)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The session is free again and the server serves it.
  const Completion more = Collect(server->client(), TextRequest("y", 2, "big"));
  EXPECT_TRUE(more.status.ok()) << more.status;
  absl::StatusOr<std::string> again = server->client().ExportSession("big");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_GT(again->size(), 6u << 20);
  // Nothing is left in flight: the drain ends without waiting out the 20 s
  // grace (the process itself may take longer to exit: gRPC's shutdown at
  // exit can wait for a poll on the cancelled stream's connection).
  EXPECT_EQ(server->Signal(SIGTERM), 0) << server->Log();
  EXPECT_NE(server->Log().find("msg=stopped"), std::string::npos) << server->Log();
  EXPECT_EQ(server->Log().find("grace period over"), std::string::npos) << server->Log();
}

TEST(ShutdownTest, SigtermLetsAnExportInFlightFinish) {
  std::string whole;
  std::unique_ptr<ServerProcess> server = StartWithLargeSession("big", &whole);
  ASSERT_NE(server, nullptr);
  auto stub = SlowStub(*server);
  grpc::ClientContext ctx;
  v1::ExportSessionRequest req;
  req.set_session_id("big");
  auto reader = stub->ExportSession(&ctx, req);
  v1::SessionSnapshotChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  std::string got = chunk.data();
  std::optional<int> code;
  std::thread stop([&] { code = server->Signal(SIGTERM); });
  WaitUntilNotServing(server->client());
  while (reader->Read(&chunk)) got += chunk.data();
  const grpc::Status st = reader->Finish();
  stop.join();
  EXPECT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
  EXPECT_EQ(got.size(), whole.size());
  EXPECT_TRUE(got == whole);
  EXPECT_EQ(code, 0) << server->Log();
}

TEST(ShutdownTest, SigtermLetsAnImportInFlightFinish) {
  std::string whole;
  std::unique_ptr<ServerProcess> server = StartWithLargeSession("big", &whole);
  ASSERT_NE(server, nullptr);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Generation::NewStub(channel);
  grpc::ClientContext ctx;
  v1::Session resp;
  auto writer = stub->ImportSession(&ctx, &resp);
  v1::ImportSessionRequest msg;
  msg.set_session_id("copy");
  msg.set_data(whole.substr(0, 1000));
  ASSERT_TRUE(writer->Write(msg));
  // A call on the same connection after it: the server has the import open.
  ASSERT_TRUE(client::Client(channel).Health().ok());
  std::optional<int> code;
  std::thread stop([&] { code = server->Signal(SIGTERM); });
  WaitUntilNotServing(server->client());
  msg.clear_session_id();
  bool sent = true;
  for (size_t at = 1000; at < whole.size() && sent; at += 1 << 20) {
    msg.set_data(whole.substr(at, 1 << 20));
    sent = writer->Write(msg);
  }
  writer->WritesDone();
  const grpc::Status st = writer->Finish();
  stop.join();
  EXPECT_TRUE(sent);
  // The stream ran to its end and got the engine's answer (new sessions are
  // refused while draining), not a cancellation by the shutdown.
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_EQ(st.error_message(), "server is draining for shutdown; retry elsewhere");
  EXPECT_EQ(code, 0) << server->Log();
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
