#include <cmath>
#include <functional>
#include <ostream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/fake_clock.h"
#include "coordinator/service/core.h"
#include "coordinator/store/sqlite_trial_store.h"
#include "coordinator/sweep/expand.h"
#include "coordinator/sweep/validate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sqlite3.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::FreshDir;
using ::isoflop::coordinator::testing::SmallConfig;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct BadConfig {
  std::string label;
  std::function<void(v1::SweepConfig&)> mutate;
  std::string expected;  // the error message starts with this
};

std::vector<BadConfig> BadConfigs() {
  return {
      {"negative budget",
       [](auto& c) { c.mutable_grid()->set_flops_budgets(1, -1); },
       "grid.flops_budgets[1] = -1: must be > 0"},
      {"nan budget",
       [](auto& c) { c.mutable_grid()->set_flops_budgets(0, std::nan("")); },
       "grid.flops_budgets[0] = nan: must be > 0"},
      {"no budgets", [](auto& c) { c.mutable_grid()->clear_flops_budgets(); },
       "grid.flops_budgets = []: must list at least one budget"},
      {"no shapes", [](auto& c) { c.mutable_grid()->clear_model_shapes(); },
       "grid.model_shapes = []: must list at least one shape"},
      {"heads not dividing d_model",
       [](auto& c) {
         c.mutable_grid()->mutable_model_shapes(0)->set_d_model(64);
         c.mutable_grid()->mutable_model_shapes(0)->set_n_heads(5);
       },
       "grid.model_shapes[0].n_heads = 5: must divide d_model = 64"},
      {"zero layers",
       [](auto& c) {
         c.mutable_grid()->mutable_model_shapes(2)->set_n_layers(0);
       },
       "grid.model_shapes[2].n_layers = 0: must be >= 1"},
      {"zero d_model",
       [](auto& c) {
         c.mutable_grid()->mutable_model_shapes(1)->set_d_model(0);
       },
       "grid.model_shapes[1].d_model = 0: must be >= 1"},
      {"zero heads",
       [](auto& c) {
         c.mutable_grid()->mutable_model_shapes(1)->set_n_heads(0);
       },
       "grid.model_shapes[1].n_heads = 0: must be >= 1"},
      {"budget below one step",
       [](auto& c) { c.mutable_grid()->set_flops_budgets(0, 1e8); },
       "grid.flops_budgets[0] = 1e+08: too small for one optimizer step of "
       "grid.model_shapes[0] (d_model 32, n_layers 2): must be >= 3.0199e+08 "
       "FLOPs"},
      // Found by fuzz/config_fuzz: the step count overflowed int64 (UB).
      {"budget of absurd size",
       [](auto& c) { c.mutable_grid()->set_flops_budgets(0, 3e32); },
       "grid.flops_budgets[0] = 3e+32: buys "},
      {"too many budgets",
       [](auto& c) {
         for (int i = 0; i < 100; ++i)
           c.mutable_grid()->add_flops_budgets(1e12);
       },
       "grid.flops_budgets = 102 budgets: must list at most 100"},
      {"missing name", [](auto& c) { c.clear_name(); },
       "name = \"\": must be 1 to 128 characters"},
      {"missing dataset", [](auto& c) { c.mutable_data()->clear_dataset(); },
       "data.dataset = \"\": must name a dataset"},
      {"dataset path", [](auto& c) { c.mutable_data()->set_dataset("../etc"); },
       "data.dataset = \"../etc\": must be a plain name"},
      {"missing vocab", [](auto& c) { c.mutable_model()->clear_vocab_size(); },
       "model.vocab_size = 0: must be set"},
      {"vocab of one", [](auto& c) { c.mutable_model()->set_vocab_size(1); },
       "model.vocab_size = 1: must be >= 2"},
      {"missing context", [](auto& c) { c.mutable_model()->clear_context(); },
       "model.context = 0: must be set"},
      {"zero lr", [](auto& c) { c.mutable_training()->set_lr(0); },
       "training.lr = 0: must be in (0, 1)"},
      {"huge lr", [](auto& c) { c.mutable_training()->set_lr(3); },
       "training.lr = 3: must be in (0, 1)"},
      {"warmup fraction",
       [](auto& c) { c.mutable_training()->set_warmup_fraction(0.7); },
       "training.warmup_fraction = 0.7: must be in [0, 0.5]"},
      {"min lr fraction",
       [](auto& c) { c.mutable_training()->set_min_lr_fraction(-0.1); },
       "training.min_lr_fraction = -0.1: must be in [0, 1]"},
      {"zero batch",
       [](auto& c) { c.mutable_training()->set_batch_sequences(0); },
       "training.batch_sequences = 0: must be >= 1"},
      {"beta2 one", [](auto& c) { c.mutable_training()->set_beta2(1); },
       "training.beta2 = 1: must be in (0, 1)"},
      {"bf16 on cpu",
       [](auto& c) { c.mutable_training()->set_precision(v1::BF16); },
       "training.precision = BF16: needs resources.gpus_per_trial >= 1"},
      {"too many cpu ranks",
       [](auto& c) { c.mutable_resources()->set_cpu_ranks_per_trial(65); },
       "resources.cpu_ranks_per_trial = 65: must be <= 64"},
      {"cpu ranks on a gpu trial",
       [](auto& c) {
         c.mutable_resources()->set_gpus_per_trial(1);
         c.mutable_resources()->set_cpu_ranks_per_trial(2);
       },
       "resources.cpu_ranks_per_trial = 2: must be 0 for a GPU trial"},
      {"priority too high",
       [](auto& c) { c.mutable_scheduling()->set_priority(101); },
       "scheduling.priority = 101: must be <= 100"},
      {"priority too low",
       [](auto& c) { c.mutable_scheduling()->set_priority(-101); },
       "scheduling.priority = -101: must be >= -100"},
      {"max_concurrent_trials over any sweep's size",
       [](auto& c) {
         c.mutable_scheduling()->set_max_concurrent_trials(10001);
       },
       "scheduling.max_concurrent_trials = 10001: must be <= 10000"},
      // Issue 21: shape rules, hyperparameter rules, WSD and µP.
      {"shapes and targets both",
       [](auto& c) { c.mutable_grid()->add_n_targets(5e4); },
       "grid.n_targets = 1 values: give the shapes by one of "
       "grid.model_shapes, grid.n_targets or grid.d_models, not several"},
      {"negative n target",
       [](auto& c) {
         c.mutable_grid()->clear_model_shapes();
         c.mutable_grid()->add_n_targets(-3);
       },
       "grid.n_targets[0] = -3: must be > 0"},
      {"duplicate d_model",
       [](auto& c) {
         c.mutable_grid()->clear_model_shapes();
         c.mutable_grid()->add_d_models(32);
         c.mutable_grid()->add_d_models(32);
       },
       "grid.d_models[1] = 32: duplicates grid.d_models[0]"},
      {"bad shape rule",
       [](auto& c) {
         c.mutable_grid()->clear_model_shapes();
         c.mutable_grid()->add_n_targets(5e4);
         c.mutable_grid()->mutable_shape_rule()->set_ffn_ratio(-1);
       },
       "grid.shape_rule.ffn_ratio = -1: must be >= 0.015625"},
      {"lr and lr rule",
       [](auto& c) {
         c.mutable_training()->mutable_lr_rule()->set_constant(0.1);
       },
       "training.lr = 0.01: must be 0 (unset) when training.lr_rule gives it"},
      {"batch rule without an alternative",
       [](auto& c) {
         c.mutable_training()->clear_batch_sequences();
         c.mutable_training()->mutable_batch_tokens_rule();
       },
       "training.batch_tokens_rule = {}: must set one of constant, power_law "
       "or preset"},
      {"deepseek beta2",
       [](auto& c) {
         c.mutable_training()->mutable_beta2_rule()->set_preset(
             v1::DEEPSEEK2024);
       },
       "training.beta2_rule.preset = DEEPSEEK2024: deepseek2024 has no beta2 "
       "rule"},
      {"unknown preset",
       [](auto& c) {
         c.mutable_training()->set_hparam_preset(
             static_cast<v1::HparamPreset>(8));
       },
       "training.hparam_preset = 8: unknown value"},
      {"cooldown with cosine",
       [](auto& c) { c.mutable_training()->set_cooldown_fraction(0.2); },
       "training.cooldown_fraction = 0.2: is used only by schedules WSD and "
       "WSD_BRANCHED"},
      {"adaptive grid with trunks and branches",
       [](auto& c) {
         c.mutable_grid()->mutable_adaptive()->set_shapes_per_budget(5);
         c.mutable_training()->set_schedule(v1::WSD_BRANCHED);
       },
       "training.schedule = WSD_BRANCHED: cannot be combined with "
       "grid.adaptive"},
      {"cooldown over one",
       [](auto& c) {
         c.mutable_training()->set_schedule(v1::WSD);
         c.mutable_training()->set_cooldown_fraction(1.5);
       },
       "training.cooldown_fraction = 1.5: must be in (0, 1]"},
      {"mup base width",
       [](auto& c) { c.mutable_training()->set_mup_base_width(70000); },
       "training.mup_base_width = 70000: must be <= 65536"},
      {"zero stage", [](auto& c) { c.mutable_training()->set_zero_stage(2); },
       "training.zero_stage = 2: must be <= 1"},
  };
}

// Hostile or careless configs (issue 18, defect 11), each with its whole
// message.
std::vector<BadConfig> HostileConfigs() {
  constexpr char kText[] =
      ": must be printable UTF-8 (no control characters, escape sequences or "
      "NUL)";
  return {
      {"duplicate budget",
       [](auto& c) { c.mutable_grid()->add_flops_budgets(1e11); },
       "grid.flops_budgets[2] = 1e+11: duplicates grid.flops_budgets[0]: each "
       "budget must be listed once"},
      {"duplicate shape",
       [](auto& c) {
         *c.mutable_grid()->add_model_shapes() = c.grid().model_shapes(1);
       },
       "grid.model_shapes[3] = {d_model: 48 n_layers: 2 n_heads: 4 d_ff: "
       "192}: duplicates grid.model_shapes[1]: each shape must be listed "
       "once"},
      {"duplicate shape spelling out the default d_ff",
       [](auto& c) {
         v1::ModelShape* s = c.mutable_grid()->add_model_shapes();
         *s = c.grid().model_shapes(0);
         s->set_d_ff(4 * s->d_model());
       },
       "grid.model_shapes[3] = {d_model: 32 n_layers: 2 n_heads: 2 d_ff: "
       "128}: duplicates grid.model_shapes[0]: each shape must be listed "
       "once"},
      {"unknown family",
       [](auto& c) {
         c.mutable_model()->set_family(static_cast<v1::ModelFamily>(99));
       },
       "model.family = 99: unknown value: must be GPT_RMSNORM (1), or unset"},
      {"unknown schedule",
       [](auto& c) {
         c.mutable_training()->set_schedule(static_cast<v1::LrSchedule>(7));
       },
       "training.schedule = 7: unknown value: must be COSINE (1), WSD (2) or "
       "WSD_BRANCHED (3), or unset"},
      {"unknown precision",
       [](auto& c) {
         c.mutable_training()->set_precision(static_cast<v1::Precision>(5));
       },
       "training.precision = 5: unknown value: must be FP32 (1) or BF16 (2), "
       "or unset"},
      {"escape sequence in the name",
       [](auto& c) { c.set_name("run\x1b[31mred"); },
       absl::StrCat("name = \"run\\x1B[31mred\": byte 4 is 0x1B, a control "
                    "character",
                    kText)},
      {"NUL in the name", [](auto& c) { c.set_name(std::string("a\0b", 3)); },
       absl::StrCat("name = \"a\\x00b\": byte 2 is 0x00, a control character",
                    kText)},
      {"newline in the name", [](auto& c) { c.set_name("a\nb"); },
       absl::StrCat("name = \"a\\x0Ab\": byte 2 is 0x0A, a control character",
                    kText)},
      {"C1 control in the name", [](auto& c) { c.set_name("a\u009bb"); },
       absl::StrCat("name = \"a\\xC2\\x9Bb\": byte 2 starts U+009B, a "
                    "control character",
                    kText)},
      {"right-to-left override in the name",
       [](auto& c) { c.set_name("a\u202eb"); },
       absl::StrCat("name = \"a\\xE2\\x80\\xAEb\": byte 2 starts U+202E, a "
                    "control character",
                    kText)},
      {"name not UTF-8", [](auto& c) { c.set_name("caf\xe9"); },
       absl::StrCat("name = \"caf\\xE9\": byte 4 (0xE9) is not UTF-8", kText)},
      {"overlong UTF-8 in the name",
       [](auto& c) {
         c.set_name(
             "a\xc0\xaf"
             "b");
       },
       absl::StrCat("name = \"a\\xC0\\xAFb\": byte 2 (0xC0) is not UTF-8",
                    kText)},
      {"tab in the dataset",
       [](auto& c) { c.mutable_data()->set_dataset("kjv\tx"); },
       absl::StrCat("data.dataset = \"kjv\\x09x\": byte 4 is 0x09, a "
                    "control character",
                    kText)},
      {"more trials than the cap",
       [](auto& c) {
         for (int i = 0; i < 98; ++i) {
           c.mutable_grid()->add_flops_budgets(1e12 + i);
         }
         for (int i = 0; i < 98; ++i) {
           v1::ModelShape* s = c.mutable_grid()->add_model_shapes();
           s->set_d_model(64 + 8 * i);
           s->set_n_layers(2);
           s->set_n_heads(1);
         }
       },
       "grid = 100 budgets x 101 shapes = 10100 trials: a sweep must have at "
       "most 10000 trials"},
  };
}

TEST(ExpandSweep, RefusesEachHostileConfigWithItsExactMessage) {
  for (const BadConfig& bad : HostileConfigs()) {
    SCOPED_TRACE(bad.label);
    v1::SweepConfig config = SmallConfig();
    bad.mutate(config);
    absl::StatusOr<ExpandedSweep> expanded = ExpandSweep(config);
    ASSERT_FALSE(expanded.ok());
    EXPECT_EQ(expanded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(expanded.status().message(), bad.expected);
  }
}

TEST(ExpandSweep, AcceptsAVocabularyPastUint16) {
  // uint32 token files (docs/data-format.md): 100,000 pieces are allowed.
  v1::SweepConfig config = SmallConfig();
  config.mutable_model()->set_vocab_size(100000);
  EXPECT_TRUE(ExpandSweep(config).ok()) << ExpandSweep(config).status();
}

TEST(ExpandSweep, AcceptsPrintableUnicodeNames) {
  v1::SweepConfig config = SmallConfig();
  config.set_name("Chinchilla réplica — 小 \"x\"");
  EXPECT_TRUE(ExpandSweep(config).ok());
}

TEST(ExpandSweep, RefusesEachBadConfigNamingFieldValueAndRule) {
  for (const BadConfig& bad : BadConfigs()) {
    SCOPED_TRACE(bad.label);
    v1::SweepConfig config = SmallConfig();
    bad.mutate(config);
    absl::StatusOr<ExpandedSweep> expanded = ExpandSweep(config);
    ASSERT_FALSE(expanded.ok());
    EXPECT_EQ(expanded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(expanded.status().message()),
                StartsWith(bad.expected));
  }
}

int64_t CountRows(const std::string& db_path, const std::string& table) {
  sqlite3* db = nullptr;
  EXPECT_EQ(
      sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
      SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, ("SELECT count(*) FROM " + table).c_str(), -1, &stmt,
                     nullptr);
  int64_t n = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) n = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return n;
}

TEST(CoreSubmit, RefusedSweepWritesNothingToSqlite) {
  const std::string path = FreshDir() + "/isoflop.db";
  auto store = SqliteTrialStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  FakeClock clock;
  Core core(store->get(), &clock, {});
  for (const BadConfig& bad : BadConfigs()) {
    SCOPED_TRACE(bad.label);
    v1::SubmitSweepRequest request;
    *request.mutable_config() = SmallConfig();
    bad.mutate(*request.mutable_config());
    absl::StatusOr<v1::SubmitSweepResponse> response = core.Submit(request);
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(response.status().message()),
                HasSubstr(bad.expected));
  }
  EXPECT_EQ(CountRows(path, "sweeps"), 0);
  EXPECT_EQ(CountRows(path, "trials"), 0);
  EXPECT_EQ(core.ListSweeps().sweeps_size(), 0);
}

TEST(ExpandSweep, CrossesEveryBudgetWithEveryShapeBudgetMajor) {
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(SmallConfig());
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->trials.size(), 6u);
  EXPECT_EQ(e->trials[0].flops_budget(), 1e11);
  EXPECT_EQ(e->trials[2].flops_budget(), 1e11);
  EXPECT_EQ(e->trials[3].flops_budget(), 3e11);
  EXPECT_EQ(e->trials[1].shape().d_model(), 48u);
  EXPECT_EQ(e->trials[4].shape().d_model(), 48u);
}

TEST(ExpandSweep, TokensAreWholeStepsOfTheBudget) {
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(SmallConfig());
  ASSERT_TRUE(e.ok()) << e.status();
  const v1::TrialSpec& t = e->trials[0];  // d 32, L 2, d_ff 128, V 512, T 64
  // N_matmul = 2 (4 32^2 + 2 32 128) + 32 512 = 40960
  EXPECT_EQ(t.n_matmul(), 40960u);
  // N_total = 40960 + (512 + 64) 32 + (2 2 + 1) 32 = 59552
  EXPECT_EQ(t.n_total(), 59552u);
  // FLOPs/token = 6 40960 + 12 2 32 64 = 294912
  EXPECT_EQ(t.flops_per_token(), 294912.0);
  EXPECT_EQ(t.steps(), 331u);  // floor(1e11 / (294912 * 1024)) = floor(331.14)
  EXPECT_EQ(t.tokens(), 331u * 1024u);
  for (const v1::TrialSpec& s : e->trials) {
    SCOPED_TRACE(s.trial_id());
    EXPECT_EQ(s.tokens(), s.steps() * 16 * 64);
    EXPECT_LE(static_cast<double>(s.tokens()) * s.flops_per_token(),
              s.flops_budget());
    EXPECT_GT(static_cast<double>(s.tokens() + 1024) * s.flops_per_token(),
              s.flops_budget());
  }
}

TEST(ExpandSweep, AppliesDefaults) {
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(SmallConfig());
  ASSERT_TRUE(e.ok()) << e.status();
  const v1::TrialSpec& t = e->trials[1];
  EXPECT_EQ(t.shape().d_ff(), 4u * 48u);
  EXPECT_EQ(t.training().eval_batches(), 8u);
  EXPECT_EQ(t.training().beta2(), 0.95);
  EXPECT_EQ(t.training().min_lr_fraction(), 0.1);  // as given
  EXPECT_EQ(t.training().precision(), v1::FP32);   // gpus_per_trial 0
  EXPECT_EQ(t.training().schedule(), v1::COSINE);
  EXPECT_EQ(t.threads(), 1u);
  EXPECT_EQ(t.gpus(), 0u);
  EXPECT_EQ(t.model().family(), v1::GPT_RMSNORM);
  EXPECT_EQ(e->resolved.resources().max_attempts(), 2u);  // as given
  v1::SweepConfig no_attempts = SmallConfig();
  no_attempts.mutable_resources()->clear_max_attempts();
  EXPECT_EQ(ResolveDefaults(no_attempts).resources().max_attempts(), 3u);
}

// One row per value a sweep config may leave out: expansion writes the
// resolved value into every trial (and the resolved config), and a value
// given explicitly is kept. The worker and the trainer apply no defaults
// (worker/trial_command.h), so this table is the one place they are set.
struct ResolvedField {
  std::string label;
  std::function<void(v1::SweepConfig&)> mutate;
  // The value as resolved, per trial (or from the resolved config).
  std::function<std::string(const ExpandedSweep&, const v1::TrialSpec&)> get;
  std::string want;
};

void PrintTo(const ResolvedField& c, std::ostream* os) { *os << c.label; }

class ExpandSweepResolves : public ::testing::TestWithParam<ResolvedField> {};

TEST_P(ExpandSweepResolves, EveryTrial) {
  v1::SweepConfig c = SmallConfig();
  GetParam().mutate(c);
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->trials.size(), 6u);
  for (const v1::TrialSpec& t : e->trials) {
    EXPECT_EQ(GetParam().get(*e, t), GetParam().want) << t.trial_id();
  }
}

INSTANTIATE_TEST_SUITE_P(
    ExpandSweep, ExpandSweepResolves,
    ::testing::Values(
        ResolvedField{"family_unset", [](v1::SweepConfig&) {},
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        return v1::ModelFamily_Name(t.model().family());
                      },
                      "GPT_RMSNORM"},
        ResolvedField{"d_ff_unset", [](v1::SweepConfig&) {},
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        // d_model 32, 48, 64 over the shapes
                        return absl::StrCat(t.shape().d_ff() ==
                                            4 * t.shape().d_model());
                      },
                      "1"},
        ResolvedField{"d_ff_given",
                      [](v1::SweepConfig& c) {
                        for (v1::ModelShape& s :
                             *c.mutable_grid()->mutable_model_shapes())
                          s.set_d_ff(100);
                      },
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        return absl::StrCat(t.shape().d_ff());
                      },
                      "100"},
        ResolvedField{"schedule_unset", [](v1::SweepConfig&) {},
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        return v1::LrSchedule_Name(t.training().schedule());
                      },
                      "COSINE"},
        ResolvedField{"eval_batches_unset", [](v1::SweepConfig&) {},
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        return absl::StrCat(t.training().eval_batches());
                      },
                      "8"},
        ResolvedField{"eval_batches_given",
                      [](v1::SweepConfig& c) {
                        c.mutable_training()->set_eval_batches(3);
                      },
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        return absl::StrCat(t.training().eval_batches());
                      },
                      "3"},
        ResolvedField{"beta2_unset", [](v1::SweepConfig&) {},
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        return absl::StrCat(t.training().beta2());
                      },
                      "0.95"},
        ResolvedField{
            "beta2_given",
            [](v1::SweepConfig& c) { c.mutable_training()->set_beta2(0.9); },
            [](const ExpandedSweep&, const v1::TrialSpec& t) {
              return absl::StrCat(t.training().beta2());
            },
            "0.9"},
        ResolvedField{"precision_unset_cpu", [](v1::SweepConfig&) {},
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        return v1::Precision_Name(t.training().precision());
                      },
                      "FP32"},
        ResolvedField{"precision_unset_gpu",
                      [](v1::SweepConfig& c) {
                        c.mutable_resources()->set_gpus_per_trial(1);
                      },
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        return v1::Precision_Name(t.training().precision());
                      },
                      "BF16"},
        ResolvedField{"precision_given_gpu",
                      [](v1::SweepConfig& c) {
                        c.mutable_resources()->set_gpus_per_trial(1);
                        c.mutable_training()->set_precision(v1::FP32);
                      },
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        return v1::Precision_Name(t.training().precision());
                      },
                      "FP32"},
        ResolvedField{"threads_unset", [](v1::SweepConfig&) {},
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        return absl::StrCat(t.threads());
                      },
                      "1"},
        ResolvedField{"threads_given",
                      [](v1::SweepConfig& c) {
                        c.mutable_resources()->set_threads_per_trial(4);
                      },
                      [](const ExpandedSweep&, const v1::TrialSpec& t) {
                        return absl::StrCat(t.threads());
                      },
                      "4"},
        ResolvedField{"max_attempts_unset",
                      [](v1::SweepConfig& c) {
                        c.mutable_resources()->clear_max_attempts();
                      },
                      [](const ExpandedSweep& e, const v1::TrialSpec&) {
                        return absl::StrCat(
                            e.resolved.resources().max_attempts());
                      },
                      "3"},
        ResolvedField{"max_attempts_given", [](v1::SweepConfig&) {},
                      [](const ExpandedSweep& e, const v1::TrialSpec&) {
                        return absl::StrCat(
                            e.resolved.resources().max_attempts());
                      },
                      "2"}),
    [](const ::testing::TestParamInfo<ResolvedField>& info) {
      return info.param.label;
    });

TEST(ExpandSweep, GpuTrialsDefaultToBf16) {
  v1::SweepConfig c = SmallConfig();
  c.mutable_resources()->set_gpus_per_trial(1);
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->trials[0].training().precision(), v1::BF16);
  EXPECT_EQ(e->trials[0].gpus(), 1u);
}

TEST(ExpandSweep, IdsAreDeterministicAndDistinct) {
  absl::StatusOr<ExpandedSweep> a = ExpandSweep(SmallConfig());
  absl::StatusOr<ExpandedSweep> b = ExpandSweep(SmallConfig());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_THAT(a->sweep_id, StartsWith("sw-"));
  EXPECT_EQ(a->sweep_id, b->sweep_id);
  std::set<std::string> ids;
  for (size_t i = 0; i < a->trials.size(); ++i) {
    EXPECT_EQ(a->trials[i].trial_id(), b->trials[i].trial_id());
    EXPECT_THAT(a->trials[i].trial_id(), StartsWith("tr-"));
    ids.insert(a->trials[i].trial_id());
  }
  EXPECT_EQ(ids.size(), a->trials.size());
  v1::SweepConfig other = SmallConfig();
  other.mutable_training()->set_seed(7);
  EXPECT_NE(ExpandSweep(other)->sweep_id, a->sweep_id);
}

TEST(ExpandSweep, ExplicitDefaultsGiveTheSameSweepId) {
  v1::SweepConfig explicit_defaults = SmallConfig();
  explicit_defaults.mutable_training()->set_beta2(0.95);
  explicit_defaults.mutable_training()->set_eval_batches(8);
  explicit_defaults.mutable_grid()->mutable_model_shapes(0)->set_d_ff(128);
  EXPECT_EQ(ExpandSweep(explicit_defaults)->sweep_id,
            ExpandSweep(SmallConfig())->sweep_id);
}

TEST(ExpandSweep, SchedulingIsNotPartOfTheSweepId) {
  v1::SweepConfig scheduled = SmallConfig();
  scheduled.mutable_scheduling()->set_priority(-100);
  scheduled.mutable_scheduling()->set_max_concurrent_trials(10000);
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(scheduled);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->sweep_id, ExpandSweep(SmallConfig())->sweep_id);
  EXPECT_EQ(e->resolved.scheduling().priority(), -100);
  EXPECT_EQ(e->resolved.scheduling().max_concurrent_trials(), 10000u);
}

}  // namespace
}  // namespace isoflop::coordinator
