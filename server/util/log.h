// Structured logging: one line per event, `key=value` pairs after a message.
//
//   MCSERVE_LOG(kInfo, "request done").Kv("id", id).Kv("tokens", n);
//
// Thread-safe: each line is written with a single write(2) to stderr. The
// level threshold is process-wide and set once at startup (SetLogLevel).
#ifndef MCSERVE_SERVER_UTIL_LOG_H_
#define MCSERVE_SERVER_UTIL_LOG_H_

#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mcserve {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

// Builds one line; writes it when destroyed.
class LogLine {
 public:
  LogLine(LogLevel level, absl::string_view msg);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  template <typename T>
  LogLine& Kv(absl::string_view key, const T& value) {
    out_ << ' ' << key << '=';
    Quote(value);
    return *this;
  }

 private:
  template <typename T>
  void Quote(const T& value) {
    out_ << value;
  }
  void Quote(const std::string& value) { QuoteString(value); }
  void Quote(absl::string_view value) { QuoteString(value); }
  void Quote(const char* value) { QuoteString(value); }
  void Quote(bool value) { out_ << (value ? "true" : "false"); }
  void QuoteString(absl::string_view value);

  std::ostringstream out_;
};

}  // namespace mcserve

#define MCSERVE_LOG(level, msg)                             \
  if (!::mcserve::LogEnabled(::mcserve::LogLevel::level)) { \
  } else                                                    \
    ::mcserve::LogLine(::mcserve::LogLevel::level, msg)

#endif  // MCSERVE_SERVER_UTIL_LOG_H_
