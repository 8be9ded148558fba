// Runs the real mcserve binary as a child process on a loopback port picked
// by the kernel, for integration tests.
#ifndef MCSERVE_TESTS_SUPPORT_SERVER_PROCESS_H_
#define MCSERVE_TESTS_SUPPORT_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/mcserve_client.h"

namespace mcserve::testing {

class ServerProcess {
 public:
  // Starts `mcserve --model=model_dir --listen=127.0.0.1:0 extra_args...` and
  // waits until it serves. On failure the error holds the server's log tail.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& model_dir, const std::vector<std::string>& extra_args = {},
      absl::Duration timeout = absl::Seconds(60));
  // Kills the process if it still runs.
  ~ServerProcess();

  int port() const { return port_; }
  std::string address() const;
  client::Client& client() { return *client_; }
  pid_t pid() const { return pid_; }

  // Sends `sig` and waits up to `timeout` for exit. Returns the exit code,
  // or -signal if killed by one; nullopt if it did not exit in time.
  std::optional<int> Signal(int sig, absl::Duration timeout = absl::Seconds(30));
  // The server's combined stdout/stderr so far.
  std::string Log() const;

 private:
  ServerProcess() = default;

  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
  std::unique_ptr<client::Client> client_;
};

// A finished child process: exit code (-signal if killed by one, -999 if it
// ran past its timeout), stdout, stderr, and both together.
struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::string output;
};
// Runs `bin args...` to completion.
ProcessResult RunProgram(const std::string& bin, const std::vector<std::string>& args,
                         absl::Duration timeout = absl::Seconds(60));
// Runs mcserve with `args` to completion (for startup-error tests).
ProcessResult RunServerToExit(const std::vector<std::string>& args,
                              absl::Duration timeout = absl::Seconds(60));

}  // namespace mcserve::testing

#endif  // MCSERVE_TESTS_SUPPORT_SERVER_PROCESS_H_
