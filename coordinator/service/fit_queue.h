// FitQueue: the sweeps waiting for a scaling-law fit and the thread that
// fits them (docs/architecture.md §1.1). Fits take seconds; they run here, on
// the fit thread (or on the caller of RunPending), never on a gRPC callback
// thread and never under a lock that a lease or a heartbeat needs. At most
// one fit per sweep runs at a time: a request for a sweep being fitted stays
// queued and runs after it, coalesced with any others. Thread-safe.
#ifndef ISOFLOP_COORDINATOR_SERVICE_FIT_QUEUE_H_
#define ISOFLOP_COORDINATOR_SERVICE_FIT_QUEUE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

class FitQueue {
 public:
  // Fits the sweep and stores the fit; `final` unset: decided by the
  // sweep's state. Runs with no FitQueue lock held.
  using FitFn = std::function<absl::StatusOr<v1::ScalingLawFit>(
      const std::string& sweep_id, std::optional<bool> final)>;
  // Called once with the fit a Request asked for (or why there is none),
  // from the thread that ran it.
  using Done = absl::AnyInvocable<void(absl::StatusOr<v1::ScalingLawFit>)>;

  // `clock` (not owned) times refit_min_interval.
  FitQueue(const Clock* clock, absl::Duration refit_min_interval, FitFn fit);
  ~FitQueue();  // Stop()

  // A fit the core decided on: final (the sweep ended; sticky until it
  // runs) or a refit, which runs at most once per refit_min_interval per
  // sweep (requests in between coalesce).
  void Queue(const std::string& sweep_id, bool final);
  // A fit someone asked for (FitSweep, RequestFit): runs at the next turn,
  // whatever the interval; `done` (may be null) gets its fit. Answered
  // CANCELLED at once after Cancel().
  void Request(const std::string& sweep_id, Done done);
  // Runs every due fit on the calling thread; returns how many ran.
  int RunPending();
  // Marks a fit of the sweep under way outside the queue (Core::FitSweep on
  // the caller's thread): queued fits of that sweep wait for End.
  void Begin(const std::string& sweep_id);
  void End(const std::string& sweep_id);

  // Starts the fit thread, which runs RunPending whenever a fit is due (at
  // a lowered scheduling priority: it competes for cores with nothing the
  // workers wait for). Once.
  void Start();
  // Fits under way stop within about one start and store nothing; queued
  // and later requests are answered CANCELLED; nothing runs any more.
  void Cancel();
  // Cancel(), then joins the fit thread. Idempotent.
  void Stop();
  const std::atomic<bool>* cancelled() const { return &cancelled_; }

 private:
  struct Pending {
    bool final = false;  // sticky
    bool asked = false;  // a Request: not throttled, final by state
    std::vector<Done> waiters;
  };
  void Loop();

  const Clock* const clock_;
  const absl::Duration refit_min_interval_;
  const FitFn fit_;
  std::atomic<bool> cancelled_{false};
  absl::Mutex mu_;
  std::map<std::string, Pending> pending_ ABSL_GUARDED_BY(mu_);  // by sweep
  std::set<std::string> fitting_ ABSL_GUARDED_BY(mu_);  // fits under way
  std::map<std::string, absl::Time> last_refit_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by each change
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_FIT_QUEUE_H_
