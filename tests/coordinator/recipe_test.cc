#include "coordinator/sweep/recipe.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::coordinator {
namespace {

using ::testing::HasSubstr;

v1::ModelSpec Model(uint32_t vocab, uint32_t context) {
  v1::ModelSpec m;
  m.set_vocab_size(vocab);
  m.set_context(context);
  return m;
}

TEST(ShapeForDModel, DefaultRuleIsMarinsRecipe) {
  // Marin: n_layers = d / (64 + 4 log2 d - 9), heads = d / 128, MLP = 4 d.
  auto s = ShapeForDModel(1024, v1::ShapeRule());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->d_model(), 1024u);
  EXPECT_EQ(s->n_layers(), 11u);  // 1024 / 95 = 10.8
  EXPECT_EQ(s->n_heads(), 8u);
  EXPECT_EQ(s->d_ff(), 4096u);
  s = ShapeForDModel(4096, v1::ShapeRule());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->n_layers(), 40u);  // 4096 / 103 = 39.8
  EXPECT_EQ(s->n_heads(), 32u);
}

TEST(ShapeForDModel, RuleConstantsAreHonoured) {
  v1::ShapeRule r;
  r.set_layers_base(8);
  r.set_layers_log2_slope(0);  // constant aspect ratio d / L = 8
  r.set_head_dim(16);
  r.set_ffn_ratio(2.5);
  r.set_max_layers(3);
  auto s = ShapeForDModel(16, r);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->n_layers(), 2u);
  EXPECT_EQ(s->n_heads(), 1u);
  EXPECT_EQ(s->d_ff(), 40u);
  s = ShapeForDModel(96, r);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->n_layers(), 3u);  // 12, clamped to max_layers
  EXPECT_EQ(s->n_heads(), 6u);
}

TEST(ShapeForDModel, HeadsAlwaysDivideDModel) {
  v1::ShapeRule r;
  r.set_head_dim(48);
  for (uint32_t d = 1; d <= 1000; ++d) {
    auto s = ShapeForDModel(d, r);
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_GE(s->n_heads(), 1u);
    ASSERT_EQ(d % s->n_heads(), 0u) << "d_model " << d;
  }
}

TEST(ShapeForParams, TargetEqualToAShapesCountGivesThatShape) {
  const v1::ModelSpec m = Model(512, 64);
  for (uint32_t d : {16u, 24u, 48u, 96u, 160u}) {
    auto want = ShapeForDModel(d, v1::ShapeRule());
    ASSERT_TRUE(want.ok());
    auto got = ShapeForParams(ShapeParams(*want, m), v1::ShapeRule(), m);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->DebugString(), want->DebugString());
  }
}

TEST(ShapeForParams, PicksTheNearestCountInLogScale) {
  const v1::ModelSpec m = Model(512, 64);
  auto a = ShapeForDModel(48, v1::ShapeRule());  // neighbours in the rule's
  auto b = ShapeForDModel(52, v1::ShapeRule());  // eight widths per octave
  ASSERT_TRUE(a.ok() && b.ok());
  const double na = ShapeParams(*a, m), nb = ShapeParams(*b, m);
  const double mid = std::sqrt(na * nb);
  auto below = ShapeForParams(mid * 0.99, v1::ShapeRule(), m);
  auto above = ShapeForParams(mid * 1.01, v1::ShapeRule(), m);
  ASSERT_TRUE(below.ok() && above.ok());
  EXPECT_EQ(below->d_model(), 48u);
  EXPECT_EQ(above->d_model(), 52u);
}

TEST(ShapeForParams, TinyCpuTargetsGiveTinyShapes) {
  const v1::ModelSpec m = Model(512, 64);
  for (double n : {20e3, 50e3, 100e3, 200e3, 500e3}) {
    auto s = ShapeForParams(n, v1::ShapeRule(), m);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_GE(s->d_model(), 16u);
    EXPECT_LE(s->d_model(), 160u);
    EXPECT_GE(s->n_layers(), 1u);
    EXPECT_LE(s->n_layers(), 4u);
    EXPECT_EQ(s->d_model() % s->n_heads(), 0u);
    const double got = ShapeParams(*s, m);
    EXPECT_LT(std::abs(std::log(got / n)), std::log(1.3))
        << "target " << n << " got " << got;
  }
}

TEST(ShapeForParams, LargeTargetsFollowTheRulesAspectRatio) {
  const v1::ModelSpec m = Model(32000, 2048);
  for (double n : {1e8, 1e9, 7e9}) {
    auto s = ShapeForParams(n, v1::ShapeRule(), m);
    ASSERT_TRUE(s.ok()) << s.status();
    const double ratio = static_cast<double>(s->d_model()) / s->n_layers();
    EXPECT_GT(ratio, 80) << s->DebugString();
    EXPECT_LT(ratio, 110) << s->DebugString();
    EXPECT_EQ(s->d_model() / s->n_heads(), 128u) << s->DebugString();
    EXPECT_LT(std::abs(std::log(ShapeParams(*s, m) / n)), std::log(1.15));
  }
}

TEST(ShapeForParams, IsMonotoneInTheTarget) {
  const v1::ModelSpec m = Model(512, 64);
  double last_n = 0;
  uint32_t last_d = 0;
  for (double n = 15e3; n < 5e7; n *= 1.07) {
    auto s = ShapeForParams(n, v1::ShapeRule(), m);
    ASSERT_TRUE(s.ok()) << s.status();
    const double got = ShapeParams(*s, m);
    ASSERT_GE(s->d_model(), last_d) << "target " << n;
    ASSERT_GE(got, last_n) << "target " << n;
    last_d = s->d_model();
    last_n = got;
  }
}

TEST(ShapeForParams, RefusesTargetsOutsideTheRulesWidths) {
  const v1::ModelSpec m = Model(512, 64);
  auto s = ShapeForParams(1e3, v1::ShapeRule(), m);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("N target 1000"));
  EXPECT_THAT(s.status().message(), HasSubstr("more than 2x off"));
  v1::ShapeRule narrow;
  narrow.set_max_d_model(64);
  EXPECT_FALSE(ShapeForParams(1e7, narrow, m).ok());
  EXPECT_FALSE(ShapeForParams(-5, v1::ShapeRule(), m).ok());
  EXPECT_FALSE(ShapeForParams(std::nan(""), v1::ShapeRule(), m).ok());
}

TEST(ShapeForParams, HonoursAFixedWidthStep) {
  v1::ShapeRule r;
  r.set_d_model_step(128);
  r.set_min_d_model(512);
  r.set_max_d_model(4096);
  auto s = ShapeForParams(3e8, r, Model(32000, 2048));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->d_model() % 128, 0u);
}

TEST(ValidateShapeRule, RefusalsNameFieldValueAndRule) {
  struct Case {
    void (*edit)(v1::ShapeRule&);
    const char* message;
  };
  const std::vector<Case> cases = {
      {[](v1::ShapeRule& r) { r.set_layers_base(-1); },
       "grid.shape_rule.layers_base = -1: must be >= 0.001"},
      {[](v1::ShapeRule& r) { r.set_layers_log2_slope(-2); },
       "grid.shape_rule.layers_log2_slope = -2: must be >= 0"},
      {[](v1::ShapeRule& r) { r.set_ffn_ratio(100); },
       "grid.shape_rule.ffn_ratio = 100: must be <= 16"},
      {[](v1::ShapeRule& r) {
         r.set_min_layers(5);
         r.set_max_layers(2);
       },
       "grid.shape_rule.min_layers = 5: must be <= max_layers = 2"},
      {[](v1::ShapeRule& r) { r.set_max_d_model(70000); },
       "grid.shape_rule.max_d_model = 70000: must be <= 65536"},
      {[](v1::ShapeRule& r) {
         r.set_min_d_model(100);
         r.set_max_d_model(120);
         r.set_d_model_step(128);
       },
       "grid.shape_rule.d_model_step = 128: leaves no width in [min_d_model, "
       "max_d_model] = [100, 120]"},
  };
  for (const Case& c : cases) {
    v1::ShapeRule r;
    c.edit(r);
    absl::Status s = ValidateShapeRule(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), c.message);
  }
  EXPECT_TRUE(ValidateShapeRule(v1::ShapeRule()).ok());
}

}  // namespace
}  // namespace isoflop::coordinator
