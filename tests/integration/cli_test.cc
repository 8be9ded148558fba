// mcserve-cli against the real server: what a shell user sees and the exit
// codes a script can act on.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/integration/server_fixture.h"

#ifndef MCSERVE_CLI_BIN
#error "MCSERVE_CLI_BIN must name the mcserve-cli binary"
#endif

namespace mcserve::testing {
namespace {

class CliTest : public ServerTest {
 protected:
  ProcessResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), absl::StrCat("--addr=", server_->address()));
    return RunProgram(MCSERVE_CLI_BIN, args);
  }
};

TEST_F(CliTest, GenerateWritesTheSameTextAsTheApi) {
  const std::string prompt = "Hello there. " + std::string(287, 'x');  // 300 bytes
  Completion api = Collect(client(), LongRequest(prompt, 24));
  ASSERT_TRUE(api.status.ok()) << api.status;
  ProcessResult r = Cli({"generate", "--temperature=0", "--max_tokens=24", "--ignore_eos", prompt});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, api.text + "\n");
  EXPECT_NE(r.err.find("[length: prompt 301 tokens, generated 24"), std::string::npos) << r.err;
  // The API request published the blocks of its first whole prefill piece
  // (the 256-token grid of --prefill_piece).
  EXPECT_NE(r.err.find("; 256 prompt tokens from the prefix cache; request "), std::string::npos)
      << r.err;
}

TEST_F(CliTest, SessionLifecycleThroughTheCli) {
  ProcessResult created = Cli({"session", "create", "cli-session"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ(created.out, "cli-session\n");
  ProcessResult gen = Cli({"generate", "--session=cli-session", "--max_tokens=3", "abc"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  ProcessResult got = Cli({"session", "get", "cli-session"});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_NE(got.out.find("session_id: \"cli-session\""), std::string::npos) << got.out;
  ASSERT_EQ(Cli({"session", "delete", "cli-session"}).exit_code, 0);
  ProcessResult gone = Cli({"session", "get", "cli-session"});
  EXPECT_EQ(gone.exit_code, 4);
  EXPECT_NE(gone.err.find("NOT_FOUND: session 'cli-session' not found"), std::string::npos)
      << gone.err;
}

TEST_F(CliTest, TokenizeAndDetokenize) {
  ProcessResult ids = Cli({"tokenize", "hi"});
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  EXPECT_EQ(ids.out, "104 105\n");
  ProcessResult bos = Cli({"tokenize", "--add_bos", "hi"});
  ASSERT_EQ(bos.exit_code, 0) << bos.err;
  EXPECT_EQ(bos.out, "256 104 105\n");
  ProcessResult text = Cli({"detokenize", "256", "104", "105"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(text.out, "hi\n");
  ProcessResult bad = Cli({"detokenize", "104", "9999"});
  EXPECT_EQ(bad.exit_code, 4);
  EXPECT_NE(bad.err.find("INVALID_ARGUMENT: ids[1] = 9999 is not below vocab_size 260"),
            std::string::npos)
      << bad.err;
  EXPECT_EQ(Cli({"detokenize", "x"}).exit_code, 2);
}

TEST_F(CliTest, ExitCodesTellWhatWentWrong) {
  ProcessResult bad = Cli({"generate", "--temperature=-1", "x"});
  EXPECT_EQ(bad.exit_code, 4);
  EXPECT_NE(bad.err.find("INVALID_ARGUMENT: sampling_params.temperature"), std::string::npos)
      << bad.err;
  EXPECT_EQ(Cli({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(Cli({}).exit_code, 2);
  ProcessResult health = Cli({"health"});
  EXPECT_EQ(health.exit_code, 0);
  EXPECT_EQ(health.out, "SERVING\n");
}

TEST(CliNoServerTest, UnreachableServerExitsThree) {
  // Port 1 on loopback: nothing listens there.
  ProcessResult r = RunProgram(MCSERVE_CLI_BIN, {"--addr=127.0.0.1:1", "--timeout=2", "health"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mcserve::testing
