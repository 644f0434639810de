// SqliteTrialStore: the production TrialStore. SQLite in WAL mode, foreign
// keys on, schema versioned with PRAGMA user_version. Every write goes
// through one SqliteWriter thread, which commits all writes waiting at that
// moment in one transaction; reads use read-only connections of their own
// (WAL readers never block the writer), kept in a small pool. The
// TrialReader queries are in sqlite_trial_reader.cc, the schema in
// schema.cc.
#ifndef ISOFLOP_COORDINATOR_STORE_SQLITE_TRIAL_STORE_H_
#define ISOFLOP_COORDINATOR_STORE_SQLITE_TRIAL_STORE_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/store/sqlite.h"
#include "coordinator/store/trial_reader.h"
#include "coordinator/store/trial_store.h"

namespace isoflop::coordinator {

class SqliteTrialStore final : public TrialStore, public TrialReader {
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
  absl::Status AddTrials(const std::string& sweep_id,
                         const std::vector<TrialRecord>& trials) override;
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
  absl::Status RemoveWorker(const std::string& worker_id) override;
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

  // TrialReader (sqlite_trial_reader.cc).
  absl::StatusOr<std::vector<SweepSummary>> ReadSweeps(
      const std::string& only) override;
  absl::StatusOr<TrialPage> ReadTrialPage(const std::string& sweep_id,
                                          const TrialPageQuery& q) override;
  absl::StatusOr<std::vector<TrialRef>> ReadTrialsById(
      const std::string& sweep_id,
      const std::vector<std::string>& ids) override;
  absl::StatusOr<std::vector<TrialRef>> ReadRunningTrials(
      const std::string& sweep_id, int64_t limit) override;
  absl::StatusOr<std::vector<TrialRef>> ReadNewestTrials(
      const std::string& sweep_id, int64_t limit) override;
  absl::StatusOr<CurvePoints> ReadCurve(const TrialRef& trial,
                                        const std::string& name,
                                        int64_t since_step) override;
  absl::StatusOr<std::optional<TrialDetail>> ReadTrial(
      const std::string& trial_id) override;
  absl::StatusOr<std::vector<WorkerRow>> ReadWorkers() override;
  absl::StatusOr<std::vector<LawPoint>> ReadLawPoints(
      const std::string& sweep_id) override;
  absl::StatusOr<std::optional<v1::ScalingLawFit>> ReadFit(
      const std::string& sweep_id) override;
  int64_t DataVersion() override;

 private:
  explicit SqliteTrialStore(std::unique_ptr<SqliteWriter> writer)
      : writer_(std::move(writer)) {}
  // A read-only connection from the pool (or a new one) for one query;
  // Release puts it back.
  absl::StatusOr<Connection> Acquire();
  void Release(Connection conn);
  // Runs `query` (sqlite3* -> absl::StatusOr<T>) on a pooled connection;
  // its statements end before the connection goes back.
  template <typename T, typename F>
  absl::StatusOr<T> WithReader(F&& query) {
    absl::StatusOr<Connection> conn = Acquire();
    if (!conn.ok()) return conn.status();
    absl::StatusOr<T> out = query(conn->get());
    Release(*std::move(conn));
    return out;
  }
  // The current attempt's latest train_loss and tokens_per_s points into
  // `row` (ended trials' from last_points_, which no longer change).
  absl::Status AddProgress(sqlite3* db, TrialRow& row);

  std::unique_ptr<SqliteWriter> writer_;
  absl::Mutex readers_mu_;
  std::vector<Connection> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
  // Held only for PRAGMA data_version (DataVersion).
  absl::Mutex version_mu_;
  Connection version_db_ ABSL_GUARDED_BY(version_mu_);
  // What an ended attempt's rows read from the metrics table, which no
  // longer changes for that (trial, attempt); a retry makes a new attempt
  // and a new key. Bounded: cleared when full.
  struct LastPoints {
    std::optional<std::pair<int64_t, double>> loss;  // step, train_loss
    std::optional<double> tokens_per_s;
  };
  absl::Mutex ended_mu_;
  std::map<std::pair<std::string, uint32_t>, LastPoints> last_points_
      ABSL_GUARDED_BY(ended_mu_);
  // A live trial's curve so far and the last step of `attempt` read into
  // it: the next ReadCurve reads only that attempt's rows past it.
  // (trial, metric) -> curve. Bounded: long curves are not kept; cleared
  // when full.
  struct LiveCurve {
    uint32_t attempt = 0;
    int64_t last_step = 0;
    CurvePoints points;
  };
  // The whole curve from live_curves_ plus the rows since; nullopt when not
  // kept or no longer appendable (read it all).
  absl::StatusOr<std::optional<CurvePoints>> ReadLiveCurve(
      sqlite3* db, const TrialRef& trial, const std::string& name);
  absl::Mutex live_mu_;
  std::map<std::pair<std::string, std::string>, LiveCurve> live_curves_
      ABSL_GUARDED_BY(live_mu_);
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_STORE_SQLITE_TRIAL_STORE_H_
