// Grouping points into IsoFLOP profiles (one compute budget each) for
// Approach 2.
#ifndef ISOFLOP_ANALYSIS_BUDGETS_H_
#define ISOFLOP_ANALYSIS_BUDGETS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "analysis/points_io.h"

namespace isoflop::analysis {

struct BudgetGroup {
  double flops = 0;          // the budget C of the profile
  std::vector<int> indices;  // into the points given, ascending
};

struct Grouping {
  std::vector<BudgetGroup> groups;  // ascending flops
  int dropped = 0;                  // points that fit no listed budget
};

// Groups `points` by (first rule that applies):
//  1. their `budget` (points with equal budgets within 1e-6 relative), when
//     every point has one (budget > 0);
//  2. the nearest of `budgets` within `tolerance` (relative: |C - B| <=
//     tolerance * B), dropping (and counting) points that fit none;
//  3. equal `flops` within 1e-6 relative (sorted, chained neighbours).
// INVALID_ARGUMENT naming the flag and value for a listed budget that is not
// finite and > 0 or a tolerance that is not finite and in [0, 1).
absl::StatusOr<Grouping> GroupByBudget(const std::vector<Point>& points,
                                       const std::vector<double>& budgets,
                                       double tolerance);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_BUDGETS_H_
