// PublishingTrialStore: a TrialStore that forwards every call to another
// store and, after each successful write the dashboard shows live (metric
// points, trial updates, fits, worker heartbeats), publishes it to an
// EventFeed. It sits between the Core and the SqliteTrialStore, so the live
// view needs no change to the core and sees exactly what was committed.
#ifndef ISOFLOP_COORDINATOR_EVENTS_PUBLISHING_TRIAL_STORE_H_
#define ISOFLOP_COORDINATOR_EVENTS_PUBLISHING_TRIAL_STORE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "coordinator/events/event_feed.h"
#include "coordinator/store/trial_store.h"

namespace isoflop::coordinator::events {

class PublishingTrialStore final : public TrialStore {
 public:
  // `inner` and `feed` are not owned and must outlive this store.
  PublishingTrialStore(TrialStore* inner, EventFeed* feed)
      : inner_(inner), feed_(feed) {}

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
  // Publishes one "metric" event per call:
  // {"trial":ID,"attempt":K,"points":[[step,"name",value],...]}.
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
  std::string SweepOf(const std::string& trial_id);
  void Remember(const SweepRecord& sweep);

  TrialStore* const inner_;
  EventFeed* const feed_;
  absl::Mutex mu_;
  std::map<std::string, std::string> sweep_of_trial_ ABSL_GUARDED_BY(mu_);
};

}  // namespace isoflop::coordinator::events

#endif  // ISOFLOP_COORDINATOR_EVENTS_PUBLISHING_TRIAL_STORE_H_
