// The coordinator's transport-free core (docs/architecture.md §1.1): a thin
// facade over four parts, each with its own lock or none, that the gRPC layer
// (grpc_services.h) and the dashboard call as one object:
//   sweep book  sweeps and trials (this class: core.cc, core_workers.cc)
//   LeaseTable  workers, leases, heartbeats (lease_table.h)
//   FitQueue    fits on their own thread (fit_queue.h, core_fits.cc)
//   LogBook     the trainers' logs (log_book.h)
// All state lives in memory, mirrored write-through to a TrialStore: a
// method that changes state returns OK only after the store committed it.
// No lock that a heartbeat, a lease or a read needs is held during a commit:
// state-changing calls are ordered by write_mu_ (one at a time, like
// leveldb's writer queue), decide under mu_, release it for the commit, and
// apply what was committed under mu_ again (docs/architecture.md §1.1).
// Thread-safe: every public method may be called from any thread.
#ifndef ISOFLOP_COORDINATOR_SERVICE_CORE_H_
#define ISOFLOP_COORDINATOR_SERVICE_CORE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/scheduler/policy.h"
#include "coordinator/service/fit_queue.h"
#include "coordinator/service/lease_table.h"
#include "coordinator/service/log_book.h"
#include "coordinator/store/trial_store.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

// The metric point a trunk's trainer emits at step s once its checkpoint at
// s is kept (trainer --save-at-steps): the signal that s's branches may run.
inline constexpr char kCheckpointKeptMetric[] = "checkpoint_kept";

// Longest error or outcome message kept on a trial or attempt.
inline constexpr size_t kMaxMessageBytes = 4096;

struct CoreOptions {
  absl::Duration lease_ttl = absl::Seconds(30);
  absl::Duration heartbeat_interval = absl::Seconds(2);
  int fit_threads = 0;  // Approach-3 fit threads; 0: hardware concurrency
  // A running sweep is refit (Approach 3, on one thread: ingestion keeps the
  // other cores) after each success once it has this many succeeded trials,
  // at most once per refit_min_interval (successes in between coalesce).
  int refit_min_points = 5;
  absl::Duration refit_min_interval = absl::Seconds(30);
  // The final fit (when the sweep ends) adds Approach 2 and a bootstrap of
  // this many resamples (0: none), drawn from this seed.
  int bootstrap_resamples = 200;
  uint64_t bootstrap_seed = 1;
  // The Approach-3 fits' starts (analysis::LogParams; the backtest's too);
  // empty: Chinchilla's 4500-start grid. Tests pass StartsFromSpec("grid:2").
  std::vector<std::array<double, 5>> fit_starts;
};

class Core {
 public:
  // `store` and `clock` are not owned and must outlive the core.
  Core(TrialStore* store, const Clock* clock, CoreOptions options);
  ~Core();  // stops the fit thread
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // Loads all state from the store. Known workers stay registered and
  // trials that were LEASED/RUNNING get a fresh lease (their workers may
  // still be alive, heartbeating and reporting); for one lease TTL from now
  // no lease is ended because its worker was silent since the restart (a
  // restart is invisible to workers that reconnect within the TTL; one that
  // reconnected and then fell silent is lost as usual: docs/faults.md); ended
  // sweeps without a fit are queued for RunPendingFits. Call once, first.
  absl::Status Recover();

  // ---- SweepService
  // Validates and expands (INVALID_ARGUMENT naming field, value and rule;
  // nothing written) under request.id, else an id derived from the resolved
  // config without its scheduling. Idempotent: the same id with the same
  // resolved config returns it and writes nothing new; a config that differs
  // from the stored sweep's only in its scheduling updates that sweep's
  // scheduling; the id of a sweep with another config is ALREADY_EXISTS.
  absl::StatusOr<v1::SubmitSweepResponse> Submit(
      const v1::SubmitSweepRequest& request);
  // Runs trained elsewhere as a fit-only sweep (core_import.cc,
  // docs/import-export.md): SweepConfig.imported, SWEEP_SUCCEEDED, one
  // SUCCEEDED trial per run with its loss and curve; its final fit is queued
  // like an ended sweep's. INVALID_ARGUMENT naming runs[i].field, value and
  // rule; the same runs again return the stored sweep (existed); an id
  // holding another sweep is ALREADY_EXISTS.
  absl::StatusOr<v1::ImportSweepResponse> ImportSweep(
      const v1::ImportSweepRequest& request);
  // With trials. NOT_FOUND for an unknown id.
  absl::StatusOr<v1::Sweep> GetSweep(const std::string& sweep_id);
  // Submit order, trials omitted (trial_counts kept).
  v1::ListSweepsResponse ListSweeps();
  // Sweep.pending_reason of one sweep ("" for an unknown one): for the
  // dashboard, whose sweeps come from the store.
  std::string SweepPendingReason(const std::string& sweep_id);
  // Trials not yet ended -> CANCELLED; their leases are revoked in the next
  // heartbeat response. Cancelling an ended sweep changes nothing.
  absl::StatusOr<v1::Sweep> CancelSweep(const std::string& sweep_id);
  // Re-queues the ended sweep's FAILED trials (RetrySweepRequest says how);
  // the sweep is no longer paused.
  absl::StatusOr<v1::Sweep> RetrySweep(const v1::RetrySweepRequest& r);
  // Sets Sweep.paused (persisted): LeaseTrial skips a paused sweep's pending
  // trials; its running trials finish. Idempotent. NOT_FOUND for an unknown
  // id; pausing: FAILED_PRECONDITION unless the sweep is SWEEP_RUNNING.
  absl::StatusOr<v1::Sweep> SetSweepPaused(const std::string& sweep_id,
                                           bool paused);

  // The trainer's log of one attempt (GetTrialLogsRequest says how), read
  // after the trial's state so that `finished` with the latest attempt means
  // every relayed byte is in `data`. INVALID_ARGUMENT for a malformed
  // trial_id or an attempt the trial never had; NOT_FOUND for an unknown
  // trial.
  absl::StatusOr<v1::GetTrialLogsResponse> GetTrialLogs(
      const v1::GetTrialLogsRequest& r);
  // One trial as stored (its spec, state and the worker of its latest
  // attempt), for sampling (generation_relay.h). INVALID_ARGUMENT for a
  // malformed id, NOT_FOUND ("trial ID: unknown") for an unknown trial.
  absl::StatusOr<v1::Trial> GetTrial(const std::string& trial_id);

  // ---- WorkerService
  // Assigns a worker id when none is given. INVALID_ARGUMENT for a worker
  // offering no resources or a bad dataset report (dataset_check.h
  // ValidateWorkerDatasets); keeps the datasets it reports for submit's
  // check and for leasing (a trial goes to a worker holding its dataset).
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& r);
  // Picks by scheduler/policy.h over the pending trials of sweeps not paused
  // (priority, then submit order; max_concurrent_trials; gang GPU trials with
  // one reserved worker for the head) and the live, undrained workers;
  // has_assignment false when nothing fits or the worker is draining. Starts a
  // new attempt with a new lease epoch. NOT_FOUND for an unregistered worker
  // (it should register again). Decides in write order (one state change at
  // a time), so max_concurrent_trials holds however many workers ask at once.
  absl::StatusOr<v1::LeaseTrialResponse> LeaseTrial(
      const v1::LeaseTrialRequest& r);
  // Renews each current lease; returns those the worker must stop
  // (cancelled, expired, re-leased, unknown). Replaces the datasets the
  // worker reported (INVALID_ARGUMENT for a bad report, nothing renewed).
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& r);
  // ABORTED for a stale lease (attempt/epoch not current, or not this
  // worker's); INVALID_ARGUMENT for a bad point, naming its index, field and
  // rule (the whole batch is refused). Idempotent per (trial, attempt, step,
  // name); `accepted` counts the new points. Renews the lease.
  absl::StatusOr<v1::ReportMetricsResponse> ReportMetrics(
      const v1::ReportMetricsRequest& r);
  // Ends the attempt: SUCCEEDED (needs a finite final_val_loss > 0), FAILED,
  // CANCELLED, or RETRYABLE (PENDING again while attempt < max_attempts,
  // else FAILED). ABORTED for a stale lease. When it ends the sweep's last
  // trial, the sweep's final fit is queued (RunPendingFits); a success that
  // brings the sweep to >= refit_min_points succeeded trials queues a refit.
  absl::Status ReportOutcome(const v1::ReportOutcomeRequest& r);
  // Stores a chunk of the attempt's log (TrialStore::AppendTrialLog).
  // ABORTED for a stale lease; INVALID_ARGUMENT for empty data, more than
  // kMaxLogChunkBytes, or offset + size past kMaxLogOffset. Does not renew
  // the lease (heartbeats do).
  absl::StatusOr<v1::ReportLogsResponse> ReportLogs(
      const v1::ReportLogsRequest& r);

  // ---- ClusterService
  // Every registered worker, by id: resources, running trials, heartbeat
  // age, and state: WORKER_LOST when silent for 3 heartbeat intervals (its
  // leases still end only at their TTL: ReapExpiredLeases), else
  // WORKER_DRAINING or WORKER_LIVE.
  v1::ListWorkersResponse ListWorkers();
  // Sets the worker's draining flag (persisted; kept when it registers
  // again): LeaseTrial gives a draining worker nothing, its running trials
  // finish. Idempotent. INVALID_ARGUMENT for a malformed worker_id,
  // NOT_FOUND for a worker never registered.
  absl::StatusOr<v1::Worker> SetWorkerDraining(const std::string& worker_id,
                                               bool draining);

  // ---- AnalysisService
  // Fits now on the calling thread (blocking, seconds; under no lock) on the
  // sweep's succeeded trials (N = n_total, D = tokens, loss = val_loss,
  // grouped by flops_budget) and stores it on the sweep: Approach 3 while the
  // sweep runs; once it ended, the final fit with Approach 2 and the
  // bootstrap. A fit that cannot be made (e.g. < 5 points) is stored as a
  // fit with only n_points and message set: an outcome, not an error. A
  // refit never replaces a final fit or a fit of more points (a slower,
  // older one). For tests and tools; the RPC uses FitSweepAsync.
  absl::StatusOr<v1::ScalingLawFit> FitSweep(const std::string& sweep_id);
  // The same fit, run by the fit queue: returns at once; `done` gets the fit
  // (or the error) later, from the fit thread (or at once for a malformed or
  // unknown id, or after CancelFits). Requests for a sweep coalesce: one fit
  // made after the request answers every waiter.
  void FitSweepAsync(
      const std::string& sweep_id,
      absl::AnyInvocable<void(absl::StatusOr<v1::ScalingLawFit>)> done);
  // Queues a fit of the sweep (as FitSweep would make it) and returns at
  // once; the fit is stored on the sweep when made. INVALID_ARGUMENT /
  // NOT_FOUND as GetSweep; FAILED_PRECONDITION (nothing queued) while the
  // sweep has fewer than refit_min_points succeeded trials.
  absl::Status RequestFit(const std::string& sweep_id);
  // Answers one of flops / params / loss (analysis/queries.h) with Approach
  // `approach` (0: 3) from the sweep's stored fit, with ci95 when the fit
  // has bootstrap samples; an empty sweep_id means the newest sweep whose
  // fit has that approach. INVALID_ARGUMENT unless exactly one of flops,
  // params, loss is non-zero and it is finite and > 0, or for an approach
  // other than 0, 2, 3; NOT_FOUND for an unknown sweep; FAILED_PRECONDITION
  // when there is no usable fit or the fit cannot answer (loss <= E, loss
  // with Approach 2).
  absl::StatusOr<v1::OptimalResponse> Optimal(const v1::OptimalRequest& r);

  // ---- Periodic work: a thread drives these in production, tests call them.
  // Leases with expiry <= now end: the trial goes back to PENDING (a new
  // attempt follows) while attempt < max_attempts, else FAILED; the reason
  // is kept in Trial.error and the attempt's row. Returns how many expired.
  // Only expiry re-queues, never a silent worker alone: the old attempt's
  // trainer has fenced itself by then (docs/faults.md "Split brain").
  int ReapExpiredLeases(absl::Time now);
  // Fits every sweep queued since the last call (blocking), at most one fit
  // per sweep at a time: requests for a sweep being fitted (by FitSweep on
  // another thread) stay queued, coalesced into one, final if any was.
  // Returns how many fits ran.
  int RunPendingFits() { return fits_.RunPending(); }
  // Starts the fit thread (FitQueue::Start), which runs queued fits as they
  // fall due; production does, tests call RunPendingFits instead.
  void StartFits() { fits_.Start(); }
  // Shutdown: fits under way stop within about one start and store nothing,
  // and later fits do not run; FitSweepAsync's waiters are answered
  // CANCELLED. A final fit so dropped runs again when the next coordinator
  // loads the store (an ended sweep without a final fit).
  void CancelFits() { fits_.Cancel(); }
  // CancelFits, then joins the fit thread.
  void StopFits() { fits_.Stop(); }

  // What /metrics exports (Prometheus): gauges of the current state and
  // counters since this process started.
  struct Stats {
    std::map<std::string, int64_t> trials_by_state;  // TrialState name -> n
    std::map<std::string, int64_t> sweeps_by_state;  // SweepState name -> n
    int64_t workers_live = 0;  // heard from within 3 heartbeat intervals
    int64_t points_ingested = 0;
    int64_t leases_expired = 0;      // by TTL
    int64_t leases_worker_lost = 0;  // expired, worker silent 3 intervals
    int64_t fits = 0;
    double fit_seconds = 0;
  };
  Stats GetStats();

 private:
  // Recover's loading of the stored state into memory.
  absl::Status RecoverLocked(std::vector<SweepRecord> records,
                             std::vector<WorkerRecord> workers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  SweepRecord* FindSweepLocked(const std::string& sweep_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TrialRecord* FindTrialLocked(const std::string& trial_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The trial whose current lease `lease` is, held by `worker_id` (renewed
  // when `renew`), or ABORTED / NOT_FOUND.
  absl::StatusOr<TrialRecord*> FindLeasedLocked(const std::string& worker_id,
                                                const v1::LeaseRef& lease,
                                                bool renew)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes again what a store error left unsaved while memory moved on
  // (the reaper's and RefreshSweep's writes); keeps what fails again.
  void SaveUnsaved() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Re-derives the sweep's state from its trials; applies a change in
  // memory and queues the fit when the sweep just ended. Returns the new
  // state to persist (RefreshSweep), if it changed.
  std::optional<v1::SweepState> RefreshSweepLocked(SweepRecord& s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // AdvanceDesign, then (when it lets the sweep end) RefreshSweepLocked,
  // then persists the change (on a store error: in unsaved_sweeps_, written
  // again by the next ReapExpiredLeases).
  void RefreshSweep(const std::string& sweep_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // The sweep's design step (core_adaptive.cc, coordinator/sweep/adaptive.h):
  // a fixed grid's design warnings when another budget has finished; an
  // adaptive grid's planner once all its trials have ended, its new trials
  // committed (AddTrials) and made leasable. Plans under write_mu_ only (a
  // copy of the trials taken under mu_), so heartbeats, leases and reads go
  // on. False while the sweep must go on (trials added, or not all ended,
  // or the commit failed: then in unplanned_sweeps_, planned again by the
  // next ReapExpiredLeases).
  bool AdvanceDesign(const std::string& sweep_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the current attempt as retryable in `t`: PENDING or FAILED.
  void RetryOrFailLocked(TrialRecord& t, const std::string& reason,
                         int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `ended` := the outcome `r` means for the trial: unchanged from rank 0's
  // worker; RETRYABLE from a gang peer (its ranks ended early);
  // INVALID_ARGUMENT for a peer's SUCCEEDED. Under mu_.
  absl::Status GangPeerOutcome(const v1::ReportOutcomeRequest& r,
                               v1::ReportOutcomeRequest& ended) const;
  // The outcome `r` applied to `t` (memory only).
  void EndTrialLocked(TrialRecord& t, const v1::ReportOutcomeRequest& r,
                      int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The trunk `trunk`'s PENDING branches as they become by
  // BranchOnTrunkEnd (coordinator/scheduler/policy.h) now that the trunk is
  // in its state: copies to commit and then apply; empty for a non-trunk or
  // a trunk whose branches wait.
  std::vector<TrialRecord> BranchesAfterTrunkLocked(const TrialRecord& trunk,
                                                    int64_t now_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Sweep ViewLocked(const SweepRecord& s, bool with_trials) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sweep.pending_reason: why no live worker may run its pending trials
  // (dataset_check.h), "" when one may or none is pending.
  std::string PendingReasonLocked(const SweepRecord& s) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void IndexLocked(SweepRecord& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The sweep's fit, computed under no lock and stored (if not stale);
  // `final` as FitSweep decides when unset.
  absl::StatusOr<v1::ScalingLawFit> FitSweepAs(const std::string& sweep_id,
                                               std::optional<bool> final);
  // INVALID_ARGUMENT / NOT_FOUND as GetSweep, else OK.
  absl::Status RequestFitCheck(const std::string& sweep_id);
  v1::ScalingLawFit ComputeFit(const std::vector<TrialRecord>& trials,
                               bool final) const;
  int64_t NowMs() const;
  // The current attempt of `trial_id` ended now (Trial.attempt_seconds).
  void EndAttemptTimeLocked(const std::string& trial_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  TrialStore* const store_;
  const Clock* const clock_;
  const CoreOptions options_;
  LeaseTable leases_;
  LogBook logs_;
  FitQueue fits_;

  // ---- The sweep book.
  // Orders the state-changing calls (one at a time): held across their
  // commits, so that the store sees writes in the order memory does. Never
  // taken by a heartbeat, a read or a metrics batch (but a trial's first).
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // Guards the book's memory; never held during a commit or a fit.
  mutable absl::Mutex mu_;
  std::deque<SweepRecord> sweeps_
      ABSL_GUARDED_BY(mu_);  // submit order; stable addresses
  std::map<std::string, SweepRecord*> sweep_index_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, TrialRecord*> trial_index_ ABSL_GUARDED_BY(mu_);
  // Trial.attempt_seconds, in memory only (by trial id): the summed wall
  // time of ended attempts, the start of the current one, and whether the
  // trial had attempts before this process recovered it.
  struct AttemptTime {
    int64_t ended_ms = 0;
    std::optional<int64_t> started_ms;
    bool partial = false;
  };
  std::map<std::string, AttemptTime> attempt_times_ ABSL_GUARDED_BY(mu_);
  // Writes that failed (storage faults) after memory moved on, written
  // again by SaveUnsaved, so that no attempt row stays open.
  struct UnsavedEnd {
    uint32_t attempt = 0;
    std::string outcome;
    int exit_code = 0;
    std::string message;
    int64_t now_ms = 0;
  };
  std::map<std::pair<std::string, uint32_t>, UnsavedEnd> unsaved_ends_
      ABSL_GUARDED_BY(mu_);  // by (trial id, attempt)
  std::set<std::string> unsaved_trials_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> unsaved_sweeps_ ABSL_GUARDED_BY(mu_);
  // Adaptive sweeps whose planned trials the store refused (AdvanceDesign).
  std::set<std::string> unplanned_sweeps_ ABSL_GUARDED_BY(mu_);
  // Fixed grids: how many budgets had finished when the design warnings
  // were last computed (by sweep id; AdvanceDesign).
  std::map<std::string, int> design_budgets_done_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> points_ingested_{0};
  // Orders a fit's stale check, commit and apply per core (fits are rare).
  absl::Mutex fit_store_mu_;
  int64_t fits_done_ ABSL_GUARDED_BY(mu_) = 0;
  double fit_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_epoch_ ABSL_GUARDED_BY(mu_) = 1;
  // Trunk id -> the steps whose checkpoints the trunk reported kept (metric
  // point kCheckpointKeptMetric). In memory only: after a restart a branch
  // waits for its trunk's next report (a retried trunk replays its history)
  // or its success (docs/architecture.md "Trunks and branches").
  std::map<std::string, std::set<uint64_t>> kept_checkpoints_
      ABSL_GUARDED_BY(mu_);
  // The head GPU trial's reserved worker, from the last Schedule call.
  std::optional<Reservation> reservation_ ABSL_GUARDED_BY(mu_);
  // Gang peers' assignments not yet fetched, by worker (docs/architecture.md
  // §2.3): each peer gets its share at its next LeaseTrial while the lease is
  // still current.
  std::map<std::string, std::vector<v1::LeaseTrialResponse>> gang_assignments_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_CORE_H_
