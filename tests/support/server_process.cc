#include "tests/support/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/test_device.h"

#ifndef MCSERVE_SERVER_BIN
#error "MCSERVE_SERVER_BIN must name the mcserve binary"
#endif

namespace mcserve::testing {
namespace {

std::string TempPath(const std::string& stem) {
  static int counter = 0;
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/mcserve_", ::getpid(), "_", counter++, "_",
                      stem);
}

// Runs `bin args...` with stdout to `out_path` and stderr to `err_path`
// (the same file when equal).
pid_t SpawnProgram(std::string bin, const std::vector<std::string>& args,
                   const std::string& out_path, const std::string& err_path) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err =
      err_path == out_path ? out : ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::dup2(out, STDOUT_FILENO);
  ::dup2(err, STDERR_FILENO);
  std::vector<char*> argv;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(bin.c_str(), argv.data());
  ::_exit(127);
}

pid_t Spawn(const std::vector<std::string>& args, const std::string& log_path) {
  return SpawnProgram(MCSERVE_SERVER_BIN, args, log_path, log_path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<int> WaitExit(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return -WTERMSIG(status);
    }
    if (absl::Now() > deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& model_dir, const std::vector<std::string>& extra_args,
    absl::Duration timeout) {
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  const std::string port_file = TempPath("port");
  p->log_path_ = TempPath("server.log");
  std::vector<std::string> args = {absl::StrCat("--model=", model_dir), "--listen=127.0.0.1:0",
                                   absl::StrCat("--port_file=", port_file),
                                   "--metrics_listen=127.0.0.1:0", TestDeviceFlag()};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  p->pid_ = Spawn(args, p->log_path_);
  const absl::Time deadline = absl::Now() + timeout;
  while (!std::filesystem::exists(port_file)) {
    int status = 0;
    if (::waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
      p->pid_ = -1;
      return absl::InternalError(absl::StrCat("mcserve exited during startup:\n", p->Log()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("mcserve did not start:\n", p->Log()));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  p->port_ = std::stoi(ReadFile(port_file));
  std::filesystem::remove(port_file);
  p->client_ = std::make_unique<client::Client>(p->address());
  return p;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    WaitExit(pid_, absl::Seconds(10));
  }
}

std::string ServerProcess::address() const { return absl::StrCat("127.0.0.1:", port_); }

std::optional<int> ServerProcess::Signal(int sig, absl::Duration timeout) {
  if (pid_ <= 0) return std::nullopt;
  ::kill(pid_, sig);
  std::optional<int> code = WaitExit(pid_, timeout);
  if (code) pid_ = -1;
  return code;
}

std::string ServerProcess::Log() const { return ReadFile(log_path_); }

ProcessResult RunProgram(const std::string& bin, const std::vector<std::string>& args,
                         absl::Duration timeout) {
  ProcessResult r;
  const std::string out = TempPath("stdout");
  const std::string err = TempPath("stderr");
  const pid_t pid = SpawnProgram(bin, args, out, err);
  std::optional<int> code = WaitExit(pid, timeout);
  if (!code) {
    ::kill(pid, SIGKILL);
    WaitExit(pid, absl::Seconds(10));
  }
  r.exit_code = code.value_or(-999);
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  r.output = r.out + r.err;
  return r;
}

ProcessResult RunServerToExit(const std::vector<std::string>& args, absl::Duration timeout) {
  // Tests run servers side by side: never the fixed default metrics port.
  std::vector<std::string> all = {"--metrics_listen=127.0.0.1:0", TestDeviceFlag()};
  all.insert(all.end(), args.begin(), args.end());
  return RunProgram(MCSERVE_SERVER_BIN, all, timeout);
}

}  // namespace mcserve::testing
