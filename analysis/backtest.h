// Backtests of Approach 3 (docs/fitting.md, "Backtests"): fit the law on the
// smaller budgets only and predict the losses observed at a larger one, as
// the law will be used (OLMo-core's rollout: fit on budgets <= C_k, predict
// C_{k+1}).
#ifndef ISOFLOP_ANALYSIS_BACKTEST_H_
#define ISOFLOP_ANALYSIS_BACKTEST_H_

#include <vector>

#include "absl/status/statusor.h"
#include "analysis/approach3.h"
#include "analysis/budgets.h"
#include "analysis/points_io.h"
#include "nlohmann/json.hpp"

namespace isoflop::analysis {

struct Backtest {
  double holdout_flops = 0;   // the budget predicted
  double predicted_loss = 0;  // the law's loss at the holdout's best point
  double observed_loss = 0;   // that point's observed (lowest) loss
  double relative_error = 0;  // (predicted - observed) / observed
  int points = 0;             // in the holdout budget
  double mean_abs_relative_error = 0;  // over the holdout's points
  int train_points = 0;                // the refit's points
  double train_max_flops = 0;          // the largest budget it saw
  Approach3Fit law;                    // the refit
};

// Refits Approach 3 (with `options`: the same starts and delta as the full
// fit) on the points of groups[0 .. holdout - 1] of `grouping` and predicts
// the points of groups[holdout]. INVALID_ARGUMENT when `holdout` is not in
// 1 .. groups - 1; the refit's error (fewer than 5 points: "backtest of
// budget 1e+20: ...") otherwise.
absl::StatusOr<Backtest> BacktestBudget(const std::vector<Point>& points,
                                        const Grouping& grouping, int holdout,
                                        const Approach3Options& options);

// The largest budget left out: BacktestBudget(groups - 1).
// FAILED_PRECONDITION with fewer than 2 budgets.
absl::StatusOr<Backtest> LeaveLargestOut(const std::vector<Point>& points,
                                         const Grouping& grouping,
                                         const Approach3Options& options);

// BacktestBudget for holdout = 1 .. groups - 1, skipping those whose refit
// fails (too few points below them); ascending holdout budget.
std::vector<Backtest> Rollout(const std::vector<Point>& points,
                              const Grouping& grouping,
                              const Approach3Options& options);

// {"holdout_flops", "predicted_loss", "observed_loss", "relative_error",
// "points", "mean_abs_relative_error", "train_points", "train_max_flops",
// "law": {"E", "A", "B", "alpha", "beta"}}, full precision.
nlohmann::json BacktestToJson(const Backtest& backtest);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_BACKTEST_H_
