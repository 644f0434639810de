#include "analysis/backtest.h"

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace isoflop::analysis {
namespace {

double LawLoss(const Approach3Fit& law, double n, double d) {
  return law.e + law.a / std::pow(n, law.alpha) + law.b / std::pow(d, law.beta);
}

nlohmann::json Number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace

absl::StatusOr<Backtest> BacktestBudget(const std::vector<Point>& points,
                                        const Grouping& grouping, int holdout,
                                        const Approach3Options& options) {
  const int groups = static_cast<int>(grouping.groups.size());
  if (holdout < 1 || holdout >= groups) {
    return absl::InvalidArgumentError(
        absl::StrCat("holdout = ", holdout, ": must be in 1 .. ", groups - 1,
                     " (a budget with a smaller one to fit on)"));
  }
  const BudgetGroup& held = grouping.groups[static_cast<size_t>(holdout)];
  std::vector<Observation> train;
  for (int g = 0; g < holdout; ++g) {
    for (int i : grouping.groups[static_cast<size_t>(g)].indices) {
      const Point& p = points[static_cast<size_t>(i)];
      train.push_back({p.n, p.d, p.loss});
    }
  }
  absl::StatusOr<Approach3Fit> law = FitApproach3(train, options);
  if (!law.ok()) {
    return absl::Status(law.status().code(),
                        absl::StrCat("backtest of budget ", held.flops, ": ",
                                     law.status().message()));
  }
  Backtest out;
  out.holdout_flops = held.flops;
  out.train_points = static_cast<int>(train.size());
  out.train_max_flops = grouping.groups[static_cast<size_t>(holdout - 1)].flops;
  out.law = *std::move(law);
  out.points = static_cast<int>(held.indices.size());
  double best = std::numeric_limits<double>::infinity();
  double sum_abs = 0;
  for (int i : held.indices) {
    const Point& p = points[static_cast<size_t>(i)];
    const double predicted = LawLoss(out.law, p.n, p.d);
    sum_abs += std::abs((predicted - p.loss) / p.loss);
    if (p.loss < best) {
      best = p.loss;
      out.observed_loss = p.loss;
      out.predicted_loss = predicted;
    }
  }
  out.relative_error =
      (out.predicted_loss - out.observed_loss) / out.observed_loss;
  out.mean_abs_relative_error = sum_abs / out.points;
  if (!std::isfinite(out.relative_error) ||
      !std::isfinite(out.mean_abs_relative_error)) {
    // A law the smaller budgets do not identify (e.g. A = inf) predicts
    // nothing: say so instead of printing "nan%".
    return absl::FailedPreconditionError(absl::StrCat(
        "backtest of budget ", held.flops, ": the law fitted on the ",
        out.train_points, " points of the smaller budgets (alpha ",
        out.law.alpha, ", A ", out.law.a,
        ") gives a non-finite prediction error: they do not identify a law"));
  }
  return out;
}

absl::StatusOr<Backtest> LeaveLargestOut(const std::vector<Point>& points,
                                         const Grouping& grouping,
                                         const Approach3Options& options) {
  if (grouping.groups.size() < 2) {
    return absl::FailedPreconditionError(
        absl::StrCat(grouping.groups.size(),
                     " budget(s): a backtest needs >= 2 (one to predict)"));
  }
  return BacktestBudget(points, grouping,
                        static_cast<int>(grouping.groups.size()) - 1, options);
}

std::vector<Backtest> Rollout(const std::vector<Point>& points,
                              const Grouping& grouping,
                              const Approach3Options& options) {
  std::vector<Backtest> out;
  for (int k = 1; k < static_cast<int>(grouping.groups.size()); ++k) {
    absl::StatusOr<Backtest> b = BacktestBudget(points, grouping, k, options);
    if (b.ok()) out.push_back(*std::move(b));
  }
  return out;
}

nlohmann::json BacktestToJson(const Backtest& b) {
  return {{"holdout_flops", b.holdout_flops},
          {"predicted_loss", Number(b.predicted_loss)},
          {"observed_loss", b.observed_loss},
          {"relative_error", Number(b.relative_error)},
          {"points", b.points},
          {"mean_abs_relative_error", Number(b.mean_abs_relative_error)},
          {"train_points", b.train_points},
          {"train_max_flops", b.train_max_flops},
          {"law",
           {{"E", Number(b.law.e)},
            {"A", Number(b.law.a)},
            {"B", Number(b.law.b)},
            {"alpha", Number(b.law.alpha)},
            {"beta", Number(b.law.beta)}}}};
}

}  // namespace isoflop::analysis
