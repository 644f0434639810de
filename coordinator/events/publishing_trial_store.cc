#include "coordinator/events/publishing_trial_store.h"

#include <cmath>

#include "nlohmann/json.hpp"

namespace isoflop::coordinator::events {
namespace {

using nlohmann::json;

// JSON has no NaN: a loss never reported is null.
json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json TrialJson(const v1::Trial& t) {
  return {{"id", t.spec().trial_id()},
          {"state", v1::TrialState_Name(t.state())},
          {"attempt", t.attempt()},
          {"worker", t.worker_id()},
          {"step", t.step()},
          {"train_loss", Num(t.train_loss())},
          {"val_loss", Num(t.val_loss())},
          {"tokens_per_s", Num(t.tokens_per_s())},
          {"updated_unix_ms", t.updated_unix_ms()}};
}

}  // namespace

void PublishingTrialStore::Remember(const SweepRecord& sweep) {
  absl::MutexLock lock(&mu_);
  for (const TrialRecord& t : sweep.trials)
    sweep_of_trial_[t.trial.spec().trial_id()] = sweep.sweep.id();
}

std::string PublishingTrialStore::SweepOf(const std::string& trial_id) {
  absl::MutexLock lock(&mu_);
  auto it = sweep_of_trial_.find(trial_id);
  return it == sweep_of_trial_.end() ? std::string() : it->second;
}

absl::Status PublishingTrialStore::InsertSweep(const SweepRecord& sweep) {
  absl::Status s = inner_->InsertSweep(sweep);
  if (s.ok()) {
    Remember(sweep);
    feed_->Publish("sweep", sweep.sweep.id(),
                   json{{"sweep", sweep.sweep.id()}, {"state", "NEW"}}.dump());
  }
  return s;
}

absl::Status PublishingTrialStore::AddTrials(
    const std::string& sweep_id, const std::vector<TrialRecord>& trials) {
  absl::Status s = inner_->AddTrials(sweep_id, trials);
  if (s.ok()) {
    SweepRecord added;
    added.sweep.set_id(sweep_id);
    added.trials = trials;
    Remember(added);
    for (const TrialRecord& t : trials) {
      feed_->Publish("trial", sweep_id, TrialJson(t.trial).dump());
    }
  }
  return s;
}

absl::Status PublishingTrialStore::UpdateSweepState(const std::string& sweep_id,
                                                    v1::SweepState state) {
  absl::Status s = inner_->UpdateSweepState(sweep_id, state);
  if (s.ok()) {
    feed_->Publish(
        "sweep", sweep_id,
        json{{"sweep", sweep_id}, {"state", v1::SweepState_Name(state)}}
            .dump());
  }
  return s;
}

absl::Status PublishingTrialStore::UpdateSweepPaused(
    const std::string& sweep_id, bool paused) {
  absl::Status s = inner_->UpdateSweepPaused(sweep_id, paused);
  if (s.ok()) {
    feed_->Publish("sweep", sweep_id,
                   json{{"sweep", sweep_id}, {"paused", paused}}.dump());
  }
  return s;
}

absl::Status PublishingTrialStore::UpdateSweepConfig(
    const std::string& sweep_id, const v1::SweepConfig& config) {
  return inner_->UpdateSweepConfig(sweep_id, config);
}

absl::Status PublishingTrialStore::UpdateTrials(
    const std::vector<TrialRecord>& trials) {
  absl::Status s = inner_->UpdateTrials(trials);
  if (!s.ok()) return s;
  for (const TrialRecord& r : trials) {
    feed_->Publish("trial", r.trial.spec().sweep_id(),
                   TrialJson(r.trial).dump());
  }
  return s;
}

absl::Status PublishingTrialStore::StartAttempt(const TrialRecord& trial,
                                                int64_t now_ms) {
  return inner_->StartAttempt(trial, now_ms);
}

absl::Status PublishingTrialStore::EndAttempt(
    const std::string& trial_id, uint32_t attempt, const std::string& outcome,
    int exit_code, const std::string& message, int64_t now_ms) {
  return inner_->EndAttempt(trial_id, attempt, outcome, exit_code, message,
                            now_ms);
}

absl::Status PublishingTrialStore::UpsertWorker(
    const std::string& worker_id, const v1::WorkerResources& resources,
    int64_t now_ms) {
  absl::Status s = inner_->UpsertWorker(worker_id, resources, now_ms);
  if (s.ok()) {
    feed_->Publish(
        "worker", "",
        json{{"worker", worker_id}, {"last_heartbeat_unix_ms", now_ms}}.dump());
  }
  return s;
}

absl::Status PublishingTrialStore::UpdateWorkerDraining(
    const std::string& worker_id, bool draining) {
  absl::Status s = inner_->UpdateWorkerDraining(worker_id, draining);
  if (s.ok()) {
    feed_->Publish("worker", "",
                   json{{"worker", worker_id}, {"draining", draining}}.dump());
  }
  return s;
}

absl::Status PublishingTrialStore::RemoveWorker(const std::string& worker_id) {
  absl::Status s = inner_->RemoveWorker(worker_id);
  if (s.ok()) {
    feed_->Publish("worker", "",
                   json{{"worker", worker_id}, {"left", true}}.dump());
  }
  return s;
}

absl::Status PublishingTrialStore::TouchWorker(const std::string& worker_id,
                                               int64_t now_ms) {
  absl::Status s = inner_->TouchWorker(worker_id, now_ms);
  if (s.ok()) {
    feed_->Publish(
        "worker", "",
        json{{"worker", worker_id}, {"last_heartbeat_unix_ms", now_ms}}.dump());
  }
  return s;
}

absl::StatusOr<int> PublishingTrialStore::InsertMetrics(
    const std::string& trial_id, uint32_t attempt,
    const std::vector<v1::MetricPoint>& points) {
  absl::StatusOr<int> inserted =
      inner_->InsertMetrics(trial_id, attempt, points);
  if (!inserted.ok() || *inserted == 0) return inserted;
  json rows = json::array();
  for (const v1::MetricPoint& p : points)
    rows.push_back(json::array({p.step(), p.name(), Num(p.value())}));
  feed_->Publish(
      "metric", SweepOf(trial_id),
      json{{"trial", trial_id}, {"attempt", attempt}, {"points", rows}}.dump());
  return inserted;
}

absl::Status PublishingTrialStore::StoreFit(const std::string& sweep_id,
                                            const v1::ScalingLawFit& fit,
                                            int64_t now_ms) {
  absl::Status s = inner_->StoreFit(sweep_id, fit, now_ms);
  if (s.ok()) {
    feed_->Publish(
        "fit", sweep_id,
        json{{"sweep", sweep_id}, {"n_points", fit.n_points()}}.dump());
  }
  return s;
}

absl::StatusOr<std::vector<SweepRecord>> PublishingTrialStore::LoadAll() {
  absl::StatusOr<std::vector<SweepRecord>> all = inner_->LoadAll();
  if (all.ok()) {
    for (const SweepRecord& s : *all) Remember(s);
  }
  return all;
}

absl::StatusOr<uint64_t> PublishingTrialStore::AppendTrialLog(
    const std::string& trial_id, uint32_t attempt, uint64_t offset,
    const std::string& data) {
  return inner_->AppendTrialLog(trial_id, attempt, offset, data);
}

absl::StatusOr<TrialLogWindow> PublishingTrialStore::ReadTrialLog(
    const std::string& trial_id, uint32_t attempt, uint64_t offset) {
  return inner_->ReadTrialLog(trial_id, attempt, offset);
}

absl::StatusOr<int64_t> PublishingTrialStore::CountMetrics(
    const std::string& trial_id, uint32_t attempt) {
  return inner_->CountMetrics(trial_id, attempt);
}

absl::StatusOr<std::vector<WorkerRecord>> PublishingTrialStore::LoadWorkers() {
  return inner_->LoadWorkers();
}

}  // namespace isoflop::coordinator::events
