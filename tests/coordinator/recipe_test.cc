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

// ------------------------------------------------------------ hyperparameters

TEST(ResolveTrialHparams, Deepseek2024ReproducesThePublishedRule) {
  // DeepSeek LLM 2024: eta_opt = 0.3118 C^-0.125, B_opt = 0.2920 C^0.3271.
  v1::Training t;
  t.mutable_lr_rule()->set_preset(v1::DEEPSEEK2024);
  t.mutable_batch_tokens_rule()->set_preset(v1::DEEPSEEK2024);
  t.set_beta2(0.95);
  auto hp = ResolveTrialHparams(t, 64, 1e6, 1e17);
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_NEAR(hp->lr, 0.00233817, 1e-8);  // 0.3118 * 1e17^-0.125
  EXPECT_EQ(hp->batch_sequences, 1659u);  // 106189.8 tokens / 64
  EXPECT_EQ(hp->beta2, 0.95);             // no rule: the fixed value
  ASSERT_EQ(hp->reasons.size(), 2u);
  EXPECT_EQ(hp->reasons[0],
            "lr: deepseek2024 0.3118*C^-0.125 = 0.00233817 at C=1e+17");
  EXPECT_EQ(hp->reasons[1],
            "batch: deepseek2024 0.292*C^0.3271 = 106190 at C=1e+17 tokens "
            "-> 1659 sequences of 64");
}

TEST(ResolveTrialHparams, Porian2024ReproducesOlmoCoresRule) {
  // At N = 108M: lr 0.0047, batch 2048 x 160 tokens, beta2 0.99 (batch
  // below 524288 tokens), warm-up N tokens.
  v1::Training t;
  t.set_hparam_preset(v1::PORIAN2024);
  t = ExpandHparamPreset(t);
  auto hp = ResolveTrialHparams(t, 2048, 108e6, 1e18);
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_NEAR(hp->lr, 0.0047, 1e-12);
  EXPECT_EQ(hp->batch_sequences, 160u);
  EXPECT_EQ(hp->beta2, 0.99);
  ASSERT_TRUE(ResolveTrialWarmup(t, 108e6, 1e18, 2.16e9, *hp).ok());
  EXPECT_NEAR(hp->warmup_fraction, 0.05, 1e-12);  // 108e6 of 2.16e9 tokens
  // 8x the parameters: lr / 2, batch x 4 (1310720 tokens), beta2 0.95.
  hp = ResolveTrialHparams(t, 2048, 864e6, 1e20);
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_NEAR(hp->lr, 0.00235, 1e-12);
  EXPECT_EQ(hp->batch_sequences, 640u);
  EXPECT_EQ(hp->beta2, 0.95);
}

TEST(ResolveTrialHparams, PowerLawOfNWithReferenceAndClamps) {
  v1::Training t;
  v1::HparamPowerLaw& p = *t.mutable_lr_rule()->mutable_power_law();
  p.set_coefficient(0.1);
  p.set_exponent(-0.5);
  p.set_of(v1::HPARAM_OF_N);
  p.set_reference(1e6);
  p.set_max(0.05);
  t.set_batch_sequences(8);
  auto hp = ResolveTrialHparams(t, 64, 16e6, 1e15);
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_NEAR(hp->lr, 0.025, 1e-12);  // 0.1 * 16^-0.5
  EXPECT_EQ(hp->reasons[0], "lr: 0.1*(N/1e+06)^-0.5 = 0.025 at N=1.6e+07");
  hp = ResolveTrialHparams(t, 64, 1e6, 1e15);
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->lr, 0.05);
  EXPECT_EQ(hp->reasons[0],
            "lr: 0.1*(N/1e+06)^-0.5 = 0.1 at N=1e+06, clamped to 0.05");
}

TEST(ResolveTrialHparams, PowerLawOfCAndConstants) {
  v1::Training t;
  v1::HparamPowerLaw& p = *t.mutable_batch_tokens_rule()->mutable_power_law();
  p.set_coefficient(2);
  p.set_exponent(0.5);
  p.set_of(v1::HPARAM_OF_C);
  p.set_min(64);
  t.mutable_lr_rule()->set_constant(0.003);
  t.mutable_beta2_rule()->set_constant(0.98);
  auto hp = ResolveTrialHparams(t, 64, 1e5, 1e10);  // 2 * 1e5 tokens
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->lr, 0.003);
  EXPECT_EQ(hp->batch_sequences, 3125u);
  EXPECT_EQ(hp->beta2, 0.98);
  EXPECT_EQ(hp->reasons[0], "lr: constant 0.003");
  hp = ResolveTrialHparams(t, 64, 1e5, 1);  // 2 tokens, clamped to 64
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->batch_sequences, 1u);
}

TEST(ResolveTrialHparams, RefusesAValueOutOfRangeNamingTheRule) {
  v1::Training t;
  v1::HparamPowerLaw& p = *t.mutable_lr_rule()->mutable_power_law();
  p.set_coefficient(2);
  p.set_exponent(0.1);
  p.set_of(v1::HPARAM_OF_C);
  t.set_batch_sequences(8);
  auto hp = ResolveTrialHparams(t, 64, 1e5, 1e10);
  ASSERT_FALSE(hp.ok());
  EXPECT_EQ(hp.status().message(),
            "training.lr_rule = 2*C^0.1 = 20 at C=1e+10: for the trial of N = "
            "100000 at C = 1e+10: must give lr in (0, 1) (a power law can "
            "clamp it with min and max)");
  v1::Training big;
  big.set_lr(0.01);
  big.mutable_batch_tokens_rule()->set_constant(1e9);
  hp = ResolveTrialHparams(big, 64, 1e5, 1e10);
  ASSERT_FALSE(hp.ok());
  EXPECT_THAT(hp.status().message(),
              HasSubstr("gives 1.5625e+07 sequences of 64 tokens: must be at "
                        "most 65536"));
}

TEST(ResolveTrialWarmup, CapsTheFractionAtOneHalf) {
  v1::Training t;
  t.mutable_warmup_tokens_rule()->set_constant(1e6);
  TrialHparams hp;
  ASSERT_TRUE(ResolveTrialWarmup(t, 1e5, 1e12, 4e6, hp).ok());
  EXPECT_EQ(hp.warmup_fraction, 0.25);
  ASSERT_TRUE(ResolveTrialWarmup(t, 1e5, 1e12, 1e6, hp).ok());
  EXPECT_EQ(hp.warmup_fraction, 0.5);
  EXPECT_THAT(hp.reasons.back(), HasSubstr("(capped at 0.5)"));
}

TEST(ExpandHparamPreset, FillsOnlyWhatNeitherAValueNorARuleGives) {
  v1::Training t;
  t.set_hparam_preset(v1::DEEPSEEK2024);
  t.set_lr(0.01);  // given: kept
  const v1::Training d = ExpandHparamPreset(t);
  EXPECT_FALSE(d.has_lr_rule());
  EXPECT_EQ(d.batch_tokens_rule().preset(), v1::DEEPSEEK2024);
  EXPECT_FALSE(d.has_warmup_tokens_rule());  // deepseek2024 has none
  EXPECT_FALSE(d.has_beta2_rule());
  EXPECT_EQ(d.hparam_preset(), v1::HPARAM_PRESET_UNSPECIFIED);
  v1::Training p;
  p.set_hparam_preset(v1::PORIAN2024);
  p.mutable_beta2_rule()->set_constant(0.9);  // its own rule: kept
  const v1::Training q = ExpandHparamPreset(p);
  EXPECT_EQ(q.lr_rule().preset(), v1::PORIAN2024);
  EXPECT_EQ(q.warmup_tokens_rule().preset(), v1::PORIAN2024);
  EXPECT_EQ(q.beta2_rule().constant(), 0.9);
}

TEST(ValidateHparamRule, RefusalsNameFieldValueAndRule) {
  struct Case {
    Hparam h;
    void (*edit)(v1::HparamRule&);
    const char* message;
  };
  const std::vector<Case> cases = {
      {Hparam::kLr, [](v1::HparamRule&) {},
       "f = {}: must set one of constant, power_law or preset"},
      {Hparam::kLr, [](v1::HparamRule& r) { r.set_constant(1.5); },
       "f.constant = 1.5: must be in (0, 1)"},
      {Hparam::kBatchTokens, [](v1::HparamRule& r) { r.set_constant(0); },
       "f.constant = 0: must be >= 1"},
      {Hparam::kBeta2,
       [](v1::HparamRule& r) { r.set_preset(v1::DEEPSEEK2024); },
       "f.preset = DEEPSEEK2024: deepseek2024 has no beta2 rule (it gives lr "
       "and batch_tokens)"},
      {Hparam::kLr,
       [](v1::HparamRule& r) {
         r.set_preset(static_cast<v1::HparamPreset>(9));
       },
       "f.preset = 9: must be PORIAN2024 (1) or DEEPSEEK2024 (2)"},
      {Hparam::kLr,
       [](v1::HparamRule& r) {
         r.mutable_power_law()->set_coefficient(0.1);
         r.mutable_power_law()->set_exponent(-0.3);
       },
       "f.power_law.of = 0: must be HPARAM_OF_N (1) or HPARAM_OF_C (2)"},
      {Hparam::kLr,
       [](v1::HparamRule& r) {
         r.mutable_power_law()->set_coefficient(0.1);
         r.mutable_power_law()->set_exponent(7);
       },
       "f.power_law.exponent = 7: must be <= 4"},
      {Hparam::kLr,
       [](v1::HparamRule& r) { r.mutable_power_law()->set_coefficient(-1); },
       "f.power_law.coefficient = -1: must be finite and > 0"},
      {Hparam::kLr,
       [](v1::HparamRule& r) {
         v1::HparamPowerLaw& p = *r.mutable_power_law();
         p.set_coefficient(0.1);
         p.set_of(v1::HPARAM_OF_N);
         p.set_min(0.01);
         p.set_max(0.001);
       },
       "f.power_law.min = 0.01: must be <= max = 0.001"},
  };
  for (const Case& c : cases) {
    v1::HparamRule r;
    c.edit(r);
    absl::Status s = ValidateHparamRule(r, c.h, "f");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(s.message(), c.message);
  }
  v1::HparamRule ok;
  ok.set_preset(v1::PORIAN2024);
  EXPECT_TRUE(ValidateHparamRule(ok, Hparam::kBeta2, "f").ok());
}

}  // namespace
}  // namespace isoflop::coordinator
