#include "analysis/constrained.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::analysis {
namespace {

using ::testing::HasSubstr;

// The published law (github.com/huggingface/datablations README.md,
// "Parametric Fit"): a, b, e = 6.255414, 7.3049974, 0.6254804, alpha = beta
// = 0.3526596.
ConstrainedLaw Published() {
  ConstrainedLaw law;
  law.a = std::exp(6.255414);
  law.b = std::exp(7.3049974);
  law.e = std::exp(0.6254804);
  law.alpha = 0.3526596;
  law.beta = 0.3526596;
  return law;
}

// A grid as a data-constrained sweep on one corpus runs it: 7 model sizes
// around N_opt of its unique tokens (about 5M parameters for 1e8 tokens
// under this law), each trained for 0.1 to 40 epochs of those tokens (the
// runs below one epoch see D unique tokens); multiplicative noise of
// relative size `noise`, seeded.
constexpr double kEpochs[] = {0.1, 0.2, 0.35, 0.5, 0.75, 1,  1.5, 2, 3,
                              4,   6,   8,    12,  16,   24, 32,  40};

std::vector<ConstrainedObservation> Grid(const ConstrainedLaw& law,
                                         double noise, uint64_t seed) {
  constexpr double kUnique = 1e8;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, noise);
  std::vector<ConstrainedObservation> points;
  for (double n : {1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7, 6.4e7}) {
    for (double epochs : kEpochs) {
      ConstrainedObservation p{n, epochs * kUnique, kUnique, 0};
      p.loss = ConstrainedLoss(law, p) * (1 + normal(rng));
      points.push_back(p);
    }
  }
  return points;
}

ConstrainedOptions FastOptions() {
  ConstrainedOptions o;
  o.law_starts = *StartsFromSpec("random:24:3");
  o.threads = 2;
  return o;
}

TEST(ConstrainedLoss, IsChinchillasWithoutRepetitionOrExcessParameters) {
  const ConstrainedLaw law = Published();
  // 1e6 parameters < N_opt(1e8 tokens) ~ 5e6: no excess parameters.
  const ConstrainedObservation p{1e6, 1e8, 1e8, 0};
  const double chinchilla = law.e + law.a / std::pow(p.n, law.alpha) +
                            law.b / std::pow(p.d, law.beta);
  EXPECT_NEAR(ConstrainedLoss(law, p), chinchilla, 1e-12 * chinchilla);
}

TEST(ConstrainedLoss, MatchesThePublishedReferenceValues) {
  // datablations README.md: scaling_law(6.34e9, 242e9, 25e9) =
  // 2.2256440889984477 and scaling_law(8.67e9, 178e9, 25e9) =
  // 2.2269634075087867 (the models of the paper's Figure 1, right).
  const ConstrainedLaw law = Published();
  EXPECT_NEAR(ConstrainedLoss(law, {6.34e9, 242e9, 25e9, 0}),
              2.2256440889984477, 1e-9);
  EXPECT_NEAR(ConstrainedLoss(law, {8.67e9, 178e9, 25e9, 0}),
              2.2269634075087867, 1e-9);
}

TEST(FitConstrained, RecoversBothConstantsFromExactPoints) {
  const absl::StatusOr<ConstrainedFit> fit =
      FitConstrained(Grid(Published(), 0.0, 1), FastOptions());
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_TRUE(fit->rd_star_fitted);
  EXPECT_TRUE(fit->rn_star_fitted);
  EXPECT_NEAR(fit->law.rd_star, kPublishedRDStar, 1e-3 * kPublishedRDStar);
  EXPECT_NEAR(fit->law.rn_star, kPublishedRNStar, 1e-3 * kPublishedRNStar);
  EXPECT_EQ(fit->repeated_points, 7 * 11);
  EXPECT_EQ(fit->over_4_epochs, 7 * 7);
  EXPECT_DOUBLE_EQ(fit->max_epochs, 40);
}

// With 1 % noise one grid of 119 points pins R_D* only to about +-20 % (its
// interquartile range over 30 seeds was 13.2 .. 18.8; docs/fitting.md), so
// the recovery is checked on the median of 9 seeded grids.
TEST(FitConstrained, RecoversRDStarWithinTenPercentFromNoisyPoints) {
  std::vector<double> rd;
  for (uint64_t seed = 1; seed <= 9; ++seed) {
    const absl::StatusOr<ConstrainedFit> fit =
        FitConstrained(Grid(Published(), 0.01, seed), FastOptions());
    ASSERT_TRUE(fit.ok()) << fit.status();
    rd.push_back(fit->law.rd_star);
  }
  std::sort(rd.begin(), rd.end());
  EXPECT_NEAR(rd[4], kPublishedRDStar, 0.1 * kPublishedRDStar)
      << ::testing::PrintToString(rd);
}

TEST(FitConstrained, UsesThePublishedConstantsExactlyWhenFixed) {
  ConstrainedLaw truth = Published();
  truth.rd_star = 4;  // a fitted R_D* would move towards 4
  truth.rn_star = 2;
  ConstrainedOptions o = FastOptions();
  o.rd_star = kPublishedRDStar;
  o.rn_star = kPublishedRNStar;
  const absl::StatusOr<ConstrainedFit> fit =
      FitConstrained(Grid(truth, 0.0, 1), o);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_FALSE(fit->rd_star_fitted);
  EXPECT_FALSE(fit->rn_star_fitted);
  EXPECT_EQ(fit->law.rd_star, 15.387756);
  EXPECT_EQ(fit->law.rn_star, 5.309743);
}

TEST(FitConstrained, RefusesPointsThatRepeatNoDataAsChinchillasForm) {
  std::vector<ConstrainedObservation> points;
  for (const ConstrainedObservation& p : Grid(Published(), 0.0, 1)) {
    if (p.Epochs() <= 1) points.push_back(p);
  }
  for (double n : {2e6, 5e6, 2e7}) {
    points.push_back({n, 1e8, 0, ConstrainedLoss(Published(), {n, 1e8, 0, 0})});
  }
  const absl::StatusOr<ConstrainedFit> fit =
      FitConstrained(points, FastOptions());
  EXPECT_EQ(fit.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(fit.status().message(),
              HasSubstr("reduces to Chinchilla's in D and R_D* is not "
                        "identified"));
}

TEST(FitConstrained, RefusesFewerPointsThanFreeParametersPlusOne) {
  std::vector<ConstrainedObservation> points = Grid(Published(), 0.0, 1);
  points.resize(7);  // 1e6 parameters at 0.1 .. 1.5 epochs
  const absl::StatusOr<ConstrainedFit> fit =
      FitConstrained(points, FastOptions());
  EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fit.status().message(),
              HasSubstr("points: 7 given: Muennighoff's form with 7 free "
                        "parameters needs >= 8"));
}

TEST(CompareForms, PrefersMuennighoffOnRepeatedData) {
  const std::vector<ConstrainedObservation> points =
      Grid(Published(), 0.01, 11);
  std::vector<Observation> plain;
  for (const ConstrainedObservation& p : points) {
    plain.push_back({p.n, p.d, p.loss});
  }
  const absl::StatusOr<Approach3Fit> chinchilla = FitApproach3(
      plain, {.threads = 2, .starts = *StartsFromSpec("random:24:3")});
  ASSERT_TRUE(chinchilla.ok()) << chinchilla.status();
  const absl::StatusOr<ConstrainedFit> muennighoff =
      FitConstrained(points, FastOptions());
  ASSERT_TRUE(muennighoff.ok()) << muennighoff.status();
  // Groups: the epoch columns of the grid (0.1 .. 40 epochs).
  std::vector<int> group;
  for (size_t i = 0; i < points.size(); ++i) {
    group.push_back(static_cast<int>(i % std::size(kEpochs)));
  }
  const absl::StatusOr<FormComparison> c =
      CompareForms(points, group, *chinchilla, *muennighoff, FastOptions());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->better, "muennighoff");
  EXPECT_LT(c->muennighoff_error, c->chinchilla_error);
  EXPECT_EQ(c->points, 7 * 17);
}

}  // namespace
}  // namespace isoflop::analysis
