#include "analysis/verdict.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/readable.h"

namespace isoflop::analysis {
namespace {

constexpr VerdictLevel kOk = VerdictLevel::kOk;
constexpr VerdictLevel kWeak = VerdictLevel::kWeak;
constexpr VerdictLevel kUnidentified = VerdictLevel::kUnidentified;

// What the points say, whichever approach reads them.
struct BudgetFacts {
  double flops = 0;
  int points = 0;
  double n_min = 0, n_max = 0;
  int distinct_n = 0;
  bool min_at_edge = false;  // lowest loss at the smallest or largest N
  bool min_at_small = false;
};

std::vector<BudgetFacts> FactsOf(const FitReport& report) {
  std::vector<BudgetFacts> out;
  for (const BudgetGroup& g : report.grouping.groups) {
    BudgetFacts f;
    f.flops = g.flops;
    f.points = static_cast<int>(g.indices.size());
    std::set<double> ns;
    const Point* best = nullptr;
    for (int i : g.indices) {
      const Point& p = report.fit_points[static_cast<size_t>(i)];
      ns.insert(p.n);
      if (best == nullptr || p.loss < best->loss) best = &p;
    }
    if (ns.empty()) continue;
    f.n_min = *ns.begin();
    f.n_max = *ns.rbegin();
    f.distinct_n = static_cast<int>(ns.size());
    if (f.distinct_n >= 3) {
      f.min_at_small = best->n == f.n_min;
      f.min_at_edge = f.min_at_small || best->n == f.n_max;
    }
    out.push_back(f);
  }
  return out;
}

bool Finite(std::initializer_list<double> values) {
  return std::all_of(values.begin(), values.end(),
                     [](double v) { return std::isfinite(v); });
}

// Reasons every approach that reads IsoFLOP profiles shares: too few
// budgets, narrow N ranges, minima at an edge of the sampled N.
Verdict ProfileVerdict(const FitReport& report,
                       const std::vector<BudgetFacts>& facts) {
  Verdict v;
  int profiles = 0;
  for (const BudgetFacts& f : facts) profiles += f.points >= 2;
  // Points in no IsoFLOP profile (each its own budget: runs of free sizes
  // and lengths, as Epoch's extraction of Chinchilla's) are judged by
  // Approach 3's own checks only.
  if (profiles == 0) return v;
  if (profiles < kWeakBelowBudgets) {
    AddReason(&v, kWeak,
              absl::StrCat(profiles,
                           " IsoFLOP budget(s) with 2 or more points: "
                           "fewer than ",
                           kWeakBelowBudgets,
                           " leave the exponents with no check on noise or "
                           "curvature; add budgets (3 or more, spaced about "
                           "3x or more apart)"));
  }
  for (const BudgetFacts& f : facts) {
    if (f.points < 2) continue;
    const double range = f.n_max / f.n_min;
    if (range < kWeakBelowNRange) {
      AddReason(&v, kWeak,
                absl::StrCat("budget ", Sig(f.flops), " FLOPs: N spans only ",
                             Sig(range, 2), "x (", Count(f.n_min), " .. ",
                             Count(f.n_max), "), under ", Sig(kWeakBelowNRange),
                             "x: the minimum is "
                             "poorly placed; sample sizes from about 1/3x "
                             "to 3x the expected N_opt"));
    }
  }
  // Approach 2's parabolas, when it ran, say whether each vertex lies
  // outside the sampled N; the observed minima say it otherwise.
  std::set<double> vertex_outside;
  if (report.approach2.fit) {
    for (const IsoFlopProfile& p : report.approach2.fit->budgets) {
      if (p.vertex_outside) vertex_outside.insert(p.flops);
    }
  }
  for (const BudgetFacts& f : facts) {
    if (f.distinct_n < 3) continue;
    const bool outside = vertex_outside.count(f.flops) != 0;
    if (!f.min_at_edge && !outside) continue;
    AddReason(
        &v, kWeak,
        absl::StrCat(
            "budget ", Sig(f.flops), " FLOPs: ",
            f.min_at_edge
                ? absl::StrCat("the lowest loss is at the ",
                               f.min_at_small ? "smallest" : "largest",
                               " N sampled (",
                               Count(f.min_at_small ? f.n_min : f.n_max), ")")
                : "the parabola's vertex lies outside the sampled N",
            ": the optimum is not bracketed; add sizes beyond it"));
  }
  return v;
}

Verdict Approach3Verdict(const FitReport& report,
                         const std::vector<BudgetFacts>& facts) {
  const Approach3Fit& fit = *report.approach3.fit;
  Verdict v = ProfileVerdict(report, facts);
  if (fit.n_points <= kApproach3Parameters) {
    AddReason(&v, kUnidentified,
              absl::StrCat(fit.n_points, " points for ", kApproach3Parameters,
                           " free parameters (E, A, B, alpha, beta): the law "
                           "passes through every point and nothing checks "
                           "it; add points (3 or more sizes on each of 3 or "
                           "more budgets)"));
  } else if (fit.n_points < kWeakBelowPoints) {
    AddReason(&v, kWeak,
              absl::StrCat(fit.n_points, " points for ", kApproach3Parameters,
                           " free parameters leave ",
                           fit.n_points - kApproach3Parameters,
                           " degree(s) of freedom; add points (",
                           kWeakBelowPoints, " or more)"));
  }
  if (!Finite({fit.e, fit.a, fit.b, fit.alpha, fit.beta}) || fit.a <= 0 ||
      fit.b <= 0 || fit.alpha <= 0 || fit.beta <= 0) {
    AddReason(&v, kUnidentified,
              absl::StrCat("fitted parameters are not all finite and > 0 "
                           "(A = ",
                           Sig(fit.a), ", B = ", Sig(fit.b), ", alpha = ",
                           Sig(fit.alpha), ", beta = ", Sig(fit.beta),
                           "): the points do not determine the law; add "
                           "budgets and sizes"));
  }
  if (fit.ill_conditioned || !(fit.condition_number <= kIllConditionedAbove)) {
    // With noise above the Huber delta most residuals sit in the loss's
    // linear part and the Hessian can be singular at a good optimum (as in
    // L1 regression): weak, unless few points leave it unidentified too.
    const bool few = fit.n_points < kWeakBelowPoints;
    AddReason(&v, few ? kUnidentified : kWeak,
              absl::StrCat("the Hessian at the optimum has condition number ",
                           Sig(fit.condition_number), " (over ",
                           Sig(kIllConditionedAbove),
                           " or not positive definite): some combination "
                           "of the parameters is poorly determined",
                           few ? " by so few points" : "",
                           "; the bootstrap intervals say how much; add "
                           "budgets and sizes"));
  }
  if (fit.on_grid_edge) {
    AddReason(&v, kWeak,
              "a fitted parameter lies on the edge of the start grid: the "
              "optimum may lie beyond it; check `message` and try more "
              "starts (--starts random:K)");
  }
  if (const auto& boot = report.approach3.bootstrap) {
    const int asked = report.request.bootstrap;
    if (asked > 0 && boot->failed > kWeakAboveFailedShare * asked) {
      AddReason(&v, kWeak,
                absl::StrCat(boot->failed, " of ", asked,
                             " bootstrap refits failed (over ",
                             Sig(100 * kWeakAboveFailedShare),
                             "%): the intervals describe the resamples that "
                             "fit, not the data; add points"));
    }
    const auto ci = Approach3Intervals(boot->samples);
    for (const char* name : {"alpha", "beta"}) {
      const Interval i = ci.at(name);
      // A zero-width interval (noise-free points) is not wide; 5 points
      // pinning 5 parameters are judged above.
      if (!(i.low > 0) || !(i.high / i.low <= kWeakAboveExponentFactor)) {
        AddReason(&v, kWeak,
                  absl::StrCat(name, "'s 95% interval ", Sig(i.low), " .. ",
                               Sig(i.high), " is wider than a factor ",
                               Sig(kWeakAboveExponentFactor),
                               ": the exponent is not measured; add budgets "
                               "and sizes"));
      }
    }
  }
  return v;
}

Verdict Approach2Verdict(const FitReport& report,
                         const std::vector<BudgetFacts>& facts) {
  const Approach2Fit& fit = *report.approach2.fit;
  Verdict v = ProfileVerdict(report, facts);
  if (!Finite({fit.n_opt.coef, fit.n_opt.exponent, fit.d_opt.coef,
               fit.d_opt.exponent})) {
    AddReason(&v, kUnidentified,
              "the N_opt or D_opt power law is not finite: add budgets");
  }
  if (static_cast<int>(fit.budgets.size()) < kWeakBelowBudgets) {
    AddReason(&v, kWeak,
              absl::StrCat("Approach 2 fits its power laws through ",
                           fit.budgets.size(),
                           " vertices: a line through 2 points has no "
                           "check; add budgets (3 or more)"));
  }
  const bool every_outside =
      !fit.budgets.empty() &&
      std::all_of(fit.budgets.begin(), fit.budgets.end(),
                  [](const IsoFlopProfile& p) { return p.vertex_outside; });
  if (every_outside) {
    AddReason(&v, kUnidentified,
              "every budget's parabola has its vertex outside the sampled N: "
              "N_opt(C) is an extrapolation at every budget; center each "
              "budget's sizes on its optimum");
  }
  if (const auto& boot = report.approach2.bootstrap) {
    const int asked = report.request.bootstrap;
    if (asked > 0 && boot->failed > kWeakAboveFailedShare * asked) {
      AddReason(&v, kWeak,
                absl::StrCat(boot->failed, " of ", asked,
                             " Approach 2 bootstrap refits failed (over ",
                             Sig(100 * kWeakAboveFailedShare),
                             "%): add points per budget"));
    }
    std::vector<double> a;
    for (const auto& s : boot->samples) a.push_back(s.first.exponent);
    const Interval i = Percentile95(a);
    if (!(i.high - i.low <= kWeakAboveA2ExponentWidth)) {
      AddReason(&v, kWeak,
                absl::StrCat("the N_opt exponent's 95% interval ", Sig(i.low),
                             " .. ", Sig(i.high), " is wider than ",
                             Sig(kWeakAboveA2ExponentWidth),
                             ": add budgets and points per budget"));
    }
  }
  return v;
}

// Approach 2's and 3's N_opt exponents (a) should agree within their
// intervals (or within kDisagreeWithoutIntervals without a bootstrap).
void CheckAgreement(const FitReport& report, Verdict* overall) {
  if (!report.approach2.fit || !report.approach3.fit) return;
  const Approach3Fit& f3 = *report.approach3.fit;
  const double a3 = f3.beta / (f3.alpha + f3.beta);
  const double a2 = report.approach2.fit->n_opt.exponent;
  if (!Finite({a2, a3})) return;
  const auto& b2 = report.approach2.bootstrap;
  const auto& b3 = report.approach3.bootstrap;
  if (b2 && b3) {
    std::vector<double> s2;
    for (const auto& s : b2->samples) s2.push_back(s.first.exponent);
    const Interval i2 = Percentile95(s2);
    const Interval i3 = Approach3Intervals(b3->samples).at("a");
    if (i2.high < i3.low || i3.high < i2.low) {
      AddReason(
          overall, kWeak,
          absl::StrCat("Approaches 2 and 3 disagree on N_opt ~ C^a: ", Sig(a2),
                       " (95% ", Sig(i2.low), " .. ", Sig(i2.high), ") vs ",
                       Sig(a3), " (95% ", Sig(i3.low), " .. ", Sig(i3.high),
                       "), intervals apart: one approach's assumptions "
                       "fail on these points; add budgets and sizes"));
    }
  } else if (std::abs(a2 - a3) > kDisagreeWithoutIntervals) {
    AddReason(overall, kWeak,
              absl::StrCat("Approaches 2 and 3 disagree on N_opt ~ C^a: ",
                           Sig(a2), " vs ", Sig(a3), " (more than ",
                           Sig(kDisagreeWithoutIntervals),
                           " apart; no bootstrap to judge by): add budgets "
                           "and sizes"));
  }
}

}  // namespace

std::string LevelName(VerdictLevel level) {
  switch (level) {
    case VerdictLevel::kOk:
      return "ok";
    case VerdictLevel::kWeak:
      return "weak";
    case VerdictLevel::kUnidentified:
      return "unidentified";
  }
  return "unidentified";
}

std::optional<VerdictLevel> LevelFromName(std::string_view name) {
  if (name == "ok") return kOk;
  if (name == "weak") return kWeak;
  if (name == "unidentified") return kUnidentified;
  return std::nullopt;
}

void AddReason(Verdict* verdict, VerdictLevel level, std::string reason) {
  verdict->level = std::max(verdict->level, level);
  if (std::find(verdict->reasons.begin(), verdict->reasons.end(), reason) !=
      verdict->reasons.end()) {
    return;
  }
  verdict->reason_levels.resize(verdict->reasons.size(), verdict->level);
  size_t at = 0;
  while (at < verdict->reasons.size() && verdict->reason_levels[at] >= level) {
    ++at;
  }
  const auto offset = static_cast<std::ptrdiff_t>(at);
  verdict->reasons.insert(verdict->reasons.begin() + offset, std::move(reason));
  verdict->reason_levels.insert(verdict->reason_levels.begin() + offset, level);
}

Verdict Worse(const Verdict& a, const Verdict& b) {
  Verdict out = a;
  out.level = std::max(a.level, b.level);
  for (size_t i = 0; i < b.reasons.size(); ++i) {
    AddReason(&out, i < b.reason_levels.size() ? b.reason_levels[i] : b.level,
              b.reasons[i]);
  }
  return out;
}

std::optional<std::string> RepetitionReason(const std::vector<Point>& points) {
  int repeated = 0;
  double most = 0;
  for (const Point& p : points) {
    if (p.epochs > kWeakAboveEpochs) {
      ++repeated;
      most = std::max(most, p.epochs);
    }
  }
  if (repeated == 0) return std::nullopt;
  return absl::StrCat(
      repeated, repeated == 1 ? " point trains" : " points train", " for > ",
      kWeakAboveEpochs, " epochs of their unique data (up to ", Sig(most, 3),
      "); the Chinchilla form ignores repetition: fit --form "
      "muennighoff");
}

FitVerdicts JudgeFit(const FitReport& report) {
  const std::vector<BudgetFacts> facts = FactsOf(report);
  // Every approach fits the plain law, which counts a repeated token as a
  // new one (docs/fitting.md, "Data-constrained fits").
  const std::optional<std::string> repetition =
      RepetitionReason(report.fit_points);
  FitVerdicts out;
  if (report.approach1.fit) {
    Verdict v;
    std::set<double> sizes;
    for (const EnvelopePoint& p : report.approach1.fit->envelope) {
      sizes.insert(p.n);
    }
    if (sizes.size() < 3) {
      AddReason(&v, kWeak,
                absl::StrCat("the envelope holds ", sizes.size(),
                             " model sizes: fewer than 3 leave N_opt(C) "
                             "unchecked; train more sizes"));
    }
    out.approach1 = v;
  }
  if (report.approach2.fit) out.approach2 = Approach2Verdict(report, facts);
  if (report.approach3.fit) out.approach3 = Approach3Verdict(report, facts);
  if (repetition) {
    for (auto* v : {&out.approach1, &out.approach2, &out.approach3}) {
      if (*v) AddReason(&**v, kWeak, *repetition);
    }
  }
  // The answer people read comes from Approach 3 (else 2, else 1): the
  // overall verdict is the worst of those fitted.
  for (const auto* v : {&out.approach3, &out.approach2, &out.approach1}) {
    if (*v) out.overall = Worse(out.overall, **v);
  }
  CheckAgreement(report, &out.overall);
  return out;
}

nlohmann::json VerdictToJson(const Verdict& verdict) {
  return {{"level", LevelName(verdict.level)}, {"reasons", verdict.reasons}};
}

Verdict VerdictFromJson(const nlohmann::json& json) {
  Verdict out;
  out.level = kUnidentified;
  if (!json.is_object()) return out;
  if (auto it = json.find("level"); it != json.end() && it->is_string()) {
    out.level = LevelFromName(it->get<std::string>()).value_or(kUnidentified);
  }
  if (auto it = json.find("reasons"); it != json.end() && it->is_array()) {
    for (const auto& r : *it) {
      if (r.is_string()) {
        out.reasons.push_back(r.get<std::string>());
        out.reason_levels.push_back(out.level);
      }
    }
  }
  return out;
}

std::string VerdictText(const Verdict& verdict, const std::string& indent) {
  std::string out =
      absl::StrCat(indent, "verdict: ", LevelName(verdict.level), "\n");
  for (const std::string& r : verdict.reasons) {
    absl::StrAppend(&out, indent, "  - ", r, "\n");
  }
  return out;
}

}  // namespace isoflop::analysis
