// The seam between the worker and the processes it supervises. The real
// implementation (worker/posix_process_launcher.h) forks and execs; the fake
// (worker/fake_process_launcher.h) lets tests script exits and output.
#ifndef ISOFLOP_WORKER_PROCESS_LAUNCHER_H_
#define ISOFLOP_WORKER_PROCESS_LAUNCHER_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace isoflop::worker {

// The child sees the write end of its metrics pipe as this descriptor, so
// callers pass `--metrics-fd 3` in LaunchSpec::argv.
inline constexpr int kChildMetricsFd = 3;
// With LaunchSpec::watchdog, the child reads its lease watchdog's feeds
// (ProcessLauncher::Feed) on this descriptor: `--watchdog-fd 4`.
inline constexpr int kChildWatchdogFd = 4;

struct LaunchSpec {
  std::vector<std::string> argv;  // argv[0] is the path of the binary.
  std::vector<std::string>
      env;  // "KEY=value", added to the parent's environment.
  std::filesystem::path
      log_path;           // the child's stdout and stderr are appended here.
  bool watchdog = false;  // give the child kChildWatchdogFd (see Feed)
  // The child's stdout is its metrics pipe too (ReadLines returns what it
  // prints); only its stderr goes to log_path. For children that answer on
  // stdout (`isoflop-trainer generate`, worker/sample_server.h).
  bool stdout_to_lines = false;
};

// How a process ended.
struct ExitStatus {
  bool signaled = false;
  int exit_code = 0;  // meaningful when !signaled
  int signal = 0;     // meaningful when signaled

  static ExitStatus Code(int code) { return {false, code, 0}; }
  static ExitStatus Signal(int sig) { return {true, 0, sig}; }
  // The shell's convention: the exit code, or 128 + n when killed by signal n.
  int ShellCode() const { return signaled ? 128 + signal : exit_code; }
  bool operator==(const ExitStatus&) const = default;
};

using ProcessId = int64_t;

// Starts and supervises child processes, each in its own process group with a
// pipe for metrics (see kChildMetricsFd). Not thread-safe: one thread (the
// worker's loop) owns a launcher.
class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;

  // Starts `spec`. Returns kInvalidArgument for an empty argv and kInternal
  // (with the strerror text) if the log cannot be opened or exec fails.
  virtual absl::StatusOr<ProcessId> Launch(const LaunchSpec& spec) = 0;

  // Returns the complete lines (without '\n') the child wrote to its metrics
  // pipe since the last call; never blocks. Once the child has exited and the
  // pipe is drained, an unterminated last line is returned too.
  // kNotFound for an unknown id.
  virtual absl::StatusOr<std::vector<std::string>> ReadLines(ProcessId id) = 0;

  // Returns std::nullopt while the process runs, its ExitStatus once it has
  // ended (every later call returns the same). Escalates a pending Terminate
  // to SIGKILL once its grace period is over. kNotFound for an unknown id.
  virtual absl::StatusOr<std::optional<ExitStatus>> Poll(ProcessId id) = 0;

  // Sends SIGTERM to the process group now and SIGKILL once `grace` has passed
  // (checked by Poll). Does not block. kNotFound for an unknown id.
  virtual absl::Status Terminate(ProcessId id, absl::Duration grace) = 0;

  // Tells a child launched with LaunchSpec::watchdog that its lease was
  // renewed by a request sent no earlier than `renewed_at` (a time of the
  // launcher's clock): one line on kChildWatchdogFd holding that instant in
  // CLOCK_BOOTTIME nanoseconds (trainer/watchdog.h). Never blocks; a child
  // that no longer reads is not waited for. kNotFound for an unknown id,
  // kFailedPrecondition for a child without a watchdog.
  virtual absl::Status Feed(ProcessId id, absl::Time renewed_at) = 0;

  // Forgets an ended process and frees its resources. kFailedPrecondition if
  // it still runs, kNotFound for an unknown id.
  virtual absl::Status Release(ProcessId id) = 0;
};

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_PROCESS_LAUNCHER_H_
