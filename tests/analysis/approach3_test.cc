#include "analysis/approach3.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::analysis {
namespace {

using ::testing::HasSubstr;

// Relative agreement in significant digits.
double Digits(double got, double want) {
  const double rel = std::abs(got - want) / std::abs(want);
  return rel == 0 ? 16 : -std::log10(rel);
}

// Noise-free points from L = E + A/N^alpha + B/D^beta on an IsoFLOP grid:
// 4 budgets x 7 model sizes spread around each budget's optimum.
std::vector<Observation> ChinchillaLikePoints() {
  std::vector<Observation> points;
  for (double c : {1e18, 1e19, 1e20, 1e21}) {
    for (int k = -3; k <= 3; ++k) {
      const double n = std::sqrt(c / 120.0) * std::pow(2.0, k);
      const double d = c / (6.0 * n);
      points.push_back({n, d, 1.69 + 406.4 / std::pow(n, 0.34) +
                                  410.7 / std::pow(d, 0.28)});
    }
  }
  return points;
}

TEST(FitApproach3, RecoversKnownParametersFromNoiselessData) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Approach3Fit> fit = FitApproach3(ChinchillaLikePoints());
  const double seconds = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(fit.ok()) << fit.status();
  std::printf("4500-start fit on %d points: %.2f s; %d starts at best\n",
              fit->n_points, seconds, fit->n_starts_at_best);
  EXPECT_GE(Digits(fit->e, 1.69), 3) << fit->e;
  EXPECT_GE(Digits(fit->alpha, 0.34), 3) << fit->alpha;
  EXPECT_GE(Digits(fit->beta, 0.28), 3) << fit->beta;
  EXPECT_GE(Digits(fit->a, 406.4), 2) << fit->a;
  EXPECT_GE(Digits(fit->b, 410.7), 2) << fit->b;
  EXPECT_EQ(fit->n_starts, 4500);
  EXPECT_GE(fit->n_starts_at_best, 1);
  EXPECT_FALSE(fit->on_grid_edge);
}

TEST(FitApproach3, RefusesTooFewPoints) {
  auto points = ChinchillaLikePoints();
  points.resize(4);
  EXPECT_THAT(FitApproach3(points).status().message(), HasSubstr(">= 5 points"));
}

TEST(FitApproach3, RefusesNonPositiveOrNonFiniteValuesNamingThePoint) {
  auto points = ChinchillaLikePoints();
  points[3].loss = -1;
  absl::Status s = FitApproach3(points).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("points[3].loss"));
  points[3].loss = 2;
  points[5].d = std::nan("");
  EXPECT_THAT(FitApproach3(points).status().message(), HasSubstr("points[5].d"));
}

TEST(ComputeOptimalFor, ChinchillaPublishedLawGives40BAt5_76e23) {
  // Hoffmann et al. 2022 with the unrounded exponents (DESIGN.md §5).
  Approach3Fit fit{.e = 1.69, .a = 406.4, .b = 410.7, .alpha = 0.33917,
                   .beta = 0.28491, .message = ""};
  ComputeOptimum o = ComputeOptimalFor(fit, 5.76e23);
  const double a = fit.beta / (fit.alpha + fit.beta);
  EXPECT_NEAR(a, 0.4565, 5e-5);
  EXPECT_NEAR(o.n_opt / 1e9, 40, 4) << o.n_opt;  // "≈ 40B"
  EXPECT_NEAR(6 * o.n_opt * o.d_opt, 5.76e23, 5.76e23 * 1e-12);
  std::printf("Chinchilla N_opt(5.76e23) = %.4g, D_opt = %.4g, loss %.4f\n",
              o.n_opt, o.d_opt, o.loss);
}

TEST(ComputeOptimalFor, OptimumMinimisesLossAlongTheIsoFlopCurve) {
  // Epoch AI's replication (Besiroglu et al. 2024).
  Approach3Fit fit{.e = 1.8172, .a = 482.01, .b = 2085.43, .alpha = 0.3478,
                   .beta = 0.3658, .message = ""};
  const double c = 1e22;
  ComputeOptimum o = ComputeOptimalFor(fit, c);
  auto loss_at = [&](double n) {
    const double d = c / (6 * n);
    return fit.e + fit.a / std::pow(n, fit.alpha) + fit.b / std::pow(d, fit.beta);
  };
  EXPECT_NEAR(o.loss, loss_at(o.n_opt), 1e-12);
  EXPECT_LT(o.loss, loss_at(o.n_opt * 1.05));
  EXPECT_LT(o.loss, loss_at(o.n_opt / 1.05));
}

}  // namespace
}  // namespace isoflop::analysis
