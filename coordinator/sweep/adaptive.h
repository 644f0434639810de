// Adaptive IsoFLOP grids (docs/architecture.md §2.1): a pure planner
// that, from a sweep's config and its trials so far, decides which trials
// come next. Budgets run from small to large. The first budget gets the
// config's shapes; a budget whose minimum lies at an edge of its sampled N
// gets shapes beyond that edge (at most max_extensions rounds per edge);
// once a budget is bracketed, the next one's shapes are placed log-spaced
// around the N_opt(C) predicted from the vertices of the finished budgets
// (Approach 2: a parabola in log N per budget, a power law across budgets;
// with one vertex, prior_exponent from it).
//
// Deterministic and idempotent: the decision depends only on the config and
// the stored trials, and trial ids derive from the sweep id and the cell
// (budget, extension round, N target), so re-planning after a restart gives
// the same trials and never a duplicate.
#ifndef ISOFLOP_COORDINATOR_SWEEP_ADAPTIVE_H_
#define ISOFLOP_COORDINATOR_SWEEP_ADAPTIVE_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "isoflop/v1/config.pb.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

// The AdaptiveGrid with every default applied (docs in config.proto).
struct AdaptiveSettings {
  int shapes_per_budget = 5;
  double span = 8;
  int max_extensions = 2;
  int shapes_per_extension = 2;
  double prior_exponent = 0.5;
};
AdaptiveSettings ResolveAdaptive(const v1::AdaptiveGrid& a);

// INVALID_ARGUMENT naming the grid.adaptive field, value and rule. Pure.
absl::Status ValidateAdaptiveGrid(const v1::AdaptiveGrid& a);

// Maps an N target (total parameters, common/flops.h) to a model shape.
using ShapeFn = std::function<absl::StatusOr<v1::ModelShape>(double n_target)>;

// A simple shape family (the planner's tests use it): the shape whose
// total N is nearest (in log) to `n_target` among shapes of
// d_model a multiple of 16 from 16 (head size 64 from d_model 128 when it
// divides, else 32, else 16) and n_layers = max(1, round(d_model / 64)), d_ff 4
// d_model. The coordinator uses the config's shape rule instead
// (ShapeForParams, coordinator/sweep/recipe.h).
absl::StatusOr<v1::ModelShape> AspectRatioShape(double n_target,
                                                const v1::ModelSpec& model);

// One budget's sampled profile.
struct BudgetProfile {
  double flops = 0;  // the budget C
  int n_points = 0;  // succeeded trials with a finite loss
  double n_min = 0, n_max = 0;
  double n_argmin = 0;      // N of the lowest loss
  bool has_vertex = false;  // convex parabola in log N over >= 3 distinct N
  double n_vertex = 0;
  // The lowest loss is at neither edge and the vertex lies inside
  // [n_min, n_max].
  bool bracketed = false;
};

// Profiles of the budgets whose trials have all ended, ascending C (N =
// n_total, loss = val_loss of SUCCEEDED trials).
std::vector<BudgetProfile> FinishedProfiles(
    const std::vector<v1::Trial>& trials);

// N_opt predicted at `flops` from the bracketed profiles: a power law over
// their vertices (2 or more), or vertex x (C / C_vertex)^prior_exponent
// with one; nullopt with none. `basis` says which ("fit of budgets
// 1e11..3e11").
struct NOptPrediction {
  double n_opt = 0;
  std::string basis;
};
std::optional<NOptPrediction> PredictNOpt(
    const std::vector<BudgetProfile>& profiles, double flops,
    double prior_exponent);

struct AdaptivePlan {
  enum Kind {
    kWait,  // trials of the current budget have not all ended
    kAdd,   // commit `trials` (PENDING), then wait for them
    kDone,  // every budget has run: the sweep may end
  };
  Kind kind = kWait;
  std::vector<v1::TrialSpec> trials;
  // Budgets that ended unbracketed after their extensions (design
  // warnings, Sweep.design_warnings).
  std::vector<std::string> warnings;
};

// The next step of an adaptive sweep (config.grid().has_adaptive(), the
// resolved config as stored) given all its trials so far. New trials are
// made by `make_trial(budget_index, shape)` (which sets counts, steps and
// tokens, as ExpandSweep does) and get their id from the sweep id and the
// cell, their reason and extension set here. A shape already sampled at the
// budget is not added twice; an N target `shape_for` refuses (outside the
// shape rule's widths) is skipped; an extension round that adds no new
// shape ends that edge. Errors of `make_trial`, and `shape_for`'s when it
// refuses every target of a placement, are returned. Pure.
using MakeTrialFn = std::function<absl::StatusOr<v1::TrialSpec>(
    int budget_index, const v1::ModelShape& shape)>;
absl::StatusOr<AdaptivePlan> PlanAdaptive(const std::string& sweep_id,
                                          const v1::SweepConfig& config,
                                          const std::vector<v1::Trial>& trials,
                                          const ShapeFn& shape_for,
                                          const MakeTrialFn& make_trial);

// The trials of the first budget of an adaptive sweep: `expanded` (the
// budget-major expansion of the whole grid) cut to grid.flops_budgets[0]'s
// cells.
std::vector<v1::TrialSpec> FirstBudgetTrials(
    const v1::SweepConfig& config, std::vector<v1::TrialSpec> expanded);

// Fixed grids: for each budget not yet finished whose shapes' N range does
// not contain the N_opt the finished, bracketed budgets predict, a warning
// naming the budget, the prediction and the range. Empty for an adaptive
// grid or when nothing can be predicted yet. Pure.
std::vector<std::string> FixedGridWarnings(
    const v1::SweepConfig& config, const std::vector<v1::Trial>& trials);

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SWEEP_ADAPTIVE_H_
