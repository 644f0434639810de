// The coordinator's transport-free core: sweeps, trials, leases, metrics and
// fits. The gRPC layer (grpc_services.h) only adapts to it. Thread-safe.
#ifndef ISOFLOP_COORDINATOR_SERVICE_CORE_H_
#define ISOFLOP_COORDINATOR_SERVICE_CORE_H_

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/store/store.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

struct CoreOptions {
  absl::Duration lease_ttl = absl::Seconds(30);
  absl::Duration heartbeat_interval = absl::Seconds(2);
  int fit_threads = 0;  // 0: hardware concurrency
};

class Core {
 public:
  // `store` and `clock` must outlive the core.
  Core(Store* store, const Clock* clock, CoreOptions options);

  // Loads all state from the store; trials that were LEASED/RUNNING get a
  // fresh lease (their workers may still be alive). Call once, first.
  absl::Status Recover();

  // Validates and expands; idempotent (same config -> same id, no new rows).
  absl::StatusOr<v1::SubmitSweepResponse> Submit(const v1::SubmitSweepRequest& request);
  absl::StatusOr<v1::Sweep> GetSweep(const std::string& sweep_id);
  v1::ListSweepsResponse ListSweeps();
  // Pending trials -> CANCELLED; running ones are revoked at their next heartbeat.
  absl::StatusOr<v1::Sweep> CancelSweep(const std::string& sweep_id);

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& r);
  absl::StatusOr<v1::LeaseTrialResponse> LeaseTrial(const v1::LeaseTrialRequest& r);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& r);
  // ABORTED for a stale lease (epoch or attempt not current); INVALID_ARGUMENT
  // for a bad point (names the index, field and rule). Idempotent.
  absl::StatusOr<v1::ReportMetricsResponse> ReportMetrics(const v1::ReportMetricsRequest& r);
  absl::Status ReportOutcome(const v1::ReportOutcomeRequest& r);

  // Fits now (blocking) and stores the result on the sweep.
  absl::StatusOr<v1::ScalingLawFit> FitSweep(const std::string& sweep_id);
  absl::StatusOr<v1::OptimalResponse> Optimal(const v1::OptimalRequest& r);

  // Periodic work, driven by a thread in production and directly by tests.
  // Leases past their expiry end: the trial goes back to PENDING (a new
  // attempt) while attempts < max_attempts, else FAILED; the reason is kept.
  void ReapExpiredLeases(absl::Time now);
  // Fits every sweep that ended since the last call. Returns how many.
  int RunPendingFits();

 private:
  struct SweepState {
    SweepRecord record;
  };
  struct Lease {
    std::string worker_id;
    absl::Time expires;
  };

  absl::StatusOr<TrialRecord*> FindLeasedLocked(const std::string& worker_id,
                                                const v1::LeaseRef& lease)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TrialRecord* FindTrialLocked(const std::string& trial_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SweepState* FindSweepLocked(const std::string& sweep_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Re-derives the sweep's state from its trials; persists a change and
  // queues the fit when it just ended.
  absl::Status RefreshSweepLocked(SweepState& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the current attempt: retry (PENDING) or FAILED, persisted.
  absl::Status RetryOrFailLocked(TrialRecord& t, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Sweep ViewLocked(const SweepState& s, bool with_trials) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::ScalingLawFit> ComputeFit(const std::vector<TrialRecord>& trials) const;
  int64_t NowMs() const;

  Store* store_;
  const Clock* clock_;
  const CoreOptions options_;
  absl::Mutex mu_;
  std::deque<SweepState> sweeps_ ABSL_GUARDED_BY(mu_);  // submit order
  std::map<std::string, Lease> leases_ ABSL_GUARDED_BY(mu_);  // by trial id
  std::map<std::string, int64_t> workers_ ABSL_GUARDED_BY(mu_);  // id -> last heartbeat ms
  std::vector<std::string> pending_fits_ ABSL_GUARDED_BY(mu_);
  uint64_t next_epoch_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_CORE_H_
