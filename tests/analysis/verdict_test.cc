// Verdicts (analysis/verdict.h) on a table of point sets whose trouble is
// known by construction, and backtests (analysis/backtest.h) against a law
// known exactly and a direct computation.
#include "analysis/verdict.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "analysis/backtest.h"
#include "analysis/fit_report.h"
#include "analysis/points_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::analysis {
namespace {

using ::testing::HasSubstr;

// Chinchilla's unrounded law (Hoffmann et al. 2022, via Epoch AI's notebook).
struct Law {
  double e = 1.6934, a = 406.4, b = 410.7, alpha = 0.3392, beta = 0.2849;
  double operator()(double n, double d) const {
    return e + a / std::pow(n, alpha) + b / std::pow(d, beta);
  }
  // N_opt(C) under C = 6 N D.
  double NOpt(double c) const {
    const double g = std::pow(alpha * a / (beta * b), 1 / (alpha + beta));
    return g * std::pow(c / 6, beta / (alpha + beta));
  }
};

// `budgets` budgets from 1e18 spaced 10x apart; at each, `sizes` sizes
// log-spaced over [lo, hi] times the law's N_opt, D = C / (6 N); the loss
// times exp(noise * gauss) (seeded).
std::vector<Point> Profiles(int budgets, int sizes, double lo, double hi,
                            double noise = 0, unsigned seed = 7) {
  const Law law;
  std::mt19937 rng(seed);
  std::normal_distribution<double> gauss(0, 1);
  std::vector<Point> out;
  for (int k = 0; k < budgets; ++k) {
    const double c = 1e18 * std::pow(10.0, k);
    for (int j = 0; j < sizes; ++j) {
      const double f =
          sizes == 1 ? 1
                     : std::pow(hi / lo, static_cast<double>(j) / (sizes - 1));
      const double n = law.NOpt(c) * lo * f;
      const double d = c / (6 * n);
      const double loss = law(n, d) * std::exp(noise * gauss(rng));
      out.push_back({.n = n, .d = d, .flops = c, .loss = loss, .budget = c});
    }
  }
  return out;
}

FitRequest FastRequest(int bootstrap) {
  FitRequest r;
  r.approaches = {2, 3};
  r.approach3.starts = *StartsFromSpec("grid:2");
  r.bootstrap = bootstrap;
  r.backtest = false;
  return r;
}

FitVerdicts Judge(const std::vector<Point>& points, const FitRequest& r) {
  PointSet set;
  set.points = points;
  set.has_budget = true;
  absl::StatusOr<FitReport> report = RunFits(set, r);
  EXPECT_TRUE(report.ok()) << report.status();
  if (!report.ok()) return {};
  FitVerdicts v = JudgeFit(*report);
  std::printf("%s", VerdictText(v.overall).c_str());
  return v;
}

std::string Reasons(const Verdict& v) {
  return absl::StrJoin(v.reasons, " | ");
}

// The table of issue 20: each row a point set, the level it must get and a
// reason it must give.
TEST(Verdict, FivePointsForFiveParametersAreUnidentified) {
  const FitVerdicts v = Judge(Profiles(1, 5, 0.25, 4), FastRequest(20));
  ASSERT_TRUE(v.approach3.has_value());
  EXPECT_EQ(v.approach3->level, VerdictLevel::kUnidentified);
  ASSERT_FALSE(v.approach3->reasons.empty());
  // The reason that makes it unidentified comes first.
  EXPECT_THAT(v.approach3->reasons[0],
              HasSubstr("5 points for 5 free parameters"));
  EXPECT_EQ(v.overall.level, VerdictLevel::kUnidentified);
}

TEST(Verdict, TwoBudgetsAreAtLeastWeakAndSaySo) {
  const FitVerdicts v = Judge(Profiles(2, 3, 0.3, 3, 0.01), FastRequest(20));
  ASSERT_TRUE(v.approach3.has_value());
  EXPECT_GE(v.approach3->level, VerdictLevel::kWeak);
  EXPECT_THAT(Reasons(*v.approach3), HasSubstr("2 IsoFLOP budget(s)"));
  EXPECT_THAT(Reasons(*v.approach3),
              HasSubstr("6 points for 5 free parameters leave 1"));
}

TEST(Verdict, EveryMinimumAtAnEdgeLeavesApproach2Unidentified) {
  // Every size below the optimum: each budget's lowest loss is at its
  // largest N, and each parabola's vertex lies beyond it.
  const FitVerdicts v = Judge(Profiles(4, 5, 0.02, 0.3), FastRequest(0));
  ASSERT_TRUE(v.approach2.has_value());
  ASSERT_TRUE(v.approach3.has_value());
  EXPECT_EQ(v.approach2->level, VerdictLevel::kUnidentified);
  EXPECT_THAT(Reasons(*v.approach2),
              HasSubstr("every budget's parabola has its vertex outside"));
  EXPECT_GE(v.approach3->level, VerdictLevel::kWeak);
  EXPECT_THAT(Reasons(*v.approach3),
              HasSubstr("the lowest loss is at the largest N sampled"));
  EXPECT_EQ(v.overall.level, VerdictLevel::kUnidentified);
}

TEST(Verdict, NRangeOfTwoPerBudgetIsWeak) {
  const FitVerdicts v = Judge(Profiles(4, 5, 0.7, 1.4), FastRequest(0));
  ASSERT_TRUE(v.approach3.has_value());
  EXPECT_EQ(v.approach3->level, VerdictLevel::kWeak);
  EXPECT_THAT(Reasons(*v.approach3), HasSubstr("N spans only 2x"));
  EXPECT_THAT(Reasons(*v.approach3), HasSubstr("under 3x"));
}

TEST(Verdict, NoiseFreeKnownLawIsOk) {
  const FitVerdicts v = Judge(Profiles(4, 7, 0.25, 4), FastRequest(20));
  ASSERT_TRUE(v.approach3.has_value());
  ASSERT_TRUE(v.approach2.has_value());
  EXPECT_EQ(v.overall.level, VerdictLevel::kOk) << Reasons(v.overall);
  EXPECT_TRUE(v.overall.reasons.empty()) << Reasons(v.overall);
}

// The known law's profiles, each point's dataset holding 1/5 of the tokens
// of the budget's smallest model (k points over 4 epochs) or all of them.
TEST(Verdict, PointsRepeatingDataBeyondFourEpochsMakeThePlainLawWeak) {
  std::vector<Point> points = Profiles(4, 7, 0.25, 4);
  int over_4 = 0;
  for (Point& p : points) {
    p.unique_tokens = p.budget == 1e21 ? p.d / 5 : p.d;
    p.epochs = p.d / p.unique_tokens;
    over_4 += p.epochs > 4;
  }
  ASSERT_EQ(over_4, 7);
  const FitVerdicts v = Judge(points, FastRequest(0));
  ASSERT_TRUE(v.approach3.has_value());
  ASSERT_TRUE(v.approach2.has_value());
  const std::string reason =
      "7 points train for > 4 epochs of their unique data (up to 5); the "
      "Chinchilla form ignores repetition: fit --form muennighoff";
  EXPECT_EQ(v.approach3->level, VerdictLevel::kWeak);
  EXPECT_THAT(Reasons(*v.approach3), HasSubstr(reason));
  EXPECT_THAT(Reasons(*v.approach2), HasSubstr(reason));
  EXPECT_EQ(v.overall.level, VerdictLevel::kWeak);
}

TEST(Verdict, FourEpochsOrFewerGiveNoRepetitionReason) {
  std::vector<Point> points = Profiles(4, 7, 0.25, 4);
  for (Point& p : points) {
    p.unique_tokens = p.d / 4;
    p.epochs = 4;
  }
  EXPECT_EQ(RepetitionReason(points), std::nullopt);
  const FitVerdicts v = Judge(points, FastRequest(0));
  EXPECT_EQ(v.overall.level, VerdictLevel::kOk) << Reasons(v.overall);
}

TEST(Verdict, EpochChinchillaPointsAreOk) {
  absl::StatusOr<PointSet> set =
      ReadPoints(std::string(ISOFLOP_TESTDATA_DIR) +
                 "/epoch_chinchilla_svg_extracted.csv");
  ASSERT_TRUE(set.ok()) << set.status();
  // Epoch's protocol (epoch_test.cc): the 5 highest losses left out.
  std::vector<double> losses;
  for (const Point& p : set->points) losses.push_back(p.loss);
  std::sort(losses.begin(), losses.end());
  const double cut = losses[losses.size() - 5];
  PointSet kept;
  for (const Point& p : set->points) {
    if (p.loss < cut) kept.points.push_back(p);
  }
  ASSERT_EQ(kept.points.size(), 240u);
  FitRequest r;
  r.approaches = {3};  // Chinchilla's grid of starts, as published
  r.bootstrap = 40;
  r.backtest = false;
  absl::StatusOr<FitReport> report = RunFits(kept, r);
  ASSERT_TRUE(report.ok()) << report.status();
  const FitVerdicts v = JudgeFit(*report);
  std::printf("%s", VerdictText(v.overall).c_str());
  EXPECT_EQ(v.overall.level, VerdictLevel::kOk) << Reasons(v.overall);
}

TEST(Verdict, ApproachesThatDisagreeBeyondTheirIntervalsAreWeak) {
  // Approach 2's exponent forced to 0.9 against Approach 3's ~0.46.
  PointSet set;
  set.points = Profiles(4, 7, 0.25, 4);
  set.has_budget = true;
  absl::StatusOr<FitReport> report = RunFits(set, FastRequest(0));
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(report->approach2.fit.has_value());
  report->approach2.fit->n_opt.exponent = 0.9;
  const FitVerdicts v = JudgeFit(*report);
  EXPECT_EQ(v.overall.level, VerdictLevel::kWeak) << Reasons(v.overall);
  EXPECT_THAT(Reasons(v.overall),
              HasSubstr("Approaches 2 and 3 disagree on N_opt ~ C^a: 0.9 vs"));
}

TEST(Verdict, NonFiniteParametersAreUnidentified) {
  PointSet set;
  set.points = Profiles(4, 7, 0.25, 4);
  set.has_budget = true;
  absl::StatusOr<FitReport> report = RunFits(set, FastRequest(0));
  ASSERT_TRUE(report.ok()) << report.status();
  report->approach3.fit->a = INFINITY;
  report->approach3.fit->alpha = 74;
  const FitVerdicts v = JudgeFit(*report);
  EXPECT_EQ(v.approach3->level, VerdictLevel::kUnidentified);
  EXPECT_THAT(Reasons(*v.approach3),
              HasSubstr("fitted parameters are not all finite and > 0 (A = "
                        "inf"));
}

TEST(Verdict, ManyFailedBootstrapRefitsAndWideExponentsAreWeak) {
  PointSet set;
  set.points = Profiles(4, 7, 0.25, 4);
  set.has_budget = true;
  absl::StatusOr<FitReport> report = RunFits(set, FastRequest(20));
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(report->approach3.bootstrap.has_value());
  report->approach3.bootstrap->failed = 3;  // 15% of 20
  report->approach3.bootstrap->samples[0].alpha = 0.1;
  report->approach3.bootstrap->samples[1].alpha = 0.1;
  report->approach3.bootstrap->samples[2].alpha = 0.9;
  const FitVerdicts v = JudgeFit(*report);
  EXPECT_EQ(v.approach3->level, VerdictLevel::kWeak);
  EXPECT_THAT(Reasons(*v.approach3),
              HasSubstr("3 of 20 bootstrap refits failed (over 10%)"));
  EXPECT_THAT(Reasons(*v.approach3), HasSubstr("alpha's 95% interval 0.1 .. "));
  EXPECT_THAT(Reasons(*v.approach3), HasSubstr("wider than a factor 2"));
}

TEST(VerdictJson, RoundTripsLevelAndReasons) {
  Verdict v;
  AddReason(&v, VerdictLevel::kWeak, "r1");
  AddReason(&v, VerdictLevel::kWeak, "r1");  // once
  AddReason(&v, VerdictLevel::kOk, "r2");    // never lowers the level
  const nlohmann::json j = VerdictToJson(v);
  EXPECT_EQ(j.dump(), R"({"level":"weak","reasons":["r1","r2"]})");
  const Verdict back = VerdictFromJson(j);
  EXPECT_EQ(back.level, VerdictLevel::kWeak);
  EXPECT_EQ(back.reasons, v.reasons);
  EXPECT_EQ(VerdictFromJson(nlohmann::json{{"level", "great"}}).level,
            VerdictLevel::kUnidentified);
}

// Backtests.
TEST(Backtest, NoiseFreeLawPredictsTheLargestBudgetWithin1e6) {
  const std::vector<Point> points = Profiles(5, 7, 0.25, 4);
  absl::StatusOr<Grouping> g = GroupByBudget(points, {}, 0.1);
  ASSERT_TRUE(g.ok());
  absl::StatusOr<Backtest> b = LeaveLargestOut(points, *g, {});
  ASSERT_TRUE(b.ok()) << b.status();
  std::printf("noise-free backtest: relative error %.3g, mean %.3g\n",
              b->relative_error, b->mean_abs_relative_error);
  EXPECT_DOUBLE_EQ(b->holdout_flops, 1e22);
  EXPECT_EQ(b->points, 7);
  EXPECT_EQ(b->train_points, 28);
  EXPECT_LT(std::abs(b->relative_error), 1e-6);
  EXPECT_LT(b->mean_abs_relative_error, 1e-6);
}

TEST(Backtest, WithOnePercentNoiseTheErrorIsTheDirectComputation) {
  const std::vector<Point> points = Profiles(5, 7, 0.25, 4, 0.01);
  absl::StatusOr<Grouping> g = GroupByBudget(points, {}, 0.1);
  ASSERT_TRUE(g.ok());
  Approach3Options options;
  options.starts = *StartsFromSpec("grid:2");
  absl::StatusOr<Backtest> b = LeaveLargestOut(points, *g, options);
  ASSERT_TRUE(b.ok()) << b.status();
  // Directly: fit the first 28 points (budgets 1e18 .. 1e21), predict the
  // last 7 (1e22) and take the lowest observed one.
  std::vector<Observation> train;
  for (size_t i = 0; i < 28; ++i) {
    train.push_back({points[i].n, points[i].d, points[i].loss});
  }
  absl::StatusOr<Approach3Fit> law = FitApproach3(train, options);
  ASSERT_TRUE(law.ok());
  const auto predict = [&](const Point& p) {
    return law->e + law->a / std::pow(p.n, law->alpha) +
           law->b / std::pow(p.d, law->beta);
  };
  const Point* best = &points[28];
  double sum = 0;
  for (size_t i = 28; i < 35; ++i) {
    if (points[i].loss < best->loss) best = &points[i];
    sum += std::abs(predict(points[i]) - points[i].loss) / points[i].loss;
  }
  const double want = (predict(*best) - best->loss) / best->loss;
  std::printf("1%% noise backtest: relative error %.6g (direct %.6g)\n",
              b->relative_error, want);
  EXPECT_DOUBLE_EQ(b->observed_loss, best->loss);
  EXPECT_DOUBLE_EQ(b->relative_error, want);
  EXPECT_DOUBLE_EQ(b->mean_abs_relative_error, sum / 7);
  EXPECT_GT(std::abs(b->relative_error), 1e-6);  // the noise shows
}

TEST(Backtest, RolloutPredictsEachBudgetFromTheSmallerOnes) {
  const std::vector<Point> points = Profiles(4, 7, 0.25, 4, 0.01);
  absl::StatusOr<Grouping> g = GroupByBudget(points, {}, 0.1);
  ASSERT_TRUE(g.ok());
  Approach3Options options;
  options.starts = *StartsFromSpec("grid:2");
  const std::vector<Backtest> r = Rollout(points, *g, options);
  // Budget 1e19 has only 7 points below it (enough); all 3 later budgets.
  ASSERT_EQ(r.size(), 3u);
  EXPECT_DOUBLE_EQ(r[0].holdout_flops, 1e19);
  EXPECT_DOUBLE_EQ(r[0].train_max_flops, 1e18);
  EXPECT_DOUBLE_EQ(r[2].holdout_flops, 1e21);
  EXPECT_EQ(r[2].train_points, 21);
}

TEST(Backtest, ANonFinitePredictionErrorIsRefusedNotPrintedAsNan) {
  std::vector<Point> points = Profiles(3, 7, 0.25, 4);
  // The holdout budget's observed losses are 0: its relative error is not
  // finite, and the backtest says why instead of answering "nan%".
  for (size_t i = 14; i < points.size(); ++i) points[i].loss = 0;
  absl::StatusOr<Grouping> g = GroupByBudget(points, {}, 0.1);
  ASSERT_TRUE(g.ok());
  Approach3Options options;
  options.starts = *StartsFromSpec("grid:2");
  absl::StatusOr<Backtest> b = LeaveLargestOut(points, *g, options);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("gives a non-finite prediction error"));
}

TEST(Backtest, OneBudgetHasNothingToPredict) {
  const std::vector<Point> points = Profiles(1, 7, 0.25, 4);
  absl::StatusOr<Grouping> g = GroupByBudget(points, {}, 0.1);
  ASSERT_TRUE(g.ok());
  absl::StatusOr<Backtest> b = LeaveLargestOut(points, *g, {});
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("a backtest needs >= 2"));
}

}  // namespace
}  // namespace isoflop::analysis
