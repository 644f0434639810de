// The one stored-fit conversion (analysis/fit_proto.h): what the coordinator
// stores from a report reads back as the same laws.
#include "analysis/fit_proto.h"

#include <string>

#include "analysis/queries.h"
#include "gtest/gtest.h"

namespace isoflop::analysis {
namespace {

Approach3Fit Law(double e, double alpha) {
  return LawWith(e, 400, 410, alpha, 0.28);
}

FitReport FinalReport() {
  FitReport r;
  r.request.approaches = {2, 3};
  r.request.bootstrap = 2;
  r.request.seed = 7;
  Approach3Fit fit = Law(1.69, 0.34);
  fit.objective = 0.01;
  fit.n_starts = 4500;
  fit.n_starts_at_best = 12;
  fit.on_grid_edge = true;
  fit.message = "best start: converged";
  r.approach3.fit = fit;
  r.approach3.bootstrap = Approach3Bootstrap{
      .samples = {Law(1.6, 0.33), Law(1.7, 0.35)}, .failed = 1};
  r.approach2.fit =
      Approach2Fit{.refused = {"budget 1e+19: 2 points: needs >= 3"},
                   .n_opt = {0.1, 0.5},
                   .d_opt = {1.6, 0.5}};
  r.approach2.bootstrap = Approach2Bootstrap{
      .samples = {{{0.1, 0.49}, {1.6, 0.51}}, {{0.1, 0.51}, {1.7, 0.49}}}};
  return r;
}

TEST(FitProto, AReportReadsBackAsTheSameLaws) {
  v1::ScalingLawFit proto;
  FitReportToProto(FinalReport(), &proto);
  EXPECT_TRUE(HasApproach3(proto));
  const Approach3Fit a3 = Approach3FromProto(proto);
  EXPECT_EQ(a3.e, 1.69);
  EXPECT_EQ(a3.alpha, 0.34);
  EXPECT_EQ(a3.b, 410);
  EXPECT_EQ(a3.objective, 0.01);
  EXPECT_EQ(a3.n_starts_at_best, 12);
  EXPECT_TRUE(a3.on_grid_edge);
  EXPECT_EQ(a3.message, "best start: converged");
  EXPECT_EQ(proto.approach2_message(), "budget 1e+19: 2 points: needs >= 3");
  EXPECT_EQ(proto.bootstrap_resamples(), 2u);
  EXPECT_EQ(proto.bootstrap_failed(), 1u);
  EXPECT_EQ(proto.bootstrap_seed(), 7u);
  EXPECT_EQ(proto.ci95().count("alpha"), 1u);
  EXPECT_EQ(proto.ci95().count("n_opt_exponent"), 1u);

  const StoredFit stored = StoredFitFromProto(proto);
  ASSERT_TRUE(stored.approach3.has_value());
  EXPECT_EQ(stored.approach3->beta, 0.28);
  ASSERT_EQ(stored.approach3_samples.size(), 2u);
  EXPECT_EQ(stored.approach3_samples[1].e, 1.7);
  ASSERT_TRUE(stored.approach2.has_value());
  EXPECT_EQ(stored.approach2->second.coef, 1.6);
  ASSERT_EQ(stored.approach2_samples.size(), 2u);
  EXPECT_EQ(stored.approach2_samples[1].first.exponent, 0.51);
  // The coordinator's answers and a fit file's come from the same laws.
  absl::StatusOr<Answer> answer =
      AnswerQuery(stored, {.kind = QueryKind::kFlops, .value = 1e21});
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->params, ComputeOptimalFor(*stored.approach3, 1e21).n_opt);
}

TEST(FitProto, AFitThatWasNotMadeHasNoLaw) {
  FitReport r;
  r.request.approaches = {3};
  r.approach3.reason = "4 points: needs >= 5";
  v1::ScalingLawFit proto;
  FitReportToProto(r, &proto);
  EXPECT_FALSE(HasApproach3(proto));
  EXPECT_EQ(proto.message(), "not fitted: 4 points: needs >= 5");
  EXPECT_EQ(proto.approach2_message(), "");  // Approach 2 was not asked for
  EXPECT_FALSE(StoredFitFromProto(proto).approach3.has_value());
  EXPECT_FALSE(StoredFitFromProto(proto).approach2.has_value());
}

TEST(FitProto, LawsRoundTrip) {
  const Approach3Fit law = LawFromProto(LawToProto(Law(1.5, 0.3)));
  EXPECT_EQ(law.e, 1.5);
  EXPECT_EQ(law.a, 400);
  EXPECT_EQ(law.alpha, 0.3);
  const auto a2 = Approach2FromProto(Approach2ToProto({{2, 0.4}, {3, 0.6}}));
  EXPECT_EQ(a2.first.coef, 2);
  EXPECT_EQ(a2.second.exponent, 0.6);
}

}  // namespace
}  // namespace isoflop::analysis
