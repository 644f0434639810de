// Chinchilla Approach 2 (IsoFLOP profiles): per budget, a parabola of loss
// against log N, its vertex as N_opt; then N_opt = k_N C^a and
// D_opt = k_D C^b.
#ifndef ISOFLOP_ANALYSIS_APPROACH2_H_
#define ISOFLOP_ANALYSIS_APPROACH2_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "analysis/budgets.h"
#include "analysis/flops.h"
#include "analysis/points_io.h"
#include "analysis/power_law.h"

namespace isoflop::analysis {

struct IsoFlopProfile {
  double flops = 0;     // the budget C
  double n_opt = 0;     // exp of the parabola's vertex (never the raw argmin)
  double d_opt = 0;     // TokensForCompute(flops_model, n_opt, C)
  double loss_min = 0;  // the parabola at its vertex
  int n_points = 0;
  double c0 = 0, c1 = 0, c2 = 0;  // loss = c0 + c1 log N + c2 (log N)^2
  bool vertex_outside = false;    // vertex beyond the sampled range of N
};

struct Approach2Fit {
  std::vector<IsoFlopProfile> budgets;  // the profiles used, ascending C
  std::vector<std::string> refused;     // "budget 1e+19: 2 points: needs >= 3"
  PowerLaw n_opt, d_opt;                // of C
};

struct Approach2Options {
  // Weight each point by 1 / loss^2 (relative errors) instead of 1.
  bool weighted = false;
  // Converts each vertex's N_opt to D_opt at the budget (analysis/flops.h).
  FlopsModel flops_model = FlopsModel::SixND();
};

// Fits a parabola to each group of `grouping` (weighted least squares in
// Ceres), refuses (and lists in `refused`, naming the budget and the rule) a
// group with < 3 points, < 3 distinct N or a non-convex parabola (c2 <= 0),
// then fits the two power laws over the remaining vertices.
// FAILED_PRECONDITION listing the refusals when fewer than 2 budgets remain.
absl::StatusOr<Approach2Fit> FitApproach2(const std::vector<Point>& points,
                                          const Grouping& grouping,
                                          const Approach2Options& options = {});

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_APPROACH2_H_
