// ProcessLauncher over fork/exec. The only worker file that includes
// <unistd.h>. Each child gets its own process group (so a kill reaches the
// trainer and anything it spawned), a pipe as kChildMetricsFd, with
// LaunchSpec::watchdog a socket as kChildWatchdogFd, stdin from /dev/null and
// stdout+stderr appended to LaunchSpec::log_path.
#ifndef ISOFLOP_WORKER_POSIX_PROCESS_LAUNCHER_H_
#define ISOFLOP_WORKER_POSIX_PROCESS_LAUNCHER_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "worker/process_launcher.h"

namespace isoflop::worker {

class PosixProcessLauncher final : public ProcessLauncher {
 public:
  // `clock` times the SIGTERM -> SIGKILL grace period; it must outlive this.
  explicit PosixProcessLauncher(const Clock* clock) : clock_(clock) {}
  // Kills (SIGKILL) and reaps every child still running.
  ~PosixProcessLauncher() override;
  PosixProcessLauncher(const PosixProcessLauncher&) = delete;
  PosixProcessLauncher& operator=(const PosixProcessLauncher&) = delete;

  absl::StatusOr<ProcessId> Launch(const LaunchSpec& spec) override;
  absl::StatusOr<std::vector<std::string>> ReadLines(ProcessId id) override;
  absl::StatusOr<std::optional<ExitStatus>> Poll(ProcessId id) override;
  absl::Status Terminate(ProcessId id, absl::Duration grace) override;
  absl::Status Feed(ProcessId id, absl::Time renewed_at) override;
  absl::Status Release(ProcessId id) override;

 private:
  struct Child {
    int metrics_fd = -1;   // read end, non-blocking; -1 once closed
    int watchdog_fd = -1;  // our end of kChildWatchdogFd; -1: none
    std::string partial;   // bytes after the last '\n'
    std::optional<ExitStatus> exit;
    std::optional<absl::Time> kill_at;  // SIGKILL due (after Terminate)
  };

  const Clock* clock_;
  std::map<ProcessId, Child> children_;
};

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_POSIX_PROCESS_LAUNCHER_H_
