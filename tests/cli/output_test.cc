#include "cli/output.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::Sweep SampleSweep() {
  v1::Sweep sweep;
  sweep.set_id("sw-1");
  sweep.set_state(v1::SWEEP_RUNNING);
  sweep.mutable_config()->set_name("demo");
  (*sweep.mutable_trial_counts())["SUCCEEDED"] = 1;
  (*sweep.mutable_trial_counts())["PENDING"] = 2;
  v1::Trial* t = sweep.add_trials();
  t->mutable_spec()->set_trial_id("t-1");
  t->mutable_spec()->mutable_shape()->set_d_model(64);
  t->mutable_spec()->mutable_shape()->set_n_layers(2);
  t->mutable_spec()->set_steps(400);
  t->set_state(v1::RUNNING);
  t->set_step(120);
  t->set_train_loss(4.25);
  t->set_val_loss(std::numeric_limits<double>::quiet_NaN());
  return sweep;
}

TEST(FullPrecision, RoundTripsExactly) {
  for (double v : {0.33917, 1.0 / 3.0, 406.4, 5.76e23, 1e-300}) {
    EXPECT_EQ(std::stod(FullPrecision(v)), v);
  }
  EXPECT_EQ(FullPrecision(0.33917), "0.33917");
}

TEST(ToJson, SweepIsValidJsonWithProtoFieldNames) {
  nlohmann::json json = nlohmann::json::parse(ToJson(SampleSweep()));
  EXPECT_EQ(json["id"], "sw-1");
  EXPECT_EQ(json["state"], "SWEEP_RUNNING");
  EXPECT_EQ(json["trials"][0]["spec"]["trial_id"], "t-1");
  EXPECT_EQ(json["trials"][0]["val_loss"],
            "NaN");  // proto3 JSON spells non-finite as strings
}

TEST(ToJsonObject, NestsMessagesUnderKeys) {
  v1::Sweep sweep = SampleSweep();
  v1::OptimalResponse optimal;
  optimal.set_n_opt(1.5e6);
  nlohmann::json json = nlohmann::json::parse(
      ToJsonObject({{"sweep", &sweep}, {"optimal", &optimal}}));
  EXPECT_EQ(json["sweep"]["id"], "sw-1");
  EXPECT_EQ(json["optimal"]["n_opt"], 1.5e6);
}

TEST(SweepStatusText, ShowsCountsAndOneRowPerTrial) {
  std::string text = SweepStatusText(SampleSweep());
  EXPECT_THAT(text, HasSubstr("1/3 succeeded"));
  EXPECT_THAT(text, HasSubstr("t-1"));
  EXPECT_THAT(text, HasSubstr("d64/L2"));
  EXPECT_THAT(text, HasSubstr("120/400"));
  EXPECT_THAT(text, HasSubstr("scheduling: priority 0, max_concurrent_trials "
                              "unlimited\n"));
}

TEST(TrialCountsText, CountsEveryStateSoThePartsAddUp) {
  v1::Sweep sweep;
  (*sweep.mutable_trial_counts())["FAILED"] = 5;
  (*sweep.mutable_trial_counts())["CANCELLED"] = 1;
  EXPECT_EQ(TrialCountsText(sweep),
            "0/6 succeeded, 0 running, 0 pending, 5 failed, 1 cancelled");
  (*sweep.mutable_trial_counts())["CANCELLED"] = 0;
  EXPECT_THAT(TrialCountsText(sweep), Not(HasSubstr("cancelled")));
}

TEST(SweepStatusText, ShowsWhyAnAdaptiveGridAddedATrialAndItsWarnings) {
  EXPECT_THAT(SweepStatusText(SampleSweep()), Not(HasSubstr("REASON")));
  v1::Sweep sweep = SampleSweep();
  sweep.mutable_trials(0)->mutable_spec()->set_reason(
      "extend below edge minimum");
  sweep.add_design_warnings(
      "budget 1e+12 (grid.flops_budgets[2]): minimum "
      "still at the lower edge");
  const std::string text = SweepStatusText(sweep);
  EXPECT_THAT(text, HasSubstr("REASON"));
  EXPECT_THAT(text, HasSubstr("extend below edge minimum"));
  EXPECT_THAT(text, HasSubstr("warning: budget 1e+12 (grid.flops_budgets[2]): "
                              "minimum still at the lower edge\n"));
}

TEST(SweepStatusText, ShowsTheComputeBesideTheIndependentGridsAndRoles) {
  v1::Sweep sweep = SampleSweep();
  sweep.set_total_flops(4e15);
  sweep.set_independent_flops(1e16);
  *sweep.add_trials() = sweep.trials(0);
  sweep.mutable_trials(0)->mutable_spec()->set_role(v1::TRIAL_ROLE_TRUNK);
  sweep.mutable_trials(1)->mutable_spec()->set_role(v1::TRIAL_ROLE_BRANCH);
  sweep.mutable_trials(1)->mutable_spec()->set_start_step(320);
  const std::string text = SweepStatusText(sweep);
  EXPECT_THAT(text, HasSubstr("compute: 4e+15 FLOPs; as independent runs: "
                              "1e+16 FLOPs (40%)\n"));
  EXPECT_THAT(text, HasSubstr("d64/L2 trunk"));
  EXPECT_THAT(text, HasSubstr(" branch@320"));
}

TEST(SchedulingText, ShowsPriorityAndLimit) {
  v1::Scheduling s;
  s.set_priority(-3);
  s.set_max_concurrent_trials(2);
  EXPECT_EQ(SchedulingText(s), "priority -3, max_concurrent_trials 2");
}

TEST(TrialProgressLine, NamesShapeStateStepAndLoss) {
  std::string line = TrialProgressLine(SampleSweep().trials(0));
  EXPECT_THAT(line, HasSubstr("t-1 d64/L2"));
  EXPECT_THAT(line, HasSubstr("RUNNING"));
  EXPECT_THAT(line, HasSubstr("step 120/400 loss 4.25"));
}

TEST(FitText, PrintsParametersAtFullPrecision) {
  v1::ScalingLawFit fit;
  fit.set_e(1.8172);
  fit.set_a(482.01);
  fit.set_b(2085.43);
  fit.set_alpha(0.3478);
  fit.set_beta(0.36581234567891);
  std::string text = FitText(fit, /*digits=*/0);  // 0: full precision
  EXPECT_THAT(text, HasSubstr("alpha = 0.3478\n"));
  EXPECT_THAT(text, HasSubstr("beta  = 0.36581234567891\n"));
  EXPECT_THAT(text, HasSubstr("B     = 2085.43\n"));
}

TEST(FitText, NamesTheFlopConventionAndTheSensitivityLine) {
  v1::ScalingLawFit fit;
  fit.set_alpha(0.34);
  fit.set_beta(0.28);
  EXPECT_THAT(FitText(fit), HasSubstr("  C: C = 6 N D (FLOPs/token = 6 N)\n"));
  fit.mutable_flops()->set_name("exact");
  fit.mutable_flops()->set_description("C = D x FLOPs/token(N), measured");
  v1::ExponentSensitivity* a = fit.add_sensitivity();
  a->set_n_convention("n_total");
  a->set_flops_convention("exact");
  a->set_a(0.5123);
  v1::ExponentSensitivity* b = fit.add_sensitivity();
  b->set_n_convention("n_non_embedding");
  b->set_flops_convention("6ND");
  b->set_a(std::nan(""));
  b->set_reason("not available (no n_non_embedding)");
  const std::string text = FitText(fit);
  EXPECT_THAT(text, HasSubstr("  C: C = D x FLOPs/token(N), measured\n"));
  EXPECT_THAT(text, HasSubstr("Sensitivity of the N_opt exponent a: 0.512 (N "
                              "total, C exact); N non-embedding, C = 6ND: not "
                              "available (no n_non_embedding)\n"));
}

TEST(WorkersTable, OneRowPerWorkerWithStateAgeAndTrials) {
  v1::ListWorkersResponse list;
  v1::Worker* a = list.add_workers();
  a->set_worker_id("wk-a");
  a->mutable_resources()->set_hostname("gpu1");
  a->mutable_resources()->set_gpus(8);
  a->mutable_resources()->set_cpu_slots(2);
  a->set_state(v1::WORKER_DRAINING);
  a->set_draining(true);
  a->set_heartbeat_age_ms(1234);
  a->add_running_trial_ids("t-1");
  a->add_running_trial_ids("t-2");
  v1::Worker* b = list.add_workers();
  b->set_worker_id("wk-b");
  b->set_state(v1::WORKER_LOST);
  b->set_draining(true);
  b->set_heartbeat_age_ms(64000);
  v1::Worker* c = list.add_workers();
  c->set_worker_id("wk-c");
  c->set_state(v1::WORKER_LIVE);
  EXPECT_EQ(WorkersTable(list),
            "ID    HOST  GPUS  CPU_SLOTS  STATE           HEARTBEAT  TRIALS   "
            "DATASETS\n"
            "wk-a  gpu1  8     2          draining        1.2s ago   t-1,t-2  "
            "not reported\n"
            "wk-b  -     0     0          lost, draining  1m4s ago   -        "
            "not reported\n"
            "wk-c  -     0     0          live            just now   -        "
            "not reported\n");
}

TEST(RenderTable, PadsColumnsToTheWidestCell) {
  EXPECT_EQ(RenderTable({{"A", "B"}, {"long", "x"}}), "A     B\nlong  x\n");
}

// Issue 18, defect 11: `sweep list` printed a name's escape sequence raw.
TEST(SweepsTable, ShowsControlCharactersOfANameEscaped) {
  v1::ListSweepsResponse list;
  v1::Sweep* s = list.add_sweeps();
  s->set_id("sw-1");
  s->mutable_config()->set_name(std::string("a\x1b[2Jb\0\n\xffé", 11));
  const std::string table = SweepsTable(list);
  EXPECT_THAT(table, HasSubstr("a\\x1B[2Jb\\x00\\x0A\\xFFé  "));
  EXPECT_EQ(table.find('\x1b'), std::string::npos);
  EXPECT_EQ(table.find('\0'), std::string::npos);
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 2);  // two rows
}

TEST(SweepStatusText, ShowsControlCharactersOfANameEscaped) {
  v1::Sweep sweep;
  sweep.set_id("sw-1");
  sweep.mutable_config()->set_name("x\x1b]0;owned\x07");
  EXPECT_THAT(SweepStatusText(sweep),
              HasSubstr("sweep sw-1 (x\\x1B]0;owned\\x07): "));
}

// Issue 20: a sweep whose fit found no law never reads "alpha=0".
TEST(SweepsTable, AnUnfittedSweepSaysSoAndAFittedOneItsVerdict) {
  v1::ListSweepsResponse list;
  v1::Sweep* unfitted = list.add_sweeps();
  unfitted->set_id("sw-1");
  unfitted->mutable_fit()->set_message("not fitted: 3 points");
  v1::Sweep* fitted = list.add_sweeps();
  fitted->set_id("sw-2");
  fitted->mutable_fit()->set_alpha(0.3478);
  fitted->mutable_fit()->set_beta(0.3658);
  fitted->mutable_fit()->set_a(482);
  fitted->mutable_fit()->set_b(2085);
  fitted->mutable_fit()->mutable_verdict()->set_level("weak");
  const std::string table = SweepsTable(list);
  EXPECT_THAT(table, Not(HasSubstr("alpha=0 ")));
  EXPECT_THAT(table, HasSubstr("not fitted"));
  EXPECT_THAT(table, HasSubstr("alpha=0.348 beta=0.366 (weak)"));
}

TEST(FitText, ShowsTheVerdictFactorsTheBacktestAndFailedResamples) {
  v1::ScalingLawFit fit;
  fit.set_e(1.8172);
  fit.set_a(482.01);
  fit.set_b(2085.43);
  fit.set_alpha(0.3478);
  fit.set_beta(0.3658);
  (*fit.mutable_ci95())["A"].set_low(241);
  (*fit.mutable_ci95())["A"].set_high(964.02);
  (*fit.mutable_ci95())["alpha"].set_low(0.31);
  (*fit.mutable_ci95())["alpha"].set_high(0.37);
  fit.mutable_verdict()->set_level("weak");
  fit.mutable_verdict()->add_reasons("2 IsoFLOP budget(s) ...");
  fit.mutable_backtest()->set_holdout_flops(1e21);
  fit.mutable_backtest()->set_train_max_flops(1e20);
  fit.mutable_backtest()->set_train_points(21);
  fit.mutable_backtest()->set_predicted_loss(2.51);
  fit.mutable_backtest()->set_observed_loss(2.5);
  fit.mutable_backtest()->set_relative_error(0.004);
  fit.mutable_backtest()->set_mean_abs_relative_error(0.006);
  fit.mutable_backtest()->set_points(7);
  fit.set_bootstrap_resamples(100);
  fit.set_bootstrap_failed(12);
  const std::string text = FitText(fit);
  EXPECT_THAT(text, HasSubstr("verdict: weak\n  - 2 IsoFLOP budget(s) ...\n"));
  EXPECT_THAT(text, HasSubstr("A     = 482 (95% \u00d7/\u00f7 2)\n"));
  EXPECT_THAT(text, HasSubstr("alpha = 0.348 (95% 0.31 .. 0.37)\n"));
  EXPECT_THAT(text, HasSubstr("backtest: the law fitted on budgets <= 1e+20 "
                              "FLOPs (21 points) predicts budget 1e+21: best "
                              "point loss 2.51 vs observed 2.5 (0.4%)"));
  EXPECT_THAT(text, HasSubstr("100 bootstrap resamples, seed 0, 12 failed"));
}

TEST(FitText, AFitWithoutALawIsNotJudgedAsOk) {
  v1::ScalingLawFit fit;
  fit.set_message("not fitted: 3 points");
  EXPECT_THAT(FitText(fit), HasSubstr("verdict: not judged"));
}

TEST(ToJson, PrintsSixtyFourBitIntegersAsNumbers) {
  v1::Sweep sweep;
  sweep.set_id("sw-1");
  sweep.set_created_unix_ms(1700000000123);
  sweep.add_trials()->mutable_spec()->set_tokens(123456789012ULL);
  sweep.mutable_fit()->set_bootstrap_seed(7);
  const nlohmann::json j = nlohmann::json::parse(ToJson(sweep));
  EXPECT_TRUE(j["created_unix_ms"].is_number_integer()) << j.dump();
  EXPECT_EQ(j["created_unix_ms"].get<int64_t>(), 1700000000123);
  EXPECT_EQ(j["trials"][0]["spec"]["tokens"].get<uint64_t>(), 123456789012ULL);
  EXPECT_EQ(j["fit"]["bootstrap_seed"].get<uint64_t>(), 7u);
  EXPECT_EQ(j["id"], "sw-1");
}

}  // namespace
}  // namespace isoflop::cli
