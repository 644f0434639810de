// Logger: the service binaries' log lines on stderr, in one of two formats
// chosen by --log-format. `text` is for people: "2026-05-01 12:00:00.123
// isoflop-worker: registered as wk-..." (local time). `json` is for log
// shippers: one JSON object per line, {"ts": "2026-05-01T10:00:00.123Z"
// (UTC), "level": "info"|"warning"|"error", "component": "isoflop-worker",
// "msg": the same sentence as in text, then the event's key fields ("trial",
// "attempt", "worker", "address", ...) as string members}. Text leaves the
// fields out: the sentence already names them.
#ifndef ISOFLOP_COMMON_LOG_H_
#define ISOFLOP_COMMON_LOG_H_

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace isoflop {

enum class LogFormat { kText, kJson };
enum class LogLevel { kInfo, kWarning, kError };

// Key fields of one event, in order: ("trial", "tr-0123456789ab").
using LogFields = std::vector<std::pair<std::string, std::string>>;

// "text" or "json"; INVALID_ARGUMENT naming --log-format otherwise.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view value);

// "info", "warning", "error".
absl::string_view LogLevelName(LogLevel level);

class Logger {
 public:
  // Writes to `out` (not owned; stderr by default), flushed after each line.
  Logger(std::string component, LogFormat format, std::FILE* out = stderr)
      : component_(std::move(component)), format_(format), out_(out) {}

  // One line for the event. Thread-safe: each line is one fwrite on `out`,
  // which stdio locks, so lines of concurrent calls never interleave.
  void Log(LogLevel level, absl::string_view msg,
           const LogFields& fields = {}) const;
  void Info(absl::string_view msg, const LogFields& fields = {}) const {
    Log(LogLevel::kInfo, msg, fields);
  }
  void Warning(absl::string_view msg, const LogFields& fields = {}) const {
    Log(LogLevel::kWarning, msg, fields);
  }
  void Error(absl::string_view msg, const LogFields& fields = {}) const {
    Log(LogLevel::kError, msg, fields);
  }

  // The line Log writes at `now`, with its trailing newline. `msg` and the
  // fields may hold any bytes: JSON escapes control characters and invalid
  // UTF-8 becomes U+FFFD, so every line parses.
  std::string Format(absl::Time now, LogLevel level, absl::string_view msg,
                     const LogFields& fields) const;

  const std::string& component() const { return component_; }
  LogFormat format() const { return format_; }

 private:
  const std::string component_;
  const LogFormat format_;
  std::FILE* const out_;
};

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_LOG_H_
