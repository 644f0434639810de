#include "analysis/fit_proto.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "analysis/bootstrap.h"
#include "analysis/flops_proto.h"
#include "analysis/verdict.h"

namespace isoflop::analysis {
namespace {

void SetInterval(const Interval& in, v1::Interval* out) {
  out->set_low(in.low);
  out->set_high(in.high);
}

}  // namespace

Approach3Fit LawFromProto(const v1::Approach3Law& law) {
  return LawWith(law.e(), law.a(), law.b(), law.alpha(), law.beta());
}

v1::Approach3Law LawToProto(const Approach3Fit& law) {
  v1::Approach3Law out;
  out.set_e(law.e);
  out.set_a(law.a);
  out.set_b(law.b);
  out.set_alpha(law.alpha);
  out.set_beta(law.beta);
  return out;
}

std::pair<PowerLaw, PowerLaw> Approach2FromProto(const v1::Approach2Law& law) {
  return {{law.n_opt_coef(), law.n_opt_exponent()},
          {law.d_opt_coef(), law.d_opt_exponent()}};
}

v1::Approach2Law Approach2ToProto(const std::pair<PowerLaw, PowerLaw>& law) {
  v1::Approach2Law out;
  out.set_n_opt_coef(law.first.coef);
  out.set_n_opt_exponent(law.first.exponent);
  out.set_d_opt_coef(law.second.coef);
  out.set_d_opt_exponent(law.second.exponent);
  return out;
}

bool HasApproach3(const v1::ScalingLawFit& fit) {
  return fit.alpha() > 0 && fit.beta() > 0 && fit.a() > 0 && fit.b() > 0;
}

Approach3Fit Approach3FromProto(const v1::ScalingLawFit& fit) {
  Approach3Fit out =
      LawWith(fit.e(), fit.a(), fit.b(), fit.alpha(), fit.beta());
  out.objective = fit.objective();
  out.n_points = static_cast<int>(fit.n_points());
  out.n_starts = static_cast<int>(fit.n_starts());
  out.n_starts_at_best = static_cast<int>(fit.n_starts_at_best());
  out.on_grid_edge = fit.on_grid_edge();
  out.message = fit.message();
  return out;
}

std::vector<Approach3Fit> Approach3Samples(const v1::ScalingLawFit& fit) {
  std::vector<Approach3Fit> out;
  for (const v1::Approach3Law& s : fit.approach3_samples()) {
    out.push_back(LawFromProto(s));
  }
  return out;
}

StoredFit StoredFitFromProto(const v1::ScalingLawFit& fit) {
  StoredFit out;
  out.flops_model = FlopsModelFromProto(fit.flops());
  if (HasApproach3(fit)) {
    out.approach3 = Approach3FromProto(fit);
    out.approach3_samples = Approach3Samples(fit);
  }
  if (fit.has_approach2()) {
    out.approach2 = Approach2FromProto(fit.approach2());
    for (const v1::Approach2Law& s : fit.approach2_samples()) {
      out.approach2_samples.push_back(Approach2FromProto(s));
    }
  }
  return out;
}

void FitReportToProto(const FitReport& report, v1::ScalingLawFit* out) {
  FlopsModelToProto(report.flops_model, out->mutable_flops());
  SensitivityToProto(report.sensitivity, out->mutable_sensitivity());
  if (const auto& a3 = report.approach3; a3.fit) {
    const Approach3Fit& fit = *a3.fit;
    out->set_e(fit.e);
    out->set_a(fit.a);
    out->set_b(fit.b);
    out->set_alpha(fit.alpha);
    out->set_beta(fit.beta);
    out->set_objective(fit.objective);
    out->set_n_starts(static_cast<uint32_t>(fit.n_starts));
    out->set_n_starts_at_best(static_cast<uint32_t>(fit.n_starts_at_best));
    out->set_on_grid_edge(fit.on_grid_edge);
    out->set_message(fit.message);
    if (a3.bootstrap) {
      for (const Approach3Fit& s : a3.bootstrap->samples) {
        *out->add_approach3_samples() = LawToProto(s);
      }
      out->set_bootstrap_failed(static_cast<uint32_t>(a3.bootstrap->failed));
      for (const auto& [name, interval] :
           Approach3Intervals(a3.bootstrap->samples)) {
        SetInterval(interval, &(*out->mutable_ci95())[name]);
      }
    }
  } else {
    out->set_message(absl::StrCat("not fitted: ", a3.reason));
  }
  if (const auto& a2 = report.approach2; a2.fit) {
    *out->mutable_approach2() =
        Approach2ToProto({a2.fit->n_opt, a2.fit->d_opt});
    out->set_approach2_message(absl::StrJoin(a2.fit->refused, "; "));
    if (a2.bootstrap) {
      std::vector<double> columns[4];
      for (const auto& s : a2.bootstrap->samples) {
        *out->add_approach2_samples() = Approach2ToProto(s);
        columns[0].push_back(s.first.coef);
        columns[1].push_back(s.first.exponent);
        columns[2].push_back(s.second.coef);
        columns[3].push_back(s.second.exponent);
      }
      out->set_bootstrap_failed(out->bootstrap_failed() +
                                static_cast<uint32_t>(a2.bootstrap->failed));
      const char* names[] = {"n_opt_coef", "n_opt_exponent", "d_opt_coef",
                             "d_opt_exponent"};
      for (int k = 0; k < 4; ++k) {
        SetInterval(Percentile95(columns[k]),
                    &(*out->mutable_ci95())[names[k]]);
      }
    }
  } else if (report.request.approaches.count(2) != 0) {
    out->set_approach2_message(a2.reason);
  }
  if (report.request.bootstrap > 0) {
    out->set_bootstrap_resamples(
        static_cast<uint32_t>(report.request.bootstrap));
    out->set_bootstrap_seed(report.request.seed);
  }
  // The verdicts (analysis/verdict.h) and the backtest.
  const FitVerdicts v = JudgeFit(report);
  *out->mutable_verdict() = VerdictToProto(v.overall);
  if (v.approach3)
    *out->mutable_approach3_verdict() = VerdictToProto(*v.approach3);
  if (v.approach2)
    *out->mutable_approach2_verdict() = VerdictToProto(*v.approach2);
  if (const std::optional<Backtest>& b = report.backtest) {
    v1::FitBacktest* p = out->mutable_backtest();
    p->set_holdout_flops(b->holdout_flops);
    p->set_predicted_loss(b->predicted_loss);
    p->set_observed_loss(b->observed_loss);
    p->set_relative_error(b->relative_error);
    p->set_points(static_cast<uint32_t>(b->points));
    p->set_mean_abs_relative_error(b->mean_abs_relative_error);
    p->set_train_points(static_cast<uint32_t>(b->train_points));
    p->set_train_max_flops(b->train_max_flops);
  } else {
    out->set_backtest_message(report.backtest_reason);
  }
}

v1::FitVerdict VerdictToProto(const Verdict& verdict) {
  v1::FitVerdict out;
  out.set_level(LevelName(verdict.level));
  for (const std::string& r : verdict.reasons) out.add_reasons(r);
  return out;
}

std::optional<Verdict> VerdictFromProto(const v1::FitVerdict& verdict) {
  if (verdict.level().empty()) return std::nullopt;  // not judged
  Verdict out;
  out.level =
      LevelFromName(verdict.level()).value_or(VerdictLevel::kUnidentified);
  for (const std::string& r : verdict.reasons()) {
    out.reasons.push_back(r);
    out.reason_levels.push_back(out.level);
  }
  return out;
}

}  // namespace isoflop::analysis
