// Reference-answer tests on synthetic laws: exact recovery without noise,
// bootstrap coverage with noise, and Approach 2's vertex against the argmin.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "analysis/approach2.h"
#include "analysis/approach3.h"
#include "analysis/bootstrap.h"
#include "analysis/budgets.h"
#include "analysis/power_law.h"
#include "gtest/gtest.h"

namespace isoflop::analysis {
namespace {

struct Law {
  double e, a, b, alpha, beta;
  double operator()(double n, double d) const {
    return e + a / std::pow(n, alpha) + b / std::pow(d, beta);
  }
};

// 10 budgets, 1e17..1e22 (half decades) x 6 sizes spread 30x around
// sqrt(C / 120): N spans 3e6..3e10 and D 3e8..3e11 (3+ decades each).
std::vector<Point> Grid(const Law& law, double noise, std::mt19937* rng) {
  std::normal_distribution<double> gauss(0, noise);
  std::vector<Point> points;
  for (int k = 0; k < 10; ++k) {
    const double c = 1e17 * std::pow(10, 0.5 * k);
    for (int j = 0; j < 6; ++j) {
      const double n = std::sqrt(c / 120) * std::pow(30, (j - 2.5) / 5);
      const double d = c / (6 * n);
      const double loss = law(n, d) * (noise > 0 ? std::exp(gauss(*rng)) : 1.0);
      points.push_back({.n = n, .d = d, .flops = c, .loss = loss});
    }
  }
  return points;
}

std::vector<Observation> Obs(const std::vector<Point>& points) {
  std::vector<Observation> out;
  for (const Point& p : points) out.push_back({p.n, p.d, p.loss});
  return out;
}

double Rel(double got, double want) { return std::abs(got - want) / want; }

TEST(SyntheticLaw, NoiselessPointsRecoverEveryParameterToATenthOfAPercent) {
  // Two laws in the realistic range, neither the grid's.
  for (const Law& law : {Law{1.69, 406.4, 410.7, 0.34, 0.28},
                         Law{2.3, 180.0, 2500.0, 0.29, 0.41}}) {
    const std::vector<Point> points = Grid(law, 0, nullptr);
    ASSERT_GE(points.size(), 50u);
    absl::StatusOr<Approach3Fit> fit = FitApproach3(Obs(points));
    ASSERT_TRUE(fit.ok()) << fit.status();
    std::printf("relative errors: E %.2g A %.2g B %.2g alpha %.2g beta %.2g\n",
                Rel(fit->e, law.e), Rel(fit->a, law.a), Rel(fit->b, law.b),
                Rel(fit->alpha, law.alpha), Rel(fit->beta, law.beta));
    EXPECT_LT(Rel(fit->e, law.e), 1e-3);
    EXPECT_LT(Rel(fit->a, law.a), 1e-3);
    EXPECT_LT(Rel(fit->b, law.b), 1e-3);
    EXPECT_LT(Rel(fit->alpha, law.alpha), 1e-3);
    EXPECT_LT(Rel(fit->beta, law.beta), 1e-3);
  }
}

TEST(SyntheticLaw, BootstrapIntervalsCoverTheTruthWithOnePercentNoise) {
  // 50 seeded repetitions of 60 points with 1 % multiplicative noise; the
  // full fit starts from the true law's region (one start), the bootstrap
  // uses 100 resamples (the CLI's default is 1000).
  const Law law = {1.69, 406.4, 410.7, 0.34, 0.28};
  const char* names[] = {"E", "A", "B", "alpha", "beta"};
  const double truth[] = {law.e, law.a, law.b, law.alpha, law.beta};
  int covered[5] = {0, 0, 0, 0, 0}, all_covered = 0;
  constexpr int kRepetitions = 50;
  for (int rep = 0; rep < kRepetitions; ++rep) {
    std::mt19937 rng(1000 + rep);
    const std::vector<Observation> points = Obs(Grid(law, 0.01, &rng));
    Approach3Options options;
    options.starts = {{std::log(300.0), std::log(300.0), 0.5, 0.3, 0.3}};
    absl::StatusOr<Approach3Fit> fit = FitApproach3(points, options);
    ASSERT_TRUE(fit.ok()) << fit.status();
    absl::StatusOr<Approach3Bootstrap> boot = BootstrapApproach3(
        points, *fit, {.resamples = 100, .seed = static_cast<uint64_t>(rep)});
    ASSERT_TRUE(boot.ok()) << boot.status();
    const auto ci = Approach3Intervals(boot->samples);
    bool all = true;
    for (int k = 0; k < 5; ++k) {
      const Interval& i = ci.at(names[k]);
      const bool in = i.low <= truth[k] && truth[k] <= i.high;
      covered[k] += in;
      all = all && in;
    }
    all_covered += all;
  }
  std::printf("coverage of the truth by 95%% intervals, of %d:", kRepetitions);
  for (int k = 0; k < 5; ++k) std::printf(" %s %d", names[k], covered[k]);
  std::printf("; all five at once %d\n", all_covered);
  for (int k = 0; k < 5; ++k) {
    EXPECT_GE(covered[k], 45) << names[k];  // >= 90 %
  }
}

// Approach 2 data: a fixed ladder of model sizes (factor 4), and for each
// budget the 7 rungs nearest the true optimum, as a real sweep would run.
std::vector<Point> LadderPoints(const Law& law,
                                const std::vector<double>& budgets) {
  std::vector<Point> points;
  const double s = law.alpha + law.beta;
  const double g = std::pow(law.alpha * law.a / (law.beta * law.b), 1 / s);
  for (double c : budgets) {
    const double n_opt = g * std::pow(c / 6, law.beta / s);
    const int centre =
        static_cast<int>(std::lround(std::log(n_opt / 1e6) / std::log(4.0)));
    for (int k = centre - 3; k <= centre + 3; ++k) {
      const double n = 1e6 * std::pow(4.0, k);
      points.push_back(
          {.n = n, .d = c / (6 * n), .flops = c, .loss = law(n, c / (6 * n))});
    }
  }
  return points;
}

TEST(Approach2, VertexRecoversTheExponentWhereTheArgminDoesNot) {
  const Law law = {1.69, 406.4, 410.7, 0.34, 0.28};
  const double a_true = law.beta / (law.alpha + law.beta);  // 0.4516
  const std::vector<double> budgets = {1e19, 3e19, 1e20, 3e20, 1e21};
  const std::vector<Point> points = LadderPoints(law, budgets);
  absl::StatusOr<Grouping> groups = GroupByBudget(points, {}, 0.1);
  ASSERT_TRUE(groups.ok());
  ASSERT_EQ(groups->groups.size(), budgets.size());
  absl::StatusOr<Approach2Fit> fit = FitApproach2(points, *groups);
  ASSERT_TRUE(fit.ok()) << fit.status();
  // The argmin of each profile instead of its vertex.
  std::vector<double> c, n_argmin;
  for (const BudgetGroup& g : groups->groups) {
    const Point* best = &points[g.indices[0]];
    for (int i : g.indices) {
      if (points[i].loss < best->loss) best = &points[i];
    }
    c.push_back(g.flops);
    n_argmin.push_back(best->n);
  }
  absl::StatusOr<PowerLaw> argmin = FitPowerLaw(c, n_argmin);
  ASSERT_TRUE(argmin.ok());
  std::printf(
      "a: true %.4f, vertex %.4f, argmin %.4f; b: true %.4f, vertex %.4f\n",
      a_true, fit->n_opt.exponent, argmin->exponent, 1 - a_true,
      fit->d_opt.exponent);
  EXPECT_NEAR(fit->n_opt.exponent, a_true, 0.01);
  EXPECT_NEAR(fit->d_opt.exponent, 1 - a_true, 0.01);
  EXPECT_GT(std::abs(argmin->exponent - a_true), 0.01);
}

TEST(Approach2, RefusesBudgetsWithTooFewPointsOrANonConvexProfile) {
  const Law law = {1.69, 406.4, 410.7, 0.34, 0.28};
  std::vector<Point> points = LadderPoints(law, {1e19, 1e20, 1e21});
  // Budget 1e22: two points only. Budget 1e23: loss rising then falling.
  points.push_back({.n = 1e9, .d = 1e22 / 6e9, .flops = 1e22, .loss = 2.0});
  points.push_back({.n = 4e9, .d = 1e22 / 24e9, .flops = 1e22, .loss = 2.1});
  for (double n : {1e9, 4e9, 1.6e10}) {
    points.push_back({.n = n,
                      .d = 1e23 / (6 * n),
                      .flops = 1e23,
                      .loss = n == 4e9 ? 2.5 : 2.0});
  }
  absl::StatusOr<Grouping> groups = GroupByBudget(points, {}, 0.1);
  ASSERT_TRUE(groups.ok());
  absl::StatusOr<Approach2Fit> fit = FitApproach2(points, *groups);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->budgets.size(), 3u);
  ASSERT_EQ(fit->refused.size(), 2u);
  EXPECT_EQ(fit->refused[0],
            "budget 1e+22: 2 points with 2 distinct N: a parabola needs >= 3");
  EXPECT_NE(fit->refused[1].find("budget 1e+23: parabola is not convex"),
            std::string::npos);
}

TEST(GroupByBudget, SnapsToListedBudgetsWithinToleranceAndCountsTheRest) {
  std::vector<Point> points;
  for (double c : {0.95e19, 1.08e19, 1.5e19, 2.9e19, 6e19}) {
    points.push_back({.n = 1e8, .d = c / 6e8, .flops = c, .loss = 3});
  }
  absl::StatusOr<Grouping> g = GroupByBudget(points, {1e19, 3e19}, 0.1);
  ASSERT_TRUE(g.ok());
  ASSERT_EQ(g->groups.size(), 2u);
  EXPECT_EQ(g->groups[0].indices, (std::vector<int>{0, 1}));
  EXPECT_EQ(g->groups[1].indices, (std::vector<int>{3}));
  EXPECT_EQ(g->dropped, 2);
  EXPECT_EQ(GroupByBudget(points, {1e19, -1}, 0.1).status().message(),
            "--budgets[1] = -1: must be finite and > 0");
}

TEST(SyntheticLaw, ACancelledFitOrBootstrapStopsWithCancelled) {
  const std::vector<Point> points =
      Grid(Law{1.69, 406.4, 410.7, 0.34, 0.28}, 0, nullptr);
  std::atomic<bool> cancel{true};
  Approach3Options options;
  options.cancel = &cancel;
  EXPECT_TRUE(absl::IsCancelled(FitApproach3(Obs(points), options).status()));
  absl::StatusOr<Approach3Fit> fit = FitApproach3(Obs(points));
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_TRUE(absl::IsCancelled(
      BootstrapApproach3(Obs(points), *fit,
                         {.resamples = 50, .seed = 1, .cancel = &cancel})
          .status()));
  cancel = false;
  EXPECT_TRUE(FitApproach3(Obs(points), options).ok());
}

TEST(Percentile95, LeavesOutNonFiniteValues) {
  std::vector<double> values = {NAN, INFINITY};
  for (int i = 0; i <= 100; ++i) values.push_back(i);
  const Interval ci = Percentile95(values);
  EXPECT_DOUBLE_EQ(ci.low, 2.5);
  EXPECT_DOUBLE_EQ(ci.high, 97.5);
  EXPECT_TRUE(std::isnan(Percentile95({NAN}).low));
}

}  // namespace
}  // namespace isoflop::analysis
