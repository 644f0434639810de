// Trials that span workers (issue 25 point 2, docs/architecture.md §2.3):
// real coordinator, workers and trainers on loopback, CPU ranks over the
// trainer's gloo-less CPU all-reduce (trainer/README.md "DDP").
// 1. A 2-rank trial on one worker with 2 CPU slots: the reference curve.
// 2. The same trial with two 1-slot workers: gang-leased across both (rank 0
//    on one, rank 1 on the other), and its curve is bitwise the reference.
// 3. Again, and kill -9 of rank 0's worker mid-trial: the other worker's rank
//    ends well within the rendezvous store's 120 s timeout, the trial is
//    re-queued, and with a third worker it resumes from rank 0's checkpoint
//    (shared --checkpoint-dir) and ends with the reference curve, no step
//    missing or doubled.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
using Clock = std::chrono::steady_clock;

const std::string kBin = ISOFLOP_BIN_DIR;

using ::isoflop::testing::Alive;
using ::isoflop::testing::LiveTrainersOf;

class GangTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("isoflop-gang", {"data"});
    address_ = absl::StrCat("127.0.0.1:", testing::FreePort());
  }
  void TearDown() override {
    for (auto& [name, p] : workers_) {
      if (p == nullptr) continue;
      p->Signal(SIGTERM);
      EXPECT_TRUE(p->Wait(std::chrono::seconds(30)).has_value())
          << p->log_path();
    }
    if (coordinator_ != nullptr) {
      coordinator_->Signal(SIGTERM);
      EXPECT_TRUE(coordinator_->Wait(std::chrono::seconds(30)).has_value());
    }
  }
  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }
  // A worker with `slots` CPU slots, its own logs, the shared checkpoint
  // root (a cluster's shared filesystem) and 10 rendezvous ports of its own.
  void StartWorker(const std::string& name, int slots) {
    const int port = testing::FreePort();
    workers_[name] = testing::SpawnWorker(
        dir_, address_,
        {"--worker-id", name, "--cpu-slots", std::to_string(slots),
         "--logs-dir", Path("logs-" + name), "--checkpoint-dir",
         Path("checkpoints"), "--rendezvous-host", "127.0.0.1",
         "--rendezvous-ports", absl::StrCat(port, "-", port + 9),
         "--rpc-timeout-s", "2", "--kill-grace-s", "2"},
        Path(name + ".log"));
  }
  void StopWorker(const std::string& name) {
    ASSERT_NO_FATAL_FAILURE(
        testing::StopCleanly(*workers_[name], std::chrono::seconds(60)));
    workers_[name].reset();
  }
  // Submits the 2-rank sweep `name`; returns its trial id.
  std::string Submit(const std::string& name) {
    const std::string config = Path(name + ".textproto");
    std::ofstream(config) << "name: \"" << name << "\"\n"
                          << R"(
model { vocab_size: 256 context: 32 family: GPT_RMSNORM }
grid {
  flops_budgets: [2.4e10]
  model_shapes { d_model: 32 n_layers: 2 n_heads: 4 }
}
training { batch_sequences: 8 lr: 1e-2 warmup_fraction: 0.05 min_lr_fraction: 0.1 eval_batches: 4 seed: 7 }
data { dataset: "tiny" }
resources { gpus_per_trial: 0 cpu_ranks_per_trial: 2 max_attempts: 5 }
)";
    const ExitStatus submit = RunToCompletion(
        {kBin + "/isoflop", "sweep", "submit", config},
        Path(name + "-submit.log"), testing::CliEnv(dir_, address_));
    EXPECT_EQ(submit.code, 0) << ReadFile(Path(name + "-submit.log"));
    const testing::Rows rows = db_->Query(absl::StrCat(
        "SELECT t.id FROM trials t JOIN sweeps s ON s.id = t.sweep_id "
        "WHERE s.name = '",
        name, "'"));
    return rows.empty() ? "" : rows[0][0];
  }
  std::string State(const std::string& trial) {
    const testing::Rows r =
        db_->Query("SELECT state FROM trials WHERE id = '" + trial + "'");
    return r.empty() ? "" : r[0][0];
  }
  bool WaitForState(const std::string& trial, const std::string& state,
                    int seconds) {
    return testing::WaitUntil([&] { return State(trial) == state; },
                              std::chrono::seconds(seconds));
  }
  // step -> value of the trial's metric `name`, as text (bitwise compare).
  std::map<int64_t, std::string> Curve(const std::string& trial,
                                       const std::string& name) {
    std::map<int64_t, std::string> out;
    for (const auto& row :
         db_->Query("SELECT step, printf('%.17g', value) FROM metrics WHERE "
                    "trial_id = '" +
                    trial + "' AND name = '" + name + "' ORDER BY step")) {
      int64_t step = 0;
      if (absl::SimpleAtoi(row[0], &step)) out[step] = row[1];
    }
    return out;
  }
  void ExpectSameCurves(const std::string& a, const std::string& b) {
    for (const std::string name : {"train_loss", "val_loss"}) {
      const auto ca = Curve(a, name), cb = Curve(b, name);
      EXPECT_FALSE(ca.empty()) << name;
      EXPECT_EQ(ca, cb) << name << " of " << a << " vs " << b;
    }
  }

  fs::path dir_;
  std::string address_;
  std::unique_ptr<Subprocess> coordinator_;
  std::map<std::string, std::unique_ptr<Subprocess>> workers_;
  std::unique_ptr<Db> db_;
};

TEST_F(GangTest, TwoRanksAcrossTwoWorkersMatchOneWorkerAndSurviveAKill) {
  ASSERT_NO_FATAL_FAILURE(testing::PrepareTinyDataset(dir_));
  // TTL 4 s, heartbeats every 0.5 s (as split_brain_test.cc).
  coordinator_ = testing::SpawnCoordinator(
      {"--listen", address_, "--db", Path("isoflop.db"), "--lease-ttl-s", "4",
       "--heartbeat-interval-s", "0.5"},
      Path("coordinator.log"));
  ASSERT_TRUE(testing::LogShows(Path("coordinator.log"), "listening on",
                                std::chrono::seconds(30)));
  db_ = std::make_unique<Db>(Path("isoflop.db"));

  // 1. The reference: both ranks on one worker.
  StartWorker("solo", 2);
  const std::string ref = Submit("ref");
  ASSERT_FALSE(ref.empty());
  ASSERT_TRUE(WaitForState(ref, "SUCCEEDED", 180))
      << ReadFile(Path("solo.log"));
  ASSERT_NO_FATAL_FAILURE(StopWorker("solo"));

  // 2. Two one-slot workers: no worker can host 2 ranks, so the trial is
  // gang-leased across both.
  StartWorker("wa", 1);
  StartWorker("wb", 1);
  ASSERT_TRUE(testing::LogShows(Path("wa.log"), "registered as",
                                std::chrono::seconds(30)));
  ASSERT_TRUE(testing::LogShows(Path("wb.log"), "registered as",
                                std::chrono::seconds(30)));
  const std::string gang = Submit("gang");
  ASSERT_FALSE(gang.empty());
  ASSERT_TRUE(WaitForState(gang, "SUCCEEDED", 180))
      << ReadFile(Path("wa.log")) << ReadFile(Path("wb.log"));
  ExpectSameCurves(ref, gang);
  const testing::Rows attempts =
      db_->Query("SELECT worker_id, outcome FROM attempts WHERE trial_id = '" +
                 gang + "'");
  ASSERT_EQ(attempts.size(), 1u);
  const std::string rank0 = attempts[0][0];
  const std::string peer = rank0 == "wa" ? "wb" : "wa";
  EXPECT_EQ(attempts[0][1], "OUTCOME_SUCCEEDED");
  // The peer ran rank 1 (its own log) and reported nothing of it.
  EXPECT_TRUE(
      fs::exists(Path(absl::StrCat("logs-", peer, "/", gang, "-1.rank1.log"))))
      << ReadFile(Path(peer + ".log"));
  // Its ranks end just after rank 0's, which reported the outcome: they exit
  // 0, or the lease's end (revoked in the peer's next heartbeat) stops them.
  const std::string done = absl::StrCat("trial ", gang, " attempt 1: ");
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        const std::string log = ReadFile(Path(peer + ".log"));
        return absl::StrContains(log, done + "ranks from 1 done") ||
               absl::StrContains(log,
                                 done + "stopped after its lease was revoked");
      },
      std::chrono::seconds(30)))
      << ReadFile(Path(peer + ".log"));
  EXPECT_FALSE(
      absl::StrContains(ReadFile(Path(peer + ".log")), done + "outcome"));

  // 3. kill -9 of rank 0's worker mid-trial.
  const std::string killed = Submit("killed");
  ASSERT_FALSE(killed.empty());
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        const auto c = Curve(killed, "train_loss");
        return !c.empty() && c.rbegin()->first >= 60;
      },
      std::chrono::seconds(120)))
      << ReadFile(Path("wa.log")) << ReadFile(Path("wb.log"));
  const testing::Rows leased =
      db_->Query("SELECT worker_id FROM trials WHERE id = '" + killed + "'");
  ASSERT_EQ(leased.size(), 1u);
  const std::string victim = leased[0][0];
  const std::string survivor = victim == "wa" ? "wb" : "wa";
  const std::vector<testing::TrainerProcess> ranks = LiveTrainersOf(killed);
  ASSERT_EQ(ranks.size(), 2u);
  workers_[victim]->Signal(SIGKILL);
  ASSERT_TRUE(workers_[victim]->Wait(std::chrono::seconds(10)).has_value());
  workers_[victim].reset();
  const auto killed_at = Clock::now();
  // Rank 0's trainer checkpoints on its parent's death (SIGTERM through
  // PR_SET_PDEATHSIG) and its rendezvous store goes with it; the survivor's
  // rank must not wait out the store's 120 s timeout.
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return !Alive(ranks[0].pid) && !Alive(ranks[1].pid); },
      std::chrono::seconds(60)))
      << ReadFile(Path(survivor + ".log"));
  const double ended_s =
      std::chrono::duration<double>(Clock::now() - killed_at).count();
  std::printf("gang_test: both ranks ended %.1f s after kill -9\n", ended_s);
  EXPECT_LT(ended_s, 30.0);
  // The attempt ended (the survivor's report, or the victim's lease expiry).
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return !db_->Query("SELECT 1 FROM attempts WHERE trial_id = '" +
                           killed + "' AND attempt = 1 AND outcome IS NOT NULL")
                    .empty();
      },
      std::chrono::seconds(30)))
      << State(killed) << ReadFile(Path(survivor + ".log"));
  // A third worker: the gang forms again and resumes from the checkpoint.
  StartWorker("wc", 1);
  ASSERT_TRUE(WaitForState(killed, "SUCCEEDED", 180))
      << ReadFile(Path(survivor + ".log")) << ReadFile(Path("wc.log"));
  ExpectSameCurves(ref, killed);
  // The last attempt resumed from rank 0's checkpoint (an attempt between
  // may have gone to the victim before it was seen lost and expired).
  const testing::Rows last =
      db_->Query("SELECT worker_id, attempt FROM attempts WHERE trial_id = '" +
                 killed + "' ORDER BY attempt DESC LIMIT 1");
  ASSERT_EQ(last.size(), 1u);
  EXPECT_NE(last[0][1], "1");
  const std::string log = ReadFile(Path(
      absl::StrCat("logs-", last[0][0], "/", killed, "-", last[0][1], ".log")));
  EXPECT_TRUE(absl::StrContains(log, "resumed from")) << log;
}

}  // namespace
}  // namespace isoflop
