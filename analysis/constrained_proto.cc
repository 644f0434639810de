#include "analysis/constrained_proto.h"

namespace isoflop::analysis {

void ConstrainedRunToProto(const ConstrainedRun& run, v1::ScalingLawFit* out) {
  if (!run.fit) {
    out->set_muennighoff_message(run.reason);
    return;
  }
  const ConstrainedFit& f = *run.fit;
  v1::DataConstrainedLaw* law = out->mutable_muennighoff();
  law->set_e(f.law.e);
  law->set_a(f.law.a);
  law->set_b(f.law.b);
  law->set_alpha(f.law.alpha);
  law->set_beta(f.law.beta);
  law->set_rd_star(f.law.rd_star);
  law->set_rn_star(f.law.rn_star);
  law->set_rd_star_fitted(f.rd_star_fitted);
  law->set_rn_star_fitted(f.rn_star_fitted);
  law->set_n_points(static_cast<uint32_t>(f.n_points));
  law->set_repeated_points(static_cast<uint32_t>(f.repeated_points));
  law->set_over_4_epochs(static_cast<uint32_t>(f.over_4_epochs));
  law->set_max_epochs(f.max_epochs);
  law->set_excess_param_points(static_cast<uint32_t>(f.excess_param_points));
  law->set_objective(f.objective);
  law->set_message(f.message);
  if (run.bootstrap) {
    for (const auto& [name, iv] :
         ConstrainedIntervals(run.bootstrap->samples)) {
      v1::Interval& interval = (*law->mutable_ci95())[name];
      interval.set_low(iv.low);
      interval.set_high(iv.high);
    }
    law->set_bootstrap_failed(static_cast<uint32_t>(run.bootstrap->failed));
  }
  if (run.comparison) {
    v1::LawFormComparison* c = out->mutable_form_comparison();
    c->set_method("leave-one-budget-out");
    c->set_folds(static_cast<uint32_t>(run.comparison->folds));
    c->set_points(static_cast<uint32_t>(run.comparison->points));
    c->set_chinchilla_error(run.comparison->chinchilla_error);
    c->set_muennighoff_error(run.comparison->muennighoff_error);
    c->set_better(run.comparison->better);
  } else if (!run.comparison_reason.empty()) {
    out->set_form_comparison_message(run.comparison_reason);
  }
}

ConstrainedLaw ConstrainedLawFromProto(const v1::DataConstrainedLaw& law) {
  ConstrainedLaw out;
  out.e = law.e();
  out.a = law.a();
  out.b = law.b();
  out.alpha = law.alpha();
  out.beta = law.beta();
  out.rd_star = law.rd_star();
  out.rn_star = law.rn_star();
  return out;
}

}  // namespace isoflop::analysis
