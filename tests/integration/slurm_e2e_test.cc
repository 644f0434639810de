// Workers under Slurm (issue 25, docs/cluster.md), real processes:
// - WorkerPreemption: SIGUSR1 (Slurm's --signal warning) to a worker mid-trial
//   checkpoints the trainer, hands the trial back RETRYABLE, leaves the
//   coordinator and exits 0. Runs everywhere.
// - SlurmE2E: a real single-host Slurm (munged, slurmctld, slurmd on loopback,
//   configured here in a temp dir) runs `isoflop cluster slurm
//   submit-workers --nodes 1`; the job is preempted (USR1 to the batch
//   script, as --signal=B:USR1 does), resubmitted, scancelled mid-trial,
//   resubmitted, and the trial finishes with every acknowledged metric point
//   kept and no step missing. Skipped, saying why, where Slurm cannot run:
//   not installed, or not root (slurmd starts job steps as the submitting
//   user through setuid, which needs root).
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"
#include "tests/integration/subprocess.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using ::isoflop::testing::Db;
using ::isoflop::testing::ExitStatus;
using ::isoflop::testing::ReadFile;
using ::isoflop::testing::RunToCompletion;
using ::isoflop::testing::Subprocess;
using ::testing::HasSubstr;

const std::string kBin = ISOFLOP_BIN_DIR;

// One trial of ~1,760 optimizer steps (~12 s on one quiet core): each stop
// comes ~60 steps into an attempt, and the steps left after the second must
// outlast the test's reaction to them (~350 steps ran out in 2.4 s on a
// quiet machine, before the scancel).
std::string OneTrialConfig() {
  return R"(name: "slurm"
model { vocab_size: 256 context: 32 family: GPT_RMSNORM }
grid {
  flops_budgets: [1e11]
  model_shapes { d_model: 32 n_layers: 2 n_heads: 4 }
}
training { batch_sequences: 8 lr: 1e-2 warmup_fraction: 0.05 min_lr_fraction: 0.1 eval_batches: 4 seed: 7 }
data { dataset: "tiny" }
resources { gpus_per_trial: 0 max_attempts: 5 }
)";
}

// The program's path on PATH, or "".
std::string OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path == nullptr ? "" : path, ':')) {
    fs::path p = fs::path(std::string(dir)) / name;
    if (access(p.c_str(), X_OK) == 0) return p.string();
  }
  for (const char* dir : {"/usr/sbin", "/sbin"}) {
    fs::path p = fs::path(dir) / name;
    if (access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

class PreemptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("isoflop-slurm", {"data", "logs"});
    address_ = absl::StrCat("127.0.0.1:", testing::FreePort());
  }
  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }
  void StartCoordinator() {
    coordinator_ = testing::SpawnCoordinator(
        {"--listen", address_, "--db", Path("isoflop.db"),
         "--heartbeat-interval-s", "1"},
        Path("coordinator.log"));
    ASSERT_TRUE(testing::LogShows(Path("coordinator.log"), "listening on",
                                  std::chrono::seconds(30)));
  }
  ExitStatus Cli(std::vector<std::string> args, const std::string& log,
                 std::vector<std::string> env = {}) {
    args.insert(args.begin(), kBin + "/isoflop");
    std::vector<std::string> all = testing::CliEnv(dir_, address_);
    all.insert(all.end(), env.begin(), env.end());
    return RunToCompletion(std::move(args), Path(log), all);
  }
  void SubmitOneTrial() {
    std::ofstream(Path("one.textproto")) << OneTrialConfig();
    ExitStatus submit =
        Cli({"sweep", "submit", "-y", Path("one.textproto")}, "submit.log");
    ASSERT_EQ(submit.code, 0) << ReadFile(Path("submit.log"));
  }
  // The train_loss points stored so far, by step.
  static std::map<int, std::string> TrainLoss(Db& db) {
    std::map<int, std::string> out;
    for (const auto& row : db.Query("SELECT step, quote(value) FROM metrics "
                                    "WHERE name = 'train_loss'")) {
      out[std::stoi(row[0])] = row[1];
    }
    return out;
  }
  static int MaxStep(Db& db) {
    const std::map<int, std::string> points = TrainLoss(db);
    return points.empty() ? 0 : points.rbegin()->first;
  }
  static bool WaitUntil(const std::function<bool()>& done, int seconds) {
    return testing::WaitUntil(done, std::chrono::seconds(seconds),
                              std::chrono::milliseconds(100));
  }
  void TearDown() override {
    if (coordinator_ != nullptr) {
      ASSERT_NO_FATAL_FAILURE(
          testing::StopCleanly(*coordinator_, std::chrono::seconds(20)));
    }
  }

  fs::path dir_;
  std::string address_;
  std::unique_ptr<Subprocess> coordinator_;
};

using WorkerPreemption = PreemptionTest;

// USR1 mid-trial: the worker SIGTERMs its trainer (which checkpoints),
// reports OUTCOME_RETRYABLE and exits 0; the trial is PENDING again at once
// (not a lease TTL later). Before SIGUSR1 was handled the worker died of it
// and the trial waited for its lease to expire.
TEST_F(WorkerPreemption, Usr1CheckpointsHandsTheTrialBackAndExits) {
  ASSERT_NO_FATAL_FAILURE(testing::PrepareTinyDataset(dir_));
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  std::unique_ptr<Subprocess> worker =
      testing::SpawnWorker(dir_, address_,
                           {"--cpu-slots", "1", "--logs-dir", Path("logs"),
                            "--checkpoint-dir", Path("checkpoints")},
                           Path("worker.log"));
  ASSERT_NO_FATAL_FAILURE(SubmitOneTrial());
  Db db(Path("isoflop.db"));
  ASSERT_TRUE(WaitUntil([&] { return MaxStep(db) >= 50; }, 120))
      << ReadFile(Path("worker.log"));
  worker->Signal(SIGUSR1);
  const std::optional<ExitStatus> exit = worker->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(exit.has_value()) << ReadFile(Path("worker.log"));
  EXPECT_EQ(exit->signal, 0) << ReadFile(Path("worker.log"));
  EXPECT_EQ(exit->code, 0) << ReadFile(Path("worker.log"));
  // The default lease TTL is 30 s: PENDING well before it means the outcome
  // was reported, not reaped.
  ASSERT_TRUE(WaitUntil(
      [&] { return db.Query("SELECT state FROM trials")[0][0] == "PENDING"; },
      10));
  const testing::Rows attempts =
      db.Query("SELECT attempt, outcome, message FROM attempts");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0][1], "OUTCOME_RETRYABLE");
  EXPECT_THAT(attempts[0][2], HasSubstr("checkpointed after step"));
  EXPECT_THAT(ReadFile(Path("worker.log")),
              HasSubstr("received User defined signal 1"));
  // It left (HeartbeatRequest.leaving): forgotten, not shown lost.
  EXPECT_THAT(ReadFile(Path("worker.log")), HasSubstr("left the coordinator"));
  EXPECT_EQ(db.Query("SELECT count(*) FROM workers")[0][0], "0");
}

// A single-host Slurm of its own: munged, slurmctld and slurmd in the
// foreground on free loopback ports, state under `dir`. Stop() cancels every
// job (so no worker outlives the test) and stops the daemons.
class LocalSlurm {
 public:
  explicit LocalSlurm(fs::path dir) : dir_(std::move(dir)) {}
  ~LocalSlurm() { Stop(); }

  // "" when Slurm can run here, else why not.
  static std::string WhyNot() {
    for (const char* p : {"munged", "slurmctld", "slurmd", "sbatch", "scancel",
                          "squeue", "sinfo"}) {
      if (OnPath(p).empty()) {
        return absl::StrCat(
            "Slurm is not installed (no ", p,
            "): apt-get install slurmctld slurmd slurm-client munge "
            "(scripts/setup.sh does)");
      }
    }
    if (geteuid() != 0) {
      return absl::StrCat(
          "slurmd must run as root (it starts job steps as the submitting "
          "user through setuid/initgroups); this test runs as uid ",
          geteuid());
    }
    return "";
  }

  void Start() {
    // Unix socket paths (slurmstepd's in the spool, munged's) must stay under
    // 108 bytes: those two folders go to a short one under /tmp.
    char short_dir[] = "/tmp/isoflop-slurm-XXXXXX";
    ASSERT_NE(mkdtemp(short_dir), nullptr) << std::strerror(errno);
    short_ = short_dir;
    fs::create_directories(short_ / "munge");
    fs::create_directories(dir_ / "state");
    fs::create_directories(short_ / "spool");
    fs::permissions(short_ / "munge", fs::perms::owner_all,
                    fs::perm_options::replace);
    {
      std::mt19937_64 rng(std::random_device{}());
      std::ofstream key(short_ / "munge/key", std::ios::binary);
      for (int i = 0; i < 128; ++i) {
        const uint64_t word = rng();
        key.write(reinterpret_cast<const char*>(&word), sizeof word);
      }
    }
    fs::permissions(short_ / "munge/key", fs::perms::owner_read,
                    fs::perm_options::replace);
    const std::string munge_socket = (short_ / "munge/socket").string();
    munged_ = std::make_unique<Subprocess>(
        std::vector<std::string>{
            OnPath("munged"), "--foreground", "--force",
            "--key-file=" + (short_ / "munge/key").string(),
            "--socket=" + munge_socket,
            "--pid-file=" + (short_ / "munge/pid").string(),
            "--seed-file=" + (short_ / "munge/seed").string(),
            "--log-file=" + (dir_ / "munged.log").string()},
        (dir_ / "munged.out").string());
    ASSERT_TRUE(testing::WaitUntil([&] { return fs::exists(munge_socket); },
                                   std::chrono::seconds(30)))
        << ReadFile((dir_ / "munged.out").string())
        << ReadFile((dir_ / "munged.log").string());
    conf_ = (dir_ / "slurm.conf").string();
    std::ofstream(conf_) << absl::StrCat(
        "ClusterName=isoflop-test\n"
        "SlurmctldHost=localhost(127.0.0.1)\n"
        "SlurmctldPort=",
        testing::FreePort(), "\nSlurmdPort=", testing::FreePort(),
        "\nSlurmUser=root\nSlurmdUser=root\n"
        "AuthType=auth/munge\nCredType=cred/munge\n"
        "AuthInfo=socket=",
        munge_socket, "\nStateSaveLocation=", (dir_ / "state").string(),
        "\nSlurmdSpoolDir=", (short_ / "spool").string(),
        "\nSlurmctldPidFile=", (dir_ / "slurmctld.pid").string(),
        "\nSlurmdPidFile=", (dir_ / "slurmd.pid").string(),
        "\nSlurmctldLogFile=", (dir_ / "slurmctld.log").string(),
        "\nSlurmdLogFile=", (dir_ / "slurmd.log").string(),
        "\n"
        // No cgroups, no accounting: nothing the sandbox may lack.
        "ProctrackType=proctrack/pgid\nTaskPlugin=task/none\n"
        "JobAcctGatherType=jobacct_gather/none\n"
        "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n"
        "SchedulerType=sched/builtin\nMpiDefault=none\n"
        "ReturnToService=2\nSlurmdParameters=config_overrides\n"
        "KillWait=30\n"
        // CPUs=4 whatever the machine has (config_overrides): a new job
        // starts while the last one is still completing.
        "NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 RealMemory=100 "
        "State=UNKNOWN\n"
        "PartitionName=isoflop Nodes=localhost Default=YES "
        "MaxTime=INFINITE State=UP\n");
    slurmctld_ = std::make_unique<Subprocess>(
        std::vector<std::string>{OnPath("slurmctld"), "-D", "-i", "-f", conf_},
        (dir_ / "slurmctld.out").string(), Env());
    slurmd_ = std::make_unique<Subprocess>(
        std::vector<std::string>{OnPath("slurmd"), "-D", "-N", "localhost",
                                 "-f", conf_},
        (dir_ / "slurmd.out").string(), Env());
    ASSERT_TRUE(testing::WaitUntil(
        [&] {
          return absl::StartsWith(Run({"sinfo", "-h", "-o", "%T"}), "idle");
        },
        std::chrono::seconds(60), std::chrono::milliseconds(250)))
        << "the node never came up idle: " << Run({"sinfo"})
        << ReadFile((dir_ / "slurmctld.log").string())
        << ReadFile((dir_ / "slurmd.log").string());
  }

  // SLURM_CONF for the Slurm clients (and the CLI's sbatch).
  std::vector<std::string> Env() const { return {"SLURM_CONF=" + conf_}; }

  // A Slurm client's stdout+stderr.
  std::string Run(std::vector<std::string> argv) {
    const std::string log = (dir_ / "client.out").string();
    std::error_code ec;
    fs::remove(log, ec);
    argv[0] = OnPath(argv[0]);
    RunToCompletion(std::move(argv), log, Env());
    return ReadFile(log);
  }

  void Stop() {
    if (slurmctld_ != nullptr && slurmd_ != nullptr) {
      Run({"scancel", "--partition", "isoflop"});
      testing::WaitUntil(
          [&] {
            return absl::StripAsciiWhitespace(Run({"squeue", "-h"})).empty();
          },
          std::chrono::seconds(60), std::chrono::milliseconds(250));
    }
    for (auto* p : {&slurmd_, &slurmctld_, &munged_}) {
      if (*p != nullptr) {
        (*p)->Signal(SIGTERM);
        (*p)->Wait(std::chrono::seconds(20));
        p->reset();  // SIGKILL if it is still there
      }
    }
    if (!short_.empty()) {
      std::error_code ec;
      fs::remove_all(short_, ec);
      short_.clear();
    }
  }

  // The slurmd log, for failure messages.
  std::string DaemonLog() const {
    return ReadFile((dir_ / "slurmd.log").string());
  }

  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
  fs::path short_;
  std::string conf_;
  std::unique_ptr<Subprocess> munged_, slurmctld_, slurmd_;
};

using SlurmE2E = PreemptionTest;

TEST_F(SlurmE2E, PreemptedAndScancelledWorkerJobsLoseNoAcknowledgedStep) {
  const std::string why_not = LocalSlurm::WhyNot();
  if (!why_not.empty()) GTEST_SKIP() << why_not;
  LocalSlurm slurm(dir_ / "slurm");
  ASSERT_NO_FATAL_FAILURE(slurm.Start());
  ASSERT_NO_FATAL_FAILURE(testing::PrepareTinyDataset(dir_));
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());

  int jobs = 0;
  const auto submit_workers = [&]() -> std::string {
    const std::string log = absl::StrCat("submit-workers-", ++jobs, ".log");
    ExitStatus r = Cli({"cluster",
                        "slurm",
                        "submit-workers",
                        "--nodes",
                        "1",
                        "--coordinator",
                        address_,
                        "--data-dir",
                        Path("data"),
                        "--worker-token-file",
                        Path("worker_token"),
                        "--checkpoint-dir",
                        Path("checkpoints"),
                        "--logs-dir",
                        Path("logs"),
                        "--worker-bin",
                        kBin + "/isoflop-worker",
                        "--output",
                        Path("job-%j.out"),
                        "--script-out",
                        Path(absl::StrCat("workers-", jobs, ".sbatch"))},
                       log, slurm.Env());
    EXPECT_EQ(r.code, 0) << ReadFile(Path(log));
    const std::string out = ReadFile(Path(log));
    const size_t at = out.find("submitted job ");
    if (at == std::string::npos) return "";
    return std::string(absl::StripSuffix(
        out.substr(at + 14, out.find(':', at) - at - 14), ":"));
  };
  const auto job_out = [&](const std::string& job) {
    return ReadFile(Path(absl::StrCat("job-", job, ".out")));
  };
  Db db(Path("isoflop.db"));
  const auto trial = [&db] {
    return db.Query("SELECT state, attempt FROM trials")[0];
  };

  std::string job = submit_workers();
  ASSERT_FALSE(job.empty());
  ASSERT_NO_FATAL_FAILURE(SubmitOneTrial());
  ASSERT_TRUE(WaitUntil([&] { return MaxStep(db) >= 60; }, 120))
      << job_out(job) << slurm.Run({"squeue"}) << slurm.DaemonLog();
  EXPECT_EQ(db.Query("SELECT worker_id FROM attempts")[0][0],
            absl::StrCat("slurm-", job, "-localhost"));

  // 1. Preemption warning: USR1 to the batch script (what
  // --signal=B:USR1@120 does before the end); the worker hands the trial
  // back and the job ends by itself.
  slurm.Run({"scancel", "--batch", "--signal=USR1", job});
  ASSERT_TRUE(WaitUntil(
      [&] {
        return absl::StrContains(job_out(job), "workers ended (srun exit 0)");
      },
      60))
      << job_out(job);
  EXPECT_THAT(job_out(job), HasSubstr("received SIGUSR1"));
  // The worker left: the coordinator forgot it.
  EXPECT_THAT(job_out(job), HasSubstr("left the coordinator"));
  EXPECT_TRUE(db.Query(absl::StrCat("SELECT id FROM workers WHERE id = "
                                    "'slurm-",
                                    job, "-localhost'"))
                  .empty());
  ASSERT_TRUE(WaitUntil([&] { return trial()[0] == "PENDING"; }, 10))
      << trial()[0] << job_out(job);
  const std::map<int, std::string> after_preemption = TrainLoss(db);

  // 2. Resubmitted, then scancelled mid-trial.
  job = submit_workers();
  ASSERT_FALSE(job.empty());
  ASSERT_TRUE(WaitUntil(
      [&] { return MaxStep(db) >= after_preemption.rbegin()->first + 60; },
      120))
      << job_out(job);
  const std::map<int, std::string> before_scancel = TrainLoss(db);
  slurm.Run({"scancel", job});
  ASSERT_TRUE(WaitUntil(
      [&] {
        return absl::StrContains(job_out(job), "workers ended (srun exit 0)");
      },
      60))
      << job_out(job);
  ASSERT_TRUE(WaitUntil([&] { return trial()[0] == "PENDING"; }, 10))
      << trial()[0] << job_out(job);

  // 3. A third job finishes the trial.
  job = submit_workers();
  ASSERT_FALSE(job.empty());
  ASSERT_TRUE(WaitUntil([&] { return trial()[0] == "SUCCEEDED"; }, 180))
      << trial()[0] << job_out(job);
  EXPECT_EQ(trial()[1], "3");
  const testing::Rows attempts = db.Query(
      "SELECT attempt, outcome, message, worker_id FROM attempts ORDER BY "
      "attempt");
  ASSERT_EQ(attempts.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    // Handed back by the worker, not reaped after a lease expiry.
    EXPECT_EQ(attempts[i][1], "OUTCOME_RETRYABLE") << attempts[i][2];
    EXPECT_THAT(attempts[i][2], HasSubstr("checkpointed after step"));
  }
  EXPECT_EQ(attempts[2][1], "OUTCOME_SUCCEEDED");
  EXPECT_EQ(attempts[2][3], absl::StrCat("slurm-", job, "-localhost"));

  // Every point acknowledged before each stop is still there, unchanged, and
  // the steps are one evenly spaced run (the trainer's --log-every) ending
  // with the trial's last step: none missing, none twice (the table's key is
  // (trial, name, step)).
  const std::map<int, std::string> final_points = TrainLoss(db);
  for (const auto* seen : {&after_preemption, &before_scancel}) {
    for (const auto& [step, value] : *seen) {
      ASSERT_TRUE(final_points.count(step)) << "step " << step << " lost";
      EXPECT_EQ(final_points.at(step), value) << "step " << step;
    }
  }
  ASSERT_GE(final_points.size(), 3u);
  const int last = std::stoi(db.Query("SELECT step FROM trials")[0][0]);
  const int every = final_points.begin()->first;
  int expected = every;
  std::string steps;
  for (const auto& [step, value] : final_points) {
    absl::StrAppend(&steps, step, " ");
    if (expected > last) expected = last;  // the final step, off the grid
    if (step != expected) {
      ADD_FAILURE() << "step " << step << " where " << expected
                    << " was due: " << steps;
      break;
    }
    expected += every;
  }
  EXPECT_EQ(final_points.rbegin()->first, last) << steps;
  EXPECT_GT(last, before_scancel.rbegin()->first);
  std::printf("train_loss steps: %s\n", steps.c_str());
  slurm.Stop();
}

}  // namespace
}  // namespace isoflop
