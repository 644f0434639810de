// Split brain (issue 18, docs/faults.md): a worker stopped with SIGSTOP
// mid-trial cannot renew its lease nor stop its trainer (its own process
// group). The trainer's watchdog checkpoints once the lease looks lost and
// stops it before the lease expires, the coordinator re-queues only at
// expiry, a second worker resumes the trial from that checkpoint, and when
// the first is continued (SIGCONT) nothing of its attempt comes back.
// Real processes throughout: coordinator, two workers, trainers on CPU.
// Sampled every 100 ms: never two trainers of the trial alive at once, and
// the stale attempt's checkpoint never written after the new one started.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
using ::testing::Not;
using Clock = std::chrono::steady_clock;

const std::string kBin = ISOFLOP_BIN_DIR;

using ::isoflop::testing::LiveTrainersOf;
using ::isoflop::testing::TrainerProcess;

class SplitBrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("isoflop-split-brain", {"data"});
    address_ = absl::StrCat("127.0.0.1:", testing::FreePort());
  }
  void TearDown() override {
    for (auto* p : {first_.get(), second_.get(), coordinator_.get()}) {
      if (p == nullptr) continue;
      p->Signal(SIGCONT);
      p->Signal(SIGTERM);
      EXPECT_TRUE(p->Wait(std::chrono::seconds(30)).has_value())
          << p->log_path();
    }
  }
  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }
  std::unique_ptr<Subprocess> Worker(const std::string& name) {
    return testing::SpawnWorker(
        dir_, address_,
        {"--cpu-slots", "1", "--logs-dir", Path("logs-" + name),
         "--checkpoint-dir", Path("checkpoints"), "--rpc-timeout-s", "1"},
        Path(name + ".log"));
  }
  bool WaitUntil(const std::function<bool()>& done, int seconds) {
    return testing::WaitUntil(done, std::chrono::seconds(seconds));
  }

  fs::path dir_;
  std::string address_;
  std::unique_ptr<Subprocess> coordinator_, first_, second_;
};

TEST_F(SplitBrainTest, StoppedWorkersTrainerFencesItselfBeforeTheTrialMoves) {
  ASSERT_NO_FATAL_FAILURE(testing::PrepareTinyDataset(dir_));
  // TTL 4 s, heartbeats every 0.5 s: the watchdog timeout is 3.125 s
  // (worker/trial_command.h WatchdogTimeout).
  coordinator_ = testing::SpawnCoordinator(
      {"--listen", address_, "--db", Path("isoflop.db"), "--lease-ttl-s", "4",
       "--heartbeat-interval-s", "0.5"},
      Path("coordinator.log"));
  ASSERT_TRUE(testing::LogShows(Path("coordinator.log"), "listening on",
                                std::chrono::seconds(30)));
  first_ = Worker("first");
  std::ofstream(Path("one.textproto")) << R"(name: "split"
model { vocab_size: 256 context: 32 family: GPT_RMSNORM }
grid {
  flops_budgets: [8e10]
  model_shapes { d_model: 32 n_layers: 2 n_heads: 4 }
}
training { batch_sequences: 8 lr: 1e-2 warmup_fraction: 0.05 min_lr_fraction: 0.1 eval_batches: 4 seed: 7 }
data { dataset: "tiny" }
resources { gpus_per_trial: 0 max_attempts: 3 }
)";
  ExitStatus submit = RunToCompletion(
      {kBin + "/isoflop", "sweep", "submit", Path("one.textproto")},
      Path("submit.log"), testing::CliEnv(dir_, address_));
  ASSERT_EQ(submit.code, 0) << ReadFile(Path("submit.log"));
  Db db(Path("isoflop.db"));
  const auto trial_row = [&db] {
    return db.Query("SELECT id, state, attempt FROM trials")[0];
  };
  ASSERT_TRUE(WaitUntil(
      [&] {
        return std::stoi("0" + db.Query("SELECT max(step) FROM metrics WHERE "
                                        "name = 'train_loss'")[0][0]) >= 20;
      },
      120))
      << ReadFile(Path("first.log"));
  const std::string trial = trial_row()[0];
  const fs::path checkpoints = fs::path(Path("checkpoints")) / trial;

  // The sampler: every 100 ms, the trial's live trainers and the stale
  // attempt's checkpoint files.
  std::mutex mu;
  std::atomic<bool> stop{false};
  int samples = 0, max_alive = 0;
  std::set<std::string> epochs_seen;
  pid_t stale_pid = 0;      // the first attempt's trainer
  std::string stale_epoch;  // and its --lease-epoch
  std::optional<Clock::time_point> first_gone, second_seen;
  int64_t second_seen_unix_ns = 0;  // for file mtimes
  std::vector<std::string> violations;
  const auto sample = [&] {
    const std::vector<TrainerProcess> alive = LiveTrainersOf(trial);
    const auto now = Clock::now();
    std::lock_guard<std::mutex> lock(mu);
    ++samples;
    max_alive = std::max<int>(max_alive, static_cast<int>(alive.size()));
    if (alive.size() > 1) {
      violations.push_back(absl::StrCat(alive.size(), " trainers alive"));
    }
    bool stale_alive = false;
    for (const TrainerProcess& p : alive) {
      epochs_seen.insert(p.epoch);
      if (stale_pid == 0) {
        stale_pid = p.pid;
        stale_epoch = p.epoch;
      }
      stale_alive |= p.pid == stale_pid;
      if (p.pid != stale_pid && !second_seen) {
        second_seen = now;
        second_seen_unix_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
      }
    }
    if (stale_pid != 0 && !stale_alive && !first_gone) first_gone = now;
    if (second_seen && !stale_epoch.empty()) {
      // Written (or touched) by the stale attempt after the new one began?
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(checkpoints, ec)) {
        const std::string name = e.path().filename().string();
        if (!absl::StartsWith(name,
                              absl::StrCat("checkpoint.", stale_epoch, "."))) {
          continue;
        }
        struct stat st {};
        if (::stat(e.path().c_str(), &st) != 0) continue;
        const int64_t mtime_ns =
            int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
        if (mtime_ns > second_seen_unix_ns) {
          violations.push_back(absl::StrCat(name,
                                            " written after attempt 2 "
                                            "started"));
        }
      }
    }
  };
  std::thread sampler([&] {
    while (!stop.load()) {
      sample();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  struct Join {  // also when an assertion returns early
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Join() {
      stop.store(true);
      if (thread.joinable()) thread.join();
    }
  } join{stop, sampler};
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_NE(stale_pid, 0) << "no trainer of " << trial << " seen";
  }

  first_->Signal(SIGSTOP);
  const auto stopped = Clock::now();
  ASSERT_TRUE(WaitUntil([&] { return trial_row()[1] == "PENDING"; }, 60))
      << "state " << trial_row()[1];
  const auto requeued = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mu);
    // Not fatal: the rest shows what a stale trainer then does.
    EXPECT_TRUE(first_gone.has_value())
        << "the stopped worker's trainer still runs at the re-queue";
    std::printf(
        "SIGSTOP -> old trainer gone after %.2f s, trial re-queued after "
        "%.2f s (lease TTL 4 s, watchdog 3.125 s)\n",
        first_gone
            ? std::chrono::duration<double>(*first_gone - stopped).count()
            : -1.0,
        std::chrono::duration<double>(requeued - stopped).count());
  }
  const std::string first_trainer_log =
      Path(absl::StrCat("logs-first/", trial, "-1.log"));
  EXPECT_THAT(ReadFile(first_trainer_log), HasSubstr("fenced: watchdog"));

  second_ = Worker("second");
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return second_seen.has_value();
      },
      60))
      << ReadFile(Path("second.log"));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  first_->Signal(SIGCONT);
  ASSERT_TRUE(WaitUntil([&] { return trial_row()[1] == "SUCCEEDED"; }, 180))
      << "state " << trial_row()[1] << "\n"
      << ReadFile(Path("second.log"));
  // The continued worker offered what it had: refused (its lease is gone).
  std::this_thread::sleep_for(std::chrono::seconds(2));
  stop.store(true);
  sampler.join();

  std::printf("%d samples, at most %d trainer(s) of the trial alive\n", samples,
              max_alive);
  EXPECT_GE(samples, 50);
  EXPECT_EQ(max_alive, 1);
  EXPECT_THAT(violations, ::testing::IsEmpty());
  EXPECT_EQ(epochs_seen.size(), 2u);
  EXPECT_EQ(trial_row()[1], "SUCCEEDED");
  EXPECT_EQ(trial_row()[2], "2");
  const auto attempts = db.Query(
      "SELECT attempt, lease_epoch, outcome, message FROM attempts ORDER BY "
      "attempt");
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0][1], stale_epoch);
  EXPECT_EQ(attempts[0][2], "LEASE_EXPIRED");
  EXPECT_THAT(attempts[0][3], HasSubstr("fenced"));
  EXPECT_EQ(attempts[1][2], "OUTCOME_SUCCEEDED");
  // The stale trainer checkpointed once its lease looked lost (half its
  // watchdog timeout), stopped at its fence point, and the new attempt
  // resumed from that checkpoint.
  const std::string stale_log = ReadFile(first_trainer_log);
  const size_t saved = stale_log.find("checkpoint at step");
  EXPECT_NE(saved, std::string::npos);
  EXPECT_LT(saved, stale_log.find("fenced: watchdog"));
  EXPECT_THAT(stale_log, Not(HasSubstr("done:")));
  EXPECT_THAT(ReadFile(Path(absl::StrCat("logs-second/", trial, "-2.log"))),
              HasSubstr(absl::StrCat("resumed from ", checkpoints.string(),
                                     "/checkpoint.", stale_epoch, ".bin")));
  EXPECT_THAT(ReadFile(Path("first.log")), HasSubstr("exit 76"));
}

}  // namespace
}  // namespace isoflop
