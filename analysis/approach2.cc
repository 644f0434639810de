#include "analysis/approach2.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace isoflop::analysis {
namespace {

// The profile of one budget, or the reason it is refused.
absl::StatusOr<IsoFlopProfile> FitProfile(const std::vector<Point>& points,
                                          const BudgetGroup& group,
                                          const Approach2Options& options) {
  const std::string name = absl::StrFormat("budget %.6g", group.flops);
  std::vector<double> log_n, loss, weights;
  std::set<double> distinct;
  for (int i : group.indices) {
    log_n.push_back(std::log(points[i].n));
    loss.push_back(points[i].loss);
    weights.push_back(options.weighted ? 1.0 / (points[i].loss * points[i].loss)
                                       : 1.0);
    distinct.insert(points[i].n);
  }
  if (group.indices.size() < 3 || distinct.size() < 3) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, ": ", group.indices.size(), " points with ",
                     distinct.size(), " distinct N: a parabola needs >= 3"));
  }
  const std::vector<double> c = FitPolynomial(log_n, loss, weights, 2);
  if (!(c[2] > 0)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: parabola is not convex (curvature %.3g <= 0): no minimum", name,
        c[2]));
  }
  IsoFlopProfile p;
  p.flops = group.flops;
  p.n_points = static_cast<int>(group.indices.size());
  p.c0 = c[0];
  p.c1 = c[1];
  p.c2 = c[2];
  const double vertex = -c[1] / (2 * c[2]);
  p.n_opt = std::exp(vertex);
  p.d_opt = TokensForCompute(options.flops_model, p.n_opt, group.flops);
  p.loss_min = c[0] + c[1] * vertex + c[2] * vertex * vertex;
  const auto [lo, hi] = std::minmax_element(log_n.begin(), log_n.end());
  p.vertex_outside = vertex < *lo || vertex > *hi;
  return p;
}

}  // namespace

absl::StatusOr<Approach2Fit> FitApproach2(const std::vector<Point>& points,
                                          const Grouping& grouping,
                                          const Approach2Options& options) {
  Approach2Fit fit;
  for (const BudgetGroup& group : grouping.groups) {
    absl::StatusOr<IsoFlopProfile> profile = FitProfile(points, group, options);
    if (profile.ok()) {
      fit.budgets.push_back(*profile);
    } else {
      fit.refused.emplace_back(profile.status().message());
    }
  }
  if (fit.budgets.size() < 2) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Approach 2: ", fit.budgets.size(),
        " usable budgets: the power laws need >= 2",
        fit.refused.empty() ? "" : " (refused: ",
        absl::StrJoin(fit.refused, "; "), fit.refused.empty() ? "" : ")"));
  }
  std::vector<double> c, n, d;
  for (const IsoFlopProfile& p : fit.budgets) {
    c.push_back(p.flops);
    n.push_back(p.n_opt);
    d.push_back(p.d_opt);
  }
  ASSIGN_OR_RETURN(fit.n_opt, FitPowerLaw(c, n));
  ASSIGN_OR_RETURN(fit.d_opt, FitPowerLaw(c, d));
  return fit;
}

}  // namespace isoflop::analysis
