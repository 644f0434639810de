// The trainer's lease watchdog: a trainer whose worker stops renewing the
// attempt's lease stops itself before the coordinator may give the trial to
// another worker (issue 18 "split brain"; the timing argument is in
// docs/faults.md and worker/trial_command.h WatchdogTimeout).
//
// The worker writes one line per renewal on --watchdog-fd: the CLOCK_BOOTTIME
// nanoseconds (common/boot_clock.h) of an instant no later than the moment it
// sent the request the coordinator answered by granting or renewing this
// attempt's lease. The coordinator renewed the lease after that instant, so
// the lease lasts at least until fed_at + TTL; the trainer stops at
// fed_at + timeout with timeout < TTL. Feeds carry their own time, so a feed
// written late (a worker stopped with SIGSTOP between the answer and the
// write, then continued) cannot stretch the deadline. No LibTorch here.
#ifndef ISOFLOP_TRAINER_WATCHDOG_H_
#define ISOFLOP_TRAINER_WATCHDOG_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace isoflop::trainer {

class Watchdog {
 public:
  using NowFn = std::function<int64_t()>;  // ns; CLOCK_BOOTTIME in production
  using ExpireFn = std::function<void(const std::string& why)>;

  // Reads feeds from `fd` (owned: closed by the destructor). Until the first
  // feed arrives the deadline is construction time + timeout_ns.
  Watchdog(int fd, int64_t timeout_ns, NowFn now, ExpireFn on_expire);
  ~Watchdog();  // stops the thread (within 100 ms)
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Starts a thread that calls Check when the deadline is due (and at least
  // every 100 ms) until it has expired.
  void Start();
  // Reads the feeds written so far (never blocks) and returns true once the
  // deadline has passed; the first such call runs on_expire. Thread-safe.
  bool Check();
  // fed_at + timeout of the newest feed (or of construction). Thread-safe.
  int64_t deadline_ns();
  // True while the newest renewal is older than half the timeout (reads the
  // feeds first): the lease looks lost, and a checkpoint written now still
  // beats the fence. A healthy worker renews well within it
  // (worker/trial_command.h WatchdogTimeout). Thread-safe.
  bool AtRisk();

 private:
  void Loop();
  void ReadFeedsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int fd_;
  const int64_t timeout_ns_;
  const NowFn now_;
  const ExpireFn on_expire_;
  absl::Mutex mu_;
  std::string partial_ ABSL_GUARDED_BY(mu_);  // an unterminated feed line
  int64_t deadline_ns_ ABSL_GUARDED_BY(mu_);
  bool fed_ ABSL_GUARDED_BY(mu_) = false;
  bool eof_ ABSL_GUARDED_BY(mu_) = false;  // the worker closed its end
  bool fired_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The production expiry: one line on stderr, then _exit(kExitFenced) at
// once, from the watchdog's thread: no destructor, no checkpoint, no further
// metrics line runs after the fence point.
[[noreturn]] void FenceProcess(const std::string& why);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_WATCHDOG_H_
