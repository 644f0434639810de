#include "worker/agent.h"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/exit_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/fake_coordinator_client.h"
#include "worker/fake_process_launcher.h"

namespace isoflop::worker {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

v1::TrialSpec Spec(const std::string& id) {
  v1::TrialSpec spec;
  spec.set_trial_id(id);
  spec.set_dataset("tiny");
  spec.mutable_model()->set_vocab_size(64);
  spec.mutable_model()->set_context(16);
  spec.mutable_model()->set_family(v1::GPT_RMSNORM);
  spec.mutable_shape()->set_d_model(16);
  spec.mutable_shape()->set_n_layers(1);
  spec.mutable_shape()->set_n_heads(2);
  spec.mutable_shape()->set_d_ff(64);
  v1::Training& t = *spec.mutable_training();
  t.set_batch_sequences(4);
  t.set_lr(1e-3);
  t.set_schedule(v1::COSINE);
  t.set_precision(v1::FP32);
  t.set_eval_batches(8);
  t.set_beta2(0.95);
  spec.set_steps(100);
  spec.set_threads(1);
  return spec;
}

class AgentTest : public ::testing::Test {
 protected:
  AgentOptions Options(int cpu_slots = 1, int gpus = 0) {
    AgentOptions o;
    o.cpu_slots = cpu_slots;
    o.gpus = gpus;
    o.trainer = {"/bin/isoflop-trainer", "/data", "/logs"};
    o.log = [this](const std::string& line) { log_.push_back(line); };
    return o;
  }
  // Registers and leases the queued assignments.
  void Start(Agent& agent) {
    agent.Tick(now_);
    ASSERT_TRUE(agent.registered());
  }
  void Advance(absl::Duration d) { now_ += d; }

  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  FakeProcessLauncher launcher_;
  FakeCoordinatorClient coordinator_;
  std::vector<std::string> log_;
};

TEST_F(AgentTest, RegistersWithBackoffWhileCoordinatorUnavailable) {
  coordinator_.FailRegister(absl::UnavailableError("connection refused"));
  coordinator_.FailRegister(absl::UnavailableError("connection refused"));
  Agent agent(Options(/*cpu_slots=*/3), &launcher_, &coordinator_);
  agent.Tick(now_);
  EXPECT_FALSE(agent.registered());
  agent.Tick(now_);  // backoff not over: no new attempt
  EXPECT_EQ(coordinator_.registers.size(), 1u);
  Advance(absl::Milliseconds(200));
  agent.Tick(now_);
  EXPECT_EQ(coordinator_.registers.size(), 2u);
  Advance(absl::Milliseconds(399));  // doubled backoff
  agent.Tick(now_);
  EXPECT_FALSE(agent.registered());
  Advance(absl::Milliseconds(1));
  agent.Tick(now_);
  EXPECT_TRUE(agent.registered());
  EXPECT_EQ(coordinator_.registers.back().resources().cpu_slots(), 3u);
  EXPECT_THAT(log_, Contains(HasSubstr("connection refused")));
}

TEST_F(AgentTest, LeasesUntilCpuSlotsAreFull) {
  coordinator_.QueueAssignment(Spec("t-1"));
  coordinator_.QueueAssignment(Spec("t-2"));
  coordinator_.QueueAssignment(Spec("t-3"));
  Agent agent(Options(/*cpu_slots=*/2), &launcher_, &coordinator_);
  Start(agent);
  EXPECT_THAT(launcher_.launches(), SizeIs(2));
  EXPECT_EQ(agent.running_trials(), 2);
  EXPECT_EQ(coordinator_.leases[0].free_cpu_slots(), 2u);
  EXPECT_EQ(coordinator_.leases[1].free_cpu_slots(), 1u);
  EXPECT_EQ(launcher_.launches()[0].log_path.string(), "/logs/t-1-1.log");
}

TEST_F(AgentTest, GpuWorkerRunsOneTrialPerGpu) {
  coordinator_.QueueAssignment(Spec("t-1"));
  coordinator_.QueueAssignment(Spec("t-2"));
  Agent agent(Options(/*cpu_slots=*/1, /*gpus=*/2), &launcher_, &coordinator_);
  Start(agent);
  ASSERT_THAT(launcher_.launches(), SizeIs(2));
  EXPECT_THAT(launcher_.launches()[0].env, Contains("CUDA_VISIBLE_DEVICES=0"));
  EXPECT_THAT(launcher_.launches()[1].env, Contains("CUDA_VISIBLE_DEVICES=1"));
  EXPECT_EQ(coordinator_.leases[0].free_gpus(), 2u);
  EXPECT_EQ(coordinator_.registers[0].resources().gpus(), 2u);
}

TEST_F(AgentTest, TrialsPerGpuShareAGpuAndGangTrialsGetDistinctGpus) {
  coordinator_.QueueAssignment(Spec("t-1"));
  coordinator_.QueueAssignment(Spec("t-2"));
  coordinator_.QueueAssignment(Spec("t-3"));
  v1::TrialSpec gang = Spec("t-4");
  gang.set_gpus(2);
  coordinator_.QueueAssignment(gang);
  AgentOptions options = Options(/*cpu_slots=*/1, /*gpus=*/2);
  options.trials_per_gpu = 2;
  Agent agent(options, &launcher_, &coordinator_);
  Start(agent);
  // Four slots on two GPUs: t-1 and t-2 share GPU 0, t-3 takes GPU 1; the
  // free slot left is on GPU 1 only, so the worker offers one GPU.
  ASSERT_THAT(launcher_.launches(), SizeIs(3));
  EXPECT_THAT(launcher_.launches()[0].env, Contains("CUDA_VISIBLE_DEVICES=0"));
  EXPECT_THAT(launcher_.launches()[1].env, Contains("CUDA_VISIBLE_DEVICES=0"));
  EXPECT_THAT(launcher_.launches()[2].env, Contains("CUDA_VISIBLE_DEVICES=1"));
  ASSERT_GE(coordinator_.leases.size(), 4u);
  EXPECT_EQ(coordinator_.leases[0].free_gpus(), 2u);
  EXPECT_EQ(coordinator_.leases[1].free_gpus(), 2u);
  EXPECT_EQ(coordinator_.leases[2].free_gpus(), 1u);
  EXPECT_EQ(coordinator_.leases[3].free_gpus(), 1u);
  // The fake coordinator ignores free_gpus: the 2-GPU trial it handed out
  // anyway is reported as not started, never run on one GPU.
  EXPECT_EQ(agent.running_trials(), 3);
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
  EXPECT_EQ(coordinator_.outcomes[0].lease().trial_id(), "t-4");
  EXPECT_EQ(coordinator_.outcomes[0].outcome(), v1::OUTCOME_FAILED);
  EXPECT_THAT(coordinator_.outcomes[0].message(), HasSubstr("needs 2 GPUs"));
  EXPECT_EQ(coordinator_.registers[0].resources().gpus(), 2u);
}

TEST_F(AgentTest, ReportsSucceededWithFinalValLossFromLastLine) {
  coordinator_.QueueAssignment(Spec("t-1"), /*attempt=*/2, /*epoch=*/7);
  Agent agent(Options(), &launcher_, &coordinator_);
  Start(agent);
  ProcessId pid = launcher_.last_id();
  launcher_.Write(pid, R"({"step": 50, "val_loss": 3.0})");
  launcher_.Write(
      pid,
      R"({"step": 100, "val_loss": 2.5, "tokens_per_s": 900, "final": 1})");
  launcher_.Exit(pid, ExitStatus::Code(kExitOk));
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
  const v1::ReportOutcomeRequest& outcome = coordinator_.outcomes[0];
  EXPECT_EQ(outcome.outcome(), v1::OUTCOME_SUCCEEDED);
  EXPECT_EQ(outcome.final_val_loss(), 2.5);
  EXPECT_EQ(outcome.tokens_per_s(), 900);
  EXPECT_EQ(outcome.lease().lease_epoch(), 7u);
  EXPECT_EQ(outcome.lease().attempt(), 2u);
  // The curve is delivered before its end.
  ASSERT_EQ(coordinator_.metrics.size(), 1u);
  EXPECT_EQ(coordinator_.metrics[0].points_size(), 3);
  EXPECT_TRUE(agent.Idle());
}

TEST_F(AgentTest, SuccessFreesTheCheckpointButKeepsTheFinalModel) {
  const std::filesystem::path root =
      std::filesystem::path(::testing::TempDir()) / "agent-ckpt";
  std::filesystem::create_directories(root / "t-1");
  std::ofstream(root / "t-1" / "checkpoint.bin") << "state";
  std::ofstream(root / "t-1" / "model.bin") << "weights";
  coordinator_.QueueAssignment(Spec("t-1"));
  AgentOptions options = Options();
  options.trainer.checkpoint_root = root;
  Agent agent(options, &launcher_, &coordinator_);
  Start(agent);
  launcher_.Write(launcher_.last_id(),
                  R"({"step": 100, "val_loss": 2.5, "final": 1})");
  launcher_.Exit(launcher_.last_id(), ExitStatus::Code(kExitOk));
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
  EXPECT_EQ(coordinator_.outcomes[0].outcome(), v1::OUTCOME_SUCCEEDED);
  EXPECT_FALSE(std::filesystem::exists(root / "t-1" / "checkpoint.bin"));
  EXPECT_TRUE(std::filesystem::exists(root / "t-1" / "model.bin"));
}

TEST_F(AgentTest, RelaysTheLogByAgeAndAllOfItBeforeTheOutcome) {
  const std::filesystem::path logs =
      std::filesystem::path(::testing::TempDir()) / "agent-logs";
  std::filesystem::remove_all(logs);
  std::filesystem::create_directories(logs);
  // A log left by an earlier run of the same attempt is not relayed again.
  std::ofstream(logs / "t-1-1.log") << "old run\n";
  coordinator_.QueueAssignment(Spec("t-1"));
  AgentOptions options = Options();
  options.trainer.logs_dir = logs;
  Agent agent(options, &launcher_, &coordinator_);
  Start(agent);
  std::ofstream(logs / "t-1-1.log", std::ios::app) << "step 1\n";
  agent.Tick(now_);
  EXPECT_EQ(coordinator_.log_calls.size(), 0u);  // not yet due
  Advance(options.metrics_flush_interval);
  coordinator_.FailLogs(absl::UnavailableError("down"));
  agent.Tick(now_);
  agent.Tick(now_);  // not at every tick: after the interval
  EXPECT_EQ(coordinator_.log_calls.size(), 1u);
  Advance(options.metrics_flush_interval);
  agent.Tick(now_);  // resent
  ASSERT_EQ(coordinator_.logs.size(), 1u);
  EXPECT_EQ(coordinator_.logs[0].offset(), 0u);
  EXPECT_EQ(coordinator_.logs[0].data(), "step 1\n");
  EXPECT_EQ(coordinator_.logs[0].lease().trial_id(), "t-1");
  // More than one chunk written just before the exit: all of it goes before
  // the outcome, in order.
  std::ofstream(logs / "t-1-1.log", std::ios::app)
      << std::string(kLogChunkBytes, 'x') << "done\n";
  launcher_.Write(launcher_.last_id(),
                  R"({"step": 100, "val_loss": 2.5, "final": 1})");
  launcher_.Exit(launcher_.last_id(), ExitStatus::Code(kExitOk));
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.logs.size(), 3u);
  EXPECT_EQ(coordinator_.logs[1].offset(), 7u);
  EXPECT_EQ(coordinator_.logs[1].data().size(), kLogChunkBytes);
  EXPECT_EQ(coordinator_.logs[2].offset(), 7u + kLogChunkBytes);
  EXPECT_EQ(coordinator_.logs[2].data(), "done\n");
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
}

TEST_F(AgentTest, ReportsRetryableWhenTrainerExitsWithTempFail) {
  coordinator_.QueueAssignment(Spec("t-1"));
  Agent agent(Options(), &launcher_, &coordinator_);
  Start(agent);
  launcher_.Exit(launcher_.last_id(), ExitStatus::Code(kExitRetryable));
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
  EXPECT_EQ(coordinator_.outcomes[0].outcome(), v1::OUTCOME_RETRYABLE);
  EXPECT_EQ(coordinator_.outcomes[0].exit_code(), 75);
  EXPECT_THAT(coordinator_.outcomes[0].message(), HasSubstr("/logs/t-1-1.log"));
}

TEST_F(AgentTest, BatchesMetricsBySizeAndAge) {
  coordinator_.QueueAssignment(Spec("t-1"));
  AgentOptions options = Options();
  options.max_batch_points = 4;
  Agent agent(options, &launcher_, &coordinator_);
  Start(agent);
  ProcessId pid = launcher_.last_id();
  launcher_.Write(pid, R"({"step": 1, "train_loss": 5.0})");
  agent.Tick(now_);
  EXPECT_TRUE(coordinator_.metric_calls.empty());  // young and small: held back
  for (int step = 2; step <= 5; ++step) {
    launcher_.Write(
        pid, absl::StrCat(R"({"step": )", step, R"(, "train_loss": 4.0})"));
  }
  agent.Tick(now_);  // 5 points: one full batch of 4 goes now
  ASSERT_EQ(coordinator_.metrics.size(), 1u);
  EXPECT_EQ(coordinator_.metrics[0].points_size(), 4);
  Advance(absl::Milliseconds(999));
  agent.Tick(now_);
  EXPECT_EQ(coordinator_.metrics.size(), 1u);
  Advance(absl::Milliseconds(1));
  agent.Tick(now_);  // the remaining point is a second old
  ASSERT_EQ(coordinator_.metrics.size(), 2u);
  EXPECT_EQ(coordinator_.metrics[1].points(0).step(), 5u);
}

TEST_F(AgentTest, SkipsMalformedMetricsLinesWithAWarning) {
  coordinator_.QueueAssignment(Spec("t-1"));
  Agent agent(Options(), &launcher_, &coordinator_);
  Start(agent);
  ProcessId pid = launcher_.last_id();
  launcher_.Write(pid, "loss is 3");
  launcher_.Write(pid, R"({"step": 1, "train_loss": 5.0})");
  Advance(absl::Seconds(1));
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.metrics.size(), 1u);
  EXPECT_EQ(coordinator_.metrics[0].points(0).name(), "train_loss");
  EXPECT_THAT(log_, Contains(HasSubstr("malformed metrics line")));
}

TEST_F(AgentTest, ResendsMetricsAfterTransientFailure) {
  coordinator_.QueueAssignment(Spec("t-1"));
  coordinator_.FailMetrics(absl::UnavailableError("down"));
  Agent agent(Options(), &launcher_, &coordinator_);
  Start(agent);
  launcher_.Write(launcher_.last_id(), R"({"step": 1, "train_loss": 5.0})");
  Advance(absl::Seconds(1));
  agent.Tick(now_);
  EXPECT_TRUE(coordinator_.metrics.empty());
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.metrics.size(), 1u);
  EXPECT_EQ(coordinator_.metrics[0].points(0).step(), 1u);
}

// Issue 18 defect 1: points leave the worker only when acknowledged; while
// the coordinator is down they are kept, and at max_pending_points the
// worker stops reading the trainer (which then blocks on its pipe) instead
// of dropping any.
TEST_F(AgentTest, KeepsUnacknowledgedPointsAndStopsReadingAtTheBound) {
  coordinator_.QueueAssignment(Spec("t-1"));
  for (int i = 0; i < 3; ++i) {
    coordinator_.FailMetrics(absl::UnavailableError("connection refused"));
  }
  AgentOptions options = Options();
  options.max_pending_points = 2;
  Agent agent(options, &launcher_, &coordinator_);
  Start(agent);
  const ProcessId pid = launcher_.last_id();
  launcher_.Write(pid, R"({"step": 1, "train_loss": 5.0, "lr": 0.1})");
  Advance(absl::Seconds(1));
  agent.Tick(now_);  // read, sent, refused
  launcher_.Write(pid, R"({"step": 2, "train_loss": 4.0})");
  launcher_.Exit(pid, ExitStatus{});
  Advance(absl::Seconds(1));
  agent.Tick(now_);  // refused again; at the bound: line 2 stays unread
  EXPECT_THAT(launcher_.process(pid).pending_lines, SizeIs(1));
  EXPECT_EQ(agent.running_trials(), 1);  // the exit waits for the lines
  Advance(absl::Seconds(1));
  agent.Tick(now_);  // refused a third time
  Advance(absl::Seconds(1));
  agent.Tick(now_);  // delivered; then line 2 is read
  Advance(absl::Seconds(1));
  agent.Tick(now_);
  std::vector<std::pair<uint64_t, std::string>> got;
  for (const v1::ReportMetricsRequest& r : coordinator_.metrics) {
    for (const v1::MetricPoint& p : r.points())
      got.emplace_back(p.step(), p.name());
  }
  EXPECT_THAT(got, ::testing::ElementsAre(
                       std::pair<uint64_t, std::string>{1, "lr"},
                       std::pair<uint64_t, std::string>{1, "train_loss"},
                       std::pair<uint64_t, std::string>{2, "train_loss"}));
  EXPECT_EQ(agent.running_trials(), 0);
}

TEST_F(AgentTest, KillsTrialWhoseLeaseIsRevokedAndReportsNothing) {
  coordinator_.QueueAssignment(Spec("t-1"), 1, 3);
  Agent agent(Options(), &launcher_, &coordinator_);
  Start(agent);
  ProcessId pid = launcher_.last_id();
  v1::LeaseRef lease;
  lease.set_trial_id("t-1");
  lease.set_attempt(1);
  lease.set_lease_epoch(3);
  coordinator_.RevokeOnNextHeartbeat(lease);
  Advance(absl::Seconds(2));
  agent.Tick(now_);
  ASSERT_TRUE(launcher_.process(pid).terminated_with_grace.has_value());
  EXPECT_EQ(*launcher_.process(pid).terminated_with_grace, absl::Seconds(10));
  launcher_.Exit(pid, ExitStatus::Signal(SIGTERM));
  agent.Tick(now_);
  EXPECT_TRUE(coordinator_.outcome_calls.empty());
  EXPECT_TRUE(agent.Idle());
}

TEST_F(AgentTest, KillsTrainersWhenCutOffFromTheCoordinatorPastTheLease) {
  coordinator_.QueueAssignment(Spec("t-1"));
  Agent agent(Options(), &launcher_, &coordinator_);
  Start(agent);  // lease TTL 30 s, heartbeat every 2 s (the fake's answer)
  const ProcessId pid = launcher_.last_id();
  for (int i = 0; i < 16; ++i) {
    coordinator_.FailHeartbeat(absl::UnavailableError("network down"));
  }
  for (int s = 2; s <= 30; s += 2) {  // 30 s without an answered heartbeat
    Advance(absl::Seconds(2));
    agent.Tick(now_);
    ASSERT_FALSE(launcher_.process(pid).terminated_with_grace.has_value())
        << "killed after only " << s << " s";
  }
  Advance(absl::Seconds(2));
  agent.Tick(now_);
  ASSERT_TRUE(launcher_.process(pid).terminated_with_grace.has_value());
  EXPECT_THAT(log_, Contains(HasSubstr("coordinator unreachable for 32s")));
  launcher_.Exit(pid, ExitStatus::Signal(SIGTERM));
  agent.Tick(now_);
  EXPECT_TRUE(coordinator_.outcome_calls.empty());  // its lease is gone
  EXPECT_TRUE(agent.Idle());
}

// Fencing (docs/faults.md "Split brain"): the trainer gets the lease epoch
// and a watchdog that the worker feeds with the time of each tick whose
// request renewed the lease; a heartbeat that failed or revoked feeds
// nothing, so the trainer stops itself before the lease can expire.
TEST_F(AgentTest, TrainerGetsItsLeaseEpochAndAWatchdogFedPerRenewal) {
  coordinator_.QueueAssignment(Spec("t-1"), 1, 7);
  coordinator_.QueueAssignment(Spec("t-2"), 1, 8);
  Agent agent(Options(/*cpu_slots=*/2), &launcher_, &coordinator_);
  const absl::Time leased = now_;
  Start(agent);  // lease TTL 30 s, heartbeat every 2 s (the fake's answer)
  const ProcessId first = launcher_.last_id() - 1, second = first + 1;
  const LaunchSpec& launch = launcher_.process(first).spec;
  EXPECT_TRUE(launch.watchdog);
  const std::string argv = absl::StrJoin(launch.argv, " ");
  EXPECT_THAT(argv, HasSubstr("--lease-epoch 7"));
  // 2 s + 3/4 of (30 s - 2 s): stopped 7 s before the lease can expire.
  EXPECT_THAT(argv, HasSubstr("--watchdog-fd 4 --watchdog-timeout-s 23"));
  EXPECT_THAT(launcher_.process(first).feeds, ElementsAre(leased));

  Advance(absl::Seconds(2));
  const absl::Time renewed = now_;
  agent.Tick(now_);
  EXPECT_THAT(launcher_.process(first).feeds, ElementsAre(leased, renewed));

  coordinator_.FailHeartbeat(absl::UnavailableError("network down"));
  Advance(absl::Seconds(2));
  agent.Tick(now_);
  EXPECT_THAT(launcher_.process(first).feeds, SizeIs(2));

  v1::LeaseRef lease;
  lease.set_trial_id("t-2");
  lease.set_attempt(1);
  lease.set_lease_epoch(8);
  coordinator_.RevokeOnNextHeartbeat(lease);
  Advance(absl::Seconds(2));
  agent.Tick(now_);
  EXPECT_THAT(launcher_.process(first).feeds, SizeIs(3));
  EXPECT_THAT(launcher_.process(second).feeds, SizeIs(2));  // not renewed
}

TEST_F(AgentTest, HeartbeatCarriesEveryLease) {
  coordinator_.QueueAssignment(Spec("t-1"));
  coordinator_.QueueAssignment(Spec("t-2"));
  Agent agent(Options(/*cpu_slots=*/2), &launcher_, &coordinator_);
  Start(agent);
  Advance(absl::Seconds(2));
  agent.Tick(now_);
  ASSERT_FALSE(coordinator_.heartbeats.empty());
  EXPECT_EQ(coordinator_.heartbeats.back().leases_size(), 2);
}

TEST_F(AgentTest, RetriesOutcomeWhileCoordinatorUnavailable) {
  coordinator_.QueueAssignment(Spec("t-1"));
  Agent agent(Options(), &launcher_, &coordinator_);
  Start(agent);
  coordinator_.FailOutcome(absl::UnavailableError("down"));
  coordinator_.FailOutcome(absl::DeadlineExceededError("slow"));
  launcher_.Exit(launcher_.last_id(), ExitStatus::Code(1));
  agent.Tick(now_);
  EXPECT_EQ(coordinator_.outcome_calls.size(), 1u);
  EXPECT_FALSE(agent.Idle());
  Advance(absl::Milliseconds(200));
  agent.Tick(now_);
  EXPECT_EQ(coordinator_.outcome_calls.size(), 2u);
  Advance(absl::Milliseconds(400));
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
  EXPECT_EQ(coordinator_.outcomes[0].outcome(), v1::OUTCOME_FAILED);
  EXPECT_TRUE(agent.Idle());
}

TEST_F(AgentTest, ShutdownTerminatesTrialsAndReportsThemRetryable) {
  coordinator_.QueueAssignment(Spec("t-1"));
  Agent agent(Options(), &launcher_, &coordinator_);
  Start(agent);
  ProcessId pid = launcher_.last_id();
  agent.BeginShutdown(now_);
  EXPECT_TRUE(launcher_.process(pid).terminated_with_grace.has_value());
  launcher_.Exit(pid, ExitStatus::Code(128 + SIGTERM));
  coordinator_.QueueAssignment(Spec("t-2"));
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
  EXPECT_EQ(coordinator_.outcomes[0].outcome(), v1::OUTCOME_RETRYABLE);
  EXPECT_THAT(launcher_.launches(), SizeIs(1));  // no new lease while stopping
  EXPECT_TRUE(agent.Idle());
}

// A stopping worker says it is leaving only once every outcome is reported
// (the coordinator refuses a leaving worker that holds a lease).
TEST_F(AgentTest, LeavesOnlyOnceIdleWithNoLeaseInTheRequest) {
  coordinator_.QueueAssignment(Spec("t-1"));
  Agent agent(Options(), &launcher_, &coordinator_);
  Start(agent);
  const ProcessId pid = launcher_.last_id();
  agent.BeginShutdown(now_);
  const size_t before = coordinator_.heartbeats.size();
  EXPECT_FALSE(agent.Leave());  // the trial is not reported yet
  EXPECT_EQ(coordinator_.heartbeats.size(), before);
  launcher_.Exit(pid, ExitStatus::Code(128 + SIGTERM));
  agent.Tick(now_);
  ASSERT_TRUE(agent.Idle());
  EXPECT_TRUE(agent.Leave());
  ASSERT_EQ(coordinator_.heartbeats.size(), before + 1);
  EXPECT_TRUE(coordinator_.heartbeats.back().leaving());
  EXPECT_EQ(coordinator_.heartbeats.back().leases_size(), 0);
  EXPECT_EQ(coordinator_.heartbeats.back().worker_id(), agent.worker_id());
}

TEST_F(AgentTest, LaunchFailureIsReportedAsFailed) {
  coordinator_.QueueAssignment(Spec("t-1"));
  launcher_.FailNextLaunch(
      absl::InternalError("exec: No such file or directory"));
  Agent agent(Options(), &launcher_, &coordinator_);
  agent.Tick(now_);  // leases; the launch fails
  agent.Tick(now_);  // reports
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
  EXPECT_EQ(coordinator_.outcomes[0].outcome(), v1::OUTCOME_FAILED);
  EXPECT_THAT(coordinator_.outcomes[0].message(), HasSubstr("No such file"));
}

TEST_F(AgentTest, SpecLackingAValueFailsNamingTheFieldWithoutALaunch) {
  v1::TrialSpec spec = Spec("t-1");
  spec.mutable_training()->clear_beta2();
  coordinator_.QueueAssignment(spec);
  Agent agent(Options(), &launcher_, &coordinator_);
  agent.Tick(now_);  // leases; the spec is refused
  agent.Tick(now_);  // reports
  EXPECT_THAT(launcher_.launches(), SizeIs(0));
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
  EXPECT_EQ(coordinator_.outcomes[0].outcome(), v1::OUTCOME_FAILED);
  EXPECT_THAT(coordinator_.outcomes[0].message(), HasSubstr("training.beta2"));
}

TEST_F(AgentTest, ReportsItsDatasetsAtRegisterAndInHeartbeatsAfterARescan) {
  const std::filesystem::path data =
      std::filesystem::path(::testing::TempDir()) / "agent-datasets";
  std::filesystem::remove_all(data);
  std::filesystem::create_directories(data / "tiny");
  std::ofstream(data / "tiny" / "meta.json")
      << R"({"vocab_size": 256, "train_tokens": 1000, "val_tokens": 50})";
  std::ofstream(data / "tiny" / "train.bin") << "x";
  std::filesystem::create_directories(data / "bad");
  std::ofstream(data / "bad" / "meta.json") << "{oops";
  AgentOptions options = Options();
  options.trainer.data_root = data;
  options.report_datasets = true;
  Agent agent(options, &launcher_, &coordinator_);
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.registers.size(), 1u);
  EXPECT_TRUE(coordinator_.registers[0].reports_datasets());
  ASSERT_EQ(coordinator_.registers[0].datasets_size(), 1);
  EXPECT_EQ(coordinator_.registers[0].datasets(0).name(), "tiny");
  EXPECT_EQ(coordinator_.registers[0].datasets(0).vocab_size(), 256u);
  EXPECT_EQ(coordinator_.registers[0].datasets(0).train_tokens(), 1000u);
  EXPECT_THAT(log_, Contains(HasSubstr("dataset skipped: ")));
  EXPECT_THAT(log_, Contains(HasSubstr("bad: meta.json: not a JSON object")));
  // A dataset added later is in a heartbeat once the rescan is due.
  std::filesystem::create_directories(data / "kjv");
  std::ofstream(data / "kjv" / "meta.json")
      << R"({"vocab_size": 512, "train_tokens": 9000, "val_tokens": 90})";
  std::ofstream(data / "kjv" / "train.bin") << "x";
  Advance(options.dataset_rescan_interval);
  agent.Tick(now_);
  ASSERT_FALSE(coordinator_.heartbeats.empty());
  const v1::HeartbeatRequest& last = coordinator_.heartbeats.back();
  EXPECT_TRUE(last.reports_datasets());
  ASSERT_EQ(last.datasets_size(), 2);
  EXPECT_EQ(last.datasets(0).name(), "kjv");
  EXPECT_EQ(last.datasets(1).name(), "tiny");
  // The malformed one is logged once, not at every rescan.
  EXPECT_EQ(std::count_if(log_.begin(), log_.end(),
                          [](const std::string& l) {
                            return l.find("dataset skipped") !=
                                   std::string::npos;
                          }),
            1);
}

TEST_F(AgentTest, WithoutDatasetReportsItSaysNothingAboutDatasets) {
  Agent agent(Options(), &launcher_, &coordinator_);
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.registers.size(), 1u);
  EXPECT_FALSE(coordinator_.registers[0].reports_datasets());
  EXPECT_EQ(coordinator_.registers[0].datasets_size(), 0);
}

TEST_F(AgentTest, ADataFailureCarriesTheTrainersOwnMessage) {
  const std::filesystem::path logs =
      std::filesystem::path(::testing::TempDir()) / "agent-data-failure";
  std::filesystem::remove_all(logs);
  std::filesystem::create_directories(logs);
  coordinator_.QueueAssignment(Spec("t-1"));
  AgentOptions options = Options();
  options.trainer.logs_dir = logs;
  Agent agent(options, &launcher_, &coordinator_);
  Start(agent);
  std::ofstream(logs / "t-1-1.log", std::ios::app)
      << "{\"event\": \"start\"}\n"
      << "isoflop-trainer: /data/tiny/train.bin: token 7001 >= vocab_size "
         "512\n";
  launcher_.Exit(launcher_.last_id(), ExitStatus::Code(kExitInvalidConfig));
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
  EXPECT_EQ(coordinator_.outcomes[0].outcome(), v1::OUTCOME_FAILED);
  EXPECT_THAT(coordinator_.outcomes[0].message(),
              HasSubstr("trainer refused its flags or data (exit 2): "
                        "/data/tiny/train.bin: token 7001 >= vocab_size 512; "
                        "log: "));
}

// A multi-rank trial's share on this worker (docs/architecture.md §2.3).
v1::LeaseTrialResponse RankShare(const std::string& id, uint32_t first,
                                 uint32_t local, uint32_t world) {
  v1::LeaseTrialResponse r;
  r.set_has_assignment(true);
  *r.mutable_spec() = Spec(id);
  r.mutable_spec()->set_cpu_ranks(world);
  r.set_attempt(1);
  r.set_lease_epoch(5);
  v1::RankPlacement& p = *r.mutable_ranks();
  p.set_world_size(world);
  p.set_first_rank(first);
  p.set_local_ranks(local);
  p.set_master_addr("10.0.0.1");
  p.set_master_port(4000);
  return r;
}

TEST_F(AgentTest, MultiRankTrialStartsEachLocalRankWithTheDdpEnvironment) {
  coordinator_.QueueResponse(RankShare("t-1", 0, 2, 2));
  coordinator_.QueueAssignment(Spec("t-2"));
  AgentOptions options = Options(/*cpu_slots=*/2);
  options.rendezvous_host = "10.0.0.1";
  options.rendezvous_port_first = 4000;
  options.rendezvous_port_count = 10;
  Agent agent(options, &launcher_, &coordinator_);
  Start(agent);
  EXPECT_EQ(coordinator_.registers[0].resources().rendezvous_host(),
            "10.0.0.1");
  EXPECT_EQ(coordinator_.registers[0].resources().rendezvous_port_count(), 10u);
  ASSERT_THAT(launcher_.launches(), SizeIs(2));  // both slots: no t-2
  EXPECT_EQ(coordinator_.leases.size(), 1u);
  for (int r = 0; r < 2; ++r) {
    const std::vector<std::string>& env = launcher_.launches()[r].env;
    EXPECT_THAT(env, Contains("WORLD_SIZE=2"));
    EXPECT_THAT(env, Contains(absl::StrCat("RANK=", r)));
    EXPECT_THAT(env, Contains(absl::StrCat("LOCAL_RANK=", r)));
    EXPECT_THAT(env, Contains("MASTER_ADDR=10.0.0.1"));
    EXPECT_THAT(env, Contains("MASTER_PORT=4000"));
  }
  EXPECT_EQ(launcher_.launches()[0].log_path.string(), "/logs/t-1-1.log");
  EXPECT_EQ(launcher_.launches()[1].log_path.string(), "/logs/t-1-1.rank1.log");
  const ProcessId rank1 = launcher_.last_id();
  const ProcessId rank0 = rank1 - 1;
  launcher_.Write(rank0, R"({"step": 100, "val_loss": 2.5, "final": 1})");
  launcher_.Exit(rank0, ExitStatus::Code(kExitOk));
  agent.Tick(now_);  // rank 1 still runs: nothing reported yet
  EXPECT_TRUE(coordinator_.outcome_calls.empty());
  launcher_.Exit(rank1, ExitStatus::Code(kExitOk));
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
  EXPECT_EQ(coordinator_.outcomes[0].outcome(), v1::OUTCOME_SUCCEEDED);
}

TEST_F(AgentTest, GangPeerRunsItsRanksAndLeavesTheOutcomeToRankZero) {
  coordinator_.QueueResponse(RankShare("t-1", 1, 1, 2));
  Agent agent(Options(), &launcher_, &coordinator_);
  Start(agent);
  ASSERT_THAT(launcher_.launches(), SizeIs(1));
  EXPECT_THAT(launcher_.launches()[0].env, Contains("RANK=1"));
  EXPECT_THAT(launcher_.launches()[0].env, Contains("LOCAL_RANK=0"));
  EXPECT_EQ(launcher_.launches()[0].log_path.string(), "/logs/t-1-1.rank1.log");
  launcher_.Exit(launcher_.last_id(), ExitStatus::Code(kExitOk));
  agent.Tick(now_);
  EXPECT_TRUE(coordinator_.outcome_calls.empty());
  EXPECT_TRUE(coordinator_.logs.empty());
  EXPECT_TRUE(agent.Idle());
}

TEST_F(AgentTest, ARankThatDiesStopsTheOtherRanksAndTheTrialIsRetried) {
  coordinator_.QueueResponse(RankShare("t-1", 0, 2, 2));
  Agent agent(Options(/*cpu_slots=*/2), &launcher_, &coordinator_);
  Start(agent);
  const ProcessId rank1 = launcher_.last_id();
  const ProcessId rank0 = rank1 - 1;
  launcher_.Exit(rank1, ExitStatus::Signal(SIGKILL));
  agent.Tick(now_);
  ASSERT_TRUE(launcher_.process(rank0).terminated_with_grace.has_value());
  launcher_.Exit(rank0, ExitStatus::Signal(SIGTERM));
  agent.Tick(now_);
  ASSERT_EQ(coordinator_.outcomes.size(), 1u);
  EXPECT_EQ(coordinator_.outcomes[0].outcome(), v1::OUTCOME_RETRYABLE);
  EXPECT_THAT(coordinator_.outcomes[0].message(),
              HasSubstr("another rank of this worker ended first"));
}

}  // namespace
}  // namespace isoflop::worker
