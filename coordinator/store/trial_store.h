// TrialStore: the coordinator's persistent state (docs/architecture.md §3)
// behind an interface, so the service core is testable without SQLite. One
// conformance suite (tests/coordinator/trial_store_test.cc) runs against
// every implementation: SqliteTrialStore (production) and FakeTrialStore.
#ifndef ISOFLOP_COORDINATOR_STORE_TRIAL_STORE_H_
#define ISOFLOP_COORDINATOR_STORE_TRIAL_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

// A trial with the lease bookkeeping the wire type does not carry.
struct TrialRecord {
  v1::Trial trial;
  int ordinal = 0;           // position in its sweep (FIFO order)
  uint64_t lease_epoch = 0;  // of the current/last attempt; 0 = never leased
};

// A registered worker as stored (UpsertWorker, TouchWorker,
// UpdateWorkerDraining).
struct WorkerRecord {
  std::string worker_id;
  v1::WorkerResources resources;
  int64_t last_heartbeat_unix_ms = 0;
  bool draining = false;
};

// The trainer's log of one attempt as stored (AppendTrialLog): its last
// kMaxLogBytes (plus at most one chunk), for the trial's kLogAttemptsKept
// latest attempts. Offsets count bytes from the start of the attempt's log.
inline constexpr uint64_t kMaxLogBytes = 1 << 20;
inline constexpr uint32_t kLogAttemptsKept = 3;

// ReadTrialLog's answer; all zero when nothing is stored.
struct TrialLogWindow {
  uint64_t first_offset = 0;  // oldest byte kept
  uint64_t next_offset = 0;   // end of the bytes kept
  std::string data;  // kept bytes from max(offset, first_offset) on; a gap
                     // the worker left (AppendTrialLog) is skipped over
};

struct SweepRecord {
  v1::Sweep sweep;  // id, config, state, created, fit (no trials)
  std::vector<TrialRecord> trials;  // by ordinal
};

// Every method is thread-safe. A method that returns OK has made its write
// durable (committed) before returning; on error nothing of that call is
// written. Unknown ids in updates are ignored (OK, no rows changed).
class TrialStore {
 public:
  virtual ~TrialStore() = default;

  // The sweep and all its trials, or nothing. ALREADY_EXISTS if the id is
  // stored (the caller decides whether that is idempotent success).
  virtual absl::Status InsertSweep(const SweepRecord& sweep) = 0;
  // Adds trials to a stored sweep (an adaptive grid's next budget,
  // coordinator/sweep/adaptive.h), all or none, with the ordinals given
  // (the core numbers them after the sweep's). NOT_FOUND for an unknown sweep;
  // ALREADY_EXISTS (nothing written) when one of the trial ids is stored.
  virtual absl::Status AddTrials(const std::string& sweep_id,
                                 const std::vector<TrialRecord>& trials) = 0;
  virtual absl::Status UpdateSweepState(const std::string& sweep_id,
                                        v1::SweepState state) = 0;
  // Sweep.paused (PauseSweep / ResumeSweep); LoadAll reads it back.
  virtual absl::Status UpdateSweepPaused(const std::string& sweep_id,
                                         bool paused) = 0;
  // Replaces the sweep's stored config; the core changes only its
  // scheduling (a re-submit with other priority / max_concurrent_trials).
  // LoadAll reads it back.
  virtual absl::Status UpdateSweepConfig(const std::string& sweep_id,
                                         const v1::SweepConfig& config) = 0;
  // Writes the runtime fields of each trial (state, attempt, epoch, worker,
  // step, losses, error, updated) and its spec, whose shape and budget never
  // change but whose unique_tokens/epochs may be filled at lease.
  virtual absl::Status UpdateTrials(const std::vector<TrialRecord>& trials) = 0;
  // Records the start of the trial's current attempt (worker, epoch).
  virtual absl::Status StartAttempt(const TrialRecord& trial,
                                    int64_t now_ms) = 0;
  // Records how an attempt ended ("OUTCOME_SUCCEEDED", "LEASE_EXPIRED", ...).
  virtual absl::Status EndAttempt(const std::string& trial_id, uint32_t attempt,
                                  const std::string& outcome, int exit_code,
                                  const std::string& message,
                                  int64_t now_ms) = 0;
  // Inserts the worker or replaces its resources and heartbeat; keeps its
  // draining flag (a drained worker that registers again stays drained).
  virtual absl::Status UpsertWorker(const std::string& worker_id,
                                    const v1::WorkerResources& resources,
                                    int64_t now_ms) = 0;
  // WorkerRecord.draining (DrainWorker / UndrainWorker); LoadWorkers reads it
  // back.
  virtual absl::Status UpdateWorkerDraining(const std::string& worker_id,
                                            bool draining) = 0;
  virtual absl::Status TouchWorker(const std::string& worker_id,
                                   int64_t now_ms) = 0;
  // Deletes the worker's row (a worker that left: HeartbeatRequest.leaving);
  // its attempts keep its id. OK if there is none.
  virtual absl::Status RemoveWorker(const std::string& /*worker_id*/) {
    return absl::OkStatus();
  }
  // One point per (trial, step, name): a point of a later attempt than the
  // stored one replaces it (a resumed attempt re-reports steps an earlier
  // one stored; the latest wins), a re-sent point of the same or an older
  // attempt is a no-op. Returns how many points were new or replaced.
  virtual absl::StatusOr<int> InsertMetrics(
      const std::string& trial_id, uint32_t attempt,
      const std::vector<v1::MetricPoint>& points) = 0;
  // Replaces the sweep's fit.
  virtual absl::Status StoreFit(const std::string& sweep_id,
                                const v1::ScalingLawFit& fit,
                                int64_t now_ms) = 0;
  // Everything, for recovery at start-up: sweeps in creation order, trials
  // by ordinal, fits attached. Losses never reported read back as NaN.
  virtual absl::StatusOr<std::vector<SweepRecord>> LoadAll() = 0;
  // Every worker ever registered (UpsertWorker), by id, so that a restarted
  // coordinator still knows the workers whose trials it leased and which of
  // them are drained.
  virtual absl::StatusOr<std::vector<WorkerRecord>> LoadWorkers() = 0;
  // Stores the bytes of `data` (at `offset` in the attempt's log) past the
  // end already stored: a re-sent chunk is a no-op, a chunk past the end
  // leaves a gap. Then drops the attempt's chunks that end more than
  // kMaxLogBytes before the new end, and the logs of attempts older than the
  // trial's kLogAttemptsKept latest. Returns the new end.
  virtual absl::StatusOr<uint64_t> AppendTrialLog(const std::string& trial_id,
                                                  uint32_t attempt,
                                                  uint64_t offset,
                                                  const std::string& data) = 0;
  // The attempt's stored log from `offset` on.
  virtual absl::StatusOr<TrialLogWindow> ReadTrialLog(
      const std::string& trial_id, uint32_t attempt, uint64_t offset) = 0;
  // Number of metric rows of a trial whose stored value is `attempt`'s.
  virtual absl::StatusOr<int64_t> CountMetrics(const std::string& trial_id,
                                               uint32_t attempt) = 0;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_STORE_TRIAL_STORE_H_
