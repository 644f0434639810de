#include "analysis/budgets.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace isoflop::analysis {
namespace {

constexpr double kSameBudget = 1e-6;  // relative

// Sorts indices by `key` and chains neighbours within kSameBudget.
Grouping ChainEqual(const std::vector<double>& key) {
  std::vector<int> order(key.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int x, int y) { return key[x] < key[y]; });
  Grouping g;
  double previous = 0;
  for (int i : order) {
    if (g.groups.empty() || key[i] - previous > kSameBudget * previous) {
      g.groups.push_back({});
    }
    g.groups.back().indices.push_back(i);
    previous = key[i];
  }
  for (BudgetGroup& group : g.groups) {
    double sum = 0;
    for (int i : group.indices) sum += key[i];
    group.flops = sum / group.indices.size();
    std::sort(group.indices.begin(), group.indices.end());
  }
  return g;
}

}  // namespace

absl::StatusOr<Grouping> GroupByBudget(const std::vector<Point>& points,
                                       const std::vector<double>& budgets,
                                       double tolerance) {
  for (size_t i = 0; i < budgets.size(); ++i) {
    if (!std::isfinite(budgets[i]) || budgets[i] <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--budgets[", i, "] = ", budgets[i], ": must be finite and > 0"));
    }
  }
  if (!std::isfinite(tolerance) || tolerance < 0 || tolerance >= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--budget-tolerance = ", tolerance,
                     ": must be in [0, 1) (relative distance to a budget)"));
  }
  const bool all_have_budget =
      !points.empty() &&
      std::all_of(points.begin(), points.end(),
                  [](const Point& p) { return p.budget > 0; });
  std::vector<double> key(points.size());
  if (all_have_budget) {
    for (size_t i = 0; i < points.size(); ++i) key[i] = points[i].budget;
    return ChainEqual(key);
  }
  if (budgets.empty()) {
    for (size_t i = 0; i < points.size(); ++i) key[i] = points[i].flops;
    return ChainEqual(key);
  }
  std::vector<double> sorted = budgets;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  Grouping g;
  g.groups.resize(sorted.size());
  for (size_t j = 0; j < sorted.size(); ++j) g.groups[j].flops = sorted[j];
  for (size_t i = 0; i < points.size(); ++i) {
    int best = -1;
    double best_distance = 0;
    for (size_t j = 0; j < sorted.size(); ++j) {
      const double distance = std::abs(points[i].flops - sorted[j]) / sorted[j];
      if (distance <= tolerance && (best < 0 || distance < best_distance)) {
        best = static_cast<int>(j);
        best_distance = distance;
      }
    }
    if (best < 0) {
      ++g.dropped;
    } else {
      g.groups[best].indices.push_back(static_cast<int>(i));
    }
  }
  std::erase_if(g.groups,
                [](const BudgetGroup& group) { return group.indices.empty(); });
  return g;
}

}  // namespace isoflop::analysis
