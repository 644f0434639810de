// DashboardApi: the scaling-law page (IsoFLOP profiles, the stored
// Approach-3 fit, compute-optimal frontier) and the calculator.
#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "analysis/approach3.h"
#include "analysis/bootstrap.h"
#include "analysis/fit_proto.h"
#include "analysis/flops_proto.h"
#include "analysis/power_law.h"
#include "analysis/verdict.h"
#include "common/status_macros.h"
#include "coordinator/http/dashboard_api.h"

namespace isoflop::coordinator::http {

using nlohmann::json;

namespace {

json FitJson(const v1::ScalingLawFit& f) {
  return {{"e", Num(f.e())},           {"a", Num(f.a())},
          {"b", Num(f.b())},           {"alpha", Num(f.alpha())},
          {"beta", Num(f.beta())},     {"objective", Num(f.objective())},
          {"n_points", f.n_points()},  {"message", f.message()},
          {"provisional", !f.final()}, {"n_convention", "n_total"}};
}

// {name: [low, high]}, or null when there are none.
json Intervals(const google::protobuf::Map<std::string, v1::Interval>& ci95) {
  if (ci95.empty()) return nullptr;
  json out = json::object();
  for (const auto& [name, i] : ci95) out[name] = {Num(i.low()), Num(i.high())};
  return out;
}

// The stored fit's bootstrap: its size and the parameters' 95 % intervals.
json BootstrapJson(const v1::ScalingLawFit& f) {
  return {{"resamples", f.bootstrap_resamples()},
          {"failed", f.bootstrap_failed()},
          {"samples", f.approach3_samples_size()},
          {"seed", f.bootstrap_seed()},
          {"ci95", Intervals(f.ci95())},
          {"fit_seconds", f.fit_seconds()}};
}

json BudgetProfiles(const std::vector<LawPoint>& points,
                    const analysis::FlopsModel& model) {
  std::map<double, std::vector<const LawPoint*>> by_budget;
  for (const LawPoint& p : points) by_budget[p.flops].push_back(&p);
  json budgets = json::array();
  for (const auto& [flops, members] : by_budget) {
    json b = {{"flops", flops},
              {"points", json::array()},
              {"parabola", nullptr},
              {"vertex", nullptr}};
    std::vector<std::pair<double, double>> xy;
    double lo = INFINITY, hi = -INFINITY;
    for (const LawPoint* p : members) {
      b["points"].push_back(
          {{"trial", p->trial}, {"n", p->n}, {"d", p->d}, {"loss", p->loss}});
      xy.emplace_back(std::log(p->n), p->loss);
      lo = std::min(lo, std::log(p->n));
      hi = std::max(hi, std::log(p->n));
    }
    double c[3];
    if (analysis::FitParabola(xy, c)) {
      b["parabola"] = {{"c0", c[0]},
                       {"c1", c[1]},
                       {"c2", c[2]},
                       {"ln_n_min", lo},
                       {"ln_n_max", hi}};
      if (c[2] > 0) {
        const double x = -c[1] / (2 * c[2]);
        const double n_opt = std::exp(x);
        b["vertex"] = {{"n", n_opt},
                       {"d", analysis::TokensForCompute(model, n_opt, flops)},
                       {"loss", c[0] + c[1] * x + c[2] * x * x},
                       {"inside", x >= lo && x <= hi}};
      }
    }
    budgets.push_back(std::move(b));
  }
  return budgets;
}

// From a tenth of the smallest budget to 10^4 x the largest: the law's
// optimum, with the bootstrap's 95 % band when the fit has samples.
json Frontier(const v1::ScalingLawFit& fit,
              const std::vector<LawPoint>& points) {
  const analysis::Approach3Fit law = analysis::Approach3FromProto(fit);
  const std::vector<analysis::Approach3Fit> samples =
      analysis::Approach3Samples(fit);
  const analysis::FlopsModel model = analysis::FlopsModelFromProto(fit.flops());
  double lo = INFINITY, hi = -INFINITY;
  for (const LawPoint& p : points) {
    lo = std::min(lo, p.flops);
    hi = std::max(hi, p.flops);
  }
  const double from = std::log10(lo) - 1, to = std::log10(hi) + 4;
  constexpr int kSteps = 40;
  json frontier = json::array();
  for (int i = 0; i <= kSteps; ++i) {
    const double c = std::pow(10.0, from + (to - from) * i / kSteps);
    const analysis::ComputeOptimum o =
        analysis::ComputeOptimalUnder(law, c, model);
    json row = {{"flops", c},
                {"n_opt", Num(o.n_opt)},
                {"d_opt", Num(o.d_opt)},
                {"loss", Num(o.loss)}};
    if (!samples.empty()) {
      const std::map<std::string, analysis::Interval> band =
          analysis::OptimumIntervals(samples, c, model);
      for (const char* k : {"n_opt", "d_opt", "loss"}) {
        row[absl::StrCat(k, "_low")] = Num(band.at(k).low);
        row[absl::StrCat(k, "_high")] = Num(band.at(k).high);
      }
    }
    frontier.push_back(std::move(row));
  }
  return frontier;
}

}  // namespace

absl::StatusOr<json> DashboardApi::Law(const std::string& sweep_id) const {
  ASSIGN_OR_RETURN(const std::vector<SweepSummary> sweep,
                   reader_->ReadSweeps(sweep_id));
  if (sweep.empty()) {
    return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, ": unknown"));
  }
  ASSIGN_OR_RETURN(const std::vector<LawPoint> points,
                   reader_->ReadLawPoints(sweep_id));
  ASSIGN_OR_RETURN(const std::optional<v1::ScalingLawFit> stored,
                   reader_->ReadFit(sweep_id));
  // Fits come from the store only: none yet, the core queues one (refused
  // below refit_min_points) and this answer says it is pending.
  const bool pending = !stored.has_value() && core_->RequestFit(sweep_id).ok();
  json fit = nullptr, bootstrap = nullptr, frontier = json::array();
  // The stored fit's C <-> (N, D) convention (analysis/flops.h); 6ND
  // without one.
  const analysis::FlopsModel flops_model =
      stored.has_value() ? analysis::FlopsModelFromProto(stored->flops())
                         : analysis::FlopsModel::SixND();
  if (stored.has_value() && analysis::HasApproach3(*stored)) {
    fit = FitJson(*stored);
    if (stored->approach3_samples_size() > 0)
      bootstrap = BootstrapJson(*stored);
    if (!points.empty()) frontier = Frontier(*stored, points);
  }
  // The stored fit's verdict and backtest (analysis/verdict.h,
  // analysis/backtest.h), also for a fit without a law: the page says why.
  json verdict = nullptr, backtest = nullptr;
  if (stored.has_value()) {
    if (const std::optional<analysis::Verdict> v =
            analysis::VerdictFromProto(stored->verdict())) {
      verdict = analysis::VerdictToJson(*v);
    }
  }
  if (stored.has_value() && stored->has_backtest()) {
    const v1::FitBacktest& b = stored->backtest();
    backtest = {{"holdout_flops", b.holdout_flops()},
                {"predicted_loss", b.predicted_loss()},
                {"observed_loss", b.observed_loss()},
                {"relative_error", b.relative_error()},
                {"points", b.points()},
                {"mean_abs_relative_error", b.mean_abs_relative_error()},
                {"train_points", b.train_points()},
                {"train_max_flops", b.train_max_flops()}};
  }
  json jpoints = json::array();
  for (const LawPoint& p : points) {
    jpoints.push_back({{"trial", p.trial},
                       {"n", p.n},
                       {"d", p.d},
                       {"flops", p.flops},
                       {"loss", p.loss},
                       {"unique_tokens", p.unique_tokens},
                       {"epochs", p.epochs}});
  }
  return json{{"sweep", sweep_id},
              {"state", sweep[0].state},
              {"points", std::move(jpoints)},
              {"budgets", BudgetProfiles(points, flops_model)},
              {"flops_convention", analysis::FlopsModelToJson(flops_model)},
              {"fit", std::move(fit)},
              {"fit_pending", pending},
              {"verdict", std::move(verdict)},
              {"backtest", std::move(backtest)},
              {"frontier", std::move(frontier)},
              {"bootstrap", bootstrap},
              {"bootstrap_note",
               bootstrap.is_null()
                   ? "no bootstrap yet: 95% bands and intervals appear with "
                     "the final fit, when the sweep ends"
                   : ""}};
}

absl::StatusOr<json> DashboardApi::Optimal(const std::string& sweep_id,
                                           double flops) const {
  if (!(flops > 0) || !std::isfinite(flops)) {
    return absl::InvalidArgumentError(
        absl::StrCat("flops = ", flops, ": must be finite and > 0"));
  }
  v1::OptimalRequest request;
  request.set_flops(flops);
  request.set_sweep_id(sweep_id);
  ASSIGN_OR_RETURN(v1::OptimalResponse r, core_->Optimal(request));
  return json{
      {"sweep", sweep_id},
      {"flops", r.flops()},
      {"n_opt", Num(r.n_opt())},
      {"d_opt", Num(r.d_opt())},
      {"predicted_loss", Num(r.predicted_loss())},
      {"intervals", Intervals(r.ci95())},
      {"flops_convention", r.flops_convention()},
      {"flops_convention_description", r.flops_convention_description()},
      {"fit",
       {{"e", r.fit().e()},
        {"a", r.fit().a()},
        {"b", r.fit().b()},
        {"alpha", r.fit().alpha()},
        {"beta", r.fit().beta()},
        {"n_points", r.fit().n_points()}}}};
}

}  // namespace isoflop::coordinator::http
