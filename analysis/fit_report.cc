#include "analysis/fit_report.h"

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "analysis/verdict.h"
#include "common/readable.h"
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

Json Approach2Json(const FitReport& report, const ReportJsonOptions& options) {
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
         {"n_opt_coef", "n_opt_exponent", "d_opt_coef", "d_opt_exponent"}}};
    if (options.samples) out["bootstrap"]["samples"] = samples;
  }
  return out;
}

Json Approach3Json(const FitReport& report, const ReportJsonOptions& options) {
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
                        {"columns", {"E", "A", "B", "alpha", "beta"}}};
    if (options.samples) out["bootstrap"]["samples"] = samples;
  }
  return out;
}

// `v` and its interval from `ci` (when it has `name`): a scale parameter's
// as a ×/÷ factor, another's as low .. high.
std::string WithInterval(double v, const std::map<std::string, Interval>& ci,
                         const std::string& name, int digits, bool scale,
                         bool count = false) {
  std::string out = count ? Count(v, digits) : Sig(v, digits);
  auto it = ci.find(name);
  if (it == ci.end()) return out;
  return absl::StrCat(
      out, scale ? FactorInterval(v, it->second.low, it->second.high, digits)
                 : LinearInterval(it->second.low, it->second.high, digits));
}

std::string BootstrapNote(int asked, int failed, int kept) {
  return absl::StrFormat(
      "  (95%% bootstrap intervals: %d resamples, %d "
      "failed, %d kept)",
      asked, failed, kept);
}

std::string Approach3Text(const FitReport& report, const Verdict& verdict,
                          int digits) {
  const Approach3Fit& fit = *report.approach3.fit;
  const auto& boot = report.approach3.bootstrap;
  const auto ci = boot ? Approach3Intervals(boot->samples)
                       : std::map<std::string, Interval>{};
  const double sum = fit.alpha + fit.beta;
  std::string out =
      absl::StrCat("Approach 3: L(N, D) = E + A/N^alpha + B/D^beta",
                   boot ? BootstrapNote(report.request.bootstrap, boot->failed,
                                        static_cast<int>(boot->samples.size()))
                        : "",
                   "\n", VerdictText(verdict, "  "));
  struct Row {
    const char* name;
    double v;
    bool scale;
  };
  const Row rows[] = {
      {"E", fit.e, false},          {"A", fit.a, true},
      {"B", fit.b, true},           {"alpha", fit.alpha, false},
      {"beta", fit.beta, false},    {"a", fit.beta / sum, false},
      {"b", fit.alpha / sum, false}};
  for (const Row& r : rows) {
    absl::StrAppend(&out, absl::StrFormat("  %-6s= ", r.name),
                    WithInterval(r.v, ci, r.name, digits, r.scale), "\n");
  }
  absl::StrAppend(
      &out,
      absl::StrFormat("  objective %s (summed Huber, delta %s), %d points, "
                      "%d starts (%d at the best), condition number %s\n",
                      Sig(fit.objective, digits), Sig(fit.huber_delta, digits),
                      fit.n_points, fit.n_starts, fit.n_starts_at_best,
                      Sig(fit.condition_number, digits)));
  for (absl::string_view item : absl::StrSplit(fit.message, "; ")) {
    if (absl::StartsWith(item, "warning: ")) {
      absl::StrAppend(&out, "  ", item, "\n");
    }
  }
  for (double c : report.request.query_flops) {
    const ComputeOptimum o = ComputeOptimalUnder(fit, c, report.flops_model);
    const auto oci =
        boot ? OptimumIntervals(boot->samples, c, report.flops_model)
             : std::map<std::string, Interval>{};
    absl::StrAppend(
        &out, "  at C = ", Sig(c, digits), " FLOPs:\n",
        "    N_opt = ", WithInterval(o.n_opt, oci, "n_opt", digits, true, true),
        " parameters\n",
        "    D_opt = ", WithInterval(o.d_opt, oci, "d_opt", digits, true, true),
        " tokens\n",
        "    loss  = ", WithInterval(o.loss, oci, "loss", digits, false), "\n");
  }
  return out;
}

std::string Approach2Text(const FitReport& report, const Verdict& verdict,
                          int digits) {
  const Approach2Fit& fit = *report.approach2.fit;
  const auto& boot = report.approach2.bootstrap;
  const auto ci = boot ? PowerLawIntervals(boot->samples)
                       : std::map<std::string, Interval>{};
  std::vector<std::vector<std::string>> rows = {
      {"budget (FLOPs)", "points", "N_opt", "D_opt", "loss at vertex", ""}};
  for (const IsoFlopProfile& p : fit.budgets) {
    rows.push_back({Sig(p.flops, digits), absl::StrCat(p.n_points),
                    Count(p.n_opt, digits), Count(p.d_opt, digits),
                    Sig(p.loss_min, digits),
                    p.vertex_outside ? "vertex outside the sampled N" : ""});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string out = absl::StrCat(
      "Approach 2: IsoFLOP parabolas, N_opt = k_N C^a, D_opt = k_D C^b",
      boot ? BootstrapNote(report.request.bootstrap, boot->failed,
                           static_cast<int>(boot->samples.size()))
           : "",
      "\n", VerdictText(verdict, "  "));
  for (const auto& row : rows) {
    std::string line = " ";
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, " ", row[i],
                      std::string(widths[i] - row[i].size(), ' '));
    }
    absl::StrAppend(&out, absl::StripTrailingAsciiWhitespace(line), "\n");
  }
  for (const std::string& r : fit.refused) {
    absl::StrAppend(&out, "  refused: ", r, "\n");
  }
  if (report.grouping.dropped > 0) {
    absl::StrAppend(&out, "  dropped ", report.grouping.dropped,
                    " point(s) that fit no listed budget\n");
  }
  absl::StrAppend(
      &out,
      "  k_N = ", WithInterval(fit.n_opt.coef, ci, "n_opt_coef", digits, true),
      "\n  a   = ",
      WithInterval(fit.n_opt.exponent, ci, "n_opt_exponent", digits, false),
      "\n  k_D = ",
      WithInterval(fit.d_opt.coef, ci, "d_opt_coef", digits, true),
      "\n  b   = ",
      WithInterval(fit.d_opt.exponent, ci, "d_opt_exponent", digits, false),
      "\n");
  for (double c : report.request.query_flops) {
    absl::StrAppend(&out, "  at C = ", Sig(c, digits),
                    " FLOPs: N_opt = ", Count(fit.n_opt(c), digits),
                    " parameters, D_opt = ", Count(fit.d_opt(c), digits),
                    " tokens\n");
  }
  return out;
}

std::string BacktestText(const FitReport& report, int digits) {
  if (!report.backtest) {
    if (report.backtest_reason.empty()) return "";
    return absl::StrCat("Backtest: none: ", report.backtest_reason, "\n");
  }
  const Backtest& b = *report.backtest;
  std::string out = absl::StrCat(
      "Backtest: Approach 3 refitted on the ", b.train_points,
      " points of budgets <= ", Sig(b.train_max_flops, digits),
      " FLOPs predicts budget ", Sig(b.holdout_flops, digits), ":\n",
      "  best point: predicted loss ", Sig(b.predicted_loss, digits),
      ", observed ", Sig(b.observed_loss, digits), ", relative error ",
      Sig(100 * b.relative_error, digits), "%\n",
      "  mean |relative error| over its ", b.points,
      " points: ", Sig(100 * b.mean_abs_relative_error, digits), "%\n");
  for (const Backtest& r : report.rollout) {
    absl::StrAppend(
        &out, "  rollout: budgets <= ", Sig(r.train_max_flops, digits),
        " predict ", Sig(r.holdout_flops, digits), ": relative error ",
        Sig(100 * r.relative_error, digits), "%, mean |error| ",
        Sig(100 * r.mean_abs_relative_error, digits), "%\n");
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
  if (report.approach3.fit && (request.backtest || request.rollout)) {
    Approach3Options options = request.approach3;
    if (options.cancel == nullptr) options.cancel = request.cancel;
    if (request.backtest) {
      absl::StatusOr<Backtest> b =
          LeaveLargestOut(report.fit_points, report.grouping, options);
      if (absl::IsCancelled(b.status())) return b.status();
      if (b.ok()) {
        report.backtest = *std::move(b);
      } else {
        report.backtest_reason = std::string(b.status().message());
      }
    }
    if (request.rollout) {
      report.rollout = Rollout(report.fit_points, report.grouping, options);
      if (request.cancel != nullptr && request.cancel->load()) {
        return absl::CancelledError("fit cancelled during the rollout");
      }
    }
  } else if (request.backtest) {
    report.backtest_reason = "no Approach 3 fit";
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

nlohmann::json ReportToJson(const FitReport& report,
                            const ReportJsonOptions& options) {
  const FitVerdicts verdicts = JudgeFit(report);
  Json out = {{"verdict", VerdictToJson(verdicts.overall)},
              {"n_points", report.n_points},
              {"n_fit_points", report.fit_points.size()},
              {"approach1", nullptr},
              {"approach2", nullptr},
              {"approach3", nullptr},
              {"backtest", nullptr},
              {"reasons", Json::object()}};
  if (report.approach1.fit) {
    out["approach1"] = Approach1Json(*report.approach1.fit);
    out["approach1"]["verdict"] = VerdictToJson(*verdicts.approach1);
  } else {
    out["reasons"]["approach1"] = report.approach1.reason;
  }
  if (report.approach2.fit) {
    out["approach2"] = Approach2Json(report, options);
    out["approach2"]["verdict"] = VerdictToJson(*verdicts.approach2);
  } else {
    out["reasons"]["approach2"] = report.approach2.reason;
  }
  if (report.approach3.fit) {
    out["approach3"] = Approach3Json(report, options);
    out["approach3"]["verdict"] = VerdictToJson(*verdicts.approach3);
  } else {
    out["reasons"]["approach3"] = report.approach3.reason;
  }
  if (report.backtest) {
    out["backtest"] = BacktestToJson(*report.backtest);
  } else if (!report.backtest_reason.empty()) {
    out["reasons"]["backtest"] = report.backtest_reason;
  }
  if (report.request.rollout) {
    out["rollout"] = Json::array();
    for (const Backtest& b : report.rollout) {
      out["rollout"].push_back(BacktestToJson(b));
    }
  }
  AddFlopsConvention(report, &out);
  return out;
}

std::string ReportToText(const FitReport& report, int digits) {
  const FitVerdicts verdicts = JudgeFit(report);
  std::string out = absl::StrCat(VerdictText(verdicts.overall), report.n_points,
                                 " points read, ", report.fit_points.size(),
                                 " used by Approaches 2 and 3\n\n");
  if (report.approach1.fit) {
    const Approach1Fit& f = *report.approach1.fit;
    absl::StrAppend(&out, "Approach 1: envelope of ", f.n_runs,
                    " training curves at ", f.envelope.size(), " FLOP values\n",
                    VerdictText(*verdicts.approach1, "  "),
                    "  N_opt = ", Sig(f.n_opt.coef, digits), " C^",
                    Sig(f.n_opt.exponent, digits),
                    "\n  D_opt = ", Sig(f.d_opt.coef, digits), " C^",
                    Sig(f.d_opt.exponent, digits), "\n\n");
  } else {
    absl::StrAppend(&out, "Approach 1: none: ", report.approach1.reason,
                    "\n\n");
  }
  if (report.approach2.fit) {
    absl::StrAppend(&out, Approach2Text(report, *verdicts.approach2, digits),
                    "\n");
  } else {
    absl::StrAppend(&out, "Approach 2: none: ", report.approach2.reason,
                    "\n\n");
  }
  if (report.approach3.fit) {
    absl::StrAppend(&out, Approach3Text(report, *verdicts.approach3, digits),
                    "\n");
  } else {
    absl::StrAppend(&out, "Approach 3: none: ", report.approach3.reason,
                    "\n\n");
  }
  absl::StrAppend(&out, BacktestText(report, digits));
  absl::StrAppend(&out, FlopsConventionLines(report));
  return out;
}

}  // namespace isoflop::analysis
