// ExpandSweep with a shape rule (grid.n_targets, grid.d_models), rules for
// the hyperparameters per trial, and the WSD / µP fields
// (coordinator/sweep/recipe.h, docs/config.md).
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "coordinator/sweep/expand.h"
#include "coordinator/sweep/recipe.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::SmallConfig;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// SmallConfig with its shapes given as parameter targets.
v1::SweepConfig TargetsConfig(std::initializer_list<double> targets) {
  v1::SweepConfig c = SmallConfig();
  c.mutable_grid()->clear_model_shapes();
  for (double n : targets) c.mutable_grid()->add_n_targets(n);
  return c;
}

TEST(ExpandSweep, NTargetsBecomeTheRulesNearestShapesAtEveryBudget) {
  const v1::SweepConfig c = TargetsConfig({30e3, 60e3, 120e3});
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->trials.size(), 6u);  // 2 budgets x 3 targets, budget-major
  for (int i = 0; i < 6; ++i) {
    const v1::TrialSpec& t = e->trials[i];
    const double target = c.grid().n_targets(i % 3);
    auto want = ShapeForParams(target, v1::ShapeRule(), c.model());
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(t.shape().DebugString(), want->DebugString());
    EXPECT_LT(std::abs(std::log(t.n_total() / target)), std::log(1.3));
    EXPECT_EQ(t.flops_budget(), c.grid().flops_budgets(i / 3));
  }
  // The resolved config records the rule's constants.
  EXPECT_EQ(e->resolved.grid().shape_rule().layers_base(), 55);
  EXPECT_EQ(e->resolved.grid().shape_rule().head_dim(), 128u);
}

TEST(ExpandSweep, DModelsBecomeTheRulesShapes) {
  v1::SweepConfig c = SmallConfig();
  c.mutable_grid()->clear_model_shapes();
  c.mutable_grid()->add_d_models(32);
  c.mutable_grid()->add_d_models(64);
  c.mutable_grid()->mutable_shape_rule()->set_layers_base(16);
  c.mutable_grid()->mutable_shape_rule()->set_layers_log2_slope(0);
  c.mutable_grid()->mutable_shape_rule()->set_head_dim(16);
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->trials.size(), 4u);
  EXPECT_EQ(e->trials[0].shape().n_layers(), 2u);
  EXPECT_EQ(e->trials[0].shape().n_heads(), 2u);
  EXPECT_EQ(e->trials[1].shape().n_layers(), 4u);
  EXPECT_EQ(e->trials[1].shape().n_heads(), 4u);
  EXPECT_EQ(e->trials[1].shape().d_ff(), 256u);
}

TEST(ExpandSweep, RefusesTwoTargetsThatGiveOneShape) {
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(TargetsConfig({30e3, 30.1e3}));
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()),
              StartsWith("grid.n_targets[1] = 30100: gives the same shape "));
  EXPECT_THAT(std::string(e.status().message()),
              HasSubstr("as grid.n_targets[0] = 30000"));
}

TEST(ExpandSweep, RefusesATargetOutsideTheRulesWidths) {
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(TargetsConfig({100, 60e3}));
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()),
              StartsWith("grid.n_targets[0] = 100: N target 100: the nearest "
                         "shape of the rule (d_model 16, n_layers 1)"));
}

TEST(ExpandSweep, BudgetTooSmallNamesTheTarget) {
  v1::SweepConfig c = TargetsConfig({30e3, 60e3});
  c.mutable_grid()->set_flops_budgets(0, 1e6);
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()),
              StartsWith("grid.flops_budgets[0] = 1e+06: too small for one "
                         "optimizer step of grid.n_targets[0] (d_model "));
}

TEST(ExpandSweep, EachTrialCarriesItsOwnHyperparametersAndTheirReason) {
  v1::SweepConfig c = TargetsConfig({30e3, 120e3});
  v1::Training& t = *c.mutable_training();
  t.clear_lr();
  t.clear_batch_sequences();
  t.set_hparam_preset(v1::DEEPSEEK2024);
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  std::set<double> lrs;
  for (const v1::TrialSpec& s : e->trials) {
    SCOPED_TRACE(s.trial_id());
    const double budget = s.flops_budget();
    EXPECT_NEAR(s.training().lr(), 0.3118 * std::pow(budget, -0.125), 1e-12);
    const double tokens = 0.2920 * std::pow(budget, 0.3271);
    EXPECT_EQ(s.training().batch_sequences(),
              static_cast<uint32_t>(std::max(1.0, std::round(tokens / 64))));
    // Steps are whole batches of the trial's own batch.
    EXPECT_EQ(s.tokens(), s.steps() * s.training().batch_sequences() * 64);
    EXPECT_FALSE(s.training().has_lr_rule());  // values, not rules
    EXPECT_THAT(s.hparam_reason(),
                StartsWith("lr: deepseek2024 0.3118*C^-0.125 = "));
    EXPECT_THAT(s.hparam_reason(), HasSubstr("; batch: deepseek2024 "));
    EXPECT_EQ(s.training().beta2(), 0.95);  // no rule: the default
    lrs.insert(s.training().lr());
  }
  EXPECT_EQ(lrs.size(), 2u);  // one per budget
}

TEST(ExpandSweep, FixedHyperparametersLeaveNoReason) {
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(SmallConfig());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->trials[0].hparam_reason(), "");
  EXPECT_EQ(e->trials[0].training().lr(), 1e-2);
}

TEST(ExpandSweep, WarmupTokensRuleBecomesEachTrialsFraction) {
  v1::SweepConfig c = SmallConfig();
  c.mutable_training()->clear_warmup_fraction();
  c.mutable_training()->mutable_warmup_tokens_rule()->set_constant(30000);
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  for (const v1::TrialSpec& s : e->trials) {
    EXPECT_DOUBLE_EQ(s.training().warmup_fraction(),
                     std::min(0.5, 30000.0 / s.tokens()));
    EXPECT_THAT(s.hparam_reason(), StartsWith("warmup: constant 30000"));
  }
}

TEST(ExpandSweep, PresetOnceOrPerRuleIsTheSameSweep) {
  v1::SweepConfig once = SmallConfig();
  once.mutable_training()->clear_lr();
  once.mutable_training()->clear_batch_sequences();
  v1::SweepConfig per_rule = once;
  once.mutable_training()->set_hparam_preset(v1::DEEPSEEK2024);
  per_rule.mutable_training()->mutable_lr_rule()->set_preset(v1::DEEPSEEK2024);
  per_rule.mutable_training()->mutable_batch_tokens_rule()->set_preset(
      v1::DEEPSEEK2024);
  absl::StatusOr<ExpandedSweep> a = ExpandSweep(once);
  absl::StatusOr<ExpandedSweep> b = ExpandSweep(per_rule);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->sweep_id, b->sweep_id);
}

TEST(ExpandSweep, RuleGivingAnLrOutOfRangeIsRefusedAtExpansion) {
  v1::SweepConfig c = SmallConfig();
  c.mutable_training()->clear_lr();
  v1::HparamPowerLaw& p =
      *c.mutable_training()->mutable_lr_rule()->mutable_power_law();
  p.set_coefficient(1e-2);
  p.set_exponent(0.2);
  p.set_of(v1::HPARAM_OF_C);
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()),
              StartsWith("training.lr_rule = 0.01*C^0.2 = 1.58489 at "
                         "C=1e+11: for the trial of N = "));
}

TEST(ExpandSweep, WsdGetsTheDefaultCooldownAndMupWidthReachesTrials) {
  v1::SweepConfig c = SmallConfig();
  c.mutable_training()->set_schedule(v1::WSD);
  c.mutable_training()->set_mup_base_width(32);
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  for (const v1::TrialSpec& s : e->trials) {
    EXPECT_EQ(s.training().schedule(), v1::WSD);
    EXPECT_EQ(s.training().cooldown_fraction(), 0.2);
    EXPECT_EQ(s.training().mup_base_width(), 32u);
  }
  c.mutable_training()->set_cooldown_fraction(0.1);
  e = ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->trials[0].training().cooldown_fraction(), 0.1);
  // A cosine sweep keeps no cool-down (the trainer's flag is WSD's only).
  e = ExpandSweep(SmallConfig());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->trials[0].training().cooldown_fraction(), 0);
}

// The example in configs/ expands as its comments say.
TEST(ExpandSweep, RecipeExampleConfigExpandsAsDocumented) {
  std::ifstream in(std::string(ISOFLOP_SOURCE_DIR) +
                   "/configs/recipe-cpu.textproto");
  std::stringstream text;
  text << in.rdbuf();
  v1::SweepConfig c;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text.str(), &c));
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->trials.size(), 15u);
  EXPECT_EQ(e->trials[0].shape().d_model(), 18u);
  EXPECT_EQ(e->trials[4].shape().d_model(), 80u);
  for (const v1::TrialSpec& t : e->trials) {
    EXPECT_EQ(t.shape().n_layers(), 1u);
    EXPECT_EQ(t.training().schedule(), v1::WSD);
    EXPECT_GE(t.steps(), 100u) << t.trial_id();
  }
  EXPECT_NEAR(e->trials[0].training().lr(), 0.0121, 5e-5);
  EXPECT_EQ(e->trials[0].training().batch_sequences(), 23u);
  EXPECT_NEAR(e->trials[14].training().lr(), 0.0090, 5e-5);
  EXPECT_EQ(e->trials[14].training().batch_sequences(), 48u);
}

}  // namespace
}  // namespace isoflop::coordinator
