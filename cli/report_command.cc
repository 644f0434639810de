#include "cli/report_command.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "analysis/approach3.h"
#include "analysis/backtest.h"
#include "analysis/bootstrap.h"
#include "analysis/fit_proto.h"
#include "analysis/flops_proto.h"
#include "analysis/plot_svg.h"
#include "analysis/power_law.h"
#include "cli/output.h"
#include "cli/report_html.h"
#include "common/flops.h"
#include "common/readable.h"
#include "common/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace isoflop::cli {
namespace {

using analysis::FrontierData;
using analysis::ProfileSeries;
using nlohmann::json;

constexpr double kMultiples[] = {10, 100, 1000};

struct TrialRow {
  std::string id, state, shape;
  double n = 0, d = 0, flops = 0, flops_per_token = 0;
  double compute = 0;  // the trial's actual C (its budget is `flops`)
  uint32_t gpus = 0, threads = 0, attempts = 0;
  std::optional<double> val_loss, seconds, tokens_per_s, mfu;
  bool seconds_estimated = false;
};

struct OptimumRow {
  double multiple = 0, flops = 0;
  analysis::ComputeOptimum a3;
  std::map<std::string, analysis::Interval> ci95;  // n_opt, d_opt, loss
  std::optional<std::pair<double, double>> a2;     // N_opt, D_opt
  std::optional<std::pair<analysis::Interval, analysis::Interval>> a2_ci95;
};

struct Report {
  v1::Sweep sweep;
  std::optional<VerdictView> verdict;
  std::vector<TrialRow> trials;
  bool has_law = false;
  std::vector<OptimumRow> optimal;
  std::vector<ProfileSeries> profiles;
  std::vector<analysis::Point> points;     // the succeeded trials
  std::string no_law;                      // why there is no law ("" if one)
  std::vector<analysis::FitPoint> fitted;  // points with the law's loss
  std::optional<analysis::BacktestData> backtest;
  std::string no_backtest;  // why there is none
  // The rollout: fit on budgets <= C_k, predict C_{k+1} (analysis/backtest.h).
  std::vector<analysis::Backtest> rollout;
  std::optional<double> entropy_rate;
  std::string entropy_source;
  double gpu_hours = 0, cpu_core_hours = 0, wall_s = 0;
  int seconds_estimated = 0;  // trials
  double peak_tflops = 0;
};

std::optional<double> Known(double v) {
  return std::isfinite(v) && v > 0 ? std::optional<double>(v) : std::nullopt;
}

std::string ShapeText(const v1::ModelShape& s) {
  return absl::StrFormat("d%u/L%u/h%u", s.d_model(), s.n_layers(), s.n_heads());
}

std::string StateName(v1::TrialState s) { return v1::TrialState_Name(s); }

// A trial's seconds are its attempts' wall time as the coordinator saw them;
// where it did not see them all (it restarted since), they are estimated:
// the tokens trained (all of D when it succeeded, else step x B x T) over
// the tokens/s of the last attempt, i.e. that attempt's training time.
TrialRow RowOf(const v1::Trial& t, double peak_tflops) {
  const v1::TrialSpec& s = t.spec();
  TrialRow row{.id = s.trial_id(),
               .state = StateName(t.state()),
               .shape = ShapeText(s.shape()),
               .n = static_cast<double>(s.n_total()),
               .d = static_cast<double>(s.tokens()),
               .flops = s.flops_budget(),
               .flops_per_token = s.flops_per_token(),
               .gpus = s.gpus(),
               .threads = std::max<uint32_t>(s.threads(), 1),
               .attempts = t.attempt()};
  row.compute =
      s.flops() > 0 ? s.flops() : TrialCompute(s.flops_per_token(), row.d);
  // A branched sweep's trunk is no cell of the grid: the coordinator's fit
  // leaves it out (coordinator/service/core_fits.cc), and so does fit --points
  // reading trials.csv (an empty loss).
  if (t.state() == v1::SUCCEEDED && s.role() != v1::TRIAL_ROLE_TRUNK) {
    row.val_loss = Known(t.val_loss());
  }
  row.tokens_per_s = Known(t.tokens_per_s());
  const double trained = t.state() == v1::SUCCEEDED
                             ? row.d
                             : static_cast<double>(t.step()) *
                                   s.training().batch_sequences() *
                                   s.model().context();
  if (t.attempt_seconds() > 0 && !t.attempt_seconds_partial()) {
    row.seconds = t.attempt_seconds();
  } else if (row.tokens_per_s && trained > 0) {
    row.seconds = trained / *row.tokens_per_s;
    row.seconds_estimated = true;
  }
  if (row.tokens_per_s && row.gpus > 0) {
    row.mfu = *row.tokens_per_s * row.flops_per_token /
              (peak_tflops * 1e12 * row.gpus);
  }
  return row;
}

void AddOptima(const v1::ScalingLawFit& fit, double largest, Report& r) {
  const analysis::FlopsModel flops_model =
      analysis::FlopsModelFromProto(fit.flops());
  const analysis::Approach3Fit law = analysis::Approach3FromProto(fit);
  const std::vector<analysis::Approach3Fit> samples =
      analysis::Approach3Samples(fit);
  for (double m : kMultiples) {
    OptimumRow row{.multiple = m, .flops = m * largest};
    row.a3 = analysis::ComputeOptimalUnder(law, row.flops, flops_model);
    if (!samples.empty()) {
      row.ci95 = analysis::OptimumIntervals(samples, row.flops, flops_model);
    }
    if (fit.has_approach2()) {
      const auto [n_opt, d_opt] = analysis::Approach2FromProto(fit.approach2());
      row.a2 = {n_opt(row.flops), d_opt(row.flops)};
      std::vector<double> n, d;
      for (const v1::Approach2Law& s : fit.approach2_samples()) {
        const auto [n_s, d_s] = analysis::Approach2FromProto(s);
        n.push_back(n_s(row.flops));
        d.push_back(d_s(row.flops));
      }
      if (!n.empty()) {
        row.a2_ci95 = {analysis::Percentile95(n), analysis::Percentile95(d)};
      }
    }
    r.optimal.push_back(row);
  }
}

// The IsoFLOP profiles of the succeeded trials, with the parabolas of
// Approach 2 refitted here (the stored fit keeps only the power laws).
std::vector<analysis::Point> PointsOf(const std::vector<TrialRow>& rows) {
  std::vector<analysis::Point> points;
  for (const TrialRow& row : rows) {
    if (!row.val_loss) continue;
    points.push_back({.n = row.n,
                      .d = row.d,
                      .flops = row.flops,
                      .loss = *row.val_loss,
                      .budget = row.flops});
  }
  return points;
}

std::vector<ProfileSeries> ProfilesOf(
    const v1::Sweep& sweep, const std::vector<analysis::Point>& points) {
  // Budgets sorted first (sorting the series themselves trips GCC 12's
  // -Wmaybe-uninitialized on their optional parabola).
  std::vector<double> budgets(sweep.config().grid().flops_budgets().begin(),
                              sweep.config().grid().flops_budgets().end());
  std::sort(budgets.begin(), budgets.end());
  std::vector<ProfileSeries> series;
  for (double c : budgets) {
    ProfileSeries s{.flops = c};
    for (const analysis::Point& p : points) {
      if (std::abs(p.budget - c) <= 1e-6 * c)
        s.points.emplace_back(p.n, p.loss);
    }
    series.push_back(std::move(s));
  }
  // Each budget's own parabola (Approach 2's first step), also for a budget
  // that Approach 2 refused, so that the figure shows why.
  for (ProfileSeries& s : series) {
    std::vector<double> log_n, loss;
    for (const auto& [n, l] : s.points) {
      log_n.push_back(std::log(n));
      loss.push_back(l);
    }
    std::vector<double> distinct = log_n;
    std::sort(distinct.begin(), distinct.end());
    if (std::unique(distinct.begin(), distinct.end()) - distinct.begin() < 3) {
      continue;
    }
    s.parabola = analysis::FitPolynomial(
        log_n, loss, std::vector<double>(log_n.size(), 1.0), 2);
  }
  return series;
}

std::optional<double> EntropyFromMeta(const ReportOptions& o,
                                      const v1::Sweep& sweep,
                                      std::string* source) {
  if (o.data_dir.empty() || sweep.config().data().dataset().empty()) {
    return std::nullopt;
  }
  const std::filesystem::path path = std::filesystem::path(o.data_dir) /
                                     sweep.config().data().dataset() /
                                     "meta.json";
  std::ifstream in(path);
  if (!in) return std::nullopt;
  const json meta = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!meta.is_object() || !meta.contains("entropy_rate_nats") ||
      !meta["entropy_rate_nats"].is_number()) {
    return std::nullopt;
  }
  *source = path.string();
  return meta["entropy_rate_nats"].get<double>();
}

}  // namespace

std::optional<VerdictView> StoredVerdict(const google::protobuf::Message& fit) {
  using google::protobuf::FieldDescriptor;
  const FieldDescriptor* field =
      fit.GetDescriptor()->FindFieldByName("verdict");
  if (field == nullptr || field->is_repeated() ||
      field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
      !fit.GetReflection()->HasField(fit, field)) {
    return std::nullopt;
  }
  const google::protobuf::Message& v =
      fit.GetReflection()->GetMessage(fit, field);
  const google::protobuf::Reflection* refl = v.GetReflection();
  const FieldDescriptor* level = v.GetDescriptor()->FindFieldByName("level");
  const FieldDescriptor* reasons =
      v.GetDescriptor()->FindFieldByName("reasons");
  if (level == nullptr || level->is_repeated()) return std::nullopt;
  VerdictView out;
  if (level->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
    out.level = refl->GetString(v, level);
  } else if (level->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
    const std::string name = refl->GetEnum(v, level)->name();
    for (const char* l : {"UNIDENTIFIED", "WEAK", "OK"}) {
      if (absl::EndsWith(name, l)) {
        out.level = absl::AsciiStrToLower(l);
        break;
      }
    }
  }
  if (out.level.empty()) return std::nullopt;
  if (reasons != nullptr && reasons->is_repeated() &&
      reasons->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
    for (int i = 0; i < refl->FieldSize(v, reasons); ++i) {
      out.reasons.push_back(refl->GetRepeatedString(v, reasons, i));
    }
  }
  return out;
}

namespace {

// The sweep's verdict: the stored fit's (analysis/verdict.h, computed with
// the fit) when it has one; else a sweep without a usable law is
// unidentified, with the reason its fit gave; else none (nullopt).
std::optional<VerdictView> VerdictOf(const Report& r) {
  if (r.sweep.has_fit()) {
    if (std::optional<VerdictView> v = StoredVerdict(r.sweep.fit())) return v;
  }
  if (!r.has_law) return VerdictView{"unidentified", {r.no_law}};
  return std::nullopt;
}

// `starts`: of the backtests' Approach-3 refits (ReportOptions::starts).
Report BuildReport(const v1::Sweep& sweep, const ReportOptions& o,
                   const std::vector<analysis::LogParams>& starts,
                   absl::Time now) {
  Report r{.sweep = sweep, .peak_tflops = o.peak_tflops};
  int64_t last_ms = sweep.created_unix_ms();
  for (const v1::Trial& t : sweep.trials()) {
    r.trials.push_back(RowOf(t, o.peak_tflops));
    const TrialRow& row = r.trials.back();
    r.seconds_estimated += row.seconds_estimated ? 1 : 0;
    if (row.seconds) {
      (row.gpus > 0 ? r.gpu_hours : r.cpu_core_hours) +=
          *row.seconds * (row.gpus > 0 ? row.gpus : row.threads) / 3600;
    }
    last_ms = std::max(last_ms, t.updated_unix_ms());
  }
  if (sweep.state() == v1::SWEEP_RUNNING) last_ms = absl::ToUnixMillis(now);
  r.wall_s = static_cast<double>(last_ms - sweep.created_unix_ms()) / 1e3;
  const v1::ScalingLawFit& fit = sweep.fit();
  r.has_law = sweep.has_fit() && analysis::HasApproach3(fit);
  double largest = 0;
  for (double c : sweep.config().grid().flops_budgets()) {
    largest = std::max(largest, c);
  }
  if (r.has_law && largest > 0) AddOptima(fit, largest, r);
  r.points = PointsOf(r.trials);
  r.profiles = ProfilesOf(sweep, r.points);
  if (r.has_law) {
    const analysis::Approach3Fit law =
        analysis::LawWith(fit.e(), fit.a(), fit.b(), fit.alpha(), fit.beta());
    r.fitted = analysis::PredictAll(r.points, law);
    // The law along each budget, D(N) as the budget's trials have it.
    for (ProfileSeries& s : r.profiles) {
      double lo = INFINITY, hi = 0;
      std::vector<std::pair<double, double>> n_d;
      for (const analysis::Point& p : r.points) {
        if (std::abs(p.budget - s.flops) > 1e-6 * s.flops) continue;
        lo = std::min(lo, p.n);
        hi = std::max(hi, p.n);
        n_d.emplace_back(p.n, p.d);
      }
      if (lo <= hi) s.law = analysis::LawAlongBudget(law, n_d, lo / 2, hi * 2);
    }
  } else {
    r.no_law = sweep.has_fit() ? absl::StrCat("no law from ", fit.n_points(),
                                              " points: ", fit.message())
                               : absl::StrCat("no law yet: ", r.points.size(),
                                              " succeeded trials, no fit");
  }
  r.verdict = VerdictOf(r);
  const absl::StatusOr<analysis::Grouping> g =
      analysis::GroupByBudget(r.points, {}, 0);
  if (g.ok() && g->groups.size() >= 3) {
    analysis::Approach3Options options;
    options.threads = 1;
    options.starts = starts;
    r.rollout = analysis::Rollout(r.points, *g, options);
  }
  // The rollout's last refit is the backtest's (the largest budget left out,
  // the same points, starts and thread): reused, not fitted twice.
  if (!r.rollout.empty() &&
      r.rollout.back().holdout_flops == g->groups.back().flops) {
    r.backtest = analysis::BacktestDataOf(r.points, *g, r.rollout.back());
  } else if (absl::StatusOr<analysis::BacktestData> b =
                 analysis::HoldoutBacktest(r.points, starts);
             b.ok()) {
    r.backtest = *std::move(b);
  } else {
    r.no_backtest = std::string(b.status().message());
  }
  if (o.entropy_rate_nats) {
    r.entropy_rate = o.entropy_rate_nats;
    r.entropy_source = "--entropy-rate";
  } else {
    r.entropy_rate = EntropyFromMeta(o, sweep, &r.entropy_source);
  }
  return r;
}

// ---------------------------------------------------------------- output

std::string G(double v) { return absl::StrFormat("%.4g", v); }
std::string Ci(const std::map<std::string, analysis::Interval>& ci,
               const std::string& key) {
  const auto it = ci.find(key);
  if (it == ci.end() || !std::isfinite(it->second.low)) return "";
  return absl::StrCat(" [", G(it->second.low), ", ", G(it->second.high), "]");
}
// "95% ×/÷ f" for a scale parameter (A, B, N_opt, D_opt), "95% a .. b" for
// another (common/readable.h), 3 significant figures; "" without one.
std::string Readable(const std::map<std::string, analysis::Interval>& ci,
                     const std::string& key, double v, bool scale) {
  const auto it = ci.find(key);
  if (it == ci.end() || !std::isfinite(it->second.low)) return "";
  const std::string text =
      scale ? FactorInterval(v, it->second.low, it->second.high)
            : LinearInterval(it->second.low, it->second.high);
  // " (95% ...)" -> "95% ..."
  return std::string(absl::StripSuffix(absl::StripPrefix(text, " ("), ")"));
}
std::map<std::string, analysis::Interval> FitCi(const v1::ScalingLawFit& f) {
  std::map<std::string, analysis::Interval> out;
  for (const auto& [k, v] : f.ci95()) out[k] = {v.low(), v.high()};
  return out;
}
json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
json Num(const std::optional<double>& v) { return v ? Num(*v) : json(nullptr); }
json IntervalJson(const analysis::Interval& i) {
  return json::array({Num(i.low), Num(i.high)});
}

// The grid's shapes: the config's explicit ones, else (shapes from
// grid.n_targets or grid.d_models, docs/config.md) the trials' distinct
// shapes in trial order.
std::vector<std::string> GridShapeTexts(const Report& r) {
  std::vector<std::string> out;
  for (const auto& sh : r.sweep.config().grid().model_shapes())
    out.push_back(ShapeText(sh));
  if (!out.empty()) return out;
  for (const TrialRow& t : r.trials) {
    if (std::find(out.begin(), out.end(), t.shape) == out.end())
      out.push_back(t.shape);
  }
  return out;
}

// "16 sequences", or the rule's name when each trial has its own batch.
std::string BatchText(const v1::Training& t) {
  if (t.has_batch_tokens_rule())
    return "per trial (training.batch_tokens_rule)";
  return absl::StrCat(t.batch_sequences(), " sequences");
}

std::string Markdown(const Report& r) {
  const v1::Sweep& s = r.sweep;
  const v1::SweepConfig& c = s.config();
  std::string md = absl::StrCat("# IsoFLOP sweep report: ", c.name(), "\n\n");
  std::vector<std::string> budgets, counts;
  const std::vector<std::string> shapes = GridShapeTexts(r);
  for (double b : c.grid().flops_budgets()) budgets.push_back(G(b));
  for (const auto& [state, n] : s.trial_counts()) {
    counts.push_back(absl::StrCat(state, " ", n));
  }
  std::sort(counts.begin(), counts.end());
  absl::StrAppend(
      &md, "- sweep: `", s.id(), "` (", v1::SweepState_Name(s.state()), ")\n",
      "- dataset: ", c.data().dataset(), ", vocab ", c.model().vocab_size(),
      ", context ", c.model().context(), ", batch ", BatchText(c.training()),
      "\n", "- budgets (FLOPs): ", absl::StrJoin(budgets, ", "), "\n",
      "- shapes: ", absl::StrJoin(shapes, ", "), "\n",
      "- trials: ", s.trials_size(), " (", absl::StrJoin(counts, ", "),
      ")\n\n");

  if (r.verdict) {
    absl::StrAppend(&md, "## Verdict: ", r.verdict->level, "\n\n");
    for (const std::string& reason : r.verdict->reasons) {
      absl::StrAppend(&md, "- ", reason, "\n");
    }
    absl::StrAppend(&md, "\n");
  }
  absl::StrAppend(&md, "## Fitted laws\n\n");
  const v1::ScalingLawFit& f = s.fit();
  const auto ci = FitCi(f);
  if (!r.has_law) {
    absl::StrAppend(&md, "**No fit yet**",
                    s.has_fit() ? absl::StrCat(" (", f.n_points(),
                                               " points: ", f.message(), ")")
                                : "",
                    ": the law, the compute-optimal table and the frontier are "
                    "missing.\n\n");
  } else {
    absl::StrAppend(
        &md, "Approach 3, L(N, D) = E + A / N^α + B / D^β (",
        f.final() ? "final fit" : "provisional refit: sweep running", ", ",
        f.n_points(), " points",
        f.approach3_samples_size() > 0
            ? absl::StrCat(", bootstrap 95% intervals over ",
                           f.approach3_samples_size(), " resamples")
            : ", no bootstrap",
        "):\n\n| parameter | value | 95% CI |\n|---|---|---|\n");
    for (const auto& [name, v] :
         std::vector<std::pair<std::string, double>>{{"E", f.e()},
                                                     {"A", f.a()},
                                                     {"B", f.b()},
                                                     {"alpha", f.alpha()},
                                                     {"beta", f.beta()}}) {
      absl::StrAppend(&md, "| ", name, " | ", Sig(v), " | ",
                      Readable(ci, name, v, name == "A" || name == "B"),
                      " |\n");
    }
    if (f.has_approach2()) {
      absl::StrAppendFormat(
          &md,
          "\nApproach 2 (IsoFLOP vertices): N_opt = %.4g C^a with a = %.4f%s; "
          "D_opt = %.4g C^b with b = %.4f%s\n",
          f.approach2().n_opt_coef(), f.approach2().n_opt_exponent(),
          Ci(ci, "n_opt_exponent"), f.approach2().d_opt_coef(),
          f.approach2().d_opt_exponent(), Ci(ci, "d_opt_exponent"));
    } else {
      absl::StrAppend(&md, "\nApproach 2: not fitted",
                      f.approach2_message().empty()
                          ? ""
                          : absl::StrCat(" (", f.approach2_message(), ")"),
                      "\n");
    }
    absl::StrAppendFormat(&md,
                          "Approach 3 exponents: a = β/(α+β) = %.4f%s, b = "
                          "α/(α+β) = %.4f%s\n",
                          f.beta() / (f.alpha() + f.beta()), Ci(ci, "a"),
                          f.alpha() / (f.alpha() + f.beta()), Ci(ci, "b"));
    for (absl::string_view item : absl::StrSplit(f.message(), "; ")) {
      if (absl::StartsWith(item, "warning: ")) {
        absl::StrAppend(&md, "\n**Fit ", item, "**\n");
      }
    }
  }
  if (r.entropy_rate) {
    absl::StrAppend(&md, "\nEntropy rate of the data (", r.entropy_source,
                    "): ", absl::StrFormat("%.6g", *r.entropy_rate),
                    " nats/token");
    if (r.has_law) {
      absl::StrAppendFormat(&md, "; fitted E = %.6g (relative error %+.2f%%)",
                            f.e(),
                            100 * (f.e() - *r.entropy_rate) / *r.entropy_rate);
    }
    absl::StrAppend(&md, "\n");
  }

  if (r.has_law) {
    absl::StrAppend(
        &md,
        "\n## Compute-optimal models beyond the sweep\n\n| budget | C (FLOPs) "
        "| N_opt | D_opt | predicted loss | N_opt (A2) | D_opt (A2) |\n"
        "|---|---|---|---|---|---|---|\n");
    for (const OptimumRow& o : r.optimal) {
      std::string a2n = "-", a2d = "-";
      if (o.a2) {
        a2n = Count(o.a2->first);
        a2d = Count(o.a2->second);
        if (o.a2_ci95) {
          a2n += absl::StrCat(
              " ", Readable({{"x", o.a2_ci95->first}}, "x", o.a2->first, true));
          a2d += absl::StrCat(" ", Readable({{"x", o.a2_ci95->second}}, "x",
                                            o.a2->second, true));
        }
      }
      const auto with = [](const std::string& value, const std::string& ci) {
        return ci.empty() ? value : absl::StrCat(value, " (", ci, ")");
      };
      absl::StrAppend(
          &md, "| ", G(o.multiple), "× largest | ", Sig(o.flops), " | ",
          with(Count(o.a3.n_opt), Readable(o.ci95, "n_opt", o.a3.n_opt, true)),
          " | ",
          with(Count(o.a3.d_opt), Readable(o.ci95, "d_opt", o.a3.d_opt, true)),
          " | ",
          with(Sig(o.a3.loss), Readable(o.ci95, "loss", o.a3.loss, false)),
          " | ", a2n, " | ", a2d, " |\n");
    }
    absl::StrAppend(
        &md, "\nN, D and C by Approach 3 under ",
        analysis::FlopsModelFromProto(f.flops()).Describe(),
        "; (95% ..): bootstrap 95% intervals, ×/÷ f for N and D.\n");
    if (f.sensitivity_size() > 0) {
      absl::StrAppend(&md, "\n",
                      analysis::SensitivityText(
                          analysis::SensitivityFromProto(f.sensitivity())),
                      "\n");
    }
  }

  absl::StrAppendFormat(
      &md,
      "\n## Compute spent\n\n- GPU-hours: %.4g\n- CPU core-hours: %.4g\n"
      "- sweep wall time: %.1f s (%.2f h)\n\nHours: the trials' seconds x "
      "GPUs (CPU trials: x threads). A trial's seconds are the wall time of "
      "all its attempts, from lease to end; %d trial(s) marked ~ began "
      "before the coordinator's last restart and are estimated as the tokens "
      "trained by the last attempt over its tokens/s. MFU = tokens/s x "
      "FLOPs/token / (%g TFLOP/s x GPUs), FLOPs/token as in "
      "common/flops.h.\n",
      r.gpu_hours, r.cpu_core_hours, r.wall_s, r.wall_s / 3600,
      r.seconds_estimated, r.peak_tflops);

  absl::StrAppend(&md,
                  "\n## Trials\n\n| trial | state | shape | N | D | C | val "
                  "loss | attempts | seconds | tokens/s | MFU |\n"
                  "|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const TrialRow& t : r.trials) {
    absl::StrAppend(
        &md, "| ", t.id, " | ", t.state, " | ", t.shape, " | ", G(t.n), " | ",
        G(t.d), " | ", G(t.flops), " | ",
        t.val_loss ? absl::StrFormat("%.4f", *t.val_loss) : "-", " | ",
        t.attempts, " | ",
        t.seconds ? absl::StrFormat("%s%.1f", t.seconds_estimated ? "~" : "",
                                    *t.seconds)
                  : "-",
        " | ", t.tokens_per_s ? absl::StrFormat("%.0f", *t.tokens_per_s) : "-",
        " | ", t.mfu ? absl::StrFormat("%.2f%%", 100 * *t.mfu) : "-", " |\n");
  }
  absl::StrAppend(&md, "\n## Backtest\n\n");
  if (r.backtest) {
    const analysis::BacktestData& b = *r.backtest;
    absl::StrAppendFormat(
        &md,
        "Approach 3 refitted without the largest budget (%s FLOPs, %d points "
        "left to fit) predicts its %d points with a mean absolute relative "
        "error of %.3g%%.\n",
        G(b.holdout_flops), b.train_points, static_cast<int>(b.points.size()),
        100 * b.mean_abs_relative_error);
  } else {
    absl::StrAppend(&md, "No backtest: ", r.no_backtest, "\n");
  }
  if (!r.rollout.empty()) {
    absl::StrAppend(
        &md,
        "\nRollout: Approach 3 fitted on the budgets up to one, predicting the "
        "next (its best point):\n\n| fitted on C <= | points | predicts C | "
        "predicted loss | observed loss | error | mean abs. error |\n"
        "|---|---|---|---|---|---|---|\n");
    for (const analysis::Backtest& b : r.rollout) {
      absl::StrAppendFormat(
          &md, "| %s | %d | %s | %.4f | %.4f | %+.2f%% | %.2f%% |\n",
          G(b.train_max_flops), b.train_points, G(b.holdout_flops),
          b.predicted_loss, b.observed_loss, 100 * b.relative_error,
          100 * b.mean_abs_relative_error);
    }
  }
  absl::StrAppend(
      &md,
      "\n## Figures\n\n![IsoFLOP profiles](isoflop_profiles.svg)\n"
      "![Compute-optimal frontier, with Chinchilla's and Epoch's published "
      "laws](frontier.svg)\n![Residuals against N, D and C](residuals.svg)\n"
      "![Predicted against observed loss](predicted_vs_observed.svg)\n"
      "![Backtest of the largest budget](backtest.svg)\n");
  return md;
}

json JsonOf(const Report& r) {
  const v1::Sweep& s = r.sweep;
  const v1::SweepConfig& c = s.config();
  json shapes = json::array(), counts = json::object(), trials = json::array();
  for (const std::string& sh : GridShapeTexts(r)) shapes.push_back(sh);
  for (const auto& [state, n] : s.trial_counts()) counts[state] = n;
  for (const TrialRow& t : r.trials) {
    trials.push_back({{"id", t.id},
                      {"state", t.state},
                      {"shape", t.shape},
                      {"n", t.n},
                      {"d", t.d},
                      {"flops", t.flops},
                      {"flops_per_token", t.flops_per_token},
                      {"gpus", t.gpus},
                      {"val_loss", Num(t.val_loss)},
                      {"attempts", t.attempts},
                      {"seconds", Num(t.seconds)},
                      {"seconds_estimated", t.seconds_estimated},
                      {"tokens_per_s", Num(t.tokens_per_s)},
                      {"mfu", Num(t.mfu)}});
  }
  json doc = {
      {"sweep",
       {{"id", s.id()},
        {"name", c.name()},
        {"state", v1::SweepState_Name(s.state())},
        {"created_unix_ms", s.created_unix_ms()},
        {"wall_s", r.wall_s}}},
      {"config",
       {{"dataset", c.data().dataset()},
        {"vocab_size", c.model().vocab_size()},
        {"context", c.model().context()},
        {"batch_sequences", c.training().batch_sequences()},
        {"gpus_per_trial", c.resources().gpus_per_trial()},
        {"flops_budgets", std::vector<double>(c.grid().flops_budgets().begin(),
                                              c.grid().flops_budgets().end())},
        {"shapes", shapes}}},
      {"trial_counts", counts},
      {"fit", nullptr},
      {"optimal", json::array()},
      {"entropy", nullptr},
      {"compute",
       {{"gpu_hours", r.gpu_hours},
        {"cpu_core_hours", r.cpu_core_hours},
        {"trials_seconds_estimated", r.seconds_estimated}}},
      {"peak_tflops", r.peak_tflops},
      {"trials", trials}};
  const v1::ScalingLawFit& f = s.fit();
  if (r.has_law) {
    const double sum = f.alpha() + f.beta();
    json ci = json::object();
    for (const auto& [k, v] : FitCi(f)) ci[k] = IntervalJson(v);
    json a2 = nullptr;
    if (f.has_approach2()) {
      a2 = {{"n_opt_coef", f.approach2().n_opt_coef()},
            {"n_opt_exponent", f.approach2().n_opt_exponent()},
            {"d_opt_coef", f.approach2().d_opt_coef()},
            {"d_opt_exponent", f.approach2().d_opt_exponent()}};
    }
    doc["fit"] = {{"final", f.final()},
                  {"n_points", f.n_points()},
                  {"message", f.message()},
                  {"approach3",
                   {{"E", f.e()},
                    {"A", f.a()},
                    {"B", f.b()},
                    {"alpha", f.alpha()},
                    {"beta", f.beta()},
                    {"a", f.beta() / sum},
                    {"b", f.alpha() / sum}}},
                  {"approach2", a2},
                  {"ci95", ci}};
  }
  for (const OptimumRow& o : r.optimal) {
    json ci = json::object();
    for (const auto& [k, v] : o.ci95) ci[k] = IntervalJson(v);
    json a2 = nullptr;
    if (o.a2) a2 = {{"n_opt", o.a2->first}, {"d_opt", o.a2->second}};
    doc["optimal"].push_back({{"multiple", o.multiple},
                              {"flops", o.flops},
                              {"n_opt", Num(o.a3.n_opt)},
                              {"d_opt", Num(o.a3.d_opt)},
                              {"loss", Num(o.a3.loss)},
                              {"ci95", ci},
                              {"approach2", a2}});
  }
  if (r.sweep.has_fit()) {
    doc["flops_convention"] = analysis::FlopsModelToJson(
        analysis::FlopsModelFromProto(r.sweep.fit().flops()));
    doc["sensitivity"] = analysis::SensitivityToJson(
        analysis::SensitivityFromProto(r.sweep.fit().sensitivity()));
  }
  // The backtest as `isoflop fit --format json` names it, at the holdout
  // budget's best observed point.
  doc["verdict"] = nullptr;
  if (r.verdict) {
    doc["verdict"] = {{"level", r.verdict->level},
                      {"reasons", r.verdict->reasons}};
  }
  doc["backtest"] = nullptr;
  if (r.backtest && !r.backtest->points.empty()) {
    const analysis::BacktestData& b = *r.backtest;
    const analysis::FitPoint& best = *std::min_element(
        b.points.begin(), b.points.end(),
        [](const auto& x, const auto& y) { return x.observed < y.observed; });
    doc["backtest"] = {
        {"holdout_flops", b.holdout_flops},
        {"predicted_loss", Num(best.predicted)},
        {"observed_loss", best.observed},
        {"relative_error",
         Num((best.predicted - best.observed) / best.observed)},
        {"points", b.points.size()},
        {"mean_abs_relative_error", Num(b.mean_abs_relative_error)}};
  }
  doc["rollout"] = json::array();
  for (const analysis::Backtest& b : r.rollout) {
    doc["rollout"].push_back(analysis::BacktestToJson(b));
  }
  if (r.entropy_rate) {
    doc["entropy"] = {
        {"rate_nats", *r.entropy_rate},
        {"source", r.entropy_source},
        {"fitted_e", r.has_law ? json(f.e()) : json(nullptr)},
        {"relative_error",
         r.has_law ? json((f.e() - *r.entropy_rate) / *r.entropy_rate)
                   : json(nullptr)}};
  }
  return doc;
}

// Columns named as `isoflop fit --points` reads them (analysis/points_io.h):
// params, tokens, loss, budget and flops (the trial's actual C), with a
// `state` column so that only succeeded trials are read back as points.
std::string Csv(const Report& r) {
  std::string csv =
      "trial_id,state,shape,params,tokens,budget,flops_per_token,gpus,loss,"
      "attempts,seconds,seconds_estimated,tokens_per_s,mfu,flops\n";
  const auto opt = [](const std::optional<double>& v) {
    return v ? FullPrecision(*v) : std::string();
  };
  for (const TrialRow& t : r.trials) {
    absl::StrAppend(
        &csv,
        absl::StrJoin(
            {t.id, t.state, t.shape, FullPrecision(t.n), FullPrecision(t.d),
             FullPrecision(t.flops), FullPrecision(t.flops_per_token),
             absl::StrCat(t.gpus), opt(t.val_loss), absl::StrCat(t.attempts),
             opt(t.seconds), std::string(t.seconds_estimated ? "1" : "0"),
             opt(t.tokens_per_s), opt(t.mfu), FullPrecision(t.compute)},
            ","),
        "\n");
  }
  return csv;
}

// Approach 3's frontier from the smallest budget to 1000x the largest, with
// the bootstrap band, and Approach 2's vertices and power laws.
FrontierData FrontierOf(const Report& r) {
  FrontierData data;
  if (!r.has_law) return data;
  const v1::ScalingLawFit& f = r.sweep.fit();
  const auto& budgets = r.sweep.config().grid().flops_budgets();
  const double lo = *std::min_element(budgets.begin(), budgets.end());
  const double hi = 1000 * *std::max_element(budgets.begin(), budgets.end());
  const analysis::FlopsModel flops_model =
      analysis::FlopsModelFromProto(f.flops());
  const analysis::Approach3Fit law = analysis::Approach3FromProto(f);
  const std::vector<analysis::Approach3Fit> samples =
      analysis::Approach3Samples(f);
  constexpr int kSteps = 48;
  for (int k = 0; k <= kSteps; ++k) {
    const double c = lo * std::pow(hi / lo, static_cast<double>(k) / kSteps);
    const analysis::ComputeOptimum o =
        analysis::ComputeOptimalUnder(law, c, flops_model);
    data.flops.push_back(c);
    data.n_opt.push_back(o.n_opt);
    data.d_opt.push_back(o.d_opt);
    if (samples.empty()) continue;
    const auto ci = analysis::OptimumIntervals(samples, c, flops_model);
    data.n_low.push_back(ci.at("n_opt").low);
    data.n_high.push_back(ci.at("n_opt").high);
    data.d_low.push_back(ci.at("d_opt").low);
    data.d_high.push_back(ci.at("d_opt").high);
  }
  data.largest_budget = hi / 1000;
  data.overlays = analysis::PublishedOverlays(data.flops);
  for (const OptimumRow& o : r.optimal) {
    data.marks.emplace_back(o.flops, o.a3.n_opt);
    data.marks.emplace_back(o.flops, o.a3.d_opt);
  }
  // Approach 2's vertices only where it fitted (a refused budget's vertex
  // is no estimate of N_opt).
  for (const ProfileSeries& s : r.profiles) {
    if (!f.has_approach2() || !s.parabola || (*s.parabola)[2] <= 0) continue;
    const double n = std::exp(-(*s.parabola)[1] / (2 * (*s.parabola)[2]));
    data.a2_n_points.emplace_back(s.flops, n);
    data.a2_d_points.emplace_back(
        s.flops, analysis::TokensForCompute(flops_model, n, s.flops));
  }
  if (f.has_approach2()) {
    data.a2_n_law = {f.approach2().n_opt_coef(),
                     f.approach2().n_opt_exponent()};
    data.a2_d_law = {f.approach2().d_opt_coef(),
                     f.approach2().d_opt_exponent()};
  }
  return data;
}

absl::Status WriteText(const std::filesystem::path& path,
                       const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    return absl::PermissionDeniedError(
        absl::StrCat("--out: cannot write '", path.string(), "'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteSweepReport(const CommandContext& ctx,
                              const ReportOptions& options) {
  if (options.sweep_id.empty()) {
    return absl::InvalidArgumentError("SWEEP = '': must be a sweep id");
  }
  if (!std::isfinite(options.peak_tflops) || !(options.peak_tflops > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--peak-tflops = ", options.peak_tflops, ": must be finite and > 0"));
  }
  ASSIGN_OR_RETURN(const std::vector<analysis::LogParams> starts,
                   analysis::StartsFromSpec(options.starts));
  *ctx.err << "report: reading sweep " << options.sweep_id << "\n";
  absl::StatusOr<v1::Sweep> sweep = ctx.api->GetSweep(options.sweep_id);
  if (absl::IsNotFound(sweep.status()) &&
      !absl::StrContains(sweep.status().message(), options.sweep_id)) {
    return absl::NotFoundError(absl::StrCat("sweep ", options.sweep_id, ": ",
                                            sweep.status().message()));
  }
  if (!sweep.ok()) return sweep.status();
  const Report r = BuildReport(*sweep, options, starts, ctx.clock->Now());
  if (!r.has_law) {
    *ctx.err << "report: sweep " << options.sweep_id
             << " has no fit yet; writing the trials and profiles only\n";
  }
  if (r.verdict) {
    *ctx.err << "report: verdict " << r.verdict->level;
    for (const std::string& reason : r.verdict->reasons) {
      *ctx.err << "; " << reason;
    }
    *ctx.err << "\n";
  }
  if (r.backtest) {
    *ctx.err << absl::StrFormat(
        "report: backtest: the largest budget (%s FLOPs) predicted from the "
        "smaller ones with a mean |relative error| of %.3g%%\n",
        G(r.backtest->holdout_flops),
        100 * r.backtest->mean_abs_relative_error);
  }
  std::error_code ec;
  const std::filesystem::path dir(options.out_dir);
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat(
        "--out = '", options.out_dir, "': cannot create: ", ec.message()));
  }
  const std::pair<const char*, std::string> files[] = {
      {"report.md", Markdown(r)},
      {"report.json", JsonOf(r).dump(2) + "\n"},
      {"trials.csv", Csv(r)},
      {"isoflop_profiles.svg",
       analysis::IsoFlopProfilesSvg(r.profiles, r.no_law)},
      {"frontier.svg", analysis::FrontierSvg(FrontierOf(r), r.no_law)},
      {"residuals.svg", analysis::ResidualsSvg(r.fitted, r.no_law)},
      {"predicted_vs_observed.svg",
       analysis::PredictedVsObservedSvg(r.fitted, r.no_law)},
      {"backtest.svg", analysis::BacktestSvg(r.backtest, r.no_backtest)}};
  for (const auto& [name, text] : files) {
    RETURN_IF_ERROR(WriteText(dir / name, text));
    *ctx.err << "report: wrote " << (dir / name).string() << "\n";
    *ctx.out << (dir / name).string() << "\n";
  }
  if (!options.html && !options.pdf) return absl::OkStatus();
  std::map<std::string, std::string> figures;
  for (const auto& [name, text] : files) {
    if (absl::EndsWith(name, ".svg")) figures[name] = text;
  }
  std::string config_json;
  google::protobuf::util::JsonPrintOptions print;
  print.add_whitespace = true;
  print.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(r.sweep.config(),
                                                   &config_json, print)
           .ok()) {
    config_json.clear();
  }
  const std::filesystem::path html = dir / "report.html";
  RETURN_IF_ERROR(WriteText(
      html,
      ReportHtml(absl::StrCat("IsoFLOP sweep report: ", r.sweep.config().name(),
                              " (", r.sweep.id(), ")"),
                 files[0].second, figures, config_json)));
  *ctx.err << "report: wrote " << html.string() << "\n";
  *ctx.out << html.string() << "\n";
  if (!options.pdf) return absl::OkStatus();
  const std::optional<std::string> chromium =
      options.chromium.empty() ? FindChromium()
                               : std::optional<std::string>(options.chromium);
  if (!chromium) {
    return absl::FailedPreconditionError(
        "--pdf: no Chromium found (looked for $ISOFLOP_CHROMIUM, then "
        "chromium, chromium-browser, google-chrome on PATH); report.html is "
        "written: print it from a browser");
  }
  const std::filesystem::path pdf = dir / "report.pdf";
  *ctx.err << "report: printing " << pdf.string() << " with " << *chromium
           << "\n";
  RETURN_IF_ERROR(PrintPdf(*chromium, html, pdf, absl::Seconds(120)));
  *ctx.err << "report: wrote " << pdf.string() << "\n";
  *ctx.out << pdf.string() << "\n";
  return absl::OkStatus();
}

}  // namespace isoflop::cli
