// SqliteTrialStore: the production TrialStore. SQLite in WAL mode, foreign
// keys on, schema versioned with PRAGMA user_version. Every write goes
// through one SqliteWriter thread, which commits all writes waiting at that
// moment in one transaction; reads open their own read-only connections.
#ifndef ISOFLOP_COORDINATOR_STORE_SQLITE_TRIAL_STORE_H_
#define ISOFLOP_COORDINATOR_STORE_SQLITE_TRIAL_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/store/sqlite.h"
#include "coordinator/store/trial_store.h"

namespace isoflop::coordinator {

class SqliteTrialStore final : public TrialStore {
 public:
  // Opens or creates the database at `path` and migrates its schema.
  // UNAVAILABLE if the file cannot be opened; FAILED_PRECONDITION if it was
  // written by a newer schema version, another process has it open for
  // writing (one coordinator per database, enforced by a lock file), it
  // fails options.check (corrupt) or it is not isoflop's (SqliteWriter::Open
  // says how each is told). `fsync_commits` as SqliteWriterOptions
  // (default: crash-safe, not power-loss-safe, about 2x the ingest rate).
  // A write that meets a storage fault (disk full, I/O error) is retried as
  // options say, then answers UNAVAILABLE: nothing of it stored.
  static absl::StatusOr<std::unique_ptr<SqliteTrialStore>> Open(
      const std::string& path, bool fsync_commits = false);
  static absl::StatusOr<std::unique_ptr<SqliteTrialStore>> Open(
      const std::string& path, SqliteWriterOptions options);

  // The schema version this binary writes (PRAGMA user_version).
  static int SchemaVersion();

  absl::Status InsertSweep(const SweepRecord& sweep) override;
  absl::Status UpdateSweepState(const std::string& sweep_id,
                                v1::SweepState state) override;
  absl::Status UpdateSweepPaused(const std::string& sweep_id,
                                 bool paused) override;
  absl::Status UpdateSweepConfig(const std::string& sweep_id,
                                 const v1::SweepConfig& config) override;
  absl::Status UpdateTrials(const std::vector<TrialRecord>& trials) override;
  absl::Status StartAttempt(const TrialRecord& trial, int64_t now_ms) override;
  absl::Status EndAttempt(const std::string& trial_id, uint32_t attempt,
                          const std::string& outcome, int exit_code,
                          const std::string& message, int64_t now_ms) override;
  absl::Status UpsertWorker(const std::string& worker_id,
                            const v1::WorkerResources& resources,
                            int64_t now_ms) override;
  absl::Status UpdateWorkerDraining(const std::string& worker_id,
                                    bool draining) override;
  absl::Status TouchWorker(const std::string& worker_id,
                           int64_t now_ms) override;
  absl::StatusOr<int> InsertMetrics(
      const std::string& trial_id, uint32_t attempt,
      const std::vector<v1::MetricPoint>& points) override;
  absl::Status StoreFit(const std::string& sweep_id,
                        const v1::ScalingLawFit& fit, int64_t now_ms) override;
  absl::StatusOr<std::vector<SweepRecord>> LoadAll() override;
  absl::StatusOr<int64_t> CountMetrics(const std::string& trial_id,
                                       uint32_t attempt) override;
  absl::StatusOr<uint64_t> AppendTrialLog(const std::string& trial_id,
                                          uint32_t attempt, uint64_t offset,
                                          const std::string& data) override;
  absl::StatusOr<TrialLogWindow> ReadTrialLog(const std::string& trial_id,
                                              uint32_t attempt,
                                              uint64_t offset) override;
  absl::StatusOr<std::vector<WorkerRecord>> LoadWorkers() override;

 private:
  explicit SqliteTrialStore(std::unique_ptr<SqliteWriter> writer)
      : writer_(std::move(writer)) {}
  std::unique_ptr<SqliteWriter> writer_;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_STORE_SQLITE_TRIAL_STORE_H_
