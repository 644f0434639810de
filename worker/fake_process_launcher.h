// A ProcessLauncher for tests: records launches, and lets the test write
// metrics lines and end processes. Not thread-safe.
#ifndef ISOFLOP_WORKER_FAKE_PROCESS_LAUNCHER_H_
#define ISOFLOP_WORKER_FAKE_PROCESS_LAUNCHER_H_

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/process_launcher.h"

namespace isoflop::worker {

class FakeProcessLauncher final : public ProcessLauncher {
 public:
  struct Process {
    LaunchSpec spec;
    std::vector<std::string> pending_lines;
    std::optional<ExitStatus> exit;
    std::optional<absl::Duration> terminated_with_grace;  // set by Terminate
    bool released = false;
    std::vector<absl::Time> feeds;  // by Feed
  };

  absl::StatusOr<ProcessId> Launch(const LaunchSpec& spec) override {
    if (!next_launch_error_.ok()) {
      absl::Status s = next_launch_error_;
      next_launch_error_ = absl::OkStatus();
      return s;
    }
    ProcessId id = next_id_++;
    processes_[id].spec = spec;
    launches_.push_back(spec);
    return id;
  }
  absl::StatusOr<std::vector<std::string>> ReadLines(ProcessId id) override {
    auto* p = Find(id);
    if (p == nullptr) return absl::NotFoundError(absl::StrCat("process ", id));
    return std::exchange(p->pending_lines, {});
  }
  absl::StatusOr<std::optional<ExitStatus>> Poll(ProcessId id) override {
    auto* p = Find(id);
    if (p == nullptr) return absl::NotFoundError(absl::StrCat("process ", id));
    return p->exit;
  }
  absl::Status Terminate(ProcessId id, absl::Duration grace) override {
    auto* p = Find(id);
    if (p == nullptr) return absl::NotFoundError(absl::StrCat("process ", id));
    p->terminated_with_grace = grace;
    return absl::OkStatus();
  }
  absl::Status Feed(ProcessId id, absl::Time renewed_at) override {
    auto* p = Find(id);
    if (p == nullptr) return absl::NotFoundError(absl::StrCat("process ", id));
    if (!p->spec.watchdog) return absl::FailedPreconditionError("no watchdog");
    p->feeds.push_back(renewed_at);
    return absl::OkStatus();
  }
  absl::Status Release(ProcessId id) override {
    auto* p = Find(id);
    if (p == nullptr) return absl::NotFoundError(absl::StrCat("process ", id));
    if (!p->exit) return absl::FailedPreconditionError("still running");
    p->released = true;
    return absl::OkStatus();
  }

  // Test controls.
  void Write(ProcessId id, const std::string& line) {
    processes_.at(id).pending_lines.push_back(line);
  }
  void Exit(ProcessId id, ExitStatus status) {
    processes_.at(id).exit = status;
  }
  void FailNextLaunch(absl::Status status) {
    next_launch_error_ = std::move(status);
  }
  const std::vector<LaunchSpec>& launches() const { return launches_; }
  ProcessId last_id() const { return next_id_ - 1; }
  const Process& process(ProcessId id) const { return processes_.at(id); }

 private:
  Process* Find(ProcessId id) {
    auto it = processes_.find(id);
    return it == processes_.end() || it->second.released ? nullptr
                                                         : &it->second;
  }

  ProcessId next_id_ = 100;
  std::map<ProcessId, Process> processes_;
  std::vector<LaunchSpec> launches_;
  absl::Status next_launch_error_;
};

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_FAKE_PROCESS_LAUNCHER_H_
