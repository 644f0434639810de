// Minimal child-process helper for integration tests: spawn a real binary with
// its output in files, wait with a deadline, send real signals.
#ifndef ISOFLOP_TESTS_INTEGRATION_SUBPROCESS_H_
#define ISOFLOP_TESTS_INTEGRATION_SUBPROCESS_H_

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace isoflop::testing {

struct ExitStatus {
  int code = -1;   // exit code when exited normally
  int signal = 0;  // terminating signal, 0 if exited normally
};

class Subprocess {
 public:
  // Starts `argv` with stdout and stderr appended to `log_path`. Extra
  // environment entries ("KEY=VALUE") are added to the inherited ones.
  Subprocess(std::vector<std::string> argv, std::string log_path,
             std::vector<std::string> extra_env = {});
  ~Subprocess();  // SIGKILLs the child if still running.
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits until the child exits or `timeout` passes (nullopt then).
  std::optional<ExitStatus> Wait(std::chrono::milliseconds timeout);
  void Signal(int sig);
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<ExitStatus> status_;
};

// Reads a whole file ("" if missing).
std::string ReadFile(const std::string& path);
// Polls `path` until it contains `needle` or `timeout` passes.
bool WaitForText(const std::string& path, const std::string& needle,
                 std::chrono::milliseconds timeout);
// A free TCP port on 127.0.0.1 (bind to 0, read, close).
int FreePort();
// Runs argv to completion (timeout 120 s); output in `log_path`.
ExitStatus RunToCompletion(std::vector<std::string> argv,
                           const std::string& log_path,
                           std::vector<std::string> extra_env = {});

}  // namespace isoflop::testing

#endif  // ISOFLOP_TESTS_INTEGRATION_SUBPROCESS_H_
