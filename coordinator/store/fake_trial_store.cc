#include "coordinator/store/fake_trial_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace isoflop::coordinator {

void FakeTrialStore::FailWrites(absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_writes_ = std::move(status);
}

std::string FakeTrialStore::AttemptOutcome(const std::string& trial_id,
                                           uint32_t attempt) const {
  absl::MutexLock lock(&mu_);
  auto it = attempts_.find({trial_id, attempt});
  return it == attempts_.end() ? "" : it->second;
}

TrialRecord* FakeTrialStore::FindTrialLocked(const std::string& trial_id) {
  for (SweepRecord& s : sweeps_) {
    for (TrialRecord& t : s.trials) {
      if (t.trial.spec().trial_id() == trial_id) return &t;
    }
  }
  return nullptr;
}

absl::Status FakeTrialStore::InsertSweep(const SweepRecord& sweep) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  for (const SweepRecord& s : sweeps_) {
    if (s.sweep.id() == sweep.sweep.id()) {
      return absl::AlreadyExistsError(
          absl::StrCat("sweep ", sweep.sweep.id(), ": exists"));
    }
  }
  SweepRecord copy = sweep;
  copy.sweep.clear_trials();
  copy.sweep.clear_trial_counts();
  copy.sweep.clear_fit();
  sweeps_.push_back(std::move(copy));
  return absl::OkStatus();
}

absl::Status FakeTrialStore::UpdateSweepState(const std::string& sweep_id,
                                              v1::SweepState state) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  for (SweepRecord& s : sweeps_) {
    if (s.sweep.id() == sweep_id) s.sweep.set_state(state);
  }
  return absl::OkStatus();
}

absl::Status FakeTrialStore::UpdateSweepPaused(const std::string& sweep_id,
                                               bool paused) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  for (SweepRecord& s : sweeps_) {
    if (s.sweep.id() == sweep_id) s.sweep.set_paused(paused);
  }
  return absl::OkStatus();
}

absl::Status FakeTrialStore::UpdateSweepConfig(const std::string& sweep_id,
                                               const v1::SweepConfig& config) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  for (SweepRecord& s : sweeps_) {
    if (s.sweep.id() == sweep_id) *s.sweep.mutable_config() = config;
  }
  return absl::OkStatus();
}

absl::Status FakeTrialStore::UpdateTrials(
    const std::vector<TrialRecord>& trials) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  for (const TrialRecord& r : trials) {
    TrialRecord* stored = FindTrialLocked(r.trial.spec().trial_id());
    if (stored == nullptr) continue;
    const v1::TrialSpec spec = stored->trial.spec();
    stored->trial = r.trial;
    *stored->trial.mutable_spec() = spec;
    stored->lease_epoch = r.lease_epoch;
  }
  return absl::OkStatus();
}

absl::Status FakeTrialStore::StartAttempt(const TrialRecord& trial, int64_t) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  attempts_[{trial.trial.spec().trial_id(), trial.trial.attempt()}] = "";
  return absl::OkStatus();
}

absl::Status FakeTrialStore::EndAttempt(const std::string& trial_id,
                                        uint32_t attempt,
                                        const std::string& outcome, int,
                                        const std::string&, int64_t) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  auto it = attempts_.find({trial_id, attempt});
  if (it != attempts_.end()) it->second = outcome;
  return absl::OkStatus();
}

absl::Status FakeTrialStore::UpsertWorker(const std::string& worker_id,
                                          const v1::WorkerResources& resources,
                                          int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  WorkerRecord& w = workers_[worker_id];
  w.worker_id = worker_id;
  w.resources = resources;
  w.last_heartbeat_unix_ms = now_ms;
  return absl::OkStatus();
}

absl::Status FakeTrialStore::UpdateWorkerDraining(const std::string& worker_id,
                                                  bool draining) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.draining = draining;
  return absl::OkStatus();
}

absl::Status FakeTrialStore::TouchWorker(const std::string& worker_id,
                                         int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.last_heartbeat_unix_ms = now_ms;
  return absl::OkStatus();
}

absl::StatusOr<int> FakeTrialStore::InsertMetrics(
    const std::string& trial_id, uint32_t attempt,
    const std::vector<v1::MetricPoint>& points) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  if (FindTrialLocked(trial_id) == nullptr) {
    return absl::InternalError(
        absl::StrCat("metrics for unknown trial ", trial_id));
  }
  int inserted = 0;
  for (const v1::MetricPoint& p : points) {
    const auto [it, added] = metrics_.try_emplace(
        MetricKey{trial_id, p.step(), p.name()}, attempt, p.value());
    if (added || attempt > it->second.first) {
      it->second = {attempt, p.value()};
      ++inserted;
    }
  }
  return inserted;
}

absl::Status FakeTrialStore::StoreFit(const std::string& sweep_id,
                                      const v1::ScalingLawFit& fit, int64_t) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  for (SweepRecord& s : sweeps_) {
    if (s.sweep.id() == sweep_id) *s.sweep.mutable_fit() = fit;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SweepRecord>> FakeTrialStore::LoadAll() {
  absl::MutexLock lock(&mu_);
  return sweeps_;
}

absl::StatusOr<uint64_t> FakeTrialStore::AppendTrialLog(
    const std::string& trial_id, uint32_t attempt, uint64_t offset,
    const std::string& data) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  if (FindTrialLocked(trial_id) == nullptr) {
    return absl::InternalError(absl::StrCat("log of unknown trial ", trial_id));
  }
  std::map<uint64_t, std::string>& chunks = logs_[{trial_id, attempt}];
  uint64_t end = 0;
  for (const auto& [start, bytes] : chunks) {
    end = std::max<uint64_t>(end, start + bytes.size());
  }
  const uint64_t data_end = offset + data.size();
  if (!chunks.empty() && data_end <= end) return end;
  const uint64_t skip = !chunks.empty() && offset < end ? end - offset : 0;
  if (data.size() > skip) chunks[offset + skip] = data.substr(skip);
  end = std::max(end, data_end);
  std::erase_if(chunks, [end](const auto& kv) {
    return kv.first + kv.second.size() + kMaxLogBytes <= end;
  });
  std::erase_if(logs_, [&](const auto& kv) {
    return kv.first.first == trial_id &&
           kv.first.second + kLogAttemptsKept <= attempt;
  });
  return end;
}

absl::StatusOr<TrialLogWindow> FakeTrialStore::ReadTrialLog(
    const std::string& trial_id, uint32_t attempt, uint64_t offset) {
  absl::MutexLock lock(&mu_);
  TrialLogWindow out;
  auto it = logs_.find({trial_id, attempt});
  if (it == logs_.end() || it->second.empty()) return out;
  out.first_offset = it->second.begin()->first;
  for (const auto& [start, bytes] : it->second) {
    const uint64_t end = start + bytes.size();
    out.next_offset = std::max(out.next_offset, end);
    if (end <= offset) continue;
    out.data += bytes.substr(offset > start ? offset - start : 0);
  }
  return out;
}

absl::StatusOr<int64_t> FakeTrialStore::CountMetrics(
    const std::string& trial_id, uint32_t attempt) {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [key, value] : metrics_) {
    n += std::get<0>(key) == trial_id && value.first == attempt;
  }
  return n;
}

absl::StatusOr<std::vector<WorkerRecord>> FakeTrialStore::LoadWorkers() {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerRecord> out;
  for (const auto& [id, w] : workers_) out.push_back(w);
  return out;
}

}  // namespace isoflop::coordinator
