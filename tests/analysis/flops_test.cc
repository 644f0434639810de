#include "analysis/flops.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "analysis/fit_report.h"
#include "analysis/points_io.h"
#include "analysis/queries.h"
#include "common/flops.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::analysis {
namespace {

using ::testing::HasSubstr;

// Chinchilla's law (Hoffmann et al. 2022, rounded).
Approach3Fit Chinchilla() { return LawWith(1.69, 406.4, 410.7, 0.34, 0.28); }

// A family of the project's models (d_ff = 4 d, n_layers = d / 32, V = 10000,
// T = 256), FLOPs/token by common/flops.h.
ParamCounts Shape(int64_t d) {
  return CountParams({.vocab_size = 10000,
                      .context = 256,
                      .d_model = d,
                      .n_layers = std::max<int64_t>(1, d / 32),
                      .n_heads = 4,
                      .d_ff = 4 * d});
}

TEST(FlopsPerToken6N, IsSixTimesParams) {
  EXPECT_DOUBLE_EQ(FlopsPerToken6N(1e9), 6e9);
  EXPECT_DOUBLE_EQ(ComputeFromParamsTokens6N(1e9, 2e10), 1.2e20);
  EXPECT_DOUBLE_EQ(TokensForCompute6N(1e9, 1.2e20), 2e10);
  EXPECT_DOUBLE_EQ(ParamsTokensProduct6N(1.2e20), 2e19);
}

TEST(FlopsModel, SixNDConvertsLikeTheNamedFunctions) {
  const FlopsModel m = FlopsModel::SixND();
  EXPECT_TRUE(m.is_6nd());
  EXPECT_EQ(m.name(), "6ND");
  EXPECT_DOUBLE_EQ(ComputeFromParamsTokens(m, 1e9, 2e10), 1.2e20);
  EXPECT_DOUBLE_EQ(TokensForCompute(m, 1e9, 1.2e20), 2e10);
}

TEST(FlopsModel, InterpolatedIsExactAtNodesAndLogLinearBetween) {
  const auto m = FlopsModel::Interpolated({{1e6, 8e6}, {1e8, 7e8}});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NEAR(FlopsPerToken(*m, 1e6) / 8e6, 1, 1e-12);
  EXPECT_NEAR(FlopsPerToken(*m, 1e8) / 7e8, 1, 1e-12);
  // Halfway in log N: the geometric mean.
  EXPECT_NEAR(FlopsPerToken(*m, 1e7) / std::sqrt(8e6 * 7e8), 1, 1e-12);
  // Beyond the ends: the least-squares slope (here the one segment's).
  const double slope = std::log(7e8 / 8e6) / std::log(100.0);
  EXPECT_NEAR(m->LogSlope(1e10), slope, 1e-12);
  EXPECT_NEAR(FlopsPerToken(*m, 1e10) / (7e8 * std::pow(100.0, slope)), 1,
              1e-12);
}

TEST(FlopsModel, InterpolatedMergesEqualParamsByGeometricMean) {
  const auto m = FlopsModel::Interpolated({{1e6, 4e6}, {1e6, 9e6}, {1e7, 6e7}});
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->table().size(), 2u);
  EXPECT_NEAR(FlopsPerToken(*m, 1e6) / 6e6, 1, 1e-12);
}

TEST(FlopsModel, InterpolatedRefusesANonPositivePairNamingIt) {
  const auto m = FlopsModel::Interpolated({{1e6, 6e6}, {0, 7e6}});
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("flops_per_token[1]"));
}

TEST(FlopsModel, JsonRoundTripKeepsTheTable) {
  const auto m = FlopsModel::Interpolated({{1e6, 8e6}, {1e8, 7e8}});
  ASSERT_TRUE(m.ok());
  const nlohmann::json j = FlopsModelToJson(*m);
  EXPECT_EQ(j["name"], "exact");
  const auto back = FlopsModelFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_NEAR(FlopsPerToken(*back, 3e7) / FlopsPerToken(*m, 3e7), 1, 1e-12);
  EXPECT_TRUE(FlopsModelFromJson(nullptr)->is_6nd());
  EXPECT_FALSE(FlopsModelFromJson({{"name", "7ND"}}).ok());
}

TEST(ComputeOptimalUnder, SixNDIsTheClosedForm) {
  const ComputeOptimum a = ComputeOptimalFor(Chinchilla(), 5.76e23);
  const ComputeOptimum b =
      ComputeOptimalUnder(Chinchilla(), 5.76e23, FlopsModel::SixND());
  EXPECT_EQ(a.n_opt, b.n_opt);
  EXPECT_EQ(a.d_opt, b.d_opt);
}

TEST(ComputeOptimalUnder, ATableOf6NPointsGivesTheClosedForm) {
  std::vector<std::pair<double, double>> table;
  for (double n : {1e7, 1e8, 1e9}) table.emplace_back(n, FlopsPerToken6N(n));
  const auto m = FlopsModel::Interpolated(table);
  ASSERT_TRUE(m.ok());
  const ComputeOptimum a = ComputeOptimalFor(Chinchilla(), 1e21);
  const ComputeOptimum b = ComputeOptimalUnder(Chinchilla(), 1e21, *m);
  EXPECT_NEAR(b.n_opt / a.n_opt, 1, 1e-6);
  EXPECT_NEAR(b.d_opt / a.d_opt, 1, 1e-6);
}

TEST(ComputeOptimalUnder, SpendsExactlyTheBudgetAndMinimisesTheLoss) {
  std::vector<std::pair<double, double>> table;
  for (int64_t d : {64, 128, 256, 512}) {
    const ParamCounts c = Shape(d);
    table.emplace_back(static_cast<double>(c.n_total), c.flops_per_token);
  }
  const auto m = FlopsModel::Interpolated(table);
  ASSERT_TRUE(m.ok());
  const double budget = 3e17;
  const ComputeOptimum o = ComputeOptimalUnder(Chinchilla(), budget, *m);
  EXPECT_NEAR(ComputeFromParamsTokens(*m, o.n_opt, o.d_opt) / budget, 1, 1e-12);
  for (double f : {0.98, 1.02}) {  // neighbours along the same budget
    const double n = o.n_opt * f;
    const double d = TokensForCompute(*m, n, budget);
    const Approach3Fit law = Chinchilla();
    EXPECT_GT(
        law.e + law.a / std::pow(n, law.alpha) + law.b / std::pow(d, law.beta),
        o.loss);
  }
  // And it is not the 6ND answer (which spends another budget).
  EXPECT_GT(std::abs(ComputeFromParamsTokens6N(o.n_opt, o.d_opt) / budget - 1),
            0.01);
}

TEST(ComputeForOptimalParams, InvertsComputeOptimalUnder) {
  const auto m = FlopsModel::Interpolated({{1e6, 9e6}, {1e8, 6.5e8}});
  ASSERT_TRUE(m.ok());
  const ComputeOptimum o = ComputeOptimalUnder(Chinchilla(), 1e18, *m);
  EXPECT_NEAR(ComputeForOptimalParams(Chinchilla(), o.n_opt, *m) / 1e18, 1,
              1e-6);
}

TEST(FlopsModelOf, FlopsBesideTokensIsExactOtherwise6ND) {
  const auto both = ParsePointsCsv(
      "params,tokens,flops,loss\n1e6,1e8,9e14,3.0\n1e7,1e8,7e15,2.8\n", "p");
  ASSERT_TRUE(both.ok()) << both.status();
  const auto exact = FlopsModelOf(*both);
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->name(), "exact");
  EXPECT_NEAR(FlopsPerToken(*exact, 1e6) / 9e6, 1, 1e-12);
  const auto tokens_only =
      ParsePointsCsv("params,tokens,loss\n1e6,1e8,3.0\n", "p");
  ASSERT_TRUE(tokens_only.ok());
  EXPECT_TRUE(FlopsModelOf(*tokens_only)->is_6nd());
  EXPECT_FALSE(FlopsModelOf(*tokens_only, /*non_embedding=*/true).ok());
}

TEST(ParsePoints, ReadsNonEmbeddingParamsInCsvAndJson) {
  const auto csv = ParsePointsCsv(
      "params,n_non_embedding,tokens,loss\n1e6,4e5,1e8,3.0\n", "p");
  ASSERT_TRUE(csv.ok()) << csv.status();
  EXPECT_TRUE(csv->has_n_non_embedding);
  EXPECT_EQ(csv->points[0].n_non_embedding, 4e5);
  const auto json = ParsePointsJson(
      R"([{"params": 1e6, "n_non_embedding": 4e5, "tokens": 1e8,
           "flops": 9e14, "loss": 3}])",
      "p");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_TRUE(json->has_n_non_embedding && json->has_flops);
  EXPECT_EQ(json->points[0].n_non_embedding, 4e5);
}

// Points of a known law on the family above, at three budgets, with the
// measured FLOPs and both N counts.
PointSet FamilyPoints() {
  PointSet set;
  set.has_tokens = set.has_flops = set.has_n_non_embedding = true;
  set.has_budget = true;
  const Approach3Fit law = Chinchilla();
  for (double budget : {1e15, 1e16, 1e17}) {
    for (int64_t d : {32, 64, 96, 128, 192, 256, 384}) {
      const ParamCounts c = Shape(d);
      Point p;
      p.n = static_cast<double>(c.n_total);
      p.n_non_embedding = static_cast<double>(c.n_non_embedding);
      p.d = std::floor(budget / c.flops_per_token);
      p.flops = TrialCompute(c.flops_per_token, p.d);
      p.budget = budget;
      p.loss = law.e + law.a / std::pow(p.n, law.alpha) +
               law.b / std::pow(p.d, law.beta);
      set.points.push_back(p);
    }
  }
  return set;
}

TEST(RunFits, ReportsTheConventionAndTheSensitivityLine) {
  FitRequest request;
  request.approaches = {3};
  request.approach3.threads = 2;
  request.approach3.starts = *StartsFromSpec("grid:2");
  request.sensitivity = true;
  const auto report = RunFits(FamilyPoints(), request);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->flops_model.name(), "exact");
  ASSERT_EQ(report->sensitivity.size(), 4u);
  for (const ExponentUnder& row : report->sensitivity) {
    ASSERT_TRUE(row.a.has_value())
        << row.n_convention << " " << row.flops_convention << ": "
        << row.reason;
    EXPECT_GT(*row.a, 0.2);
    EXPECT_LT(*row.a, 0.9);
  }
  const nlohmann::json j = ReportToJson(*report);
  EXPECT_EQ(j["flops_convention"]["name"], "exact");
  EXPECT_EQ(j["sensitivity"]["rows"].size(), 4u);
  const std::string text = ReportToText(*report);
  EXPECT_THAT(text, HasSubstr("Sensitivity of the N_opt exponent a: "));
  EXPECT_THAT(text, HasSubstr("(N non-embedding, C = 6ND)"));
}

TEST(RunFits, WithoutFlopsColumnSays6NDAndSensitivityIsNotAvailable) {
  PointSet set = FamilyPoints();
  set.has_flops = set.has_n_non_embedding = false;
  for (Point& p : set.points) p.flops = ComputeFromParamsTokens6N(p.n, p.d);
  FitRequest request;
  request.approaches = {3};
  request.approach3.threads = 2;
  request.approach3.starts = *StartsFromSpec("grid:2");
  request.sensitivity = true;
  const auto report = RunFits(set, request);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->flops_model.is_6nd());
  const std::string text = ReportToText(*report);
  EXPECT_THAT(text, HasSubstr("FLOP convention: C = 6 N D"));
  EXPECT_THAT(text, HasSubstr("no 'flops' column"));
  EXPECT_THAT(text, HasSubstr("N total, C exact: not available"));
  EXPECT_THAT(text, HasSubstr("N non-embedding, C = 6ND: not available (no "
                              "'n_non_embedding' column)"));
}

}  // namespace
}  // namespace isoflop::analysis
