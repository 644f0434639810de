#include "worker/trial_command.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/exit_codes.h"
#include "coordinator/sweep/expand.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::worker {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

v1::TrialSpec Spec() {
  v1::TrialSpec spec;
  spec.set_trial_id("t-1");
  spec.set_dataset("kjv");
  spec.mutable_model()->set_vocab_size(512);
  spec.mutable_model()->set_context(64);
  spec.mutable_shape()->set_d_model(32);
  spec.mutable_shape()->set_n_layers(2);
  spec.mutable_shape()->set_n_heads(2);
  spec.mutable_model()->set_family(v1::GPT_RMSNORM);
  spec.mutable_shape()->set_d_ff(128);
  spec.mutable_training()->set_batch_sequences(16);
  spec.mutable_training()->set_lr(0.003);
  spec.mutable_training()->set_schedule(v1::COSINE);
  spec.mutable_training()->set_warmup_fraction(0.05);
  spec.mutable_training()->set_precision(v1::FP32);
  spec.mutable_training()->set_eval_batches(8);
  spec.mutable_training()->set_beta2(0.95);
  spec.set_steps(1234567);
  spec.set_threads(1);
  return spec;
}

// The launch of a spec that must build.
LaunchSpec Launch(const v1::TrialSpec& spec, uint32_t attempt,
                  const std::vector<int>& gpu_ids,
                  const TrainerCommandOptions& options,
                  const AttemptFence& fence = {}) {
  absl::StatusOr<LaunchSpec> launch =
      BuildTrainerLaunch(spec, attempt, gpu_ids, options, fence);
  EXPECT_TRUE(launch.ok()) << launch.status();
  return launch.ok() ? *std::move(launch) : LaunchSpec{};
}

// The value following `flag` in argv, or "" if absent.
std::string Flag(const std::vector<std::string>& argv,
                 const std::string& flag) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) return argv[i + 1];
  }
  return "";
}

const TrainerCommandOptions kOptions{"/bin/isoflop-trainer", "/data", "/logs"};

TEST(BuildTrainerLaunch, PassesResolvedTrialAsFlags) {
  LaunchSpec launch = Launch(Spec(), 2, {}, kOptions);
  EXPECT_EQ(launch.argv[0], "/bin/isoflop-trainer");
  EXPECT_EQ(launch.argv[1], "train");
  EXPECT_EQ(Flag(launch.argv, "--data-dir"), "/data/kjv");
  EXPECT_EQ(Flag(launch.argv, "--steps"), "1234567");
  EXPECT_EQ(Flag(launch.argv, "--warmup-steps"),
            "61728");  // round(0.05 * 1234567)
  EXPECT_EQ(Flag(launch.argv, "--d-ff"), "128");
  EXPECT_EQ(Flag(launch.argv, "--lr"), "0.003");
  EXPECT_EQ(Flag(launch.argv, "--device"), "cpu");
  EXPECT_EQ(Flag(launch.argv, "--precision"), "fp32");
  EXPECT_EQ(Flag(launch.argv, "--metrics-fd"), "3");
  EXPECT_EQ(launch.log_path.string(), "/logs/t-1-2.log");
  EXPECT_THAT(launch.env, Not(Contains(HasSubstr("CUDA_VISIBLE_DEVICES"))));
}

TEST(BuildTrainerLaunch, CheckpointsPerTrialAndResumesWithARoot) {
  EXPECT_THAT(Launch(Spec(), 1, {}, kOptions).argv, Not(Contains("--resume")));
  TrainerCommandOptions options = kOptions;
  options.checkpoint_root = "/ckpt";
  const LaunchSpec launch = Launch(Spec(), 2, {}, options);
  EXPECT_EQ(Flag(launch.argv, "--checkpoint-dir"), "/ckpt/t-1");
  EXPECT_THAT(launch.argv, Contains("--resume"));
  EXPECT_EQ(Flag(launch.argv, "--replay-metrics-from"), "0");
}

TEST(BuildTrainerLaunch, GpuTrialRunsOnCudaWithVisibleDevices) {
  v1::TrialSpec spec = Spec();
  spec.mutable_training()->set_precision(v1::BF16);  // as expanded for GPUs
  LaunchSpec launch = Launch(spec, 1, {1, 3}, kOptions);
  EXPECT_EQ(Flag(launch.argv, "--device"), "cuda");
  EXPECT_EQ(Flag(launch.argv, "--precision"), "bf16");
  EXPECT_THAT(launch.env, Contains("CUDA_VISIBLE_DEVICES=1,3"));
}

// A worker given devices 4,6 of its node (a Slurm step's
// CUDA_VISIBLE_DEVICES) hands out those, not the node's devices 0 and 1.
TEST(BuildTrainerLaunch, GpuTrialGetsTheWorkersOwnVisibleDevices) {
  v1::TrialSpec spec = Spec();
  spec.mutable_training()->set_precision(v1::BF16);
  TrainerCommandOptions options = kOptions;
  options.visible_devices = {"4", "6"};
  EXPECT_THAT(Launch(spec, 1, {1}, options).env,
              Contains("CUDA_VISIBLE_DEVICES=6"));
  EXPECT_THAT(Launch(spec, 1, {0, 1}, options).env,
              Contains("CUDA_VISIBLE_DEVICES=4,6"));
  EXPECT_FALSE(BuildTrainerLaunch(spec, 1, {2}, options, {}).ok());
}

TEST(VisibleDevices, TakesTheWorkersShareOrRefusesTooFew) {
  EXPECT_THAT(*VisibleDevices(nullptr, 2), ::testing::IsEmpty());
  EXPECT_THAT(*VisibleDevices("", 2), ::testing::IsEmpty());
  EXPECT_THAT(*VisibleDevices("2,3,5", 2), ::testing::ElementsAre("2", "3"));
  EXPECT_THAT(*VisibleDevices("GPU-a1, GPU-b2", 2),
              ::testing::ElementsAre("GPU-a1", "GPU-b2"));
  EXPECT_THAT(*VisibleDevices("2,3", 0), ::testing::IsEmpty());
  EXPECT_EQ(VisibleDevices("2", 2).status().message(),
            "--gpus = 2: CUDA_VISIBLE_DEVICES = \"2\" lists 1 device(s); a "
            "worker may use only the devices it was given (ask its job for "
            "--gpus-per-node 2)");
}

TEST(BuildTrainerLaunch, FencedAttemptGetsItsEpochAndAWatchdog) {
  const LaunchSpec plain = Launch(Spec(), 1, {}, kOptions);
  EXPECT_THAT(plain.argv, Not(Contains("--lease-epoch")));
  EXPECT_FALSE(plain.watchdog);
  const LaunchSpec fenced =
      Launch(Spec(), 1, {}, kOptions,
             {.lease_epoch = 41, .watchdog_timeout = absl::Milliseconds(5500)});
  EXPECT_EQ(Flag(fenced.argv, "--lease-epoch"), "41");
  EXPECT_EQ(Flag(fenced.argv, "--watchdog-fd"), "4");
  EXPECT_EQ(Flag(fenced.argv, "--watchdog-timeout-s"), "5.5");
  EXPECT_TRUE(fenced.watchdog);
}

// Every value of the resolved spec reaches the trainer as it is, none
// replaced by a default of the worker's (values chosen unlike any default).
TEST(BuildTrainerLaunch, PassesTheResolvedSpecThroughUnchanged) {
  v1::TrialSpec spec = Spec();
  spec.mutable_shape()->set_d_ff(100);
  v1::Training& t = *spec.mutable_training();
  t.set_min_lr_fraction(0.25);
  t.set_weight_decay(0.03);
  t.set_beta2(0.91);
  t.set_seed(77);
  t.set_eval_every_steps(13);
  t.set_eval_batches(3);
  t.set_precision(v1::BF16);
  spec.set_threads(5);
  const LaunchSpec launch = Launch(spec, 1, {}, kOptions);
  EXPECT_EQ(Flag(launch.argv, "--vocab-size"), "512");
  EXPECT_EQ(Flag(launch.argv, "--context"), "64");
  EXPECT_EQ(Flag(launch.argv, "--d-model"), "32");
  EXPECT_EQ(Flag(launch.argv, "--n-layers"), "2");
  EXPECT_EQ(Flag(launch.argv, "--n-heads"), "2");
  EXPECT_EQ(Flag(launch.argv, "--d-ff"), "100");
  EXPECT_EQ(Flag(launch.argv, "--batch-sequences"), "16");
  EXPECT_EQ(Flag(launch.argv, "--lr"), "0.003");
  EXPECT_EQ(Flag(launch.argv, "--schedule"), "cosine");
  EXPECT_EQ(Flag(launch.argv, "--min-lr-fraction"), "0.25");
  EXPECT_EQ(Flag(launch.argv, "--weight-decay"), "0.03");
  EXPECT_EQ(Flag(launch.argv, "--beta2"), "0.91");
  EXPECT_EQ(Flag(launch.argv, "--seed"), "77");
  EXPECT_EQ(Flag(launch.argv, "--eval-every"), "13");
  EXPECT_EQ(Flag(launch.argv, "--eval-batches"), "3");
  EXPECT_EQ(Flag(launch.argv, "--precision"), "bf16");  // even on cpu
  EXPECT_EQ(Flag(launch.argv, "--threads"), "5");
  EXPECT_THAT(launch.env, Contains("OMP_NUM_THREADS=5"));
}

TEST(BuildTrainerLaunch, WsdTrialPassesItsCooldownAndMupWidth) {
  v1::TrialSpec spec = Spec();
  spec.mutable_training()->set_schedule(v1::WSD);
  spec.mutable_training()->set_cooldown_fraction(0.25);
  spec.mutable_training()->set_mup_base_width(16);
  const LaunchSpec launch = Launch(spec, 1, {}, kOptions);
  EXPECT_EQ(Flag(launch.argv, "--schedule"), "wsd");
  EXPECT_EQ(Flag(launch.argv, "--wsd-decay-fraction"), "0.25");
  EXPECT_EQ(Flag(launch.argv, "--mup-base-width"), "16");
}

TEST(BuildTrainerLaunch, CosineTrialHasNoCooldownFlagAndStandardWidth) {
  const LaunchSpec launch = Launch(Spec(), 1, {}, kOptions);
  EXPECT_THAT(launch.argv, Not(Contains("--wsd-decay-fraction")));
  EXPECT_EQ(Flag(launch.argv, "--mup-base-width"), "0");
  EXPECT_THAT(launch.argv, Not(Contains("--zero-stage")));
}

// training.zero_stage (config.proto) reaches the trainer as --zero-stage.
TEST(BuildTrainerLaunch, ZeroStagePassesToTheTrainer) {
  v1::TrialSpec spec = Spec();
  spec.mutable_training()->set_zero_stage(1);
  EXPECT_EQ(Flag(Launch(spec, 1, {}, kOptions).argv, "--zero-stage"), "1");
}

TEST(CheckResolved, RefusesAWsdTrialWithoutACooldown) {
  v1::TrialSpec spec = Spec();
  spec.mutable_training()->set_schedule(v1::WSD);
  absl::Status s = CheckResolved(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("trial spec training.cooldown_fraction = 0: must be "
                        "set"));
}

// The contract between the coordinator and the worker: a sweep config that
// gives only what validation requires (every default left out) expands into
// trials the worker launches as they are.
TEST(BuildTrainerLaunch, LaunchesEveryTrialOfAMinimalExpandedSweep) {
  v1::SweepConfig c;
  c.set_name("minimal");
  c.mutable_model()->set_vocab_size(512);
  c.mutable_model()->set_context(64);
  c.mutable_grid()->add_flops_budgets(1e11);
  v1::ModelShape* shape = c.mutable_grid()->add_model_shapes();
  shape->set_d_model(32);
  shape->set_n_layers(2);
  shape->set_n_heads(2);
  c.mutable_training()->set_batch_sequences(16);
  c.mutable_training()->set_lr(1e-2);
  c.mutable_data()->set_dataset("kjv");
  for (uint32_t gpus : {0u, 1u}) {
    c.mutable_resources()->set_gpus_per_trial(gpus);
    absl::StatusOr<coordinator::ExpandedSweep> e = coordinator::ExpandSweep(c);
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_EQ(e->trials.size(), 1u);
    EXPECT_TRUE(CheckResolved(e->trials[0]).ok())
        << CheckResolved(e->trials[0]);
    const absl::StatusOr<LaunchSpec> launch = BuildTrainerLaunch(
        e->trials[0], 1, gpus > 0 ? std::vector<int>{0} : std::vector<int>{},
        kOptions);
    ASSERT_TRUE(launch.ok()) << launch.status();
    EXPECT_EQ(Flag(launch->argv, "--d-ff"), "128");
    EXPECT_EQ(Flag(launch->argv, "--precision"), gpus > 0 ? "bf16" : "fp32");
  }
}

// The same contract for a sweep of issue 21's fields: shapes from targets,
// lr and batch from a preset, WSD with its default cool-down, µP.
TEST(BuildTrainerLaunch, LaunchesEveryTrialOfARecipeSweep) {
  v1::SweepConfig c;
  c.set_name("recipe");
  c.mutable_model()->set_vocab_size(512);
  c.mutable_model()->set_context(64);
  c.mutable_grid()->add_flops_budgets(1e11);
  c.mutable_grid()->add_flops_budgets(1e12);
  c.mutable_grid()->add_n_targets(3e4);
  c.mutable_grid()->add_n_targets(1e5);
  c.mutable_training()->set_hparam_preset(v1::PORIAN2024);
  c.mutable_training()->set_schedule(v1::WSD);
  c.mutable_training()->set_mup_base_width(32);
  c.mutable_data()->set_dataset("kjv");
  absl::StatusOr<coordinator::ExpandedSweep> e = coordinator::ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->trials.size(), 4u);
  for (const v1::TrialSpec& t : e->trials) {
    SCOPED_TRACE(t.trial_id());
    const absl::StatusOr<LaunchSpec> launch =
        BuildTrainerLaunch(t, 1, {}, kOptions);
    ASSERT_TRUE(launch.ok()) << launch.status();
    EXPECT_EQ(Flag(launch->argv, "--schedule"), "wsd");
    EXPECT_EQ(Flag(launch->argv, "--wsd-decay-fraction"), "0.2");
    EXPECT_EQ(Flag(launch->argv, "--mup-base-width"), "32");
    EXPECT_EQ(std::stod(Flag(launch->argv, "--lr")), t.training().lr());
    EXPECT_EQ(Flag(launch->argv, "--beta2"), "0.99");  // porian2024, small
    EXPECT_EQ(Flag(launch->argv, "--batch-sequences"),
              absl::StrCat(t.training().batch_sequences()));
  }
}

struct MissingCase {
  const char* field;
  void (*clear)(v1::TrialSpec&);
};

void PrintTo(const MissingCase& c, std::ostream* os) { *os << c.field; }

class RefusesUnresolvedSpec : public ::testing::TestWithParam<MissingCase> {};

// A spec lacking a value the trainer needs is refused with the field named,
// never filled in with a default.
TEST_P(RefusesUnresolvedSpec, NamingTheField) {
  v1::TrialSpec spec = Spec();
  GetParam().clear(spec);
  const absl::StatusOr<LaunchSpec> launch =
      BuildTrainerLaunch(spec, 1, {}, kOptions);
  ASSERT_FALSE(launch.ok());
  EXPECT_EQ(launch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(launch.status().message(),
              HasSubstr(absl::StrCat("trial spec ", GetParam().field, " =")));
}

INSTANTIATE_TEST_SUITE_P(
    BuildTrainerLaunch, RefusesUnresolvedSpec,
    ::testing::Values(
        MissingCase{"dataset", [](v1::TrialSpec& s) { s.clear_dataset(); }},
        MissingCase{
            "model.vocab_size",
            [](v1::TrialSpec& s) { s.mutable_model()->clear_vocab_size(); }},
        MissingCase{
            "model.context",
            [](v1::TrialSpec& s) { s.mutable_model()->clear_context(); }},
        MissingCase{
            "model.family",
            [](v1::TrialSpec& s) { s.mutable_model()->clear_family(); }},
        MissingCase{
            "shape.d_model",
            [](v1::TrialSpec& s) { s.mutable_shape()->clear_d_model(); }},
        MissingCase{
            "shape.n_layers",
            [](v1::TrialSpec& s) { s.mutable_shape()->clear_n_layers(); }},
        MissingCase{
            "shape.n_heads",
            [](v1::TrialSpec& s) { s.mutable_shape()->clear_n_heads(); }},
        MissingCase{"shape.d_ff",
                    [](v1::TrialSpec& s) { s.mutable_shape()->clear_d_ff(); }},
        MissingCase{"training.batch_sequences",
                    [](v1::TrialSpec& s) {
                      s.mutable_training()->clear_batch_sequences();
                    }},
        MissingCase{"training.lr",
                    [](v1::TrialSpec& s) { s.mutable_training()->clear_lr(); }},
        MissingCase{
            "training.schedule",
            [](v1::TrialSpec& s) { s.mutable_training()->clear_schedule(); }},
        MissingCase{
            "training.precision",
            [](v1::TrialSpec& s) { s.mutable_training()->clear_precision(); }},
        MissingCase{"training.eval_batches",
                    [](v1::TrialSpec& s) {
                      s.mutable_training()->clear_eval_batches();
                    }},
        MissingCase{
            "training.beta2",
            [](v1::TrialSpec& s) { s.mutable_training()->clear_beta2(); }},
        MissingCase{"steps", [](v1::TrialSpec& s) { s.clear_steps(); }},
        MissingCase{"threads", [](v1::TrialSpec& s) { s.clear_threads(); }}),
    [](const ::testing::TestParamInfo<MissingCase>& info) {
      std::string name = info.param.field;
      for (char& c : name) {
        if (c == '.') c = '_';
      }
      return name;
    });

// The timing argument of worker/trial_command.h: the trainer stops a quarter
// of the heartbeat-to-TTL gap before the lease can expire, and a healthy
// worker has three quarters of it to renew.
TEST(WatchdogTimeout, LiesBetweenTheHeartbeatAndTheLeaseTtl) {
  EXPECT_EQ(WatchdogTimeout(absl::Seconds(30), absl::Seconds(2)),
            absl::Seconds(23));
  EXPECT_EQ(WatchdogTimeout(absl::Seconds(4), absl::Milliseconds(500)),
            absl::Milliseconds(3125));
}

struct ExitCase {
  ExitStatus exit;
  bool saw_final;
  bool stopped_by_worker;
  v1::Outcome expected;
};

TEST(DecideOutcome, MapsExitCodesPerContract) {
  const std::vector<ExitCase> cases = {
      {ExitStatus::Code(kExitOk), true, false, v1::OUTCOME_SUCCEEDED},
      {ExitStatus::Code(kExitOk), false, false, v1::OUTCOME_FAILED},
      {ExitStatus::Code(kExitInvalidConfig), false, false, v1::OUTCOME_FAILED},
      {ExitStatus::Code(kExitRetryable), false, false, v1::OUTCOME_RETRYABLE},
      {ExitStatus::Code(kExitFenced), false, false, v1::OUTCOME_RETRYABLE},
      {ExitStatus::Code(1), false, false, v1::OUTCOME_FAILED},
      {ExitStatus::Signal(SIGKILL), false, false, v1::OUTCOME_RETRYABLE},
      {ExitStatus::Code(128 + SIGTERM), false, false, v1::OUTCOME_RETRYABLE},
      {ExitStatus::Signal(SIGSEGV), false, false, v1::OUTCOME_FAILED},
      {ExitStatus::Signal(SIGTERM), false, true, v1::OUTCOME_RETRYABLE},
      {ExitStatus::Code(kExitInvalidConfig), false, true,
       v1::OUTCOME_RETRYABLE},
      {ExitStatus::Code(kExitOk), true, true, v1::OUTCOME_SUCCEEDED},
  };
  for (const ExitCase& c : cases) {
    OutcomeDecision d =
        DecideOutcome({c.exit, c.saw_final, c.stopped_by_worker});
    EXPECT_EQ(d.outcome, c.expected)
        << "exit " << c.exit.ShellCode() << " final " << c.saw_final
        << " stopped " << c.stopped_by_worker << ": " << d.message;
  }
}

TEST(DecideOutcome, MessageNamesTheSignal) {
  EXPECT_THAT(
      DecideOutcome({ExitStatus::Signal(SIGSEGV), false, false}).message,
      HasSubstr("signal 11"));
}

// ---- Trunk and branches (docs/architecture.md §2.2).

TrainerCommandOptions WithRoot(const std::string& root) {
  TrainerCommandOptions o;
  o.trainer_path = "/bin/isoflop-trainer";
  o.data_root = "/data";
  o.logs_dir = "/logs";
  o.checkpoint_root = root;
  return o;
}

TEST(BuildTrainerLaunch, TrunkTrainsAConstantLrAndKeepsItsBranchesSteps) {
  v1::TrialSpec spec = Spec();
  spec.mutable_training()->set_schedule(v1::WSD_BRANCHED);
  spec.set_role(v1::TRIAL_ROLE_TRUNK);
  spec.set_steps(800);
  spec.set_warmup_steps(17);
  spec.add_save_at_steps(265);
  spec.add_save_at_steps(800);
  const LaunchSpec l = Launch(spec, 1, {}, WithRoot("/ckpt"));
  EXPECT_EQ(Flag(l.argv, "--schedule"), "constant");
  EXPECT_EQ(Flag(l.argv, "--warmup-steps"), "17");
  EXPECT_EQ(Flag(l.argv, "--save-at-steps"), "265,800");
  EXPECT_EQ(Flag(l.argv, "--init-from"), "");
}

TEST(BuildTrainerLaunch, BranchStartsFromItsTrunksKeptCheckpoint) {
  const std::string root = ::testing::TempDir() + "/branch_launch_root";
  std::filesystem::create_directories(root + "/tr-trunk");
  std::ofstream(root + "/tr-trunk/kept.265.bin") << "x";
  v1::TrialSpec spec = Spec();
  spec.mutable_training()->set_schedule(v1::WSD_BRANCHED);
  spec.set_role(v1::TRIAL_ROLE_BRANCH);
  spec.set_trunk_trial_id("tr-trunk");
  spec.set_start_step(265);
  spec.set_steps(331);
  spec.set_warmup_steps(17);
  spec.set_cooldown_fraction(0.2);
  const LaunchSpec l = Launch(spec, 1, {}, WithRoot(root));
  EXPECT_EQ(Flag(l.argv, "--schedule"), "wsd");
  EXPECT_EQ(Flag(l.argv, "--wsd-decay-fraction"), "0.2");
  EXPECT_EQ(Flag(l.argv, "--warmup-steps"), "17");
  EXPECT_EQ(Flag(l.argv, "--init-from"), root + "/tr-trunk");
  EXPECT_EQ(Flag(l.argv, "--init-step"), "265");
  EXPECT_EQ(Flag(l.argv, "--steps"), "331");
}

TEST(BuildTrainerLaunch, BranchWhoseTrunkCheckpointIsNotVisibleIsUnavailable) {
  v1::TrialSpec spec = Spec();
  spec.mutable_training()->set_schedule(v1::WSD_BRANCHED);
  spec.set_role(v1::TRIAL_ROLE_BRANCH);
  spec.set_trunk_trial_id("tr-elsewhere");
  spec.set_start_step(265);
  const absl::StatusOr<LaunchSpec> l =
      BuildTrainerLaunch(spec, 1, {}, WithRoot("/nonexistent-ckpt"));
  EXPECT_EQ(l.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(l.status().message(),
              HasSubstr("the trunk checkpoint "
                        "/nonexistent-ckpt/tr-elsewhere/kept.265.bin of trunk "
                        "tr-elsewhere at step 265 is not visible on this "
                        "worker"));
}

TEST(BuildTrainerLaunch, TrunkWithoutACheckpointRootIsRefused) {
  v1::TrialSpec spec = Spec();
  spec.mutable_training()->set_schedule(v1::WSD_BRANCHED);
  spec.set_role(v1::TRIAL_ROLE_TRUNK);
  const absl::StatusOr<LaunchSpec> l =
      BuildTrainerLaunch(spec, 1, {}, WithRoot(""));
  EXPECT_EQ(l.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(l.status().message(), HasSubstr("needs the worker's "
                                              "--checkpoint-dir"));
}

}  // namespace
}  // namespace isoflop::worker
