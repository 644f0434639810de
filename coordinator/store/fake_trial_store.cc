#include "coordinator/store/fake_trial_store.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <tuple>
#include <variant>

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
  return it == attempts_.end() ? "" : it->second.outcome;
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
  ++version_;
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

absl::Status FakeTrialStore::AddTrials(const std::string& sweep_id,
                                       const std::vector<TrialRecord>& trials) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  SweepRecord* sweep = nullptr;
  for (SweepRecord& s : sweeps_) {
    if (s.sweep.id() == sweep_id) sweep = &s;
  }
  if (sweep == nullptr) {
    return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, ": not found"));
  }
  for (const TrialRecord& t : trials) {
    if (FindTrialLocked(t.trial.spec().trial_id()) != nullptr) {
      return absl::AlreadyExistsError(
          absl::StrCat("trial ", t.trial.spec().trial_id(), ": exists"));
    }
  }
  ++version_;
  sweep->trials.insert(sweep->trials.end(), trials.begin(), trials.end());
  std::stable_sort(sweep->trials.begin(), sweep->trials.end(),
                   [](const TrialRecord& a, const TrialRecord& b) {
                     return a.ordinal < b.ordinal;
                   });
  return absl::OkStatus();
}

absl::Status FakeTrialStore::UpdateSweepState(const std::string& sweep_id,
                                              v1::SweepState state) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  ++version_;
  for (SweepRecord& s : sweeps_) {
    if (s.sweep.id() == sweep_id) s.sweep.set_state(state);
  }
  return absl::OkStatus();
}

absl::Status FakeTrialStore::UpdateSweepPaused(const std::string& sweep_id,
                                               bool paused) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  ++version_;
  for (SweepRecord& s : sweeps_) {
    if (s.sweep.id() == sweep_id) s.sweep.set_paused(paused);
  }
  return absl::OkStatus();
}

absl::Status FakeTrialStore::UpdateSweepConfig(const std::string& sweep_id,
                                               const v1::SweepConfig& config) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  ++version_;
  for (SweepRecord& s : sweeps_) {
    if (s.sweep.id() == sweep_id) *s.sweep.mutable_config() = config;
  }
  return absl::OkStatus();
}

absl::Status FakeTrialStore::UpdateTrials(
    const std::vector<TrialRecord>& trials) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  ++version_;
  for (const TrialRecord& r : trials) {
    TrialRecord* stored = FindTrialLocked(r.trial.spec().trial_id());
    if (stored == nullptr) continue;
    stored->trial = r.trial;
    stored->lease_epoch = r.lease_epoch;
  }
  return absl::OkStatus();
}

absl::Status FakeTrialStore::StartAttempt(const TrialRecord& trial,
                                          int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  ++version_;
  attempts_[{trial.trial.spec().trial_id(), trial.trial.attempt()}] =
      AttemptRow{.attempt = trial.trial.attempt(),
                 .worker_id = trial.trial.worker_id(),
                 .lease_epoch = trial.lease_epoch,
                 .started_unix_ms = now_ms};
  return absl::OkStatus();
}

absl::Status FakeTrialStore::EndAttempt(
    const std::string& trial_id, uint32_t attempt, const std::string& outcome,
    int exit_code, const std::string& message, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  ++version_;
  auto it = attempts_.find({trial_id, attempt});
  if (it != attempts_.end()) {
    it->second.outcome = outcome;
    it->second.exit_code = exit_code;
    it->second.message = message;
    it->second.ended_unix_ms = now_ms;
  }
  return absl::OkStatus();
}

absl::Status FakeTrialStore::UpsertWorker(const std::string& worker_id,
                                          const v1::WorkerResources& resources,
                                          int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  ++version_;
  registered_ms_.try_emplace(worker_id, now_ms);
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
  ++version_;
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.draining = draining;
  return absl::OkStatus();
}

absl::Status FakeTrialStore::RemoveWorker(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  ++version_;
  workers_.erase(worker_id);
  return absl::OkStatus();
}

absl::Status FakeTrialStore::TouchWorker(const std::string& worker_id,
                                         int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  ++version_;
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.last_heartbeat_unix_ms = now_ms;
  return absl::OkStatus();
}

absl::StatusOr<int> FakeTrialStore::InsertMetrics(
    const std::string& trial_id, uint32_t attempt,
    const std::vector<v1::MetricPoint>& points) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(fail_writes_);
  ++version_;
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
  ++version_;
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
  ++version_;
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

// TrialReader, as sqlite_trial_reader.cc answers it.

namespace {
// A sort column's value; none for SQL's NULL (a NaN), sorted last.
using SortKey = std::optional<std::variant<double, std::string>>;
SortKey NumKey(double v) {
  return std::isnan(v) ? SortKey()
                       : SortKey(std::variant<double, std::string>(v));
}
SortKey TextKey(std::string v) {
  return SortKey(std::variant<double, std::string>(std::move(v)));
}
}  // namespace

TrialRow FakeTrialStore::RowLocked(const TrialRecord& r) const {
  const v1::Trial& t = r.trial;
  TrialRow row{.id = t.spec().trial_id(),
               .ordinal = r.ordinal,
               .spec = t.spec(),
               .state = v1::TrialState_Name(t.state()),
               .attempt = t.attempt(),
               .worker_id = t.worker_id(),
               .step = static_cast<int64_t>(t.step()),
               .train_loss = t.train_loss(),
               .val_loss = t.val_loss(),
               .tokens_per_s = t.tokens_per_s(),
               .updated_unix_ms = t.updated_unix_ms(),
               .error = t.error()};
  if (t.attempt() == 0) return row;
  for (const auto& [key, value] : metrics_) {
    const auto& [trial, step, name] = key;
    if (trial != row.id || value.first != t.attempt()) continue;
    if (name == "train_loss") {
      row.step = std::max(row.step, static_cast<int64_t>(step));
      row.train_loss = value.second;
    } else if (name == "tokens_per_s") {
      row.tokens_per_s = value.second;
    }
  }
  return row;
}

absl::StatusOr<std::vector<SweepSummary>> FakeTrialStore::ReadSweeps(
    const std::string& only) {
  absl::MutexLock lock(&mu_);
  std::vector<SweepSummary> out;
  for (const SweepRecord& r : sweeps_) {
    if (!only.empty() && r.sweep.id() != only) continue;
    SweepSummary s{.id = r.sweep.id(),
                   .name = r.sweep.config().name(),
                   .state = v1::SweepState_Name(r.sweep.state()),
                   .created_unix_ms = r.sweep.created_unix_ms(),
                   .paused = r.sweep.paused(),
                   .has_fit = r.sweep.has_fit(),
                   .config = r.sweep.config()};
    for (const TrialRecord& t : r.trials) {
      ++s.counts[v1::TrialState_Name(t.trial.state())];
      const double loss = t.trial.val_loss();
      if (t.trial.state() == v1::SUCCEEDED && !std::isnan(loss) &&
          !(loss >= s.best_val_loss)) {
        s.best_val_loss = loss;
      }
    }
    out.push_back(std::move(s));
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.created_unix_ms, a.id) <
           std::tie(b.created_unix_ms, b.id);
  });
  return out;
}

absl::StatusOr<TrialPage> FakeTrialStore::ReadTrialPage(
    const std::string& sweep_id, const TrialPageQuery& q) {
  using Key = SortKey;
  static const auto* kKeys =
      new std::map<std::string, std::function<Key(const TrialRecord&)>>{
          {"ordinal", [](const auto& r) { return NumKey(r.ordinal); }},
          {"n",
           [](const auto& r) {
             return NumKey(static_cast<double>(r.trial.spec().n_total()));
           }},
          {"d",
           [](const auto& r) {
             return NumKey(static_cast<double>(r.trial.spec().tokens()));
           }},
          {"flops",
           [](const auto& r) { return NumKey(r.trial.spec().flops_budget()); }},
          {"state",
           [](const auto& r) {
             return TextKey(v1::TrialState_Name(r.trial.state()));
           }},
          {"attempt", [](const auto& r) { return NumKey(r.trial.attempt()); }},
          {"loss",
           [](const auto& r) {
             return NumKey(std::isnan(r.trial.val_loss()) ? r.trial.train_loss()
                                                          : r.trial.val_loss());
           }},
          {"tokens_per_s",
           [](const auto& r) { return NumKey(r.trial.tokens_per_s()); }},
          {"worker",
           [](const auto& r) { return TextKey(r.trial.worker_id()); }},
          {"updated", [](const auto& r) {
             return NumKey(static_cast<double>(r.trial.updated_unix_ms()));
           }}};
  const auto key = kKeys->find(q.sort);
  if (key == kKeys->end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sort = \"", q.sort.substr(0, 32),
        "\": must be one of ordinal, n, d, flops, state, attempt, loss, "
        "tokens_per_s, worker, updated"));
  }
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<Key, const TrialRecord*>> match;
  for (const SweepRecord& s : sweeps_) {
    if (s.sweep.id() != sweep_id) continue;
    for (const TrialRecord& t : s.trials) {
      const std::string& id = t.trial.spec().trial_id();
      if (!q.state.empty() && v1::TrialState_Name(t.trial.state()) != q.state)
        continue;
      if (!q.search.empty() && id.find(q.search) == std::string::npos &&
          t.trial.worker_id().find(q.search) == std::string::npos)
        continue;
      match.emplace_back(key->second(t), &t);
    }
  }
  std::sort(match.begin(), match.end(), [&q](const auto& a, const auto& b) {
    if (a.first.has_value() != b.first.has_value()) return a.first.has_value();
    if (a.first != b.first) {
      return q.descending ? *b.first < *a.first : *a.first < *b.first;
    }
    return q.descending ? b.second->ordinal < a.second->ordinal
                        : a.second->ordinal < b.second->ordinal;
  });
  TrialPage page{.total = static_cast<int64_t>(match.size())};
  for (int64_t i = q.offset; i < static_cast<int64_t>(match.size()) &&
                             i < int64_t{q.offset} + q.limit;
       ++i) {
    page.rows.push_back(RowLocked(*match[static_cast<size_t>(i)].second));
  }
  return page;
}

namespace {
TrialRef RefOf(const std::string& sweep_id, const TrialRecord& t) {
  return {.id = t.trial.spec().trial_id(),
          .sweep_id = sweep_id,
          .state = v1::TrialState_Name(t.trial.state()),
          .worker_id = t.trial.worker_id(),
          .attempt = t.trial.attempt(),
          .n_total = static_cast<int64_t>(t.trial.spec().n_total()),
          .tokens = static_cast<int64_t>(t.trial.spec().tokens()),
          .steps = static_cast<int64_t>(t.trial.spec().steps()),
          .flops_budget = t.trial.spec().flops_budget(),
          .flops_per_token = t.trial.spec().flops_per_token()};
}
}  // namespace

absl::StatusOr<std::vector<TrialRef>> FakeTrialStore::ReadTrialsById(
    const std::string& sweep_id, const std::vector<std::string>& ids) {
  absl::MutexLock lock(&mu_);
  std::vector<TrialRef> out;
  for (const std::string& id : ids) {
    for (const SweepRecord& s : sweeps_) {
      if (s.sweep.id() != sweep_id) continue;
      for (const TrialRecord& t : s.trials) {
        if (t.trial.spec().trial_id() == id) out.push_back(RefOf(sweep_id, t));
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<TrialRef>> FakeTrialStore::ReadRunningTrials(
    const std::string& sweep_id, int64_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<int, TrialRef>> found;
  for (const SweepRecord& s : sweeps_) {
    if (!sweep_id.empty() && s.sweep.id() != sweep_id) continue;
    for (const TrialRecord& t : s.trials) {
      if (t.trial.state() == v1::LEASED || t.trial.state() == v1::RUNNING) {
        found.emplace_back(t.ordinal, RefOf(s.sweep.id(), t));
      }
    }
  }
  std::stable_sort(
      found.begin(), found.end(),
      [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<TrialRef> out;
  for (auto& [ordinal, ref] : found) {
    if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
    out.push_back(std::move(ref));
  }
  return out;
}

absl::StatusOr<std::vector<TrialRef>> FakeTrialStore::ReadNewestTrials(
    const std::string& sweep_id, int64_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<const TrialRecord*> found;
  for (const SweepRecord& s : sweeps_) {
    if (s.sweep.id() != sweep_id) continue;
    for (const TrialRecord& t : s.trials) {
      if (t.trial.attempt() > 0) found.push_back(&t);
    }
  }
  std::sort(found.begin(), found.end(), [](const auto* a, const auto* b) {
    return std::make_pair(-a->trial.updated_unix_ms(), a->ordinal) <
           std::make_pair(-b->trial.updated_unix_ms(), b->ordinal);
  });
  std::vector<TrialRef> out;
  for (const TrialRecord* t : found) {
    if (static_cast<int64_t>(out.size()) >= limit) break;
    out.push_back(RefOf(sweep_id, *t));
  }
  return out;
}

absl::StatusOr<CurvePoints> FakeTrialStore::ReadCurve(const TrialRef& trial,
                                                      const std::string& name,
                                                      int64_t since_step) {
  absl::MutexLock lock(&mu_);
  CurvePoints out;
  for (const auto& [key, value] : metrics_) {  // by trial, then step
    const auto& [id, step, n] = key;
    if (id == trial.id && n == name &&
        static_cast<int64_t>(step) > since_step &&
        value.first <= trial.attempt) {
      out.emplace_back(static_cast<int64_t>(step), value.second);
    }
  }
  return out;
}

absl::StatusOr<std::optional<TrialDetail>> FakeTrialStore::ReadTrial(
    const std::string& trial_id) {
  absl::MutexLock lock(&mu_);
  for (const SweepRecord& s : sweeps_) {
    for (const TrialRecord& t : s.trials) {
      if (t.trial.spec().trial_id() != trial_id) continue;
      TrialDetail out{.sweep_id = s.sweep.id(), .row = RowLocked(t)};
      for (auto it = attempts_.lower_bound({trial_id, 0});
           it != attempts_.end() && it->first.first == trial_id; ++it) {
        out.attempts.push_back(it->second);
      }
      for (AttemptRow& a : out.attempts) {  // its latest tokens_per_s point
        for (const auto& [key, value] : metrics_) {
          if (std::get<0>(key) == trial_id &&
              std::get<2>(key) == "tokens_per_s" && value.first == a.attempt) {
            a.tokens_per_s = value.second;  // keys ascend by step
          }
        }
      }
      return out;
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<WorkerRow>> FakeTrialStore::ReadWorkers() {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerRow> out;
  for (const auto& [id, w] : workers_) {
    out.push_back({.id = id,
                   .hostname = w.resources.hostname(),
                   .gpus = w.resources.gpus(),
                   .cpu_slots = w.resources.cpu_slots(),
                   .registered_unix_ms = registered_ms_[id],
                   .last_heartbeat_unix_ms = w.last_heartbeat_unix_ms,
                   .draining = w.draining});
  }
  return out;
}

absl::StatusOr<std::vector<LawPoint>> FakeTrialStore::ReadLawPoints(
    const std::string& sweep_id) {
  absl::MutexLock lock(&mu_);
  std::vector<LawPoint> out;
  for (const SweepRecord& s : sweeps_) {
    if (s.sweep.id() != sweep_id) continue;
    for (const TrialRecord& t : s.trials) {
      const v1::TrialSpec& spec = t.trial.spec();
      if (t.trial.state() != v1::SUCCEEDED || std::isnan(t.trial.val_loss()))
        continue;
      out.push_back({.trial = spec.trial_id(),
                     .n = static_cast<double>(spec.n_total()),
                     .d = static_cast<double>(spec.tokens()),
                     .flops = spec.flops_budget(),
                     .loss = t.trial.val_loss(),
                     .unique_tokens = static_cast<double>(spec.unique_tokens()),
                     .epochs = spec.epochs()});
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.flops, a.n) < std::tie(b.flops, b.n);
  });
  return out;
}

absl::StatusOr<std::optional<v1::ScalingLawFit>> FakeTrialStore::ReadFit(
    const std::string& sweep_id) {
  absl::MutexLock lock(&mu_);
  for (const SweepRecord& s : sweeps_) {
    if (s.sweep.id() == sweep_id && s.sweep.has_fit()) return s.sweep.fit();
  }
  return std::nullopt;
}

int64_t FakeTrialStore::DataVersion() {
  absl::MutexLock lock(&mu_);
  return version_;
}

}  // namespace isoflop::coordinator
