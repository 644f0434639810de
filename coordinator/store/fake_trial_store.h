// FakeTrialStore: an in-memory TrialStore for tests of the service core. It
// keeps the same contract as SqliteTrialStore (the conformance suite in
// tests/coordinator/trial_store_test.cc runs against both), and can be told
// to fail its next writes to test error paths.
#ifndef ISOFLOP_COORDINATOR_STORE_FAKE_TRIAL_STORE_H_
#define ISOFLOP_COORDINATOR_STORE_FAKE_TRIAL_STORE_H_

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "coordinator/store/trial_reader.h"
#include "coordinator/store/trial_store.h"

namespace isoflop::coordinator {

class FakeTrialStore final : public TrialStore, public TrialReader {
 public:
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

  // Every write from now on returns `status` (OK restores normal service).
  void FailWrites(absl::Status status);
  // The outcome recorded by EndAttempt ("" if none).
  std::string AttemptOutcome(const std::string& trial_id,
                             uint32_t attempt) const;

 private:
  // (trial, step, name); the value is (attempt, value).
  using MetricKey = std::tuple<std::string, uint64_t, std::string>;
  TrialRecord* FindTrialLocked(const std::string& trial_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The row of a trial, with its attempt's latest progress points.
  TrialRow RowLocked(const TrialRecord& t) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::Status fail_writes_ ABSL_GUARDED_BY(mu_);
  std::vector<SweepRecord> sweeps_ ABSL_GUARDED_BY(mu_);  // insertion order
  std::map<std::pair<std::string, uint32_t>, AttemptRow> attempts_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, WorkerRecord> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> registered_ms_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;  // writes so far
  std::map<MetricKey, std::pair<uint32_t, double>> metrics_
      ABSL_GUARDED_BY(mu_);
  // (trial, attempt) -> chunk start -> bytes.
  std::map<std::pair<std::string, uint32_t>, std::map<uint64_t, std::string>>
      logs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_STORE_FAKE_TRIAL_STORE_H_
