// Core: the worker-facing half (registration, leases, heartbeats, metrics,
// outcomes, the lease reaper) and the operator's view of the workers
// (ClusterService). Sweeps and analysis are in core.cc.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/policy.h"
#include "coordinator/service/core.h"

namespace isoflop::coordinator {
namespace {

constexpr int kMaxPointsPerBatch = 10000;

bool Active(v1::TrialState s) { return s == v1::LEASED || s == v1::RUNNING; }

absl::Status RequireWorkerId(const std::string& v) {
  if (v.empty() || v.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker_id = \"", v.substr(0, 32), "\": must be 1 to 128 characters"));
  }
  return absl::OkStatus();
}

bool MetricNameOk(const std::string& name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](unsigned char c) {
           return std::islower(c) || std::isdigit(c) || c == '_';
         });
}

absl::Status ValidatePoint(const v1::MetricPoint& p, int i, uint64_t max_step) {
  const std::string f = absl::StrCat("points[", i, "].");
  if (!MetricNameOk(p.name())) {
    return absl::InvalidArgumentError(
        absl::StrCat(f, "name = \"", p.name().substr(0, 64),
                     "\": must be 1 to 64 of [a-z0-9_]"));
  }
  if (!std::isfinite(p.value())) {
    return absl::InvalidArgumentError(absl::StrCat(
        f, "value = ", p.value(), ": must be finite (metric ", p.name(), ")"));
  }
  if (p.step() > max_step) {
    return absl::InvalidArgumentError(absl::StrCat(
        f, "step = ", p.step(), ": must be <= the trial's steps = ", max_step));
  }
  return absl::OkStatus();
}

// The trial's live view: last step, last training loss and throughput.
void ApplyProgress(const std::vector<v1::MetricPoint>& points, v1::Trial& t) {
  for (const v1::MetricPoint& p : points) {
    if (p.step() < t.step()) continue;  // an older, re-sent point
    t.set_step(p.step());
    if (p.name() == "train_loss") t.set_train_loss(p.value());
    if (p.name() == "tokens_per_s") t.set_tokens_per_s(p.value());
  }
}

}  // namespace

absl::Status Core::RequireWorkerLocked(const std::string& worker_id) {
  RETURN_IF_ERROR(RequireWorkerId(worker_id));
  if (!workers_.count(worker_id)) {
    return absl::NotFoundError(absl::StrCat(
        "worker ", worker_id, ": not registered (register again)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::RegisterWorkerResponse> Core::RegisterWorker(
    const v1::RegisterWorkerRequest& r) {
  const v1::WorkerResources& res = r.resources();
  if (res.gpus() == 0 && res.cpu_slots() == 0) {
    return absl::InvalidArgumentError(
        "resources.cpu_slots = 0 and resources.gpus = 0: a worker must offer "
        "at least one");
  }
  if (res.gpus() > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("resources.gpus = ", res.gpus(), ": must be <= 1024"));
  }
  if (res.cpu_slots() > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resources.cpu_slots = ", res.cpu_slots(), ": must be <= 4096"));
  }
  absl::MutexLock lock(&mu_);
  std::string id = r.worker_id();
  if (id.empty()) {
    id = MakeId("wk", absl::StrCat(res.hostname(), "/", NowMs(), "/",
                                   ++workers_registered_));
  }
  RETURN_IF_ERROR(RequireWorkerId(id));
  RETURN_IF_ERROR(store_->UpsertWorker(id, res, NowMs()));
  WorkerInfo& w = workers_[id];  // a drained worker stays drained
  w.seen_ms = NowMs();
  w.resources = res;
  v1::RegisterWorkerResponse out;
  out.set_worker_id(id);
  out.set_lease_ttl_ms(absl::ToInt64Milliseconds(options_.lease_ttl));
  out.set_heartbeat_interval_ms(
      absl::ToInt64Milliseconds(options_.heartbeat_interval));
  return out;
}

std::vector<WorkerCapacity> Core::GpuWorkersLocked(
    const v1::LeaseTrialRequest& r) const {
  std::map<std::string_view, uint32_t> leased_gpus;  // by worker
  for (const auto& [trial_id, lease] : leases_) {
    if (lease.gpus > 0) leased_gpus[lease.worker_id] += lease.gpus;
  }
  const int64_t lost_ms =
      absl::ToInt64Milliseconds(3 * options_.heartbeat_interval);
  std::vector<WorkerCapacity> out;
  for (const auto& [id, info] : workers_) {
    const uint32_t gpus = info.resources.gpus();
    if (gpus == 0 || info.draining || NowMs() - info.seen_ms >= lost_ms) {
      continue;
    }
    const auto it = leased_gpus.find(id);
    const uint32_t used =
        it == leased_gpus.end() ? 0 : std::min(gpus, it->second);
    out.push_back(
        {id, gpus, id == r.worker_id() ? r.free_gpus() : gpus - used});
  }
  return out;
}

absl::StatusOr<v1::LeaseTrialResponse> Core::LeaseTrial(
    const v1::LeaseTrialRequest& r) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireWorkerLocked(r.worker_id()));
  WorkerInfo& worker = workers_[r.worker_id()];
  worker.seen_ms = NowMs();
  v1::LeaseTrialResponse out;
  if (worker.draining) return out;  // until UndrainWorker
  ClusterView view;
  std::vector<std::vector<TrialRecord*>> records;  // as view.sweeps' pending
  bool gpu_pending = false;
  for (SweepRecord& s : sweeps_) {
    if (s.sweep.paused()) continue;  // held until ResumeSweep
    SweepQueue q;
    q.priority = s.sweep.config().scheduling().priority();
    q.max_concurrent_trials =
        s.sweep.config().scheduling().max_concurrent_trials();
    std::vector<TrialRecord*> pending;
    for (TrialRecord& t : s.trials) {
      q.active_trials += Active(t.trial.state());
      if (t.trial.state() != v1::PENDING) continue;
      q.pending.push_back({t.trial.spec().trial_id(), t.trial.spec().gpus()});
      gpu_pending |= t.trial.spec().gpus() > 0;
      pending.push_back(&t);
    }
    if (pending.empty()) continue;
    view.sweeps.push_back(std::move(q));
    records.push_back(std::move(pending));
  }
  if (gpu_pending) view.workers = GpuWorkersLocked(r);
  view.reservation = reservation_;
  const Decision decision =
      Schedule(view, {r.worker_id(), r.free_gpus(), r.free_cpu_slots()});
  if (!decision.pick.has_value()) {
    reservation_ = decision.reservation;
    return out;
  }
  TrialRecord& t = *records[decision.pick->sweep][decision.pick->trial];
  TrialRecord next = t;
  next.trial.set_state(v1::LEASED);
  next.trial.set_attempt(t.trial.attempt() + 1);
  next.trial.set_worker_id(r.worker_id());
  next.trial.set_updated_unix_ms(NowMs());
  next.lease_epoch = next_epoch_;
  RETURN_IF_ERROR(store_->UpdateTrials({next}));
  RETURN_IF_ERROR(store_->StartAttempt(next, NowMs()));
  t = std::move(next);
  reservation_ = decision.reservation;  // the pick is leased
  attempt_times_[t.trial.spec().trial_id()].started_ms = NowMs();
  ++next_epoch_;
  const absl::Time expires = clock_->Now() + options_.lease_ttl;
  leases_[t.trial.spec().trial_id()] = {r.worker_id(), expires,
                                        t.trial.spec().gpus()};
  out.set_has_assignment(true);
  *out.mutable_spec() = t.trial.spec();
  out.set_attempt(t.trial.attempt());
  out.set_lease_epoch(t.lease_epoch);
  out.set_lease_expires_unix_ms(absl::ToUnixMillis(expires));
  return out;
}

absl::StatusOr<TrialRecord*> Core::FindLeasedLocked(
    const std::string& worker_id, const v1::LeaseRef& lease) {
  TrialRecord* t = FindTrialLocked(lease.trial_id());
  if (t == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("lease.trial_id = ", lease.trial_id(), ": not found"));
  }
  auto it = leases_.find(lease.trial_id());
  if (it == leases_.end() || !Active(t->trial.state()) ||
      t->lease_epoch != lease.lease_epoch() ||
      t->trial.attempt() != lease.attempt() ||
      it->second.worker_id != worker_id) {
    return absl::AbortedError(absl::StrCat(
        "trial ", lease.trial_id(), " attempt ", lease.attempt(), " epoch ",
        lease.lease_epoch(), ": stale lease (current attempt ",
        t->trial.attempt(), " epoch ", t->lease_epoch, ", state ",
        v1::TrialState_Name(t->trial.state()), ")"));
  }
  return t;
}

absl::StatusOr<v1::HeartbeatResponse> Core::Heartbeat(
    const v1::HeartbeatRequest& r) {
  v1::HeartbeatResponse out;
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(RequireWorkerLocked(r.worker_id()));
    workers_[r.worker_id()].seen_ms = NowMs();
    for (const v1::LeaseRef& ref : r.leases()) {
      if (!FindLeasedLocked(r.worker_id(), ref).ok()) {
        *out.add_revoked() = ref;
        continue;
      }
      leases_[ref.trial_id()].expires = clock_->Now() + options_.lease_ttl;
    }
  }
  // Liveness for operators (workers.last_heartbeat_unix_ms); leases live in
  // memory, so this write needs no lock. A storage fault must not fail the
  // heartbeat: the leases were renewed, and a worker whose heartbeats fail
  // past its lease stops its trainers (the store counts and logs the fault).
  store_->TouchWorker(r.worker_id(), NowMs()).IgnoreError();
  return out;
}

absl::StatusOr<v1::ReportMetricsResponse> Core::ReportMetrics(
    const v1::ReportMetricsRequest& r) {
  if (r.points_size() > kMaxPointsPerBatch) {
    return absl::InvalidArgumentError(
        absl::StrCat("points: ", r.points_size(),
                     " in one batch: must be <= ", kMaxPointsPerBatch));
  }
  std::vector<v1::MetricPoint> points(r.points().begin(), r.points().end());
  for (v1::MetricPoint& p : points) {
    if (p.unix_ms() == 0)
      p.set_unix_ms(NowMs());  // the worker did not stamp it
  }
  uint32_t attempt = 0;
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(RequireWorkerLocked(r.worker_id()));
    ASSIGN_OR_RETURN(TrialRecord * t,
                     FindLeasedLocked(r.worker_id(), r.lease()));
    for (int i = 0; i < r.points_size(); ++i) {
      RETURN_IF_ERROR(ValidatePoint(r.points(i), i, t->trial.spec().steps()));
    }
    attempt = t->trial.attempt();
    const bool started = t->trial.state() == v1::LEASED;
    if (started) t->trial.set_state(v1::RUNNING);
    ApplyProgress(points, t->trial);
    t->trial.set_updated_unix_ms(NowMs());
    leases_[r.lease().trial_id()].expires = clock_->Now() + options_.lease_ttl;
    // Progress (step, last loss) is derivable from the metrics table; only
    // the state change is persisted here.
    if (started) RETURN_IF_ERROR(store_->UpdateTrials({*t}));
  }
  // Metric rows are idempotent and order-free: commit outside the lock so
  // that many workers' batches share the writer's transactions.
  ASSIGN_OR_RETURN(int inserted, store_->InsertMetrics(r.lease().trial_id(),
                                                       attempt, points));
  points_ingested_ += inserted;
  v1::ReportMetricsResponse out;
  out.set_accepted(static_cast<uint32_t>(inserted));
  return out;
}

absl::Status Core::RetryOrFailLocked(TrialRecord& t,
                                     const std::string& reason) {
  leases_.erase(t.trial.spec().trial_id());
  const uint32_t max_attempts = FindSweepLocked(t.trial.spec().sweep_id())
                                    ->sweep.config()
                                    .resources()
                                    .max_attempts();
  const bool retry = t.trial.attempt() - t.trial.retry_base() < max_attempts;
  t.trial.set_state(retry ? v1::PENDING : v1::FAILED);
  t.trial.set_error(
      retry ? absl::StrCat("attempt ", t.trial.attempt(), ": ", reason,
                           "; retrying")
            : absl::StrCat(reason, " (attempt ", t.trial.attempt(), " of ",
                           t.trial.retry_base() + max_attempts, ")"));
  t.trial.set_updated_unix_ms(NowMs());
  return store_->UpdateTrials({t});
}

absl::Status Core::EndTrialLocked(TrialRecord& t,
                                  const v1::ReportOutcomeRequest& r) {
  const std::string message = r.message().substr(0, kMaxMessageBytes);
  if (r.outcome() == v1::OUTCOME_RETRYABLE) {
    return RetryOrFailLocked(
        t, absl::StrCat("exit ", r.exit_code(), ": ", message));
  }
  leases_.erase(t.trial.spec().trial_id());
  t.trial.set_updated_unix_ms(NowMs());
  if (r.outcome() == v1::OUTCOME_SUCCEEDED) {
    t.trial.set_state(v1::SUCCEEDED);
    t.trial.set_val_loss(r.final_val_loss());
    if (std::isfinite(r.tokens_per_s()) && r.tokens_per_s() > 0) {
      t.trial.set_tokens_per_s(r.tokens_per_s());
    }
    t.trial.set_step(t.trial.spec().steps());
    t.trial.set_error("");
    const SweepRecord* s = FindSweepLocked(t.trial.spec().sweep_id());
    const auto succeeded = std::count_if(
        s->trials.begin(), s->trials.end(), [](const TrialRecord& other) {
          return other.trial.state() == v1::SUCCEEDED;
        });
    if (succeeded >= options_.refit_min_points) {
      QueueFitLocked(s->sweep.id(), /*final=*/false);
    }
  } else {
    t.trial.set_state(r.outcome() == v1::OUTCOME_FAILED ? v1::FAILED
                                                        : v1::CANCELLED);
    t.trial.set_error(absl::StrCat("exit ", r.exit_code(), ": ", message));
  }
  return store_->UpdateTrials({t});
}

absl::Status Core::ReportOutcome(const v1::ReportOutcomeRequest& r) {
  if (r.outcome() == v1::OUTCOME_UNSPECIFIED ||
      !v1::Outcome_IsValid(r.outcome())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "outcome = ", static_cast<int>(r.outcome()), ": must be set"));
  }
  if (r.outcome() == v1::OUTCOME_SUCCEEDED &&
      !(std::isfinite(r.final_val_loss()) && r.final_val_loss() > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("final_val_loss = ", r.final_val_loss(),
                     ": must be finite and > 0 on success"));
  }
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireWorkerLocked(r.worker_id()));
  ASSIGN_OR_RETURN(TrialRecord * t, FindLeasedLocked(r.worker_id(), r.lease()));
  // Memory changes only once both rows are committed: an outcome refused
  // UNAVAILABLE (a storage fault) is retried by the worker, which must then
  // find its lease current. The attempt row is closed first, so that no
  // stored trial ever ended with its attempt still open.
  const TrialRecord before = *t;
  const Lease lease = leases_[r.lease().trial_id()];
  absl::Status stored = store_->EndAttempt(
      r.lease().trial_id(), r.lease().attempt(), v1::Outcome_Name(r.outcome()),
      r.exit_code(), r.message().substr(0, kMaxMessageBytes), NowMs());
  if (stored.ok()) stored = EndTrialLocked(*t, r);
  if (!stored.ok()) {
    *t = before;
    leases_[r.lease().trial_id()] = lease;
    return stored;
  }
  EndAttemptTimeLocked(r.lease().trial_id());
  // The outcome is stored: a sweep state that could not be is written again
  // by the next ReapExpiredLeases (unsaved_sweeps_), not refused here.
  RefreshSweepLocked(*FindSweepLocked(t->trial.spec().sweep_id()))
      .IgnoreError();
  return absl::OkStatus();
}

int Core::ReapExpiredLeases(absl::Time now) {
  absl::MutexLock lock(&mu_);
  SaveUnsavedLocked();
  // A trial is re-queued only once its lease has expired, a full TTL after
  // the last renewal, however long its worker has been silent: until then
  // its trainer may still run (a worker stopped with SIGSTOP, or cut off,
  // cannot stop it). The worker feeds the trainer's watchdog per renewal with
  // a timeout of at most TTL - (TTL - heartbeat) / 4, so by expiry the old
  // trainer has stopped itself (worker/trial_command.h WatchdogTimeout,
  // docs/faults.md "Split brain"). A worker silent for 3 heartbeat intervals
  // is reported lost (ListWorkers, the reason below), but that alone
  // re-queues nothing. A restarted coordinator gives every lease it reloads a
  // full TTL (Core::Recover), so a restart alone never re-queues either.
  const absl::Duration lost_after = 3 * options_.heartbeat_interval;
  std::vector<std::pair<std::string, std::string>> expired;  // trial, reason
  for (const auto& [trial_id, lease] : leases_) {
    if (lease.expires > now) continue;
    const auto w = workers_.find(lease.worker_id);
    const absl::Duration silent =
        w == workers_.end() ? absl::InfiniteDuration()
                            : now - absl::FromUnixMillis(w->second.seen_ms);
    const std::string fenced =
        absl::StrCat("; its trainer's watchdog has fenced it (lease TTL ",
                     absl::FormatDuration(options_.lease_ttl), ")");
    if (silent >= lost_after) {
      ++workers_lost_leases_;
      expired.emplace_back(
          trial_id,
          absl::StrCat(
              "worker ", lease.worker_id, " lost: silent for ",
              absl::FormatDuration(absl::Trunc(silent, absl::Milliseconds(1))),
              " (3 heartbeat intervals); lease expired", fenced));
    } else {
      ++leases_expired_;
      expired.emplace_back(
          trial_id,
          absl::StrCat("lease expired: worker ", lease.worker_id,
                       " did not renew it for ",
                       absl::FormatDuration(options_.lease_ttl), fenced));
    }
  }
  for (const auto& [id, reason] : expired) {
    TrialRecord* t = FindTrialLocked(id);
    // On a store error the in-memory state still moves on (the reaper must
    // not stall on it); the next tick writes it again (SaveUnsavedLocked).
    if (!RetryOrFailLocked(*t, reason).ok()) unsaved_trials_.insert(id);
    EndAttemptTimeLocked(id);
    const UnsavedEnd end{t->trial.attempt(), "LEASE_EXPIRED", -1, reason,
                         NowMs()};
    if (!store_
             ->EndAttempt(id, end.attempt, end.outcome, end.exit_code,
                          end.message, end.now_ms)
             .ok()) {
      unsaved_ends_[{id, end.attempt}] = end;
    }
    RefreshSweepLocked(*FindSweepLocked(t->trial.spec().sweep_id()))
        .IgnoreError();
  }
  return static_cast<int>(expired.size());
}

void Core::SaveUnsavedLocked() {
  for (auto it = unsaved_ends_.begin(); it != unsaved_ends_.end();) {
    const UnsavedEnd& e = it->second;
    const bool saved = store_
                           ->EndAttempt(it->first.first, e.attempt, e.outcome,
                                        e.exit_code, e.message, e.now_ms)
                           .ok();
    it = saved ? unsaved_ends_.erase(it) : std::next(it);
  }
  for (auto it = unsaved_trials_.begin(); it != unsaved_trials_.end();) {
    const TrialRecord* t = FindTrialLocked(*it);
    const bool saved = t == nullptr || store_->UpdateTrials({*t}).ok();
    it = saved ? unsaved_trials_.erase(it) : std::next(it);
  }
  for (auto it = unsaved_sweeps_.begin(); it != unsaved_sweeps_.end();) {
    const SweepRecord* s = FindSweepLocked(*it);
    const bool saved =
        s == nullptr ||
        store_->UpdateSweepState(s->sweep.id(), s->sweep.state()).ok();
    it = saved ? unsaved_sweeps_.erase(it) : std::next(it);
  }
}

v1::Worker Core::WorkerViewLocked(const std::string& worker_id,
                                  const WorkerInfo& info,
                                  std::vector<std::string> running) const {
  v1::Worker out;
  out.set_worker_id(worker_id);
  *out.mutable_resources() = info.resources;
  const int64_t age_ms = NowMs() - info.seen_ms;
  const bool lost =
      age_ms >= absl::ToInt64Milliseconds(3 * options_.heartbeat_interval);
  out.set_state(lost            ? v1::WORKER_LOST
                : info.draining ? v1::WORKER_DRAINING
                                : v1::WORKER_LIVE);
  out.set_draining(info.draining);
  for (std::string& id : running) out.add_running_trial_ids(std::move(id));
  out.set_last_heartbeat_unix_ms(info.seen_ms);
  out.set_heartbeat_age_ms(std::max<int64_t>(0, age_ms));
  return out;
}

v1::ListWorkersResponse Core::ListWorkers() {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::vector<std::string>> running;  // by worker
  for (const auto& [trial_id, lease] : leases_) {
    running[lease.worker_id].push_back(trial_id);
  }
  v1::ListWorkersResponse out;
  for (const auto& [id, info] : workers_) {
    *out.add_workers() = WorkerViewLocked(id, info, std::move(running[id]));
  }
  return out;
}

absl::StatusOr<v1::Worker> Core::SetWorkerDraining(const std::string& worker_id,
                                                   bool draining) {
  RETURN_IF_ERROR(RequireWorkerId(worker_id));
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("worker ", worker_id,
                     ": not found (never registered; see `isoflop worker "
                     "list`)"));
  }
  if (it->second.draining != draining) {
    RETURN_IF_ERROR(store_->UpdateWorkerDraining(worker_id, draining));
    it->second.draining = draining;
  }
  std::vector<std::string> running;
  for (const auto& [trial_id, lease] : leases_) {
    if (lease.worker_id == worker_id) running.push_back(trial_id);
  }
  return WorkerViewLocked(worker_id, it->second, std::move(running));
}

}  // namespace isoflop::coordinator
