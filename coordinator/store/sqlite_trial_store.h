// The coordinator's persistent state in SQLite (DESIGN.md §4). Only the
// coordinator opens it for writing; all writes go through one SqliteWriter.
#ifndef ISOFLOP_COORDINATOR_STORE_STORE_H_
#define ISOFLOP_COORDINATOR_STORE_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/store/sqlite.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

// A trial with the lease bookkeeping the wire type does not carry.
struct TrialRecord {
  v1::Trial trial;
  int ordinal = 0;          // position in its sweep (FIFO order)
  uint64_t lease_epoch = 0;  // of the current/last attempt
};

struct SweepRecord {
  v1::Sweep sweep;  // config, state, created, fit (trials kept apart)
  std::vector<TrialRecord> trials;
};

class Store {
 public:
  // Opens or creates `path`, migrating the schema.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);

  // One transaction: the sweep and all its trials, or nothing.
  absl::Status InsertSweep(const SweepRecord& sweep);
  absl::Status UpdateSweepState(const std::string& sweep_id, v1::SweepState state);
  // Writes the runtime columns of each trial (state, attempt, epoch, ...).
  absl::Status UpdateTrials(const std::vector<TrialRecord>& trials);
  absl::Status StartAttempt(const TrialRecord& t, int64_t now_ms);
  absl::Status EndAttempt(const std::string& trial_id, uint32_t attempt,
                          const std::string& outcome, int exit_code,
                          const std::string& message, int64_t now_ms);
  absl::Status UpsertWorker(const std::string& id, const v1::WorkerResources& r,
                            int64_t now_ms);
  absl::Status TouchWorker(const std::string& id, int64_t now_ms);
  // INSERT OR IGNORE on (trial, attempt, step, name): re-sent batches are no-ops.
  // Returns how many rows were new.
  absl::StatusOr<int> InsertMetrics(const std::string& trial_id, uint32_t attempt,
                                    const std::vector<v1::MetricPoint>& points);
  absl::Status StoreFit(const std::string& sweep_id, const v1::ScalingLawFit& fit,
                        int64_t now_ms);
  // Everything, for recovery at start-up (sweeps by creation, trials by ordinal).
  absl::StatusOr<std::vector<SweepRecord>> LoadAll();

 private:
  explicit Store(std::unique_ptr<SqliteWriter> writer) : writer_(std::move(writer)) {}
  std::unique_ptr<SqliteWriter> writer_;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_STORE_STORE_H_
