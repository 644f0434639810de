#include "coordinator/sweep/adaptive.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analysis/power_law.h"
#include "common/flops.h"
#include "common/ids.h"
#include "common/readable.h"
#include "common/status_macros.h"
#include "coordinator/sweep/validate.h"

namespace isoflop::coordinator {
namespace {

bool Ended(v1::TrialState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

std::string Num(double v) { return absl::StrFormat("%g", v); }

absl::Status CheckRange(const std::string& field, double v, double lo,
                        double hi, bool open) {
  const bool ok = open ? (v > lo && v < hi) : (v >= lo && v <= hi);
  if (ok) return absl::OkStatus();
  return InvalidField(
      absl::StrCat("grid.adaptive.", field), Num(v),
      open ? absl::StrCat("must be in (", Num(lo), ", ", Num(hi), ")")
           : absl::StrCat("must be in [", Num(lo), ", ", Num(hi), "]"));
}

bool SameShape(const v1::ModelShape& a, const v1::ModelShape& b) {
  return a.d_model() == b.d_model() && a.n_layers() == b.n_layers() &&
         a.n_heads() == b.n_heads() &&
         (a.d_ff() == 0 ? 4 * a.d_model() : a.d_ff()) ==
             (b.d_ff() == 0 ? 4 * b.d_model() : b.d_ff());
}

// The budgets in ascending order, as indices into grid.flops_budgets.
std::vector<int> AscendingBudgets(const v1::Grid& g) {
  std::vector<int> order(static_cast<size_t>(g.flops_budgets_size()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(), [&g](int a, int b) {
    return g.flops_budgets(a) < g.flops_budgets(b);
  });
  return order;
}

BudgetProfile ProfileOf(double flops, const std::vector<const v1::Trial*>& ts) {
  BudgetProfile p;
  p.flops = flops;
  std::vector<std::pair<double, double>> xy;  // (log N, loss)
  double best = 0;
  for (const v1::Trial* t : ts) {
    if (t->state() != v1::SUCCEEDED || !std::isfinite(t->val_loss())) continue;
    const auto n = static_cast<double>(t->spec().n_total());
    if (!(n > 0)) continue;
    if (p.n_points == 0 || n < p.n_min) p.n_min = n;
    if (p.n_points == 0 || n > p.n_max) p.n_max = n;
    if (p.n_points == 0 || t->val_loss() < best) {
      best = t->val_loss();
      p.n_argmin = n;
    }
    ++p.n_points;
    xy.emplace_back(std::log(n), t->val_loss());
  }
  double c[3] = {0, 0, 0};
  if (p.n_points >= 3 && analysis::FitParabola(xy, c) && c[2] > 0) {
    p.has_vertex = true;
    p.n_vertex = std::exp(-c[1] / (2 * c[2]));
  }
  p.bracketed = p.has_vertex && p.n_argmin > p.n_min && p.n_argmin < p.n_max &&
                p.n_vertex >= p.n_min && p.n_vertex <= p.n_max;
  return p;
}

// Trials grouped by the budget they belong to (index into flops_budgets).
std::map<int, std::vector<const v1::Trial*>> ByBudget(
    const v1::Grid& g, const std::vector<v1::Trial>& trials) {
  std::map<int, std::vector<const v1::Trial*>> out;
  for (const v1::Trial& t : trials) {
    for (int b = 0; b < g.flops_budgets_size(); ++b) {
      if (g.flops_budgets(b) == t.spec().flops_budget()) {
        out[b].push_back(&t);
        break;
      }
    }
  }
  return out;
}

// The log step between a budget's placed shapes (extension 0): their N
// range over their count; span^(1/(k-1)) when they give none.
double LogStep(const std::vector<const v1::Trial*>& ts,
               const AdaptiveSettings& s) {
  double lo = 0, hi = 0;
  int n = 0;
  for (const v1::Trial* t : ts) {
    if (t->spec().extension() != 0) continue;
    const auto v = static_cast<double>(t->spec().n_total());
    if (n == 0 || v < lo) lo = v;
    if (n == 0 || v > hi) hi = v;
    ++n;
  }
  if (n >= 2 && lo > 0 && hi / lo > 1.1) {
    return std::pow(hi / lo, 1.0 / (n - 1));
  }
  return std::pow(s.span, 1.0 / (s.shapes_per_budget - 1));
}

}  // namespace

AdaptiveSettings ResolveAdaptive(const v1::AdaptiveGrid& a) {
  AdaptiveSettings s;
  if (a.shapes_per_budget() != 0)
    s.shapes_per_budget = static_cast<int>(a.shapes_per_budget());
  if (a.span() != 0) s.span = a.span();
  if (a.max_extensions() != 0)
    s.max_extensions = static_cast<int>(a.max_extensions());
  if (a.shapes_per_extension() != 0)
    s.shapes_per_extension = static_cast<int>(a.shapes_per_extension());
  if (a.prior_exponent() != 0) s.prior_exponent = a.prior_exponent();
  return s;
}

absl::Status ValidateAdaptiveGrid(const v1::AdaptiveGrid& a) {
  if (a.shapes_per_budget() != 0) {
    RETURN_IF_ERROR(CheckRange("shapes_per_budget", a.shapes_per_budget(), 3,
                               16, /*open=*/false));
  }
  if (a.span() != 0) {
    RETURN_IF_ERROR(CheckRange("span", a.span(), 2, 1000, /*open=*/false));
  }
  RETURN_IF_ERROR(CheckRange("max_extensions", a.max_extensions(), 0, 8,
                             /*open=*/false));
  if (a.shapes_per_extension() != 0) {
    RETURN_IF_ERROR(CheckRange("shapes_per_extension", a.shapes_per_extension(),
                               1, 8, /*open=*/false));
  }
  if (a.prior_exponent() != 0) {
    RETURN_IF_ERROR(CheckRange("prior_exponent", a.prior_exponent(), 0, 1,
                               /*open=*/true));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ModelShape> AspectRatioShape(double n_target,
                                                const v1::ModelSpec& model) {
  if (!(n_target > 0) || !std::isfinite(n_target)) {
    return absl::InvalidArgumentError(
        absl::StrCat("N target ", Num(n_target), ": must be finite and > 0"));
  }
  v1::ModelShape best;
  double best_err = 0;
  for (int64_t d = 16; d <= 8192; d += 16) {
    const int64_t head = d >= 128 && d % 64 == 0 ? 64 : d % 32 == 0 ? 32 : 16;
    const int64_t layers = std::max<int64_t>(1, std::llround(d / 64.0));
    const ParamCounts c = CountParams(
        {model.vocab_size(), model.context(), d, layers, d / head, 4 * d});
    const double err =
        std::abs(std::log(static_cast<double>(c.n_total) / n_target));
    if (d == 16 || err < best_err) {
      best_err = err;
      best.set_d_model(static_cast<uint32_t>(d));
      best.set_n_layers(static_cast<uint32_t>(layers));
      best.set_n_heads(static_cast<uint32_t>(d / head));
      best.set_d_ff(static_cast<uint32_t>(4 * d));
    }
  }
  return best;
}

std::vector<BudgetProfile> FinishedProfiles(
    const std::vector<v1::Trial>& trials) {
  std::map<double, std::vector<const v1::Trial*>> by_flops;
  for (const v1::Trial& t : trials) {
    by_flops[t.spec().flops_budget()].push_back(&t);
  }
  std::vector<BudgetProfile> out;
  for (const auto& [flops, ts] : by_flops) {
    if (std::all_of(ts.begin(), ts.end(),
                    [](const v1::Trial* t) { return Ended(t->state()); })) {
      out.push_back(ProfileOf(flops, ts));
    }
  }
  return out;
}

std::optional<NOptPrediction> PredictNOpt(
    const std::vector<BudgetProfile>& profiles, double flops,
    double prior_exponent) {
  std::vector<double> c, n;
  for (const BudgetProfile& p : profiles) {
    if (!p.bracketed) continue;
    c.push_back(p.flops);
    n.push_back(p.n_vertex);
  }
  if (c.empty()) return std::nullopt;
  NOptPrediction out;
  if (c.size() >= 2) {
    absl::StatusOr<analysis::PowerLaw> law = analysis::FitPowerLaw(c, n);
    if (law.ok() && std::isfinite(law->exponent) && law->exponent > 0) {
      out.n_opt = (*law)(flops);
      out.basis = absl::StrCat("fit of budgets ", Sig(c.front(), 2), "..",
                               Sig(c.back(), 2));
      if (std::isfinite(out.n_opt) && out.n_opt > 0) return out;
    }
  }
  // One vertex (or a fit that says N_opt does not grow): the nearest
  // budget's vertex with the prior exponent.
  out.n_opt = n.back() * std::pow(flops / c.back(), prior_exponent);
  out.basis = absl::StrCat("budget ", Sig(c.back(), 2), "'s vertex x C^",
                           Num(prior_exponent));
  return out;
}

std::vector<v1::TrialSpec> FirstBudgetTrials(
    const v1::SweepConfig& config, std::vector<v1::TrialSpec> expanded) {
  const v1::Grid& g = config.grid();
  if (g.flops_budgets_size() == 0) return {};
  const double first = g.flops_budgets(AscendingBudgets(g).front());
  std::vector<v1::TrialSpec> out;
  for (v1::TrialSpec& t : expanded) {
    if (t.flops_budget() == first) out.push_back(std::move(t));
  }
  return out;
}

absl::StatusOr<AdaptivePlan> PlanAdaptive(const std::string& sweep_id,
                                          const v1::SweepConfig& config,
                                          const std::vector<v1::Trial>& trials,
                                          const ShapeFn& shape_for,
                                          const MakeTrialFn& make_trial) {
  const v1::Grid& g = config.grid();
  const AdaptiveSettings s = ResolveAdaptive(g.adaptive());
  const std::map<int, std::vector<const v1::Trial*>> by_budget =
      ByBudget(g, trials);
  AdaptivePlan plan;
  std::vector<BudgetProfile> finished;
  const std::vector<int> order = AscendingBudgets(g);
  for (size_t k = 0; k < order.size(); ++k) {
    const int b = order[k];
    const double flops = g.flops_budgets(b);
    const auto it = by_budget.find(b);
    // A new budget: the config's shapes for the first, else placed around
    // the predicted N_opt.
    if (it == by_budget.end()) {
      plan.kind = AdaptivePlan::kAdd;
      if (k == 0) {
        for (int i = 0; i < g.model_shapes_size(); ++i) {
          ASSIGN_OR_RETURN(v1::TrialSpec t, make_trial(b, g.model_shapes(i)));
          // As ExpandSweep names the cell.
          t.set_trial_id(MakeId("tr", absl::StrCat(sweep_id, "/", b, "/", i)));
          plan.trials.push_back(std::move(t));
        }
        return plan;
      }
      double centre = 0;
      std::string why;
      if (std::optional<NOptPrediction> p =
              PredictNOpt(finished, flops, s.prior_exponent)) {
        centre = p->n_opt;
        why = absl::StrCat("centre on N_opt=", Count(centre), " (", p->basis,
                           ")");
      } else {
        // No budget bracketed: follow the last one's best N with the prior.
        const BudgetProfile* last = nullptr;
        for (const BudgetProfile& f : finished) {
          if (f.n_points > 0) last = &f;
        }
        if (last == nullptr) {
          return absl::FailedPreconditionError(absl::StrCat(
              "grid.flops_budgets[", b, "] = ", Num(flops),
              ": no smaller budget has a succeeded trial to place it from"));
        }
        centre =
            last->n_argmin * std::pow(flops / last->flops, s.prior_exponent);
        why = absl::StrCat("centre on N=", Count(centre), " (budget ",
                           Sig(last->flops, 2), "'s best N x C^",
                           Num(s.prior_exponent), "; no budget bracketed)");
      }
      const int n = s.shapes_per_budget;
      std::vector<v1::ModelShape> placed;
      absl::Status refused;
      for (int i = 0; i < n; ++i) {
        const double target =
            centre * std::pow(s.span, static_cast<double>(i) / (n - 1) - 0.5);
        absl::StatusOr<v1::ModelShape> made = shape_for(target);
        if (!made.ok()) {  // outside the shape rule's widths: the others
          refused = made.status();
          continue;
        }
        const v1::ModelShape& shape = *made;
        if (std::any_of(
                placed.begin(), placed.end(),
                [&](const v1::ModelShape& p) { return SameShape(p, shape); })) {
          continue;
        }
        placed.push_back(shape);
        ASSIGN_OR_RETURN(v1::TrialSpec t, make_trial(b, shape));
        t.set_trial_id(MakeId("tr", absl::StrCat(sweep_id, "/", b, "/c/", i)));
        t.set_reason(why);
        t.set_extension(0);
        plan.trials.push_back(std::move(t));
      }
      if (plan.trials.empty()) return refused;
      return plan;
    }
    const std::vector<const v1::Trial*>& ts = it->second;
    if (!std::all_of(ts.begin(), ts.end(),
                     [](const v1::Trial* t) { return Ended(t->state()); })) {
      plan.kind = AdaptivePlan::kWait;
      return plan;
    }
    const BudgetProfile p = ProfileOf(flops, ts);
    finished.push_back(p);
    if (p.bracketed) continue;
    const std::string budget_text = absl::StrCat(
        "budget ", Sig(flops, 3), " (grid.flops_budgets[", b, "])");
    if (p.n_points < 2 || p.n_min == p.n_max) {
      plan.warnings.push_back(absl::StrCat(
          budget_text, ": ", p.n_points,
          " succeeded trial(s) of distinct N: cannot tell where its minimum "
          "lies; not extended"));
      continue;
    }
    // Which edge: where the lowest loss is, else past which the vertex is.
    const bool below =
        p.n_argmin == p.n_min ||
        (p.n_argmin != p.n_max && p.has_vertex && p.n_vertex < p.n_min);
    const int sign = below ? -1 : 1;
    int rounds = 0;
    for (const v1::Trial* t : ts) {
      if (t->spec().extension() * sign > 0) {
        rounds = std::max(rounds, t->spec().extension() * sign);
      }
    }
    const std::string edge = below ? "below" : "above";
    if (rounds < s.max_extensions) {
      const double step = LogStep(ts, s);
      const double from = below ? p.n_min : p.n_max;
      const std::string why = absl::StrCat("extend ", edge, " edge minimum");
      for (int j = 1; j <= s.shapes_per_extension; ++j) {
        const double target = from * std::pow(step, sign * j);
        absl::StatusOr<v1::ModelShape> made = shape_for(target);
        if (!made.ok()) continue;  // past the shape rule's widths
        const v1::ModelShape& shape = *made;
        const bool seen =
            std::any_of(ts.begin(), ts.end(),
                        [&](const v1::Trial* t) {
                          return SameShape(t->spec().shape(), shape);
                        }) ||
            std::any_of(plan.trials.begin(), plan.trials.end(),
                        [&](const v1::TrialSpec& t) {
                          return SameShape(t.shape(), shape);
                        });
        if (seen) continue;
        ASSIGN_OR_RETURN(v1::TrialSpec t, make_trial(b, shape));
        t.set_trial_id(MakeId("tr", absl::StrCat(sweep_id, "/", b, "/x",
                                                 sign * (rounds + 1), "/", j)));
        t.set_reason(why);
        t.set_extension(sign * (rounds + 1));
        plan.trials.push_back(std::move(t));
      }
      if (!plan.trials.empty()) {
        plan.kind = AdaptivePlan::kAdd;
        return plan;
      }
      plan.warnings.push_back(absl::StrCat(
          budget_text, ": minimum at the ", below ? "lower" : "upper",
          " edge N=", Count(below ? p.n_min : p.n_max),
          " and the shape rule has no shape further ", edge));
      continue;
    }
    plan.warnings.push_back(absl::StrCat(
        budget_text, ": minimum still at the ", below ? "lower" : "upper",
        " edge N=", Count(below ? p.n_min : p.n_max), " after ", rounds,
        " extension(s) (grid.adaptive.max_extensions)"));
  }
  plan.kind = AdaptivePlan::kDone;
  return plan;
}

std::vector<std::string> FixedGridWarnings(
    const v1::SweepConfig& config, const std::vector<v1::Trial>& trials) {
  std::vector<std::string> out;
  const v1::Grid& g = config.grid();
  if (g.has_adaptive()) return out;
  const std::vector<BudgetProfile> finished = FinishedProfiles(trials);
  const std::map<int, std::vector<const v1::Trial*>> by_budget =
      ByBudget(g, trials);
  for (int b : AscendingBudgets(g)) {
    const double flops = g.flops_budgets(b);
    if (std::any_of(
            finished.begin(), finished.end(),
            [flops](const BudgetProfile& p) { return p.flops == flops; })) {
      continue;
    }
    std::optional<NOptPrediction> p = PredictNOpt(finished, flops, 0.5);
    const auto it = by_budget.find(b);
    if (!p.has_value() || it == by_budget.end()) continue;
    double lo = 0, hi = 0;
    for (size_t i = 0; i < it->second.size(); ++i) {
      const auto n = static_cast<double>(it->second[i]->spec().n_total());
      if (i == 0 || n < lo) lo = n;
      if (i == 0 || n > hi) hi = n;
    }
    if (p->n_opt >= lo && p->n_opt <= hi) continue;
    out.push_back(absl::StrCat(
        "budget ", Sig(flops, 3), " (grid.flops_budgets[", b,
        "]): predicted N_opt=", Count(p->n_opt), " (", p->basis,
        ") lies outside its shapes' N range ", Count(lo), "..", Count(hi),
        ": the grid cannot bracket it (an adaptive grid would: "
        "grid.adaptive)"));
  }
  return out;
}

}  // namespace isoflop::coordinator
