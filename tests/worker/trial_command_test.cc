#include "worker/trial_command.h"

#include <signal.h>

#include <string>
#include <vector>

#include "common/exit_codes.h"
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
  spec.mutable_training()->set_batch_sequences(16);
  spec.mutable_training()->set_lr(0.003);
  spec.mutable_training()->set_warmup_fraction(0.05);
  spec.set_steps(1234567);
  spec.set_threads(1);
  return spec;
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
  LaunchSpec launch = BuildTrainerLaunch(Spec(), 2, {}, kOptions);
  EXPECT_EQ(launch.argv[0], "/bin/isoflop-trainer");
  EXPECT_EQ(launch.argv[1], "train");
  EXPECT_EQ(Flag(launch.argv, "--data-dir"), "/data/kjv");
  EXPECT_EQ(Flag(launch.argv, "--steps"), "1234567");
  EXPECT_EQ(Flag(launch.argv, "--warmup-steps"),
            "61728");                             // round(0.05 * 1234567)
  EXPECT_EQ(Flag(launch.argv, "--d-ff"), "128");  // 0 -> 4 * d_model
  EXPECT_EQ(Flag(launch.argv, "--lr"), "0.003");
  EXPECT_EQ(Flag(launch.argv, "--device"), "cpu");
  EXPECT_EQ(Flag(launch.argv, "--precision"), "fp32");
  EXPECT_EQ(Flag(launch.argv, "--metrics-fd"), "3");
  EXPECT_EQ(launch.log_path.string(), "/logs/t-1-2.log");
  EXPECT_THAT(launch.env, Not(Contains(HasSubstr("CUDA_VISIBLE_DEVICES"))));
}

TEST(BuildTrainerLaunch, CheckpointsPerTrialAndResumesWithARoot) {
  EXPECT_THAT(BuildTrainerLaunch(Spec(), 1, {}, kOptions).argv,
              Not(Contains("--resume")));
  TrainerCommandOptions options = kOptions;
  options.checkpoint_root = "/ckpt";
  const LaunchSpec launch = BuildTrainerLaunch(Spec(), 2, {}, options);
  EXPECT_EQ(Flag(launch.argv, "--checkpoint-dir"), "/ckpt/t-1");
  EXPECT_THAT(launch.argv, Contains("--resume"));
  EXPECT_EQ(Flag(launch.argv, "--replay-metrics-from"), "0");
}

TEST(BuildTrainerLaunch, GpuTrialRunsOnCudaWithVisibleDevices) {
  LaunchSpec launch = BuildTrainerLaunch(Spec(), 1, {1, 3}, kOptions);
  EXPECT_EQ(Flag(launch.argv, "--device"), "cuda");
  EXPECT_EQ(Flag(launch.argv, "--precision"), "bf16");
  EXPECT_THAT(launch.env, Contains("CUDA_VISIBLE_DEVICES=1,3"));
}

TEST(BuildTrainerLaunch, FencedAttemptGetsItsEpochAndAWatchdog) {
  const LaunchSpec plain = BuildTrainerLaunch(Spec(), 1, {}, kOptions);
  EXPECT_THAT(plain.argv, Not(Contains("--lease-epoch")));
  EXPECT_FALSE(plain.watchdog);
  const LaunchSpec fenced = BuildTrainerLaunch(
      Spec(), 1, {}, kOptions,
      {.lease_epoch = 41, .watchdog_timeout = absl::Milliseconds(5500)});
  EXPECT_EQ(Flag(fenced.argv, "--lease-epoch"), "41");
  EXPECT_EQ(Flag(fenced.argv, "--watchdog-fd"), "4");
  EXPECT_EQ(Flag(fenced.argv, "--watchdog-timeout-s"), "5.5");
  EXPECT_TRUE(fenced.watchdog);
}

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

}  // namespace
}  // namespace isoflop::worker
