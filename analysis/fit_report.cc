#include "analysis/fit_report.h"

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace isoflop::analysis {
namespace {

using Json = nlohmann::json;

// JSON has no inf or NaN: they become null.
Json Number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json IntervalJson(const Interval& i) { return {Number(i.low), Number(i.high)}; }

Json IntervalsJson(const std::map<std::string, Interval>& intervals) {
  Json out = Json::object();
  for (const auto& [name, i] : intervals) out[name] = IntervalJson(i);
  return out;
}

std::map<std::string, Interval> PowerLawIntervals(
    const std::vector<std::pair<PowerLaw, PowerLaw>>& samples) {
  std::vector<double> kn, a, kd, b;
  for (const auto& [n, d] : samples) {
    kn.push_back(n.coef);
    a.push_back(n.exponent);
    kd.push_back(d.coef);
    b.push_back(d.exponent);
  }
  return {{"n_opt_coef", Percentile95(kn)},
          {"n_opt_exponent", Percentile95(a)},
          {"d_opt_coef", Percentile95(kd)},
          {"d_opt_exponent", Percentile95(b)}};
}

Json Approach1Json(const Approach1Fit& fit) {
  return {
      {"n_runs", fit.n_runs},         {"envelope_points", fit.envelope.size()},
      {"n_opt_coef", fit.n_opt.coef}, {"n_opt_exponent", fit.n_opt.exponent},
      {"d_opt_coef", fit.d_opt.coef}, {"d_opt_exponent", fit.d_opt.exponent}};
}

Json Approach2Json(const FitReport& report) {
  const Approach2Fit& fit = *report.approach2.fit;
  Json budgets = Json::array();
  for (const IsoFlopProfile& p : fit.budgets) {
    budgets.push_back({{"flops", p.flops},
                       {"n_opt", p.n_opt},
                       {"d_opt", p.d_opt},
                       {"loss_min", p.loss_min},
                       {"n_points", p.n_points},
                       {"parabola", {p.c0, p.c1, p.c2}},
                       {"vertex_outside_sampled_n", p.vertex_outside}});
  }
  Json out = {{"budgets", budgets},
              {"refused", fit.refused},
              {"dropped_points", report.grouping.dropped},
              {"n_opt_coef", fit.n_opt.coef},
              {"n_opt_exponent", fit.n_opt.exponent},
              {"d_opt_coef", fit.d_opt.coef},
              {"d_opt_exponent", fit.d_opt.exponent}};
  Json optimal = Json::array();
  for (double c : report.request.query_flops) {
    Json q = {{"flops", c}, {"params", fit.n_opt(c)}, {"tokens", fit.d_opt(c)}};
    if (report.approach2.bootstrap) {
      std::vector<double> n, d;
      for (const auto& [ln, ld] : report.approach2.bootstrap->samples) {
        n.push_back(ln(c));
        d.push_back(ld(c));
      }
      q["ci95"] = {{"params", IntervalJson(Percentile95(n))},
                   {"tokens", IntervalJson(Percentile95(d))}};
    }
    optimal.push_back(q);
  }
  out["optimal"] = optimal;
  if (const auto& boot = report.approach2.bootstrap) {
    out["ci95"] = IntervalsJson(PowerLawIntervals(boot->samples));
    Json samples = Json::array();
    for (const auto& [n, d] : boot->samples) {
      samples.push_back({n.coef, n.exponent, d.coef, d.exponent});
    }
    out["bootstrap"] = {
        {"resamples", report.request.bootstrap},
        {"failed", boot->failed},
        {"seed", report.request.seed},
        {"columns",
         {"n_opt_coef", "n_opt_exponent", "d_opt_coef", "d_opt_exponent"}},
        {"samples", samples}};
  }
  return out;
}

Json Approach3Json(const FitReport& report) {
  const Approach3Fit& fit = *report.approach3.fit;
  const double sum = fit.alpha + fit.beta;
  Json out = {
      {"E", fit.e},
      {"A", fit.a},
      {"B", fit.b},
      {"alpha", fit.alpha},
      {"beta", fit.beta},
      {"a", fit.beta / sum},
      {"b", fit.alpha / sum},
      {"G", Number(std::pow(fit.alpha * fit.a / (fit.beta * fit.b), 1 / sum))},
      {"objective", fit.objective},
      {"huber_delta", fit.huber_delta},
      {"n_points", fit.n_points},
      {"starts", fit.n_starts},
      {"starts_at_best", fit.n_starts_at_best},
      {"on_grid_edge", fit.on_grid_edge},
      {"condition_number", Number(fit.condition_number)},
      {"ill_conditioned", fit.ill_conditioned},
      {"message", fit.message},
      {"n_convention", "N as given in the points file"},
      {"flops_convention", report.flops_model.name()}};
  const auto& boot = report.approach3.bootstrap;
  Json optimal = Json::array();
  for (double c : report.request.query_flops) {
    const ComputeOptimum o = ComputeOptimalUnder(fit, c, report.flops_model);
    Json q = {{"flops", c},
              {"params", Number(o.n_opt)},
              {"tokens", Number(o.d_opt)},
              {"loss", Number(o.loss)}};
    if (boot) {
      const auto ci = OptimumIntervals(boot->samples, c, report.flops_model);
      q["ci95"] = {{"params", IntervalJson(ci.at("n_opt"))},
                   {"tokens", IntervalJson(ci.at("d_opt"))},
                   {"loss", IntervalJson(ci.at("loss"))}};
    }
    optimal.push_back(q);
  }
  out["optimal"] = optimal;
  if (boot) {
    out["ci95"] = IntervalsJson(Approach3Intervals(boot->samples));
    Json samples = Json::array();
    for (const Approach3Fit& s : boot->samples) {
      samples.push_back({s.e, s.a, s.b, s.alpha, s.beta});
    }
    out["bootstrap"] = {{"resamples", report.request.bootstrap},
                        {"failed", boot->failed},
                        {"seed", report.request.seed},
                        {"columns", {"E", "A", "B", "alpha", "beta"}},
                        {"samples", samples}};
  }
  return out;
}

std::string WithInterval(double v, const std::map<std::string, Interval>& ci,
                         const std::string& name) {
  auto it = ci.find(name);
  if (it == ci.end()) return absl::StrFormat("%.10g", v);
  return absl::StrFormat("%.10g   [%.6g, %.6g]", v, it->second.low,
                         it->second.high);
}

std::string Approach3Text(const FitReport& report) {
  const Approach3Fit& fit = *report.approach3.fit;
  const auto& boot = report.approach3.bootstrap;
  const auto ci = boot ? Approach3Intervals(boot->samples)
                       : std::map<std::string, Interval>{};
  const double sum = fit.alpha + fit.beta;
  std::string out = absl::StrCat(
      "Approach 3: L(N, D) = E + A/N^alpha + B/D^beta",
      boot ? absl::StrFormat("  (95%% bootstrap intervals, %d resamples)",
                             static_cast<int>(boot->samples.size()))
           : "",
      "\n");
  const std::pair<const char*, double> rows[] = {
      {"E", fit.e},          {"A", fit.a},       {"B", fit.b},
      {"alpha", fit.alpha},  {"beta", fit.beta}, {"a", fit.beta / sum},
      {"b", fit.alpha / sum}};
  for (const auto& [name, v] : rows) {
    absl::StrAppend(&out, absl::StrFormat("  %-6s= ", name),
                    WithInterval(v, ci, name), "\n");
  }
  const std::string full = FormatFit(fit);
  absl::StrAppend(&out, full.substr(full.find("  objective")));
  for (double c : report.request.query_flops) {
    const ComputeOptimum o = ComputeOptimalUnder(fit, c, report.flops_model);
    const auto oci =
        boot ? OptimumIntervals(boot->samples, c, report.flops_model)
             : std::map<std::string, Interval>{};
    absl::StrAppend(&out, absl::StrFormat("  at C = %.6g FLOPs:\n", c),
                    "    N_opt = ", WithInterval(o.n_opt, oci, "n_opt"), "\n",
                    "    D_opt = ", WithInterval(o.d_opt, oci, "d_opt"), "\n",
                    "    loss  = ", WithInterval(o.loss, oci, "loss"), "\n");
  }
  return out;
}

std::string Approach2Text(const FitReport& report) {
  const Approach2Fit& fit = *report.approach2.fit;
  const auto& boot = report.approach2.bootstrap;
  const auto ci = boot ? PowerLawIntervals(boot->samples)
                       : std::map<std::string, Interval>{};
  std::string out =
      "Approach 2: IsoFLOP parabolas, N_opt = k_N C^a, D_opt = "
      "k_D C^b\n  budget (FLOPs)   points   N_opt         "
      "D_opt         loss at vertex\n";
  for (const IsoFlopProfile& p : fit.budgets) {
    absl::StrAppend(
        &out, absl::StrFormat("  %-16.6g %-8d %-13.6g %-13.6g %.6g%s\n",
                              p.flops, p.n_points, p.n_opt, p.d_opt, p.loss_min,
                              p.vertex_outside ? "  (vertex outside "
                                                 "the sampled N)"
                                               : ""));
  }
  for (const std::string& r : fit.refused) {
    absl::StrAppend(&out, "  refused: ", r, "\n");
  }
  if (report.grouping.dropped > 0) {
    absl::StrAppend(&out, "  dropped ", report.grouping.dropped,
                    " point(s) that fit no listed budget\n");
  }
  absl::StrAppend(
      &out, "  k_N = ", WithInterval(fit.n_opt.coef, ci, "n_opt_coef"),
      "\n  a   = ", WithInterval(fit.n_opt.exponent, ci, "n_opt_exponent"),
      "\n  k_D = ", WithInterval(fit.d_opt.coef, ci, "d_opt_coef"),
      "\n  b   = ", WithInterval(fit.d_opt.exponent, ci, "d_opt_exponent"),
      "\n");
  for (double c : report.request.query_flops) {
    absl::StrAppend(&out, absl::StrFormat("  at C = %.6g FLOPs: N_opt = %.6g, "
                                          "D_opt = %.6g\n",
                                          c, fit.n_opt(c), fit.d_opt(c)));
  }
  return out;
}

}  // namespace

void AddFlopsConvention(const FitReport& report, nlohmann::json* out) {
  (*out)["flops_convention"] = FlopsModelToJson(report.flops_model);
  if (!report.sensitivity.empty()) {
    (*out)["sensitivity"] = {{"quantity", "N_opt exponent a"},
                             {"rows", SensitivityToJson(report.sensitivity)}};
  }
}

std::string FlopsConventionLines(const FitReport& report) {
  std::string out = absl::StrCat(
      "FLOP convention: ", report.flops_model.Describe(),
      report.flops_model.is_6nd()
          ? " (the points have no 'flops' column beside 'tokens'); "
          : "; ",
      "N as given in the points file.\n");
  if (!report.sensitivity.empty()) {
    absl::StrAppend(&out, SensitivityText(report.sensitivity), "\n");
  }
  return out;
}

absl::StatusOr<FitReport> RunFits(const PointSet& set,
                                  const FitRequest& request) {
  for (int a : request.approaches) {
    if (a < 1 || a > 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("--approach = ", a, ": must be 1, 2, 3 or all"));
    }
  }
  if (request.bootstrap != 0 && request.bootstrap < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--bootstrap = ", request.bootstrap, ": must be 0 (none) or >= 2"));
  }
  for (size_t i = 0; i < request.query_flops.size(); ++i) {
    const double c = request.query_flops[i];
    if (!std::isfinite(c) || c <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--flops[", i, "] = ", c, ": must be finite and > 0"));
    }
    if (c < std::numeric_limits<double>::min()) {  // 5e-324 answered N = 0
      return absl::InvalidArgumentError(
          absl::StrCat("--flops[", i, "] = ", c,
                       ": must be >= ", std::numeric_limits<double>::min(),
                       " (a normal double; this one is subnormal)"));
    }
  }
  FitReport report;
  report.request = request;
  report.n_points = static_cast<int>(set.points.size());
  report.fit_points = FinalPoints(set);
  ASSIGN_OR_RETURN(report.flops_model, FlopsModelOf(set));
  ASSIGN_OR_RETURN(report.grouping,
                   GroupByBudget(report.fit_points, request.budgets,
                                 request.budget_tolerance));
  const BootstrapOptions boot = {.resamples = request.bootstrap,
                                 .seed = request.seed,
                                 .threads = request.approach3.threads,
                                 .cancel = request.cancel};
  report.approach1.reason = report.approach2.reason = report.approach3.reason =
      "not requested (--approach)";
  if (request.approaches.count(1)) {
    if (request.envelope_points < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--envelope-points = ", request.envelope_points, ": must be >= 2"));
    }
    absl::StatusOr<Approach1Fit> fit =
        FitApproach1(set, request.envelope_points);
    report.approach1.reason =
        fit.ok() ? "" : std::string(fit.status().message());
    if (fit.ok()) report.approach1.fit = std::move(*fit);
  }
  if (request.approaches.count(2)) {
    Approach2Options a2 = request.approach2;
    a2.flops_model = report.flops_model;
    absl::StatusOr<Approach2Fit> fit =
        FitApproach2(report.fit_points, report.grouping, a2);
    report.approach2.reason =
        fit.ok() ? "" : std::string(fit.status().message());
    if (fit.ok()) {
      report.approach2.fit = std::move(*fit);
      if (request.bootstrap > 0) {
        ASSIGN_OR_RETURN(
            report.approach2.bootstrap,
            BootstrapApproach2(report.fit_points, report.grouping, a2, boot));
      }
    }
  }
  if (request.approaches.count(3)) {
    const std::vector<Observation> points = ToObservations(report.fit_points);
    Approach3Options options = request.approach3;
    if (options.cancel == nullptr) options.cancel = request.cancel;
    absl::StatusOr<Approach3Fit> fit = FitApproach3(points, options);
    if (!fit.ok() &&
        (absl::IsCancelled(fit.status()) ||
         fit.status().message().find("options.") != std::string::npos)) {
      return fit.status();  // a bad flag or a cancel, not the data's doing
    }
    report.approach3.reason =
        fit.ok() ? "" : std::string(fit.status().message());
    if (fit.ok()) {
      report.approach3.fit = std::move(*fit);
      if (request.bootstrap > 0) {
        ASSIGN_OR_RETURN(
            report.approach3.bootstrap,
            BootstrapApproach3(points, *report.approach3.fit, boot));
      }
      if (request.sensitivity) {
        report.sensitivity = ExponentSensitivity(
            set, report.fit_points, *report.approach3.fit, options);
      }
    }
  }
  if (!report.approach1.fit && !report.approach2.fit && !report.approach3.fit) {
    std::vector<std::string> reasons;
    for (int a : request.approaches) {
      const std::string& r = a == 1   ? report.approach1.reason
                             : a == 2 ? report.approach2.reason
                                      : report.approach3.reason;
      reasons.push_back(absl::StrCat("approach ", a, ": ", r));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("no fit from ", report.n_points,
                     " points: ", absl::StrJoin(reasons, "; ")));
  }
  return report;
}

nlohmann::json ReportToJson(const FitReport& report) {
  Json out = {
      {"n_points", report.n_points}, {"n_fit_points", report.fit_points.size()},
      {"approach1", nullptr},        {"approach2", nullptr},
      {"approach3", nullptr},        {"reasons", Json::object()}};
  if (report.approach1.fit) {
    out["approach1"] = Approach1Json(*report.approach1.fit);
  } else {
    out["reasons"]["approach1"] = report.approach1.reason;
  }
  if (report.approach2.fit) {
    out["approach2"] = Approach2Json(report);
  } else {
    out["reasons"]["approach2"] = report.approach2.reason;
  }
  if (report.approach3.fit) {
    out["approach3"] = Approach3Json(report);
  } else {
    out["reasons"]["approach3"] = report.approach3.reason;
  }
  AddFlopsConvention(report, &out);
  return out;
}

std::string ReportToText(const FitReport& report) {
  std::string out = absl::StrFormat(
      "%d points read, %d used by Approaches 2 and 3\n\n", report.n_points,
      static_cast<int>(report.fit_points.size()));
  if (report.approach1.fit) {
    const Approach1Fit& f = *report.approach1.fit;
    absl::StrAppend(
        &out, absl::StrFormat(
                  "Approach 1: envelope of %d training curves at %d "
                  "FLOP values\n  N_opt = %.10g C^%.10g\n  D_opt = "
                  "%.10g C^%.10g\n\n",
                  f.n_runs, static_cast<int>(f.envelope.size()), f.n_opt.coef,
                  f.n_opt.exponent, f.d_opt.coef, f.d_opt.exponent));
  } else {
    absl::StrAppend(&out, "Approach 1: none: ", report.approach1.reason,
                    "\n\n");
  }
  if (report.approach2.fit) {
    absl::StrAppend(&out, Approach2Text(report), "\n");
  } else {
    absl::StrAppend(&out, "Approach 2: none: ", report.approach2.reason,
                    "\n\n");
  }
  if (report.approach3.fit) {
    absl::StrAppend(&out, Approach3Text(report));
  } else {
    absl::StrAppend(&out, "Approach 3: none: ", report.approach3.reason, "\n");
  }
  absl::StrAppend(&out, FlopsConventionLines(report));
  return out;
}

}  // namespace isoflop::analysis
