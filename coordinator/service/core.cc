// Core: the sweep book (submit, cancel, retry, pause) and recovery. The
// worker-facing half (leases, metrics, outcomes, the reaper) is in
// core_workers.cc; fits and queries in core_fits.cc; logs in log_book.cc.
#include "coordinator/service/core.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/service/dataset_check.h"
#include "coordinator/sweep/adaptive.h"
#include "coordinator/sweep/expand.h"
#include "google/protobuf/util/message_differencer.h"

namespace isoflop::coordinator {
namespace {

bool Ended(v1::TrialState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}
bool Active(v1::TrialState s) { return s == v1::LEASED || s == v1::RUNNING; }

absl::Status RequireSweepId(const std::string& id) {
  if (id.empty() || id.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("sweep_id = \"", id.substr(0, 32),
                     "\": must be 1 to 128 characters (see `sweep list`)"));
  }
  return absl::OkStatus();
}

}  // namespace

Core::Core(TrialStore* store, const Clock* clock, CoreOptions options)
    : store_(store),
      clock_(clock),
      options_(options),
      leases_(clock, options.lease_ttl, options.heartbeat_interval),
      logs_(store),
      fits_(clock, options.refit_min_interval,
            [this](const std::string& sweep_id, std::optional<bool> final) {
              return FitSweepAs(sweep_id, final);
            }) {}

// The fit thread calls back into the book: stop it before members go.
Core::~Core() { fits_.Stop(); }

int64_t Core::NowMs() const { return absl::ToUnixMillis(clock_->Now()); }

void Core::IndexLocked(SweepRecord& s) {
  sweep_index_[s.sweep.id()] = &s;
  for (TrialRecord& t : s.trials) trial_index_[t.trial.spec().trial_id()] = &t;
}

SweepRecord* Core::FindSweepLocked(const std::string& sweep_id) {
  auto it = sweep_index_.find(sweep_id);
  return it == sweep_index_.end() ? nullptr : it->second;
}

TrialRecord* Core::FindTrialLocked(const std::string& trial_id) {
  auto it = trial_index_.find(trial_id);
  return it == trial_index_.end() ? nullptr : it->second;
}

absl::Status Core::Recover() {
  ASSIGN_OR_RETURN(std::vector<SweepRecord> records, store_->LoadAll());
  ASSIGN_OR_RETURN(std::vector<WorkerRecord> workers, store_->LoadWorkers());
  // Called once, first: nothing else runs, so its commits (a RetrySweep cut
  // off, below) may happen under the locks.
  absl::MutexLock write(&write_mu_);
  RETURN_IF_ERROR(RecoverLocked(std::move(records), std::move(workers)));
  // The design step of every running sweep again: design warnings are not
  // stored, and an adaptive sweep may have stopped between its budget's
  // last outcome and the commit of its next trials.
  std::vector<std::string> running;
  {
    absl::MutexLock lock(&mu_);
    for (const SweepRecord& s : sweeps_) {
      if (s.sweep.state() == v1::SWEEP_RUNNING) running.push_back(s.sweep.id());
    }
  }
  for (const std::string& id : running) RefreshSweep(id);
  return absl::OkStatus();
}

absl::Status Core::RecoverLocked(std::vector<SweepRecord> records,
                                 std::vector<WorkerRecord> workers) {
  absl::MutexLock lock(&mu_);
  // Workers reconnect after the restart (within ~1 s,
  // worker/grpc_coordinator_client.h); every reloaded lease gets a full TTL
  // from now (below), and ReapExpiredLeases ends a lease only at its expiry.
  // A millisecond back: any contact from now on is later (seen_ms >).
  const int64_t recovered_ms = NowMs() - 1;
  for (WorkerRecord& w : workers) {
    leases_.PutWorker(w.worker_id, recovered_ms, w.resources);
    leases_.SetDraining(w.worker_id, w.draining);
  }
  for (SweepRecord& r : records) {
    sweeps_.push_back(std::move(r));
    SweepRecord& s = sweeps_.back();
    IndexLocked(s);
    for (TrialRecord& t : s.trials) {
      next_epoch_ = std::max(next_epoch_, t.lease_epoch + 1);
      if (t.trial.attempt() > 0) {
        attempt_times_[t.trial.spec().trial_id()].partial = true;
      }
      if (Active(t.trial.state())) {
        leases_.Put(t.trial.spec().trial_id(),
                    {t.trial.worker_id(), t.trial.attempt(), t.lease_epoch,
                     leases_.NewExpiry(), t.trial.spec().gpus()});
        attempt_times_[t.trial.spec().trial_id()].started_ms = NowMs();
      }
    }
    v1::SweepState state = s.sweep.state();
    const bool ended =
        state == v1::SWEEP_SUCCEEDED || state == v1::SWEEP_FAILED;
    if (ended &&
        std::any_of(s.trials.begin(), s.trials.end(), [](const TrialRecord& t) {
          return !Ended(t.trial.state());
        })) {
      // A RetrySweep cut off between its two writes: finish it.
      state = v1::SWEEP_RUNNING;
      s.sweep.set_state(state);
      RETURN_IF_ERROR(store_->UpdateSweepState(s.sweep.id(), state));
    }
    if ((state == v1::SWEEP_SUCCEEDED || state == v1::SWEEP_FAILED) &&
        (!s.sweep.has_fit() || !s.sweep.fit().final())) {
      fits_.Queue(s.sweep.id(), /*final=*/true);
    }
  }
  return absl::OkStatus();
}

std::string Core::PendingReasonLocked(const SweepRecord& s) const {
  if (s.sweep.state() != v1::SWEEP_RUNNING ||
      std::none_of(s.trials.begin(), s.trials.end(), [](const TrialRecord& t) {
        return t.trial.state() == v1::PENDING;
      })) {
    return "";
  }
  return CheckSweepData(s.sweep.config().data().dataset(),
                        s.sweep.config().model().vocab_size(),
                        leases_.LiveWorkerDatasets())
      .pending_reason;
}

v1::Sweep Core::ViewLocked(const SweepRecord& s, bool with_trials) const {
  v1::Sweep out = s.sweep;
  out.set_pending_reason(PendingReasonLocked(s));
  for (const TrialRecord& t : s.trials) {
    (*out.mutable_trial_counts())[v1::TrialState_Name(t.trial.state())]++;
    out.set_total_flops(out.total_flops() + TrainedFlops(t.trial.spec()));
    out.set_independent_flops(out.independent_flops() +
                              IndependentFlops(t.trial.spec()));
    if (!with_trials) continue;
    v1::Trial& trial = *out.add_trials() = t.trial;
    const auto it = attempt_times_.find(t.trial.spec().trial_id());
    if (it == attempt_times_.end()) continue;
    int64_t ms = it->second.ended_ms;
    if (it->second.started_ms.has_value()) {
      // Cancelled while leased: its attempt ended when the trial did.
      const int64_t until =
          Active(t.trial.state()) ? NowMs() : t.trial.updated_unix_ms();
      ms += std::max<int64_t>(0, until - *it->second.started_ms);
    }
    trial.set_attempt_seconds(static_cast<double>(ms) / 1e3);
    trial.set_attempt_seconds_partial(it->second.partial);
  }
  return out;
}

void Core::EndAttemptTimeLocked(const std::string& trial_id) {
  AttemptTime& a = attempt_times_[trial_id];
  if (!a.started_ms.has_value()) return;
  a.ended_ms += std::max<int64_t>(0, NowMs() - *a.started_ms);
  a.started_ms.reset();
}

absl::StatusOr<v1::SubmitSweepResponse> Core::Submit(
    const v1::SubmitSweepRequest& request) {
  ASSIGN_OR_RETURN(ExpandedSweep e,
                   ExpandSweep(request.config(), request.id()));
  // An adaptive grid starts with its first budget; the planner adds the
  // rest as budgets end (AdvanceDesign).
  if (e.resolved.grid().has_adaptive()) {
    e.trials = FirstBudgetTrials(e.resolved, std::move(e.trials));
  }
  v1::SubmitSweepResponse response;
  response.set_sweep_id(e.sweep_id);
  response.set_n_trials(static_cast<uint32_t>(e.trials.size()));
  absl::MutexLock write(&write_mu_);
  std::optional<v1::SweepConfig> rescheduled;
  {
    absl::MutexLock lock(&mu_);
    if (SweepRecord* s = FindSweepLocked(e.sweep_id); s != nullptr) {
      // Idempotent for the same resolved config but its scheduling (not part
      // of the id), which is updated; a client id (or, by a hash collision, a
      // derived one) naming another config is refused.
      v1::SweepConfig have_grid = s->sweep.config();
      have_grid.clear_scheduling();
      v1::SweepConfig want_grid = e.resolved;
      want_grid.clear_scheduling();
      if (!google::protobuf::util::MessageDifferencer::Equals(have_grid,
                                                              want_grid)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "id = \"", e.sweep_id, "\": sweep ", e.sweep_id, " (\"",
            s->sweep.config().name(),
            "\") exists with a different config; choose another id, or "
            "submit without one"));
      }
      *response.mutable_design_warnings() = s->sweep.design_warnings();
      const v1::Scheduling& want = e.resolved.scheduling();
      const v1::Scheduling& have = s->sweep.config().scheduling();
      if (want.priority() == have.priority() &&
          want.max_concurrent_trials() == have.max_concurrent_trials()) {
        return response;
      }
      rescheduled = s->sweep.config();
      *rescheduled->mutable_scheduling() = want;
    }
  }
  if (rescheduled.has_value()) {
    RETURN_IF_ERROR(store_->UpdateSweepConfig(e.sweep_id, *rescheduled));
    absl::MutexLock lock(&mu_);
    *FindSweepLocked(e.sweep_id)->sweep.mutable_config() =
        *std::move(rescheduled);
    return response;
  }
  // The data (docs/architecture.md §2 "Datasets"): refused when the live
  // workers that reported do not hold it; held PENDING (Sweep.
  // pending_reason) when no live worker may run it yet.
  const SweepDataCheck data = CheckSweepData(e.resolved.data().dataset(),
                                             e.resolved.model().vocab_size(),
                                             leases_.LiveWorkerDatasets());
  RETURN_IF_ERROR(data.refusal);
  SweepRecord r;
  r.sweep.set_id(e.sweep_id);
  *r.sweep.mutable_config() = std::move(e.resolved);
  r.sweep.set_state(v1::SWEEP_RUNNING);
  r.sweep.set_created_unix_ms(NowMs());
  for (size_t i = 0; i < e.trials.size(); ++i) {
    TrialRecord t;
    t.ordinal = static_cast<int>(i);
    *t.trial.mutable_spec() = std::move(e.trials[i]);
    FillDataRepetition(data.unique_tokens, *t.trial.mutable_spec());
    t.trial.set_state(v1::PENDING);
    t.trial.set_train_loss(std::nan(""));
    t.trial.set_val_loss(std::nan(""));
    t.trial.set_tokens_per_s(std::nan(""));
    t.trial.set_updated_unix_ms(r.sweep.created_unix_ms());
    r.trials.push_back(std::move(t));
  }
  // Thousands of rows: committed under no lock that a lease or a heartbeat
  // needs; the sweep appears in memory (and to LeaseTrial) once stored.
  RETURN_IF_ERROR(store_->InsertSweep(r));
  absl::MutexLock lock(&mu_);
  sweeps_.push_back(std::move(r));
  IndexLocked(sweeps_.back());
  return response;
}

absl::StatusOr<v1::Sweep> Core::GetSweep(const std::string& sweep_id) {
  RETURN_IF_ERROR(RequireSweepId(sweep_id));
  absl::MutexLock lock(&mu_);
  SweepRecord* s = FindSweepLocked(sweep_id);
  if (s == nullptr)
    return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, ": not found"));
  return ViewLocked(*s, /*with_trials=*/true);
}

std::string Core::SweepPendingReason(const std::string& sweep_id) {
  absl::MutexLock lock(&mu_);
  const SweepRecord* s = FindSweepLocked(sweep_id);
  return s == nullptr ? "" : PendingReasonLocked(*s);
}

v1::ListSweepsResponse Core::ListSweeps() {
  absl::MutexLock lock(&mu_);
  v1::ListSweepsResponse out;
  for (const SweepRecord& s : sweeps_)
    *out.add_sweeps() = ViewLocked(s, /*with_trials=*/false);
  return out;
}

absl::StatusOr<v1::Sweep> Core::CancelSweep(const std::string& sweep_id) {
  RETURN_IF_ERROR(RequireSweepId(sweep_id));
  absl::MutexLock write(&write_mu_);
  std::vector<TrialRecord> changed;
  {
    absl::MutexLock lock(&mu_);
    SweepRecord* s = FindSweepLocked(sweep_id);
    if (s == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("sweep ", sweep_id, ": not found"));
    }
    // Cancelling a cancelled sweep is idempotent; one that ended on its own
    // has nothing left to cancel, and saying "cancelled" would be false.
    if (s->sweep.state() == v1::SWEEP_CANCELLED)
      return ViewLocked(*s, /*with_trials=*/true);
    if (s->sweep.state() != v1::SWEEP_RUNNING) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sweep ", sweep_id, " is ", v1::SweepState_Name(s->sweep.state()),
          ": it has ended, nothing to cancel"));
    }
    const int64_t now_ms = NowMs();
    for (const TrialRecord& t : s->trials) {
      if (Ended(t.trial.state())) continue;
      TrialRecord c = t;
      c.trial.set_state(v1::CANCELLED);
      c.trial.set_error("cancelled by user");
      c.trial.set_updated_unix_ms(now_ms);
      changed.push_back(std::move(c));
    }
  }
  RETURN_IF_ERROR(store_->UpdateTrials(changed));
  const absl::Status swept =
      store_->UpdateSweepState(sweep_id, v1::SWEEP_CANCELLED);
  absl::MutexLock lock(&mu_);
  for (const TrialRecord& c : changed) {
    TrialRecord& t = *FindTrialLocked(c.trial.spec().trial_id());
    // Only the state moves: progress a metrics batch applied since stays.
    t.trial.set_state(c.trial.state());
    t.trial.set_error(c.trial.error());
    t.trial.set_updated_unix_ms(c.trial.updated_unix_ms());
    // Revoked at the worker's next heartbeat.
    leases_.Erase(t.trial.spec().trial_id());
  }
  RETURN_IF_ERROR(swept);
  SweepRecord* s = FindSweepLocked(sweep_id);
  s->sweep.set_state(v1::SWEEP_CANCELLED);
  return ViewLocked(*s, /*with_trials=*/true);
}

Core::Stats Core::GetStats() {
  absl::MutexLock lock(&mu_);
  Stats out;
  for (int s = v1::TrialState_MIN; s <= v1::TrialState_MAX; ++s) {
    if (v1::TrialState_IsValid(s) && s != v1::TRIAL_STATE_UNSPECIFIED) {
      out.trials_by_state[v1::TrialState_Name(static_cast<v1::TrialState>(s))] =
          0;
    }
  }
  for (int s = v1::SweepState_MIN; s <= v1::SweepState_MAX; ++s) {
    if (v1::SweepState_IsValid(s) && s != v1::SWEEP_STATE_UNSPECIFIED) {
      out.sweeps_by_state[v1::SweepState_Name(static_cast<v1::SweepState>(s))] =
          0;
    }
  }
  for (const SweepRecord& s : sweeps_) {
    ++out.sweeps_by_state[v1::SweepState_Name(s.sweep.state())];
    for (const TrialRecord& t : s.trials) {
      ++out.trials_by_state[v1::TrialState_Name(t.trial.state())];
    }
  }
  out.workers_live = leases_.LiveWorkers();
  out.points_ingested = points_ingested_.load();
  out.leases_expired = leases_.expired_count();
  out.leases_worker_lost = leases_.lost_count();
  out.fits = fits_done_;
  out.fit_seconds = fit_seconds_;
  return out;
}

absl::StatusOr<v1::Sweep> Core::RetrySweep(const v1::RetrySweepRequest& r) {
  RETURN_IF_ERROR(RequireSweepId(r.sweep_id()));
  if (!r.failed()) {
    return absl::InvalidArgumentError(
        "failed = false: must be true (only failed trials can be retried)");
  }
  absl::MutexLock write(&write_mu_);
  std::vector<TrialRecord> changed;
  bool paused = false;
  {
    absl::MutexLock lock(&mu_);
    SweepRecord* s = FindSweepLocked(r.sweep_id());
    if (s == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("sweep ", r.sweep_id(), ": not found"));
    }
    const v1::SweepState state = s->sweep.state();
    if (state != v1::SWEEP_SUCCEEDED && state != v1::SWEEP_FAILED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sweep ", r.sweep_id(), " is ", v1::SweepState_Name(state),
          ": only an ended (SUCCEEDED or FAILED) sweep is retried"));
    }
    for (const TrialRecord& t : s->trials) {
      if (t.trial.state() != v1::FAILED) continue;
      TrialRecord c = t;
      c.trial.set_state(v1::PENDING);
      c.trial.set_retry_base(t.trial.attempt());
      c.trial.set_error(absl::StrCat("retry requested after: ", t.trial.error())
                            .substr(0, kMaxMessageBytes));
      c.trial.set_updated_unix_ms(NowMs());
      changed.push_back(std::move(c));
    }
    if (changed.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("sweep ", r.sweep_id(), ": no FAILED trial to retry"));
    }
    paused = s->sweep.paused();
  }
  // Trials first: a crash in between leaves an ended sweep with PENDING
  // trials, which the next RetrySweep or Recover finds; never the reverse.
  // Ended trials change only here (write_mu_): the copies are current.
  RETURN_IF_ERROR(store_->UpdateTrials(changed));
  {
    absl::MutexLock lock(&mu_);
    for (TrialRecord& c : changed) {
      *FindTrialLocked(c.trial.spec().trial_id()) = std::move(c);
    }
  }
  if (paused) {
    RETURN_IF_ERROR(store_->UpdateSweepPaused(r.sweep_id(), false));
    absl::MutexLock lock(&mu_);
    FindSweepLocked(r.sweep_id())->sweep.set_paused(false);
  }
  RETURN_IF_ERROR(store_->UpdateSweepState(r.sweep_id(), v1::SWEEP_RUNNING));
  std::optional<v1::ScalingLawFit> demoted;
  {
    absl::MutexLock lock(&mu_);
    SweepRecord* s = FindSweepLocked(r.sweep_id());
    s->sweep.set_state(v1::SWEEP_RUNNING);
    if (s->sweep.has_fit() && s->sweep.fit().final()) {
      demoted = s->sweep.fit();
      demoted->set_final(false);
    }
  }
  // The final fit of the sweep as it ended no longer describes it: it stays
  // as a provisional fit, stored so, so that `--wait` (cli/commands.cc
  // WaitForSweep) and a restarted coordinator wait for the fit made when the
  // retried trials end instead of answering the old one.
  if (demoted) {
    absl::MutexLock store_order(&fit_store_mu_);
    RETURN_IF_ERROR(store_->StoreFit(r.sweep_id(), *demoted, NowMs()));
    absl::MutexLock lock(&mu_);
    *FindSweepLocked(r.sweep_id())->sweep.mutable_fit() = *demoted;
  }
  absl::MutexLock lock(&mu_);
  return ViewLocked(*FindSweepLocked(r.sweep_id()), /*with_trials=*/true);
}

absl::StatusOr<v1::Sweep> Core::SetSweepPaused(const std::string& sweep_id,
                                               bool paused) {
  RETURN_IF_ERROR(RequireSweepId(sweep_id));
  absl::MutexLock write(&write_mu_);
  {
    absl::MutexLock lock(&mu_);
    SweepRecord* s = FindSweepLocked(sweep_id);
    if (s == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("sweep ", sweep_id, ": not found"));
    }
    if (s->sweep.state() != v1::SWEEP_RUNNING) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sweep ", sweep_id, " is ", v1::SweepState_Name(s->sweep.state()),
          paused ? ": only a running sweep can be paused"
                 : ": only a running sweep can be resumed (an ended one: "
                   "isoflop sweep retry --failed)"));
    }
    if (s->sweep.paused() == paused)
      return ViewLocked(*s, /*with_trials=*/true);
  }
  RETURN_IF_ERROR(store_->UpdateSweepPaused(sweep_id, paused));
  absl::MutexLock lock(&mu_);
  SweepRecord* s = FindSweepLocked(sweep_id);
  s->sweep.set_paused(paused);
  return ViewLocked(*s, /*with_trials=*/true);
}

std::optional<v1::SweepState> Core::RefreshSweepLocked(SweepRecord& s) {
  if (s.sweep.state() != v1::SWEEP_RUNNING) return std::nullopt;
  bool any_succeeded = false;
  for (const TrialRecord& t : s.trials) {
    if (!Ended(t.trial.state())) return std::nullopt;
    any_succeeded |= t.trial.state() == v1::SUCCEEDED;
  }
  const v1::SweepState state =
      any_succeeded ? v1::SWEEP_SUCCEEDED : v1::SWEEP_FAILED;
  s.sweep.set_state(state);
  fits_.Queue(s.sweep.id(), /*final=*/true);
  return state;
}

void Core::RefreshSweep(const std::string& sweep_id) {
  if (!AdvanceDesign(sweep_id)) return;
  std::optional<v1::SweepState> state;
  {
    absl::MutexLock lock(&mu_);
    state = RefreshSweepLocked(*FindSweepLocked(sweep_id));
  }
  if (!state.has_value()) return;
  if (!store_->UpdateSweepState(sweep_id, *state).ok()) {
    absl::MutexLock lock(&mu_);
    unsaved_sweeps_.insert(sweep_id);
  }
}

}  // namespace isoflop::coordinator
