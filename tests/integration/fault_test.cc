// Issue 18's acceptance fault test and chaos soak over real processes: a real
// isoflop-coordinator (gRPC on loopback, SQLite file), isoflop-workers and
// their isoflop-trainer children (CPU, tiny models) run one small sweep while
// the test kill -9s workers (starting a new one each time) and the
// coordinator (restarted on the same --listen and --db within 0.5 s). Then,
// from the SQLite file itself: every trial SUCCEEDED; no attempt ended badly
// unless its worker was killed (a restart costs none); every trial's
// train_loss steps are contiguous at its log interval; no (trial, step, name)
// key twice; PRAGMA integrity_check ok. See docs/faults.md.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"
#include "tests/integration/subprocess.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using ::isoflop::testing::ExitStatus;
using ::isoflop::testing::ReadFile;
using ::isoflop::testing::RunToCompletion;
using ::isoflop::testing::Subprocess;
using Clock = std::chrono::steady_clock;
using ::isoflop::testing::Rows;

const std::string kBin = ISOFLOP_BIN_DIR;

// Lease TTL and heartbeat of the coordinator under test: a killed worker's
// trials are re-queued after 3 heartbeats (1.5 s), a restart grants a TTL
// (5 s).
constexpr const char* kLeaseTtlS = "5";
constexpr const char* kHeartbeatS = "0.5";

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void SleepS(double s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

// One query on a fresh connection (the coordinator's file may be replaced
// by a new process between two queries). Read-write open: a read-only one
// cannot replay the WAL of a killed coordinator.
Rows Query(const std::string& path, const std::string& sql) {
  return testing::Query(
      path, sql,
      {.read_write = true, .busy_timeout = std::chrono::milliseconds(2000)});
}

// The sweep: 4 trials of 1 800 to 4 700 steps (~10-25 s of CPU each), 2 at a
// time on one worker.
std::string SweepConfig(uint32_t max_attempts) {
  return absl::StrCat(R"(name: "faults"
model { vocab_size: 256 context: 32 family: GPT_RMSNORM }
grid {
  flops_budgets: [1e11, 1.5e11]
  model_shapes { d_model: 24 n_layers: 2 n_heads: 2 }
  model_shapes { d_model: 32 n_layers: 2 n_heads: 4 }
}
training { batch_sequences: 8 lr: 1e-2 warmup_fraction: 0.05 min_lr_fraction: 0.1 eval_batches: 2 eval_every_steps: 100 seed: 7 }
data { dataset: "tiny" }
resources { gpus_per_trial: 0 max_attempts: )",
                      max_attempts, " }\n");
}

struct Figures {
  int worker_kills = 0;
  int worker_kills_after_send = 0;
  int coordinator_kills = 0;
  // From a restarted coordinator's "listening on" to a worker's heartbeat
  // stored.
  double max_reconnect_s = 0;
  int64_t points_checked = 0;  // train_loss points compared with the grid
  int64_t duplicates = 0;
  int64_t gaps = 0;
  int64_t extra_steps = 0;
  int attempts = 0;
  int bad_attempts_of_live_workers = 0;
};

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("isoflop-fault", {"data", "logs"});
    address_ = absl::StrCat("127.0.0.1:", testing::FreePort());
    ASSERT_NO_FATAL_FAILURE(testing::PrepareTinyDataset(dir_));
  }
  void TearDown() override {
    if (HasFailure()) {
      std::printf("state kept in %s\n", dir_.c_str());
    } else {
      fs::remove_all(dir_);
    }
  }

  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }
  std::string Db() const { return Path("isoflop.db"); }

  // Starts coordinator incarnation n; returns once it listens.
  void StartCoordinator() {
    const std::string log =
        Path(absl::StrCat("coordinator-", coordinators_started_++, ".log"));
    coordinator_ = testing::SpawnCoordinator(
        {"--listen", address_, "--db", Db(), "--lease-ttl-s", kLeaseTtlS,
         "--heartbeat-interval-s", kHeartbeatS},
        log);
    ASSERT_TRUE(
        testing::LogShows(log, "listening on", std::chrono::seconds(60)));
  }
  void StartWorker() {
    const std::string log =
        Path(absl::StrCat("worker-", workers_started_++, ".log"));
    worker_logs_.push_back(log);
    worker_ = testing::SpawnWorker(
        dir_, address_,
        {"--cpu-slots", "2", "--logs-dir", Path("logs"), "--checkpoint-dir",
         Path("checkpoints"), "--rpc-timeout-s", "2", "--kill-grace-s", "5"},
        log);
  }
  // The id the worker of `log` registered under ("" if it never did).
  static std::string WorkerId(const std::string& log) {
    const std::string text = ReadFile(log);
    const size_t at = text.find("registered as ");
    if (at == std::string::npos) return "";
    const size_t from = at + 14;
    return text.substr(from, text.find_first_of(" \n", from) - from);
  }

  void KillWorker() {
    killed_worker_logs_.insert(worker_logs_.back());
    worker_->Signal(SIGKILL);
    ASSERT_TRUE(worker_->Wait(std::chrono::seconds(10)).has_value());
    ++figures_.worker_kills;
    StartWorker();
  }
  // kill -9, then a new coordinator on the same --listen and --db started
  // within 0.5 s; measures how long until a worker's heartbeat is stored.
  void RestartCoordinator(std::mt19937& rng) {
    coordinator_->Signal(SIGKILL);
    ASSERT_TRUE(coordinator_->Wait(std::chrono::seconds(10)).has_value());
    ++figures_.coordinator_kills;
    SleepS(std::uniform_real_distribution<double>(0.0, 0.45)(rng));
    ASSERT_NO_FATAL_FAILURE(StartCoordinator());
    // From "listening on" (polled every 50 ms).
    const int64_t restarted_ms = UnixMs();
    const auto restarted = Clock::now();
    // A worker is back once it heartbeats (TouchWorker stores it).
    const std::string sql = absl::StrCat(
        "SELECT count(*) FROM workers WHERE last_heartbeat_unix_ms > ",
        restarted_ms);
    while (SecondsSince(restarted) < 30) {
      const Rows rows = Query(Db(), sql);
      if (!rows.empty() && rows[0][0] != "0") break;
      SleepS(0.02);
    }
    figures_.max_reconnect_s =
        std::max(figures_.max_reconnect_s, SecondsSince(restarted));
  }

  // (count, max unix_ms) of the metrics table: changes with every committed
  // metrics batch.
  std::string MetricsVersion() {
    const Rows rows = Query(Db(), "SELECT count(*), max(unix_ms) FROM metrics");
    return rows.empty() ? "" : rows[0][0] + "/" + rows[0][1];
  }
  // Waits (up to `timeout_s`) for the next committed metrics batch.
  bool WaitForMetricsSend(double timeout_s) {
    const std::string before = MetricsVersion();
    const auto start = Clock::now();
    while (SecondsSince(start) < timeout_s) {
      SleepS(0.02);
      const std::string now = MetricsVersion();
      if (!now.empty() && now != before) return true;
    }
    return false;
  }
  bool AllTrialsEnded() {
    const Rows rows =
        Query(Db(),
              "SELECT count(*) FROM trials WHERE state NOT IN ('SUCCEEDED', "
              "'FAILED', 'CANCELLED')");
    return !rows.empty() && rows[0][0] == "0";
  }

  void SubmitSweep(uint32_t max_attempts) {
    std::ofstream(Path("sweep.textproto")) << SweepConfig(max_attempts);
    ExitStatus submit = RunToCompletion(
        {kBin + "/isoflop", "sweep", "submit", Path("sweep.textproto")},
        Path("submit.log"), testing::CliEnv(dir_, address_));
    ASSERT_EQ(submit.code, 0) << ReadFile(Path("submit.log"));
  }
  void WaitForTraining() {
    const auto start = Clock::now();
    while (SecondsSince(start) < 120) {
      const Rows rows =
          Query(Db(), "SELECT count(*) FROM metrics WHERE name = 'train_loss'");
      if (!rows.empty() && rows[0][0] != "0") return;
      SleepS(0.1);
    }
    FAIL() << "no training within 120 s: " << ReadFile(worker_logs_.back());
  }
  // Waits for the sweep to end, stops the processes and checks the file.
  void FinishAndCheck(double timeout_s) {
    const auto start = Clock::now();
    while (!AllTrialsEnded() && SecondsSince(start) < timeout_s) SleepS(0.2);
    ASSERT_TRUE(AllTrialsEnded())
        << "sweep not done in " << timeout_s << " s; last worker log:\n"
        << ReadFile(worker_logs_.back());
    for (Subprocess* p : {worker_.get(), coordinator_.get()}) {
      ASSERT_NO_FATAL_FAILURE(
          testing::StopCleanly(*p, std::chrono::seconds(30)));
    }
    Check();
  }

  void Check() {
    const std::string db = Db();
    EXPECT_EQ(Query(db, "PRAGMA integrity_check")[0][0], "ok");
    // Every trial SUCCEEDED.
    const Rows trials = Query(db, "SELECT id, state, step FROM trials");
    ASSERT_FALSE(trials.empty());
    for (const auto& t : trials) EXPECT_EQ(t[1], "SUCCEEDED") << t[0];
    // No attempt ended other than successfully unless its worker was killed
    // (a coordinator restart must cost none).
    std::set<std::string> killed;
    for (const std::string& log : killed_worker_logs_) {
      const std::string id = WorkerId(log);
      if (!id.empty()) killed.insert(id);
    }
    const Rows attempts =
        Query(db,
              "SELECT a.trial_id, a.attempt, a.worker_id, "
              "coalesce(a.outcome, ''), coalesce(a.message, ''), t.attempt "
              "FROM attempts a JOIN trials t ON t.id = a.trial_id");
    figures_.attempts = static_cast<int>(attempts.size());
    for (const auto& a : attempts) {
      if (a[3] == "OUTCOME_SUCCEEDED" || killed.count(a[2])) continue;
      ++figures_.bad_attempts_of_live_workers;
      ADD_FAILURE() << "trial " << a[0] << " attempt " << a[1] << " of live "
                    << "worker " << a[2] << " ended " << a[3] << ": " << a[4];
    }
    // Duplicate keys (the schema forbids them; counted from the rows).
    figures_.duplicates = std::stoll(Query(
        db,
        "SELECT count(*) FROM (SELECT 1 FROM metrics GROUP BY trial_id, step, "
        "name HAVING count(*) > 1)")[0][0]);
    EXPECT_EQ(figures_.duplicates, 0);
    // train_loss at every log interval (worker/trial_command.cc: steps / 100,
    // at least 1) and at the last step, from the first to the last.
    for (const auto& t : trials) {
      const int64_t steps = std::stoll(t[2]);
      const int64_t every = std::max<int64_t>(1, steps / 100);
      std::set<int64_t> want;
      for (int64_t s = every; s <= steps; s += every) want.insert(s);
      want.insert(steps);
      std::set<int64_t> got;
      for (const auto& row :
           Query(db, absl::StrCat("SELECT step FROM metrics WHERE trial_id = '",
                                  t[0], "' AND name = 'train_loss'"))) {
        got.insert(std::stoll(row[0]));
      }
      figures_.points_checked += static_cast<int64_t>(got.size());
      std::vector<int64_t> missing, extra;
      std::set_difference(want.begin(), want.end(), got.begin(), got.end(),
                          std::back_inserter(missing));
      std::set_difference(got.begin(), got.end(), want.begin(), want.end(),
                          std::back_inserter(extra));
      figures_.gaps += static_cast<int64_t>(missing.size());
      figures_.extra_steps += static_cast<int64_t>(extra.size());
      EXPECT_TRUE(missing.empty())
          << "trial " << t[0] << ": " << missing.size()
          << " train_loss steps missing, first " << missing.front();
      EXPECT_TRUE(extra.empty()) << "trial " << t[0] << ": off-grid step";
    }
  }

  void PrintFigures(const char* what) {
    const Figures& f = figures_;
    std::printf(
        "%s: %d worker kill -9 (%d of them 0.5-0.9 s after a metrics send), "
        "%d coordinator kill -9 + restart (workers back within %.2f s at "
        "most); %d attempts, %d lost to anything but a worker kill; %lld "
        "train_loss points checked: %lld duplicate keys, %lld gaps, %lld "
        "off-grid\n",
        what, f.worker_kills, f.worker_kills_after_send, f.coordinator_kills,
        f.max_reconnect_s, f.attempts, f.bad_attempts_of_live_workers,
        static_cast<long long>(f.points_checked),
        static_cast<long long>(f.duplicates), static_cast<long long>(f.gaps),
        static_cast<long long>(f.extra_steps));
    std::fflush(stdout);
  }

  fs::path dir_;
  std::string address_;
  int coordinators_started_ = 0, workers_started_ = 0;
  std::unique_ptr<Subprocess> coordinator_, worker_;
  std::vector<std::string> worker_logs_;
  std::set<std::string> killed_worker_logs_;
  Figures figures_;
};

uint32_t SeedFromEnv() {
  const char* v = std::getenv("ISOFLOP_FAULT_SEED");
  if (v != nullptr && *v != '\0') {
    return static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
  }
  return static_cast<uint32_t>(UnixMs());
}

// 10 worker kill -9 (every other one 0.5-0.9 s after a metrics batch was
// stored, when the worker holds unsent points) and 10 coordinator kill -9 +
// restart within 0.5 s, interleaved, during one sweep.
TEST_F(FaultTest, WorkerAndCoordinatorKillsLoseAndDoubleNothing) {
  const uint32_t seed = SeedFromEnv();
  std::printf("fault test seed %u (ISOFLOP_FAULT_SEED to replay)\n", seed);
  std::mt19937 rng(seed);
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  StartWorker();
  ASSERT_NO_FATAL_FAILURE(SubmitSweep(/*max_attempts=*/40));
  ASSERT_NO_FATAL_FAILURE(WaitForTraining());
  std::uniform_real_distribution<double> gap(0.3, 1.0), after_send(0.5, 0.9);
  for (int i = 0; i < 20; ++i) {
    ASSERT_FALSE(AllTrialsEnded())
        << "the sweep ended after " << i << " of 20 faults: make it longer";
    SleepS(gap(rng));
    if (i % 2 == 1) {
      ASSERT_NO_FATAL_FAILURE(RestartCoordinator(rng));
      continue;
    }
    if (i % 4 == 0 && WaitForMetricsSend(10)) {
      SleepS(after_send(rng));
      ++figures_.worker_kills_after_send;
    }
    ASSERT_NO_FATAL_FAILURE(KillWorker());
  }
  ASSERT_NO_FATAL_FAILURE(FinishAndCheck(/*timeout_s=*/300));
  PrintFigures("fault test");
  EXPECT_EQ(figures_.worker_kills, 10);
  EXPECT_EQ(figures_.coordinator_kills, 10);
  // Workers reconnect within 1 s of the coordinator's return
  // (worker/grpc_coordinator_client.h), plus up to one heartbeat interval
  // and slack for a loaded 2-core machine.
  EXPECT_LT(figures_.max_reconnect_s, 2.5);
}

// Seeded random kills of workers and the coordinator (sometimes both at
// once) at random moments for up to 40 s, then the same invariants.
TEST_F(FaultTest, ChaosSoakKeepsEveryInvariant) {
  const uint32_t seed = SeedFromEnv();
  std::printf("chaos soak seed %u (ISOFLOP_FAULT_SEED to replay)\n", seed);
  std::mt19937 rng(seed);
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  StartWorker();
  ASSERT_NO_FATAL_FAILURE(SubmitSweep(/*max_attempts=*/100));
  ASSERT_NO_FATAL_FAILURE(WaitForTraining());
  const auto start = Clock::now();
  std::uniform_real_distribution<double> gap(0.3, 3.0), unit(0, 1);
  while (SecondsSince(start) < 40 && !AllTrialsEnded()) {
    SleepS(gap(rng));
    const double r = unit(rng);
    if (r < 0.45 || r >= 0.9) {
      ASSERT_NO_FATAL_FAILURE(KillWorker());
    }
    if (r >= 0.45) {
      ASSERT_NO_FATAL_FAILURE(RestartCoordinator(rng));
    }
  }
  ASSERT_NO_FATAL_FAILURE(FinishAndCheck(/*timeout_s=*/240));
  PrintFigures("chaos soak");
  std::printf("chaos soak seed %u\n", seed);
  EXPECT_GE(figures_.worker_kills + figures_.coordinator_kills, 5);
}

}  // namespace
}  // namespace isoflop
