#include "coordinator/service/core.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "analysis/approach3.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/fifo.h"
#include "coordinator/sweep/expand.h"

namespace isoflop::coordinator {
namespace {

bool Active(v1::TrialState s) { return s == v1::LEASED || s == v1::RUNNING; }
bool Ended(v1::TrialState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

absl::Status ValidateId(const char* field, const std::string& v) {
  if (v.empty() || v.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " = \"", v.substr(0, 32), "\": must be 1 to 128 characters"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePoint(const v1::MetricPoint& p, int i, uint64_t max_step) {
  const std::string f = absl::StrCat("points[", i, "].");
  if (p.name().empty() || p.name().size() > 64 ||
      !std::all_of(p.name().begin(), p.name().end(),
                   [](char c) { return std::islower(c) || std::isdigit(c) || c == '_'; })) {
    return absl::InvalidArgumentError(absl::StrCat(
        f, "name = \"", p.name().substr(0, 64), "\": must be 1-64 of [a-z0-9_]"));
  }
  if (!std::isfinite(p.value())) {
    return absl::InvalidArgumentError(
        absl::StrCat(f, "value = ", p.value(), ": must be finite (", p.name(), ")"));
  }
  if (p.step() > max_step) {
    return absl::InvalidArgumentError(
        absl::StrCat(f, "step = ", p.step(), ": must be <= the trial's steps = ", max_step));
  }
  return absl::OkStatus();
}

}  // namespace

Core::Core(Store* store, const Clock* clock, CoreOptions options)
    : store_(store), clock_(clock), options_(options) {}

int64_t Core::NowMs() const { return absl::ToUnixMillis(clock_->Now()); }

absl::Status Core::Recover() {
  ASSIGN_OR_RETURN(std::vector<SweepRecord> records, store_->LoadAll());
  absl::MutexLock lock(&mu_);
  for (SweepRecord& r : records) {
    for (TrialRecord& t : r.trials) {
      next_epoch_ = std::max(next_epoch_, t.lease_epoch + 1);
      if (Active(t.trial.state())) {
        leases_[t.trial.spec().trial_id()] = {t.trial.worker_id(),
                                              clock_->Now() + options_.lease_ttl};
      }
    }
    sweeps_.push_back(SweepState{std::move(r)});
  }
  return absl::OkStatus();
}

Core::SweepState* Core::FindSweepLocked(const std::string& id) {
  for (SweepState& s : sweeps_) {
    if (s.record.sweep.id() == id) return &s;
  }
  return nullptr;
}

TrialRecord* Core::FindTrialLocked(const std::string& trial_id) {
  for (SweepState& s : sweeps_) {
    for (TrialRecord& t : s.record.trials) {
      if (t.trial.spec().trial_id() == trial_id) return &t;
    }
  }
  return nullptr;
}

v1::Sweep Core::ViewLocked(const SweepState& s, bool with_trials) const {
  v1::Sweep out = s.record.sweep;
  for (const TrialRecord& t : s.record.trials) {
    (*out.mutable_trial_counts())[v1::TrialState_Name(t.trial.state())]++;
    if (with_trials) *out.add_trials() = t.trial;
  }
  return out;
}

absl::StatusOr<v1::SubmitSweepResponse> Core::Submit(const v1::SubmitSweepRequest& request) {
  ASSIGN_OR_RETURN(ExpandedSweep e, ExpandSweep(request.config()));
  absl::MutexLock lock(&mu_);
  v1::SubmitSweepResponse response;
  response.set_sweep_id(e.sweep_id);
  response.set_n_trials(static_cast<uint32_t>(e.trials.size()));
  if (FindSweepLocked(e.sweep_id) != nullptr) return response;  // idempotent
  SweepRecord r;
  r.sweep.set_id(e.sweep_id);
  *r.sweep.mutable_config() = e.resolved;
  r.sweep.set_state(v1::SWEEP_RUNNING);
  r.sweep.set_created_unix_ms(NowMs());
  for (size_t i = 0; i < e.trials.size(); ++i) {
    TrialRecord t;
    t.ordinal = static_cast<int>(i);
    *t.trial.mutable_spec() = e.trials[i];
    t.trial.set_state(v1::PENDING);
    t.trial.set_train_loss(std::nan(""));
    t.trial.set_val_loss(std::nan(""));
    r.trials.push_back(std::move(t));
  }
  RETURN_IF_ERROR(store_->InsertSweep(r));
  sweeps_.push_back(SweepState{std::move(r)});
  return response;
}

absl::StatusOr<v1::Sweep> Core::GetSweep(const std::string& sweep_id) {
  absl::MutexLock lock(&mu_);
  SweepState* s = FindSweepLocked(sweep_id);
  if (s == nullptr) return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, ": not found"));
  return ViewLocked(*s, /*with_trials=*/true);
}

v1::ListSweepsResponse Core::ListSweeps() {
  absl::MutexLock lock(&mu_);
  v1::ListSweepsResponse out;
  for (const SweepState& s : sweeps_) *out.add_sweeps() = ViewLocked(s, false);
  return out;
}

absl::StatusOr<v1::Sweep> Core::CancelSweep(const std::string& sweep_id) {
  absl::MutexLock lock(&mu_);
  SweepState* s = FindSweepLocked(sweep_id);
  if (s == nullptr) return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, ": not found"));
  std::vector<TrialRecord> changed;
  for (TrialRecord& t : s->record.trials) {
    if (Ended(t.trial.state())) continue;
    t.trial.set_state(v1::CANCELLED);
    t.trial.set_error("cancelled by user");
    t.trial.set_updated_unix_ms(NowMs());
    leases_.erase(t.trial.spec().trial_id());  // revoked at the next heartbeat
    changed.push_back(t);
  }
  RETURN_IF_ERROR(store_->UpdateTrials(changed));
  if (s->record.sweep.state() == v1::SWEEP_RUNNING) {
    s->record.sweep.set_state(v1::SWEEP_CANCELLED);
    RETURN_IF_ERROR(store_->UpdateSweepState(sweep_id, v1::SWEEP_CANCELLED));
  }
  return ViewLocked(*s, true);
}

absl::StatusOr<v1::RegisterWorkerResponse> Core::RegisterWorker(
    const v1::RegisterWorkerRequest& r) {
  const v1::WorkerResources& res = r.resources();
  if (res.gpus() == 0 && res.cpu_slots() == 0) {
    return absl::InvalidArgumentError(
        "resources: gpus = 0 and cpu_slots = 0: a worker must offer at least one");
  }
  if (res.gpus() > 1024 || res.cpu_slots() > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("resources: gpus = ", res.gpus(),
                                                   ", cpu_slots = ", res.cpu_slots(),
                                                   ": must be <= 1024 and <= 4096"));
  }
  std::string id = r.worker_id();
  if (id.empty()) id = MakeId("wk", absl::StrCat(res.hostname(), "/", NowMs(), "/", next_epoch_));
  RETURN_IF_ERROR(ValidateId("worker_id", id));
  RETURN_IF_ERROR(store_->UpsertWorker(id, res, NowMs()));
  {
    absl::MutexLock lock(&mu_);
    workers_[id] = NowMs();
  }
  v1::RegisterWorkerResponse out;
  out.set_worker_id(id);
  out.set_lease_ttl_ms(absl::ToInt64Milliseconds(options_.lease_ttl));
  out.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(options_.heartbeat_interval));
  return out;
}

absl::StatusOr<v1::LeaseTrialResponse> Core::LeaseTrial(const v1::LeaseTrialRequest& r) {
  RETURN_IF_ERROR(ValidateId("worker_id", r.worker_id()));
  absl::MutexLock lock(&mu_);
  if (!workers_.count(r.worker_id())) {
    return absl::NotFoundError(absl::StrCat("worker ", r.worker_id(), ": not registered"));
  }
  std::vector<PendingTrial> pending;
  std::vector<TrialRecord*> records;
  for (SweepState& s : sweeps_) {
    for (TrialRecord& t : s.record.trials) {
      if (t.trial.state() != v1::PENDING) continue;
      pending.push_back({t.trial.spec().trial_id(), t.trial.spec().gpus()});
      records.push_back(&t);
    }
  }
  v1::LeaseTrialResponse out;
  std::optional<size_t> pick = PickFifo(pending, {r.free_gpus(), r.free_cpu_slots()});
  if (!pick.has_value()) return out;
  TrialRecord& t = *records[*pick];
  t.trial.set_state(v1::LEASED);
  t.trial.set_attempt(t.trial.attempt() + 1);
  t.trial.set_worker_id(r.worker_id());
  t.trial.set_updated_unix_ms(NowMs());
  t.lease_epoch = next_epoch_++;
  const absl::Time expires = clock_->Now() + options_.lease_ttl;
  RETURN_IF_ERROR(store_->UpdateTrials({t}));
  RETURN_IF_ERROR(store_->StartAttempt(t, NowMs()));
  leases_[t.trial.spec().trial_id()] = {r.worker_id(), expires};
  out.set_has_assignment(true);
  *out.mutable_spec() = t.trial.spec();
  out.set_attempt(t.trial.attempt());
  out.set_lease_epoch(t.lease_epoch);
  out.set_lease_expires_unix_ms(absl::ToUnixMillis(expires));
  return out;
}

absl::StatusOr<TrialRecord*> Core::FindLeasedLocked(const std::string& worker_id,
                                                    const v1::LeaseRef& lease) {
  TrialRecord* t = FindTrialLocked(lease.trial_id());
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat("trial ", lease.trial_id(), ": not found"));
  }
  auto it = leases_.find(lease.trial_id());
  if (it == leases_.end() || !Active(t->trial.state()) || t->lease_epoch != lease.lease_epoch() ||
      t->trial.attempt() != lease.attempt() || it->second.worker_id != worker_id) {
    return absl::AbortedError(absl::StrCat(
        "trial ", lease.trial_id(), " attempt ", lease.attempt(), " epoch ",
        lease.lease_epoch(), ": stale lease (current attempt ", t->trial.attempt(), " epoch ",
        t->lease_epoch, ", state ", v1::TrialState_Name(t->trial.state()), ")"));
  }
  return t;
}

absl::StatusOr<v1::HeartbeatResponse> Core::Heartbeat(const v1::HeartbeatRequest& r) {
  RETURN_IF_ERROR(ValidateId("worker_id", r.worker_id()));
  absl::MutexLock lock(&mu_);
  if (!workers_.count(r.worker_id())) {
    return absl::NotFoundError(absl::StrCat("worker ", r.worker_id(), ": not registered"));
  }
  workers_[r.worker_id()] = NowMs();
  v1::HeartbeatResponse out;
  for (const v1::LeaseRef& ref : r.leases()) {
    absl::StatusOr<TrialRecord*> t = FindLeasedLocked(r.worker_id(), ref);
    if (!t.ok()) {
      *out.add_revoked() = ref;
      continue;
    }
    leases_[ref.trial_id()].expires = clock_->Now() + options_.lease_ttl;
  }
  return out;
}

absl::StatusOr<v1::ReportMetricsResponse> Core::ReportMetrics(const v1::ReportMetricsRequest& r) {
  RETURN_IF_ERROR(ValidateId("worker_id", r.worker_id()));
  if (r.points_size() > 10000) {
    return absl::InvalidArgumentError(
        absl::StrCat("points: ", r.points_size(), " in one batch: must be <= 10000"));
  }
  std::vector<v1::MetricPoint> points(r.points().begin(), r.points().end());
  uint32_t attempt = 0;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(TrialRecord * t, FindLeasedLocked(r.worker_id(), r.lease()));
    for (int i = 0; i < r.points_size(); ++i) {
      RETURN_IF_ERROR(ValidatePoint(r.points(i), i, t->trial.spec().steps()));
    }
    attempt = t->trial.attempt();
    if (t->trial.state() == v1::LEASED) t->trial.set_state(v1::RUNNING);
    for (const v1::MetricPoint& p : points) {
      if (p.step() < t->trial.step()) continue;
      t->trial.set_step(p.step());
      if (p.name() == "train_loss") t->trial.set_train_loss(p.value());
      if (p.name() == "tokens_per_s") t->trial.set_tokens_per_s(p.value());
    }
    t->trial.set_updated_unix_ms(NowMs());
    leases_[r.lease().trial_id()].expires = clock_->Now() + options_.lease_ttl;
  }
  // Metric rows are idempotent and order-free: commit outside the lock.
  ASSIGN_OR_RETURN(int inserted, store_->InsertMetrics(r.lease().trial_id(), attempt, points));
  v1::ReportMetricsResponse out;
  out.set_accepted(static_cast<uint32_t>(inserted));
  return out;
}

absl::Status Core::RetryOrFailLocked(TrialRecord& t, const std::string& reason) {
  leases_.erase(t.trial.spec().trial_id());
  const uint32_t max_attempts = FindSweepLocked(t.trial.spec().sweep_id())
                                    ->record.sweep.config().resources().max_attempts();
  t.trial.set_state(t.trial.attempt() < max_attempts ? v1::PENDING : v1::FAILED);
  t.trial.set_error(t.trial.state() == v1::PENDING
                        ? absl::StrCat("attempt ", t.trial.attempt(), ": ", reason, "; retrying")
                        : absl::StrCat(reason, " (attempt ", t.trial.attempt(), " of ",
                                       max_attempts, ")"));
  t.trial.set_updated_unix_ms(NowMs());
  return store_->UpdateTrials({t});
}

absl::Status Core::ReportOutcome(const v1::ReportOutcomeRequest& r) {
  RETURN_IF_ERROR(ValidateId("worker_id", r.worker_id()));
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(TrialRecord * t, FindLeasedLocked(r.worker_id(), r.lease()));
  const std::string message = r.message().substr(0, 4096);
  switch (r.outcome()) {
    case v1::OUTCOME_SUCCEEDED:
      if (!std::isfinite(r.final_val_loss()) || r.final_val_loss() <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "final_val_loss = ", r.final_val_loss(), ": must be finite and > 0 on success"));
      }
      leases_.erase(r.lease().trial_id());
      t->trial.set_state(v1::SUCCEEDED);
      t->trial.set_val_loss(r.final_val_loss());
      if (std::isfinite(r.tokens_per_s())) t->trial.set_tokens_per_s(r.tokens_per_s());
      t->trial.set_step(t->trial.spec().steps());
      t->trial.set_error("");
      t->trial.set_updated_unix_ms(NowMs());
      RETURN_IF_ERROR(store_->UpdateTrials({*t}));
      break;
    case v1::OUTCOME_RETRYABLE:
      RETURN_IF_ERROR(RetryOrFailLocked(*t, absl::StrCat("exit ", r.exit_code(), ": ", message)));
      break;
    case v1::OUTCOME_FAILED:
    case v1::OUTCOME_CANCELLED:
      leases_.erase(r.lease().trial_id());
      t->trial.set_state(r.outcome() == v1::OUTCOME_FAILED ? v1::FAILED : v1::CANCELLED);
      t->trial.set_error(absl::StrCat("exit ", r.exit_code(), ": ", message));
      t->trial.set_updated_unix_ms(NowMs());
      RETURN_IF_ERROR(store_->UpdateTrials({*t}));
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("outcome = ", static_cast<int>(r.outcome()), ": must be set"));
  }
  RETURN_IF_ERROR(store_->EndAttempt(r.lease().trial_id(), r.lease().attempt(),
                                     v1::Outcome_Name(r.outcome()), r.exit_code(), message,
                                     NowMs()));
  return RefreshSweepLocked(*FindSweepLocked(t->trial.spec().sweep_id()));
}

absl::Status Core::RefreshSweepLocked(SweepState& s) {
  if (s.record.sweep.state() != v1::SWEEP_RUNNING) return absl::OkStatus();
  bool any_succeeded = false;
  for (const TrialRecord& t : s.record.trials) {
    if (!Ended(t.trial.state())) return absl::OkStatus();
    any_succeeded |= t.trial.state() == v1::SUCCEEDED;
  }
  const v1::SweepState state = any_succeeded ? v1::SWEEP_SUCCEEDED : v1::SWEEP_FAILED;
  s.record.sweep.set_state(state);
  if (any_succeeded) pending_fits_.push_back(s.record.sweep.id());
  return store_->UpdateSweepState(s.record.sweep.id(), state);
}

void Core::ReapExpiredLeases(absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> expired;
  for (const auto& [trial_id, lease] : leases_) {
    if (lease.expires <= now) expired.push_back(trial_id);
  }
  for (const std::string& id : expired) {
    TrialRecord* t = FindTrialLocked(id);
    if (t == nullptr) continue;
    const std::string worker = t->trial.worker_id();
    RetryOrFailLocked(*t, absl::StrCat("lease expired: worker ", worker, " silent for ",
                                       absl::FormatDuration(options_.lease_ttl)))
        .IgnoreError();  // the store logs nothing here; next write retries state
    store_->EndAttempt(id, t->trial.attempt(), "LEASE_EXPIRED", -1, "lease expired", NowMs())
        .IgnoreError();
    RefreshSweepLocked(*FindSweepLocked(t->trial.spec().sweep_id())).IgnoreError();
  }
}

absl::StatusOr<v1::ScalingLawFit> Core::ComputeFit(const std::vector<TrialRecord>& trials) const {
  std::vector<analysis::Observation> points;
  for (const TrialRecord& t : trials) {
    if (t.trial.state() != v1::SUCCEEDED) continue;
    points.push_back({static_cast<double>(t.trial.spec().n_total()),
                      static_cast<double>(t.trial.spec().tokens()), t.trial.val_loss()});
  }
  v1::ScalingLawFit out;
  out.set_n_convention("n_total");
  out.set_n_points(static_cast<uint32_t>(points.size()));
  absl::StatusOr<analysis::Approach3Fit> fit =
      analysis::FitApproach3(points, {.huber_delta = 1e-3, .threads = options_.fit_threads});
  if (!fit.ok()) {
    out.set_message(absl::StrCat("not fitted: ", fit.status().message()));
    return out;
  }
  out.set_e(fit->e);
  out.set_a(fit->a);
  out.set_b(fit->b);
  out.set_alpha(fit->alpha);
  out.set_beta(fit->beta);
  out.set_objective(fit->objective);
  out.set_n_starts(fit->n_starts);
  out.set_n_starts_at_best(fit->n_starts_at_best);
  out.set_on_grid_edge(fit->on_grid_edge);
  out.set_message(fit->message);
  return out;
}

absl::StatusOr<v1::ScalingLawFit> Core::FitSweep(const std::string& sweep_id) {
  std::vector<TrialRecord> trials;
  {
    absl::MutexLock lock(&mu_);
    SweepState* s = FindSweepLocked(sweep_id);
    if (s == nullptr) return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, ": not found"));
    trials = s->record.trials;
  }
  ASSIGN_OR_RETURN(v1::ScalingLawFit fit, ComputeFit(trials));  // slow: outside the lock
  RETURN_IF_ERROR(store_->StoreFit(sweep_id, fit, NowMs()));
  absl::MutexLock lock(&mu_);
  *FindSweepLocked(sweep_id)->record.sweep.mutable_fit() = fit;
  return fit;
}

int Core::RunPendingFits() {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    ids.swap(pending_fits_);
  }
  for (const std::string& id : ids) FitSweep(id).IgnoreError();
  return static_cast<int>(ids.size());
}

absl::StatusOr<v1::OptimalResponse> Core::Optimal(const v1::OptimalRequest& r) {
  if (!std::isfinite(r.flops()) || r.flops() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("flops = ", r.flops(), ": must be > 0"));
  }
  v1::ScalingLawFit fit;
  {
    absl::MutexLock lock(&mu_);
    SweepState* s = FindSweepLocked(r.sweep_id());
    if (s == nullptr) return absl::NotFoundError(absl::StrCat("sweep ", r.sweep_id(), ": not found"));
    if (!s->record.sweep.has_fit() || s->record.sweep.fit().alpha() <= 0 ||
        s->record.sweep.fit().beta() <= 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sweep ", r.sweep_id(), ": no usable fit yet (state ",
          v1::SweepState_Name(s->record.sweep.state()), ")"));
    }
    fit = s->record.sweep.fit();
  }
  analysis::Approach3Fit f{.e = fit.e(), .a = fit.a(), .b = fit.b(), .alpha = fit.alpha(),
                           .beta = fit.beta(), .message = ""};
  const analysis::ComputeOptimum o = analysis::ComputeOptimalFor(f, r.flops());
  v1::OptimalResponse out;
  out.set_flops(r.flops());
  out.set_n_opt(o.n_opt);
  out.set_d_opt(o.d_opt);
  out.set_predicted_loss(o.loss);
  *out.mutable_fit() = fit;
  return out;
}

}  // namespace isoflop::coordinator
