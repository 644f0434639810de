// Core: the sweep's scaling-law fits (refits while it runs, the final fit
// with Approach 2 and the bootstrap when it ends), run by the fit queue
// (fit_queue.h), and the compute-optimal queries answered from them.
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "analysis/bootstrap.h"
#include "analysis/constrained_proto.h"
#include "analysis/fit_proto.h"
#include "analysis/fit_report.h"
#include "analysis/flops_proto.h"
#include "analysis/queries.h"
#include "common/flops.h"
#include "common/status_macros.h"
#include "coordinator/service/core.h"

namespace isoflop::coordinator {
namespace {

bool HasApproach(const v1::Sweep& s, int approach) {
  if (!s.has_fit()) return false;
  return approach == 2 ? s.fit().has_approach2()
                       : analysis::HasApproach3(s.fit());
}

void SetInterval(const analysis::Interval& in, v1::Interval* out) {
  out->set_low(in.low);
  out->set_high(in.high);
}

// A trial's actual C (stored by sweep expansion; computed for trials stored
// before the field existed).
double TrialFlops(const v1::TrialSpec& spec) {
  return spec.flops() > 0 ? spec.flops()
                          : TrialCompute(spec.flops_per_token(),
                                         static_cast<double>(spec.tokens()));
}

absl::Status RequirePositive(const char* field, double value) {
  if (!std::isfinite(value) || value <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " = ", value, ": must be > 0"));
  }
  return absl::OkStatus();
}

// The query of a request, or INVALID_ARGUMENT naming the field.
absl::StatusOr<analysis::Query> QueryOf(const v1::OptimalRequest& r) {
  const int given = (r.flops() != 0) + (r.params() != 0) + (r.loss() != 0);
  if (given != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("flops = ", r.flops(), ", params = ", r.params(),
                     ", loss = ", r.loss(), ": set exactly one"));
  }
  analysis::Query q;
  if (r.flops() != 0) {
    RETURN_IF_ERROR(RequirePositive("flops", r.flops()));
    q = {analysis::QueryKind::kFlops, r.flops()};
  } else if (r.params() != 0) {
    RETURN_IF_ERROR(RequirePositive("params", r.params()));
    q = {analysis::QueryKind::kParams, r.params()};
  } else {
    RETURN_IF_ERROR(RequirePositive("loss", r.loss()));
    q = {analysis::QueryKind::kLoss, r.loss()};
  }
  if (r.approach() != 0 && r.approach() != 2 && r.approach() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("approach = ", r.approach(), ": must be 2 or 3"));
  }
  q.approach = r.approach() == 0 ? 3 : static_cast<int>(r.approach());
  return q;
}

absl::Status RequireFitSweepId(const std::string& sweep_id) {
  if (sweep_id.empty() || sweep_id.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("sweep_id = \"", sweep_id.substr(0, 32),
                     "\": must be 1 to 128 characters (see `sweep list`)"));
  }
  return absl::OkStatus();
}

}  // namespace

v1::ScalingLawFit Core::ComputeFit(const std::vector<TrialRecord>& trials,
                                   bool final) const {
  const auto started = std::chrono::steady_clock::now();
  analysis::PointSet set;
  set.has_budget = true;
  set.has_tokens = set.has_flops = set.has_n_non_embedding = true;
  for (const TrialRecord& t : trials) {
    if (t.trial.state() != v1::SUCCEEDED) continue;
    if (t.trial.spec().role() == v1::TRIAL_ROLE_TRUNK) continue;  // no cell
    analysis::Point p;
    p.n = static_cast<double>(t.trial.spec().n_total());
    p.n_non_embedding = static_cast<double>(t.trial.spec().n_non_embedding());
    p.d = static_cast<double>(t.trial.spec().tokens());
    p.flops = TrialFlops(t.trial.spec());
    set.has_flops &= p.flops > 0;
    set.has_n_non_embedding &= p.n_non_embedding > 0;
    p.loss = t.trial.val_loss();
    p.budget = t.trial.spec().flops_budget();
    // Data repetition for the data-constrained form (analysis/constrained.h):
    // the distinct tokens the workers reported for the trial's dataset.
    if (t.trial.spec().unique_tokens() > 0) {
      p.unique_tokens = static_cast<double>(t.trial.spec().unique_tokens());
      p.epochs = p.d / p.unique_tokens;
      set.has_unique_tokens = true;
    }
    p.line = static_cast<int>(set.points.size());
    set.has_budget &= p.budget > 0;
    set.points.push_back(std::move(p));
  }
  if (!set.has_budget) {
    for (analysis::Point& p : set.points) p.budget = 0;
  }
  v1::ScalingLawFit out;
  out.set_n_convention("n_total");
  out.set_n_points(static_cast<uint32_t>(set.points.size()));
  out.set_final(final);
  analysis::FitRequest request;
  request.approaches = final ? std::set<int>{2, 3} : std::set<int>{3};
  request.approach3 = {.huber_delta = 1e-3,
                       .threads = final ? options_.fit_threads : 1,
                       .starts = options_.fit_starts};
  request.bootstrap = final ? options_.bootstrap_resamples : 0;
  request.backtest = final;  // one more Approach 3 fit
  request.seed = options_.bootstrap_seed;
  request.sensitivity = final;
  request.cancel = fits_.cancelled();
  absl::StatusOr<analysis::FitReport> report = analysis::RunFits(set, request);
  const auto seconds = [&started] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         started)
        .count();
  };
  if (!report.ok()) {
    out.set_message(absl::StrCat("not fitted: ", report.status().message()));
    out.set_fit_seconds(seconds());
    return out;
  }
  analysis::FitReportToProto(*report, &out);
  if (final) {
    // Muennighoff's data-constrained form beside Chinchilla's, with their
    // held-out comparison (docs/fitting.md, "Data-constrained fits"); only
    // a message when no trial repeats data.
    analysis::ConstrainedRunToProto(
        analysis::RunConstrained(*report, {.bootstrap = request.bootstrap,
                                           .seed = request.seed,
                                           .compare = true}),
        &out);
  }
  out.set_fit_seconds(seconds());
  return out;
}

absl::StatusOr<v1::ScalingLawFit> Core::FitSweep(const std::string& sweep_id) {
  RETURN_IF_ERROR(RequireFitSweepId(sweep_id));
  // On the caller's thread; fits the queue holds for this sweep wait.
  fits_.Begin(sweep_id);
  absl::StatusOr<v1::ScalingLawFit> fit = FitSweepAs(sweep_id, std::nullopt);
  fits_.End(sweep_id);
  return fit;
}

void Core::FitSweepAsync(
    const std::string& sweep_id,
    absl::AnyInvocable<void(absl::StatusOr<v1::ScalingLawFit>)> done) {
  if (absl::Status known = RequestFitCheck(sweep_id); !known.ok()) {
    done(known);
    return;
  }
  fits_.Request(sweep_id, std::move(done));
}

absl::Status Core::RequestFit(const std::string& sweep_id) {
  RETURN_IF_ERROR(RequestFitCheck(sweep_id));
  int64_t succeeded = 0;
  {
    absl::MutexLock lock(&mu_);
    const SweepRecord* s = FindSweepLocked(sweep_id);
    succeeded =
        std::count_if(s->trials.begin(), s->trials.end(), [](const auto& t) {
          // Law points only: a trunk is none (docs/architecture.md §2.2).
          return t.trial.state() == v1::SUCCEEDED &&
                 t.trial.spec().role() != v1::TRIAL_ROLE_TRUNK;
        });
  }
  if (succeeded < options_.refit_min_points) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sweep ", sweep_id, ": ", succeeded, " succeeded trials, a fit needs ",
        options_.refit_min_points));
  }
  fits_.Request(sweep_id, nullptr);
  return absl::OkStatus();
}

absl::Status Core::RequestFitCheck(const std::string& sweep_id) {
  RETURN_IF_ERROR(RequireFitSweepId(sweep_id));
  absl::MutexLock lock(&mu_);
  if (FindSweepLocked(sweep_id) == nullptr) {
    return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, ": not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ScalingLawFit> Core::FitSweepAs(const std::string& sweep_id,
                                                   std::optional<bool> final) {
  RETURN_IF_ERROR(RequireFitSweepId(sweep_id));
  std::vector<TrialRecord> trials;
  {
    absl::MutexLock lock(&mu_);
    SweepRecord* s = FindSweepLocked(sweep_id);
    if (s == nullptr)
      return absl::NotFoundError(
          absl::StrCat("sweep ", sweep_id, ": not found"));
    trials = s->trials;
    if (!final) final = s->sweep.state() != v1::SWEEP_RUNNING;
  }
  v1::ScalingLawFit fit = ComputeFit(trials, *final);  // seconds: no lock
  if (fits_.cancelled()->load()) {
    return absl::CancelledError(
        absl::StrCat("sweep ", sweep_id, ": fit cancelled (shutting down)"));
  }
  // The stale check, the commit and the apply in one step per core; no lock
  // a lease or a heartbeat needs is held across the commit.
  absl::MutexLock store_order(&fit_store_mu_);
  {
    absl::MutexLock lock(&mu_);
    const SweepRecord* s = FindSweepLocked(sweep_id);
    // A final fit begun before RetrySweep re-ran the sweep describes the
    // sweep as it was: stored as provisional, never as its final fit.
    if (fit.final() && s->sweep.state() == v1::SWEEP_RUNNING) {
      fit.set_final(false);
    }
    const v1::ScalingLawFit& stored = s->sweep.fit();
    const bool stale = s->sweep.has_fit() && !fit.final() &&
                       (stored.final() || stored.n_points() > fit.n_points());
    if (stale) return fit;
  }
  RETURN_IF_ERROR(store_->StoreFit(sweep_id, fit, NowMs()));
  absl::MutexLock lock(&mu_);
  ++fits_done_;
  fit_seconds_ += fit.fit_seconds();
  *FindSweepLocked(sweep_id)->sweep.mutable_fit() = fit;
  return fit;
}

absl::StatusOr<v1::OptimalResponse> Core::Optimal(const v1::OptimalRequest& r) {
  ASSIGN_OR_RETURN(const analysis::Query query, QueryOf(r));
  v1::Sweep sweep;
  {
    absl::MutexLock lock(&mu_);
    if (r.sweep_id().empty()) {
      std::vector<std::string> fitted;  // never a silent "newest"
      for (const SweepRecord& s : sweeps_) {
        if (!HasApproach(s.sweep, query.approach)) continue;
        sweep = s.sweep;
        fitted.push_back(s.sweep.id());
      }
      if (fitted.size() > 1) {
        return absl::FailedPreconditionError(
            absl::StrCat("sweep_id = \"\": ", fitted.size(),
                         " sweeps have an Approach ", query.approach, " fit (",
                         absl::StrJoin(fitted, ", "), "): name one (--sweep)"));
      }
      if (sweep.id().empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat("sweep_id = \"\": no sweep has a usable Approach ",
                         query.approach, " fit yet"));
      }
    } else {
      SweepRecord* s = FindSweepLocked(r.sweep_id());
      if (s == nullptr) {
        return absl::NotFoundError(
            absl::StrCat("sweep ", r.sweep_id(), ": not found"));
      }
      sweep = s->sweep;
    }
  }
  if (!HasApproach(sweep, query.approach)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sweep ", sweep.id(), ": no usable Approach ", query.approach,
        " fit (state ", v1::SweepState_Name(sweep.state()),
        sweep.has_fit()
            ? absl::StrCat("; fit: ", query.approach == 2
                                          ? sweep.fit().approach2_message()
                                          : sweep.fit().message())
            : "",
        ")"));
  }
  absl::StatusOr<analysis::Answer> answer =
      analysis::AnswerQuery(analysis::StoredFitFromProto(sweep.fit()), query);
  if (!answer.ok()) {
    return absl::Status(
        answer.status().code(),
        absl::StrCat("sweep ", sweep.id(), ": ", answer.status().message()));
  }
  v1::OptimalResponse out;
  out.set_flops(answer->flops);
  out.set_n_opt(answer->params);
  out.set_d_opt(answer->tokens);
  out.set_predicted_loss(answer->loss ? *answer->loss : std::nan(""));
  out.set_approach(static_cast<uint32_t>(answer->approach));
  out.set_sweep_id(sweep.id());
  out.set_flops_convention(answer->flops_convention);
  out.set_flops_convention_description(answer->flops_description);
  for (const auto& [name, interval] : answer->ci95) {
    SetInterval(interval, &(*out.mutable_ci95())[name]);
  }
  *out.mutable_fit() = sweep.fit();
  out.mutable_fit()->clear_approach3_samples();  // ci95 carries what they say
  out.mutable_fit()->clear_approach2_samples();
  return out;
}

}  // namespace isoflop::coordinator
