// Core: the worker-facing half (registration, leases, heartbeats, metrics,
// outcomes, the lease reaper) and the operator's view of the workers
// (ClusterService): where the sweep book meets the lease table. Sweeps are in
// core.cc, fits in core_fits.cc.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/policy.h"
#include "coordinator/service/core.h"
#include "coordinator/service/dataset_check.h"
#include "coordinator/service/metrics_read.h"

namespace isoflop::coordinator {
namespace {

constexpr int kMaxPointsPerBatch = 10000;

bool Active(v1::TrialState s) { return s == v1::LEASED || s == v1::RUNNING; }

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
  RETURN_IF_ERROR(ValidateWorkerDatasets(r.datasets()));
  std::string id = r.worker_id();
  if (id.empty()) {
    id = MakeId("wk", absl::StrCat(res.hostname(), "/", NowMs(), "/",
                                   leases_.NextRegistration()));
  }
  RETURN_IF_ERROR(RequireWorkerId(id));
  // Committed first, under no lock; the worker exists once stored.
  RETURN_IF_ERROR(store_->UpsertWorker(id, res, NowMs()));
  leases_.PutWorker(id, NowMs(), res);
  leases_.SetDatasets(id, r.reports_datasets(), r.datasets());
  v1::RegisterWorkerResponse out;
  out.set_worker_id(id);
  out.set_lease_ttl_ms(absl::ToInt64Milliseconds(options_.lease_ttl));
  out.set_heartbeat_interval_ms(
      absl::ToInt64Milliseconds(options_.heartbeat_interval));
  return out;
}

absl::StatusOr<v1::LeaseTrialResponse> Core::LeaseTrial(
    const v1::LeaseTrialRequest& r) {
  RETURN_IF_ERROR(leases_.RequireWorker(r.worker_id()));
  v1::LeaseTrialResponse out;
  // Decided in write order: max_concurrent_trials holds however many
  // workers ask at once, and the pick stays PENDING for no one else.
  absl::MutexLock write(&write_mu_);
  leases_.Touch(r.worker_id());
  const std::optional<LeaseTable::Worker> worker =
      leases_.GetWorker(r.worker_id());
  if (!worker.has_value() || worker->draining) return out;  // until Undrain
  {
    // A gang peer's share comes first: its ranks are awaited (§2.3).
    absl::MutexLock lock(&mu_);
    auto mine = gang_assignments_.find(r.worker_id());
    while (mine != gang_assignments_.end() && !mine->second.empty()) {
      v1::LeaseTrialResponse share = std::move(mine->second.front());
      mine->second.erase(mine->second.begin());
      v1::LeaseRef ref;
      ref.set_trial_id(share.spec().trial_id());
      ref.set_attempt(share.attempt());
      ref.set_lease_epoch(share.lease_epoch());
      if (leases_.Check(r.worker_id(), ref, /*renew=*/true).ok()) {
        share.set_lease_expires_unix_ms(
            absl::ToUnixMillis(leases_.NewExpiry()));
        if (mine->second.empty()) gang_assignments_.erase(mine);
        return share;
      }
    }
    if (mine != gang_assignments_.end()) gang_assignments_.erase(mine);
  }
  TrialRecord next;
  std::vector<Decision::GangShare> gang;
  std::optional<Reservation> reservation;
  const int64_t now_ms = NowMs();
  {
    absl::MutexLock lock(&mu_);
    ClusterView view;
    std::vector<std::vector<TrialRecord*>> records;  // as view.sweeps' pending
    bool need_workers = false;  // a GPU or multi-rank trial is pending
    for (SweepRecord& s : sweeps_) {
      if (s.sweep.paused()) continue;  // held until ResumeSweep
      for (const TrialRecord& t : s.trials) {
        if (t.trial.spec().role() != v1::TRIAL_ROLE_TRUNK) continue;
        TrunkProgress progress{.succeeded = t.trial.state() == v1::SUCCEEDED};
        const auto kept = kept_checkpoints_.find(t.trial.spec().trial_id());
        if (kept != kept_checkpoints_.end()) {
          progress.kept_steps.assign(kept->second.begin(), kept->second.end());
        }
        view.trunks.emplace_back(t.trial.spec().trial_id(),
                                 std::move(progress));
      }
      SweepQueue q;
      q.priority = s.sweep.config().scheduling().priority();
      q.max_concurrent_trials =
          s.sweep.config().scheduling().max_concurrent_trials();
      std::vector<TrialRecord*> pending;
      for (TrialRecord& t : s.trials) {
        q.active_trials += Active(t.trial.state());
        if (t.trial.state() != v1::PENDING) continue;
        q.pending.push_back(
            {t.trial.spec().trial_id(), t.trial.spec().gpus(),
             t.trial.spec().dataset(), s.sweep.config().model().vocab_size(),
             t.trial.spec().trunk_trial_id(), t.trial.spec().start_step(),
             t.trial.spec().cpu_ranks()});
        need_workers |=
            Units(q.pending.back()) > 1 || t.trial.spec().gpus() > 0;
        pending.push_back(&t);
      }
      if (pending.empty()) continue;
      view.sweeps.push_back(std::move(q));
      records.push_back(std::move(pending));
    }
    if (need_workers) view.workers = leases_.Capacities(r);
    view.reservation = reservation_;
    const Decision decision = Schedule(
        view,
        {r.worker_id(), r.free_gpus(), r.free_cpu_slots(), worker->vocab});
    if (!decision.pick.has_value()) {
      reservation_ = decision.reservation;
      return out;
    }
    reservation = decision.reservation;
    gang = decision.gang;
    next = *records[decision.pick->sweep][decision.pick->trial];
    next.trial.set_state(v1::LEASED);
    next.trial.set_attempt(next.trial.attempt() + 1);
    next.trial.set_worker_id(r.worker_id());
    next.trial.set_updated_unix_ms(now_ms);
    next.lease_epoch = next_epoch_;
    // Its unique tokens, if the sweep was submitted before any worker
    // reported the dataset: the leasing worker's report.
    for (const v1::WorkerDataset& d : worker->datasets) {
      if (d.name() == next.trial.spec().dataset() &&
          d.vocab_size() == next.trial.spec().model().vocab_size()) {
        FillDataRepetition(d.train_tokens(), *next.trial.mutable_spec());
      }
    }
  }
  // The two rows commit with mu_ released: heartbeats, metrics and reads go
  // on; the next LeaseTrial waits for write_mu_.
  RETURN_IF_ERROR(store_->UpdateTrials({next}));
  RETURN_IF_ERROR(store_->StartAttempt(next, now_ms));
  const std::string& trial_id = next.trial.spec().trial_id();
  const absl::Time expires = leases_.NewExpiry();
  const v1::TrialSpec& spec = next.trial.spec();
  const uint32_t units =
      spec.gpus() > 0 ? spec.gpus() : std::max<uint32_t>(1, spec.cpu_ranks());
  // Rank 0 first (the asker), then the gang's peers (policy.h "Gangs").
  if (gang.empty()) gang.push_back({r.worker_id(), units});
  LeaseTable::Lease lease{.worker_id = r.worker_id(),
                          .attempt = next.trial.attempt(),
                          .epoch = next.lease_epoch,
                          .expires = expires,
                          .gpus = spec.gpus() > 0 ? gang[0].units : 0,
                          .cpu_slots = spec.gpus() > 0 ? 0 : gang[0].units};
  out.set_has_assignment(true);
  *out.mutable_spec() = spec;
  out.set_attempt(next.trial.attempt());
  out.set_lease_epoch(next.lease_epoch);
  out.set_lease_expires_unix_ms(absl::ToUnixMillis(expires));
  std::vector<std::pair<std::string, v1::LeaseTrialResponse>> shares;
  if (units > 1) {
    lease.rendezvous_port =
        leases_.RendezvousPort(r.worker_id(), next.lease_epoch);
    v1::RankPlacement placement;
    placement.set_world_size(units);
    const v1::WorkerResources& res = worker->resources;
    placement.set_master_addr(!res.rendezvous_host().empty()
                                  ? res.rendezvous_host()
                              : !res.hostname().empty() ? res.hostname()
                                                        : "127.0.0.1");
    placement.set_master_port(lease.rendezvous_port);
    for (const Decision::GangShare& g : gang) {
      placement.add_gang_worker_ids(g.worker_id);
    }
    uint32_t rank = 0;
    for (size_t i = 0; i < gang.size(); ++i) {
      v1::LeaseTrialResponse share = out;
      share.mutable_ranks()->CopyFrom(placement);
      share.mutable_ranks()->set_first_rank(rank);
      share.mutable_ranks()->set_local_ranks(gang[i].units);
      rank += gang[i].units;
      if (i == 0) {
        out = std::move(share);
        continue;
      }
      lease.peers.push_back({.worker_id = gang[i].worker_id,
                             .expires = expires,
                             .gpus = spec.gpus() > 0 ? gang[i].units : 0,
                             .cpu_slots = spec.gpus() > 0 ? 0 : gang[i].units});
      shares.emplace_back(gang[i].worker_id, std::move(share));
    }
  }
  {
    absl::MutexLock lock(&mu_);
    // A PENDING trial changes only in write order: it is as read above.
    *FindTrialLocked(trial_id) = next;
    reservation_ = reservation;  // the pick is leased
    attempt_times_[trial_id].started_ms = now_ms;
    next_epoch_ = std::max(next_epoch_, next.lease_epoch + 1);
    leases_.Put(trial_id, std::move(lease));
    for (auto& [peer, share] : shares) {
      gang_assignments_[peer].push_back(std::move(share));
    }
  }
  return out;
}

absl::StatusOr<TrialRecord*> Core::FindLeasedLocked(
    const std::string& worker_id, const v1::LeaseRef& lease, bool renew) {
  TrialRecord* t = FindTrialLocked(lease.trial_id());
  if (t == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("lease.trial_id = ", lease.trial_id(), ": not found"));
  }
  RETURN_IF_ERROR(leases_.Check(worker_id, lease, renew));
  return t;
}

absl::StatusOr<v1::HeartbeatResponse> Core::Heartbeat(
    const v1::HeartbeatRequest& r) {
  // The lease table alone: no sweep-book lock, no commit waited for.
  RETURN_IF_ERROR(ValidateWorkerDatasets(r.datasets()));
  leases_.SetDatasets(r.worker_id(), r.reports_datasets(), r.datasets());
  ASSIGN_OR_RETURN(std::vector<v1::LeaseRef> revoked,
                   leases_.Heartbeat(r.worker_id(), r.leases()));
  v1::HeartbeatResponse out;
  for (v1::LeaseRef& ref : revoked) *out.add_revoked() = std::move(ref);
  // Liveness for operators (workers.last_heartbeat_unix_ms); leases live in
  // memory, so this write needs no lock. A storage fault must not fail the
  // heartbeat: the leases were renewed, and a worker whose heartbeats fail
  // past its lease stops its trainers (the store counts and logs the fault).
  store_->TouchWorker(r.worker_id(), NowMs()).IgnoreError();
  if (r.leaving()) {
    // A worker stopping for good (docs/cluster.md): forgotten once it holds
    // no lease, so that `worker list` does not show every ended Slurm job's
    // workers as lost.
    if (r.leases_size() > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "leaving = true with ", r.leases_size(),
          " lease(s) in the request: report their outcomes first"));
    }
    // A drained worker is kept (shown lost, still drained): draining must
    // survive the worker coming back under its id (DrainWorker).
    const std::optional<LeaseTable::Worker> w =
        leases_.GetWorker(r.worker_id());
    if (w.has_value() && w->draining) return out;
    RETURN_IF_ERROR(leases_.RemoveWorker(r.worker_id()));
    RETURN_IF_ERROR(store_->RemoveWorker(r.worker_id()));
  }
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
  RETURN_IF_ERROR(leases_.RequireWorker(r.worker_id()));
  uint32_t attempt = 0;
  bool started = false;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(TrialRecord * t,
                     FindLeasedLocked(r.worker_id(), r.lease(), false));
    for (int i = 0; i < r.points_size(); ++i) {
      RETURN_IF_ERROR(ValidatePoint(r.points(i), i, t->trial.spec().steps()));
    }
    if (t->trial.spec().role() == v1::TRIAL_ROLE_TRUNK) {
      for (const v1::MetricPoint& p : points) {
        if (p.name() == kCheckpointKeptMetric) {
          kept_checkpoints_[t->trial.spec().trial_id()].insert(p.step());
        }
      }
    }
    attempt = t->trial.attempt();
    started = t->trial.state() == v1::LEASED;
    if (!started) {
      // Progress (step, last loss) is derivable from the metrics table: kept
      // in memory only.
      ApplyProgress(points, t->trial);
      t->trial.set_updated_unix_ms(NowMs());
      RETURN_IF_ERROR(leases_.Check(r.worker_id(), r.lease(), true));
    }
  }
  if (started) {
    // The attempt's first batch: LEASED -> RUNNING is a state change,
    // committed in write order like the others.
    absl::MutexLock write(&write_mu_);
    TrialRecord next;
    {
      absl::MutexLock lock(&mu_);
      ASSIGN_OR_RETURN(TrialRecord * t,
                       FindLeasedLocked(r.worker_id(), r.lease(), false));
      next = *t;
    }
    if (next.trial.state() == v1::LEASED) {
      next.trial.set_state(v1::RUNNING);
      next.trial.set_updated_unix_ms(NowMs());
      RETURN_IF_ERROR(store_->UpdateTrials({next}));
    }
    absl::MutexLock lock(&mu_);
    TrialRecord* t = FindTrialLocked(r.lease().trial_id());
    t->trial.set_state(v1::RUNNING);
    ApplyProgress(points, t->trial);
    t->trial.set_updated_unix_ms(NowMs());
    RETURN_IF_ERROR(leases_.Check(r.worker_id(), r.lease(), true));
  }
  // Metric rows are idempotent and order-free: committed under no lock, so
  // that many workers' batches share the writer's transactions.
  ASSIGN_OR_RETURN(int inserted, store_->InsertMetrics(r.lease().trial_id(),
                                                       attempt, points));
  points_ingested_ += inserted;
  v1::ReportMetricsResponse out;
  out.set_accepted(static_cast<uint32_t>(inserted));
  return out;
}

void Core::RetryOrFailLocked(TrialRecord& t, const std::string& reason,
                             int64_t now_ms) {
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
  t.trial.set_updated_unix_ms(now_ms);
}

std::vector<TrialRecord> Core::BranchesAfterTrunkLocked(
    const TrialRecord& trunk, int64_t now_ms) {
  std::vector<TrialRecord> out;
  if (trunk.trial.spec().role() != v1::TRIAL_ROLE_TRUNK) return out;
  TrunkEnd end = TrunkEnd::kRequeued;
  switch (trunk.trial.state()) {
    case v1::SUCCEEDED:
      end = TrunkEnd::kSucceeded;
      break;
    case v1::FAILED:
      end = TrunkEnd::kFailed;
      break;
    case v1::CANCELLED:
      end = TrunkEnd::kCancelled;
      break;
    default:
      break;
  }
  const BranchFate fate = BranchOnTrunkEnd(end);
  if (fate == BranchFate::kWait) return out;
  const std::string& trunk_id = trunk.trial.spec().trial_id();
  for (const TrialRecord& b :
       FindSweepLocked(trunk.trial.spec().sweep_id())->trials) {
    if (b.trial.spec().trunk_trial_id() != trunk_id ||
        b.trial.state() != v1::PENDING) {
      continue;
    }
    TrialRecord c = b;
    c.trial.set_state(fate == BranchFate::kFail ? v1::FAILED : v1::CANCELLED);
    c.trial.set_error(
        absl::StrCat("trunk ", trunk_id,
                     fate == BranchFate::kFail ? " failed: " : " was cancelled",
                     fate == BranchFate::kFail ? trunk.trial.error() : ""));
    c.trial.set_updated_unix_ms(now_ms);
    out.push_back(std::move(c));
  }
  return out;
}

void Core::EndTrialLocked(TrialRecord& t, const v1::ReportOutcomeRequest& r,
                          int64_t now_ms) {
  const std::string message = r.message().substr(0, kMaxMessageBytes);
  if (r.outcome() == v1::OUTCOME_RETRYABLE) {
    RetryOrFailLocked(t, absl::StrCat("exit ", r.exit_code(), ": ", message),
                      now_ms);
    return;
  }
  t.trial.set_updated_unix_ms(now_ms);
  if (r.outcome() == v1::OUTCOME_SUCCEEDED) {
    t.trial.set_state(v1::SUCCEEDED);
    // A trunk is no law point (its loss stays in its curve): no val_loss,
    // so that no fit, law page or best-loss summary reads it.
    t.trial.set_val_loss(t.trial.spec().role() == v1::TRIAL_ROLE_TRUNK
                             ? std::nan("")
                             : r.final_val_loss());
    if (std::isfinite(r.tokens_per_s()) && r.tokens_per_s() > 0) {
      t.trial.set_tokens_per_s(r.tokens_per_s());
    }
    t.trial.set_step(t.trial.spec().steps());
    t.trial.set_error("");
  } else {
    t.trial.set_state(r.outcome() == v1::OUTCOME_FAILED ? v1::FAILED
                                                        : v1::CANCELLED);
    t.trial.set_error(absl::StrCat("exit ", r.exit_code(), ": ", message));
  }
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
  RETURN_IF_ERROR(leases_.RequireWorker(r.worker_id()));
  absl::MutexLock write(&write_mu_);
  const int64_t now_ms = NowMs();
  v1::ReportOutcomeRequest ended = r;  // a gang peer's: see GangPeerOutcome
  TrialRecord after;
  std::vector<TrialRecord> branches;  // given up with their trunk
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(TrialRecord * t,
                     FindLeasedLocked(r.worker_id(), r.lease(), false));
    RETURN_IF_ERROR(GangPeerOutcome(r, ended));
    after = *t;
    EndTrialLocked(after, ended, now_ms);
    branches = BranchesAfterTrunkLocked(after, now_ms);
  }
  // Memory changes only once both rows are committed: an outcome refused
  // UNAVAILABLE (a storage fault) is retried by the worker, which must then
  // find its lease current. The attempt row is closed first, so that no
  // stored trial ever ended with its attempt still open.
  const std::string& trial_id = r.lease().trial_id();
  RETURN_IF_ERROR(store_->EndAttempt(
      trial_id, r.lease().attempt(), v1::Outcome_Name(ended.outcome()),
      ended.exit_code(), ended.message().substr(0, kMaxMessageBytes), now_ms));
  std::vector<TrialRecord> rows = branches;
  rows.push_back(after);
  RETURN_IF_ERROR(store_->UpdateTrials(rows));
  const std::string sweep_id = after.trial.spec().sweep_id();
  {
    absl::MutexLock lock(&mu_);
    // Only writers change a PENDING trial, and this one holds write_mu_.
    for (const TrialRecord& b : branches) {
      *FindTrialLocked(b.trial.spec().trial_id()) = b;
    }
    TrialRecord& t = *FindTrialLocked(trial_id);
    // The same change on the live record: the progress a metrics batch
    // applied meanwhile stays where the outcome does not set it.
    EndTrialLocked(t, ended, now_ms);
    leases_.Erase(trial_id);
    EndAttemptTimeLocked(trial_id);
    if (t.trial.state() == v1::SUCCEEDED) {
      const SweepRecord* s = FindSweepLocked(sweep_id);
      const auto succeeded = std::count_if(
          s->trials.begin(), s->trials.end(), [](const TrialRecord& other) {
            // Law points only: a trunk is none (docs/architecture.md §2.2).
            return other.trial.state() == v1::SUCCEEDED &&
                   other.trial.spec().role() != v1::TRIAL_ROLE_TRUNK;
          });
      if (succeeded >= options_.refit_min_points) {
        fits_.Queue(sweep_id, /*final=*/false);
      }
    }
  }
  // The outcome is stored: a sweep state that could not be is written again
  // by the next ReapExpiredLeases (unsaved_sweeps_), not refused here.
  RefreshSweep(sweep_id);
  return absl::OkStatus();
}

absl::Status Core::GangPeerOutcome(const v1::ReportOutcomeRequest& r,
                                   v1::ReportOutcomeRequest& ended) const {
  const std::optional<LeaseTable::Lease> lease =
      leases_.Get(r.lease().trial_id());
  if (!lease.has_value() || lease->worker_id == r.worker_id()) {
    return absl::OkStatus();  // rank 0's worker: the trial's outcome
  }
  // A peer's ranks ended. Only rank 0 reports success (its final metrics
  // line); a peer's ranks ending first mean the trial cannot go on: it ends
  // on every worker (the others find the lease revoked) and is retried from
  // its checkpoint (docs/architecture.md §2.3).
  if (r.outcome() == v1::OUTCOME_SUCCEEDED) {
    return absl::InvalidArgumentError(
        absl::StrCat("outcome = OUTCOME_SUCCEEDED from worker ", r.worker_id(),
                     ": only rank 0's worker (", lease->worker_id,
                     ") reports a gang trial's success"));
  }
  ended.set_outcome(v1::OUTCOME_RETRYABLE);
  ended.set_message(absl::StrCat("gang peer ", r.worker_id(), ": ",
                                 v1::Outcome_Name(r.outcome()), ": ",
                                 r.message()));
  return absl::OkStatus();
}

int Core::ReapExpiredLeases(absl::Time now) {
  absl::MutexLock write(&write_mu_);
  SaveUnsaved();
  // Removed from the table here; why each expired: LeaseTable::Expire.
  const std::vector<LeaseTable::Expired> expired = leases_.Expire(now);
  if (expired.empty()) return 0;
  std::vector<TrialRecord> changed;
  std::vector<std::pair<std::string, UnsavedEnd>> ends;
  std::set<std::string> sweeps;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now_ms = NowMs();
    for (const LeaseTable::Expired& e : expired) {
      TrialRecord* t = FindTrialLocked(e.trial_id);
      // The in-memory state moves on before the store (the reaper must not
      // stall on a store error); a write that fails is written again by the
      // next tick (SaveUnsaved).
      RetryOrFailLocked(*t, e.reason, now_ms);
      EndAttemptTimeLocked(e.trial_id);
      changed.push_back(*t);
      for (TrialRecord& b : BranchesAfterTrunkLocked(*t, now_ms)) {
        *FindTrialLocked(b.trial.spec().trial_id()) = b;
        changed.push_back(std::move(b));
      }
      ends.emplace_back(e.trial_id, UnsavedEnd{e.lease.attempt, "LEASE_EXPIRED",
                                               -1, e.reason, now_ms});
      sweeps.insert(t->trial.spec().sweep_id());
    }
  }
  const bool trials_saved = store_->UpdateTrials(changed).ok();
  std::vector<std::pair<std::string, UnsavedEnd>> unsaved;
  for (auto& [id, end] : ends) {
    if (!store_
             ->EndAttempt(id, end.attempt, end.outcome, end.exit_code,
                          end.message, end.now_ms)
             .ok()) {
      unsaved.emplace_back(id, std::move(end));
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (!trials_saved) {
      for (const TrialRecord& t : changed) {
        unsaved_trials_.insert(t.trial.spec().trial_id());
      }
    }
    for (auto& [id, end] : unsaved) {
      const uint32_t attempt = end.attempt;
      unsaved_ends_[{id, attempt}] = std::move(end);
    }
  }
  for (const std::string& sweep_id : sweeps) RefreshSweep(sweep_id);
  return static_cast<int>(expired.size());
}

void Core::SaveUnsaved() {
  std::map<std::pair<std::string, uint32_t>, UnsavedEnd> ends;
  std::vector<TrialRecord> trials;
  std::vector<std::pair<std::string, v1::SweepState>> sweeps;
  std::set<std::string> unplanned;
  {
    absl::MutexLock lock(&mu_);
    if (unsaved_ends_.empty() && unsaved_trials_.empty() &&
        unsaved_sweeps_.empty() && unplanned_sweeps_.empty()) {
      return;
    }
    unplanned.swap(unplanned_sweeps_);
    ends.swap(unsaved_ends_);
    for (const std::string& id : unsaved_trials_) {
      if (const TrialRecord* t = FindTrialLocked(id)) trials.push_back(*t);
    }
    unsaved_trials_.clear();
    for (const std::string& id : unsaved_sweeps_) {
      if (const SweepRecord* s = FindSweepLocked(id)) {
        sweeps.emplace_back(id, s->sweep.state());
      }
    }
    unsaved_sweeps_.clear();
  }
  // Only writers add to these, and this one holds write_mu_: what fails
  // again goes back as it was.
  std::map<std::pair<std::string, uint32_t>, UnsavedEnd> still_ends;
  std::set<std::string> still_trials, still_sweeps;
  for (auto& [key, e] : ends) {
    if (!store_
             ->EndAttempt(key.first, e.attempt, e.outcome, e.exit_code,
                          e.message, e.now_ms)
             .ok()) {
      still_ends.emplace(key, std::move(e));
    }
  }
  for (const TrialRecord& t : trials) {
    if (!store_->UpdateTrials({t}).ok()) {
      still_trials.insert(t.trial.spec().trial_id());
    }
  }
  for (const auto& [id, state] : sweeps) {
    if (!store_->UpdateSweepState(id, state).ok()) still_sweeps.insert(id);
  }
  {
    absl::MutexLock lock(&mu_);
    unsaved_ends_.merge(still_ends);
    unsaved_trials_.merge(still_trials);
    unsaved_sweeps_.merge(still_sweeps);
  }
  // Planned again; a commit that fails again puts it back.
  for (const std::string& id : unplanned) RefreshSweep(id);
}

v1::ListWorkersResponse Core::ListWorkers() { return leases_.List(); }

absl::StatusOr<v1::Worker> Core::SetWorkerDraining(const std::string& worker_id,
                                                   bool draining) {
  RETURN_IF_ERROR(RequireWorkerId(worker_id));
  absl::MutexLock write(&write_mu_);
  const std::optional<LeaseTable::Worker> w = leases_.GetWorker(worker_id);
  if (!w.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("worker ", worker_id,
                     ": not found (never registered; see `isoflop worker "
                     "list`)"));
  }
  if (w->draining != draining) {
    RETURN_IF_ERROR(store_->UpdateWorkerDraining(worker_id, draining));
    leases_.SetDraining(worker_id, draining);
  }
  return leases_.View(worker_id);
}

}  // namespace isoflop::coordinator
