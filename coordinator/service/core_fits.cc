// Core: the sweep's scaling-law fits (refits while it runs, the final fit
// with Approach 2 and the bootstrap when it ends) and the compute-optimal
// queries answered from them.
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "analysis/bootstrap.h"
#include "analysis/fit_report.h"
#include "analysis/flops_proto.h"
#include "analysis/queries.h"
#include "common/flops.h"
#include "common/status_macros.h"
#include "coordinator/service/core.h"

namespace isoflop::coordinator {
namespace {

bool HasApproach3(const v1::ScalingLawFit& f) {
  return f.alpha() > 0 && f.beta() > 0 && f.a() > 0 && f.b() > 0;
}
bool HasApproach(const v1::Sweep& s, int approach) {
  if (!s.has_fit()) return false;
  return approach == 2 ? s.fit().has_approach2() : HasApproach3(s.fit());
}

v1::Approach2Law ToProto(
    const std::pair<analysis::PowerLaw, analysis::PowerLaw>& law) {
  v1::Approach2Law out;
  out.set_n_opt_coef(law.first.coef);
  out.set_n_opt_exponent(law.first.exponent);
  out.set_d_opt_coef(law.second.coef);
  out.set_d_opt_exponent(law.second.exponent);
  return out;
}
std::pair<analysis::PowerLaw, analysis::PowerLaw> FromProto(
    const v1::Approach2Law& law) {
  return {{law.n_opt_coef(), law.n_opt_exponent()},
          {law.d_opt_coef(), law.d_opt_exponent()}};
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

// The laws of a stored fit, as analysis/queries.h reads a fit file.
analysis::StoredFit ToStoredFit(const v1::ScalingLawFit& f) {
  analysis::StoredFit out;
  out.flops_model = analysis::FlopsModelFromProto(f.flops());
  if (HasApproach3(f)) {
    out.approach3 = analysis::LawWith(f.e(), f.a(), f.b(), f.alpha(), f.beta());
    for (const v1::Approach3Law& s : f.approach3_samples()) {
      out.approach3_samples.push_back(
          analysis::LawWith(s.e(), s.a(), s.b(), s.alpha(), s.beta()));
    }
  }
  if (f.has_approach2()) {
    out.approach2 = FromProto(f.approach2());
    for (const v1::Approach2Law& s : f.approach2_samples()) {
      out.approach2_samples.push_back(FromProto(s));
    }
  }
  return out;
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

}  // namespace

void Core::QueueFitLocked(const std::string& sweep_id, bool final) {
  pending_fits_[sweep_id] |= final;
}

v1::ScalingLawFit Core::ComputeFit(const std::vector<TrialRecord>& trials,
                                   bool final) const {
  const auto started = std::chrono::steady_clock::now();
  analysis::PointSet set;
  set.has_budget = true;
  set.has_tokens = set.has_flops = set.has_n_non_embedding = true;
  for (const TrialRecord& t : trials) {
    if (t.trial.state() != v1::SUCCEEDED) continue;
    analysis::Point p;
    p.n = static_cast<double>(t.trial.spec().n_total());
    p.n_non_embedding = static_cast<double>(t.trial.spec().n_non_embedding());
    p.d = static_cast<double>(t.trial.spec().tokens());
    p.flops = TrialFlops(t.trial.spec());
    set.has_flops &= p.flops > 0;
    set.has_n_non_embedding &= p.n_non_embedding > 0;
    p.loss = t.trial.val_loss();
    p.budget = t.trial.spec().flops_budget();
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
                       .starts = {}};
  request.bootstrap = final ? options_.bootstrap_resamples : 0;
  request.seed = options_.bootstrap_seed;
  request.sensitivity = final;
  request.cancel = &cancel_fits_;
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
  analysis::FlopsModelToProto(report->flops_model, out.mutable_flops());
  analysis::SensitivityToProto(report->sensitivity, out.mutable_sensitivity());
  if (const auto& a3 = report->approach3; a3.fit) {
    const analysis::Approach3Fit& fit = *a3.fit;
    out.set_e(fit.e);
    out.set_a(fit.a);
    out.set_b(fit.b);
    out.set_alpha(fit.alpha);
    out.set_beta(fit.beta);
    out.set_objective(fit.objective);
    out.set_n_starts(static_cast<uint32_t>(fit.n_starts));
    out.set_n_starts_at_best(static_cast<uint32_t>(fit.n_starts_at_best));
    out.set_on_grid_edge(fit.on_grid_edge);
    out.set_message(fit.message);
    if (a3.bootstrap) {
      for (const analysis::Approach3Fit& s : a3.bootstrap->samples) {
        v1::Approach3Law* law = out.add_approach3_samples();
        law->set_e(s.e);
        law->set_a(s.a);
        law->set_b(s.b);
        law->set_alpha(s.alpha);
        law->set_beta(s.beta);
      }
      out.set_bootstrap_failed(static_cast<uint32_t>(a3.bootstrap->failed));
      for (const auto& [name, interval] :
           analysis::Approach3Intervals(a3.bootstrap->samples)) {
        SetInterval(interval, &(*out.mutable_ci95())[name]);
      }
    }
  } else {
    out.set_message(absl::StrCat("not fitted: ", a3.reason));
  }
  if (const auto& a2 = report->approach2; a2.fit) {
    *out.mutable_approach2() = ToProto({a2.fit->n_opt, a2.fit->d_opt});
    out.set_approach2_message(absl::StrJoin(a2.fit->refused, "; "));
    if (a2.bootstrap) {
      std::vector<double> columns[4];
      for (const auto& s : a2.bootstrap->samples) {
        *out.add_approach2_samples() = ToProto(s);
        columns[0].push_back(s.first.coef);
        columns[1].push_back(s.first.exponent);
        columns[2].push_back(s.second.coef);
        columns[3].push_back(s.second.exponent);
      }
      out.set_bootstrap_failed(out.bootstrap_failed() +
                               static_cast<uint32_t>(a2.bootstrap->failed));
      const char* names[] = {"n_opt_coef", "n_opt_exponent", "d_opt_coef",
                             "d_opt_exponent"};
      for (int k = 0; k < 4; ++k) {
        SetInterval(analysis::Percentile95(columns[k]),
                    &(*out.mutable_ci95())[names[k]]);
      }
    }
  } else if (final) {
    out.set_approach2_message(a2.reason);
  }
  if (request.bootstrap > 0) {
    out.set_bootstrap_resamples(static_cast<uint32_t>(request.bootstrap));
    out.set_bootstrap_seed(request.seed);
  }
  out.set_fit_seconds(seconds());
  return out;
}

absl::StatusOr<v1::ScalingLawFit> Core::FitSweep(const std::string& sweep_id) {
  return FitSweepAs(sweep_id, std::nullopt);
}

absl::StatusOr<v1::ScalingLawFit> Core::FitSweepAs(const std::string& sweep_id,
                                                   std::optional<bool> final) {
  if (sweep_id.empty() || sweep_id.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("sweep_id = \"", sweep_id.substr(0, 32),
                     "\": must be 1 to 128 characters (see `sweep list`)"));
  }
  std::vector<TrialRecord> trials;
  {
    absl::MutexLock lock(&mu_);
    SweepRecord* s = FindSweepLocked(sweep_id);
    if (s == nullptr)
      return absl::NotFoundError(
          absl::StrCat("sweep ", sweep_id, ": not found"));
    trials = s->trials;
    if (!final) final = s->sweep.state() != v1::SWEEP_RUNNING;
    fitting_.insert(sweep_id);
  }
  const v1::ScalingLawFit fit =
      ComputeFit(trials, *final);  // seconds: outside the lock
  absl::MutexLock lock(&mu_);
  fitting_.erase(sweep_id);
  if (cancel_fits_.load()) {
    return absl::CancelledError(
        absl::StrCat("sweep ", sweep_id, ": fit cancelled (shutting down)"));
  }
  SweepRecord* s = FindSweepLocked(sweep_id);
  const v1::ScalingLawFit& stored = s->sweep.fit();
  const bool stale = s->sweep.has_fit() && !fit.final() &&
                     (stored.final() || stored.n_points() > fit.n_points());
  if (stale) return fit;
  ++fits_;
  fit_seconds_ += fit.fit_seconds();
  RETURN_IF_ERROR(store_->StoreFit(sweep_id, fit, NowMs()));
  *s->sweep.mutable_fit() = fit;
  return fit;
}

int Core::RunPendingFits() {
  std::map<std::string, bool> due;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    for (auto it = pending_fits_.begin(); it != pending_fits_.end();) {
      const auto last = last_refit_.find(it->first);
      const bool too_soon = !it->second && last != last_refit_.end() &&
                            now - last->second < options_.refit_min_interval;
      if (fitting_.count(it->first) != 0 || too_soon) {
        ++it;  // one fit per sweep: runs after the current one
      } else {
        if (!it->second) last_refit_[it->first] = now;
        due.insert(*it);
        it = pending_fits_.erase(it);
      }
    }
  }
  int ran = 0;
  for (const auto& [id, final] : due) {
    if (cancel_fits_.load()) break;
    FitSweepAs(id, final).IgnoreError();  // outcome stored on the sweep
    ++ran;
  }
  return ran;
}

absl::StatusOr<v1::OptimalResponse> Core::Optimal(const v1::OptimalRequest& r) {
  ASSIGN_OR_RETURN(const analysis::Query query, QueryOf(r));
  v1::Sweep sweep;
  {
    absl::MutexLock lock(&mu_);
    if (r.sweep_id().empty()) {
      for (const SweepRecord& s : sweeps_) {
        if (HasApproach(s.sweep, query.approach)) sweep = s.sweep;  // newest
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
      analysis::AnswerQuery(ToStoredFit(sweep.fit()), query);
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
