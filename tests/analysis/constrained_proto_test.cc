#include "analysis/constrained_proto.h"

#include "gtest/gtest.h"

namespace isoflop::analysis {
namespace {

ConstrainedRun ARun() {
  ConstrainedRun run;
  ConstrainedFit fit;
  fit.law = {.e = 1.9,
             .a = 520,
             .b = 1490,
             .alpha = 0.35,
             .beta = 0.36,
             .rd_star = 14.2,
             .rn_star = kPublishedRNStar};
  fit.rd_star_fitted = true;
  fit.n_points = 36;
  fit.repeated_points = 22;
  fit.over_4_epochs = 10;
  fit.max_epochs = 39.6;
  run.fit = fit;
  run.bootstrap = ConstrainedBootstrap{{fit.law, fit.law}, 1};
  run.comparison = FormComparison{6, 36, 0.015, 0.006, "muennighoff"};
  return run;
}

TEST(ConstrainedRunToProto, StoresTheLawItsIntervalsAndTheComparison) {
  v1::ScalingLawFit out;
  ConstrainedRunToProto(ARun(), &out);
  ASSERT_TRUE(out.has_muennighoff());
  EXPECT_EQ(out.muennighoff().rd_star(), 14.2);
  EXPECT_TRUE(out.muennighoff().rd_star_fitted());
  EXPECT_FALSE(out.muennighoff().rn_star_fitted());
  EXPECT_EQ(out.muennighoff().over_4_epochs(), 10u);
  EXPECT_EQ(out.muennighoff().ci95().at("rd_star").low(), 14.2);
  EXPECT_EQ(out.muennighoff().bootstrap_failed(), 1u);
  EXPECT_EQ(out.form_comparison().better(), "muennighoff");
  EXPECT_EQ(out.form_comparison().folds(), 6u);
  EXPECT_EQ(out.form_comparison().method(), "leave-one-budget-out");
  const ConstrainedLaw law = ConstrainedLawFromProto(out.muennighoff());
  EXPECT_EQ(law.b, 1490);
  EXPECT_EQ(law.rn_star, kPublishedRNStar);
}

TEST(ConstrainedRunToProto, StoresWhyThereIsNoFit) {
  ConstrainedRun run;
  run.reason = "no point repeats data";
  v1::ScalingLawFit out;
  ConstrainedRunToProto(run, &out);
  EXPECT_FALSE(out.has_muennighoff());
  EXPECT_EQ(out.muennighoff_message(), "no point repeats data");
  EXPECT_FALSE(out.has_form_comparison());
}

}  // namespace
}  // namespace isoflop::analysis
