// Fault (issue 18, defect 4): the coordinator's database fills up in the
// middle of a sweep run by real processes (coordinator, worker, CPU
// trainers). The store's writer is capped with PRAGMA max_page_count
// through the hidden --test-db-max-pages-file (SQLITE_FULL, "database or
// disk is full", exactly as a full filesystem answers), then the cap is
// lifted. The fault must be in the coordinator's log and /metrics, no point
// may be dropped, and the sweep must complete with every point: contiguous
// train_loss steps, no attempt lost, no attempt row left open.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"
#include "tests/integration/subprocess.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using ::isoflop::testing::CliEnv;
using ::isoflop::testing::ExitStatus;
using ::isoflop::testing::LogShows;
using ::isoflop::testing::Query;
using ::isoflop::testing::ReadFile;
using ::isoflop::testing::RunToCompletion;
using ::isoflop::testing::Subprocess;
using ::isoflop::testing::WaitUntil;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

const std::string kBin = ISOFLOP_BIN_DIR;

// 2 budgets x 2 shapes of seconds of CPU each.
constexpr char kConfig[] = R"(name: "diskfull"
model { vocab_size: 256 context: 32 family: GPT_RMSNORM }
grid {
  flops_budgets: [1e10, 3e10]
  model_shapes { d_model: 16 n_layers: 1 n_heads: 2 }
  model_shapes { d_model: 24 n_layers: 2 n_heads: 2 }
}
training { batch_sequences: 8 lr: 1e-2 warmup_fraction: 0.05 min_lr_fraction: 0.1 eval_batches: 4 seed: 7 }
data { dataset: "tiny" }
resources { gpus_per_trial: 0 max_attempts: 2 }
)";

int64_t QueryInt(const std::string& db_path, const std::string& sql) {
  const auto rows = Query(db_path, sql);
  int64_t v = -1;
  if (!rows.empty() && !rows[0].empty()) (void)absl::SimpleAtoi(rows[0][0], &v);
  return v;
}

class DiskFull : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("isoflop-diskfull", {"data", "logs"});
    address_ = absl::StrCat("127.0.0.1:", testing::FreePort());
    http_port_ = testing::FreePort();
  }
  void TearDown() override {
    // Space back (a failed test may leave the disk "full"): the worker
    // stops only once its outcomes are reported.
    if (fs::exists(Path("max_pages"))) SetMaxPages(1'000'000);
    for (auto* p : {worker_.get(), coordinator_.get()}) {
      if (p != nullptr) {
        ASSERT_NO_FATAL_FAILURE(testing::StopCleanly(*p, 20s));
      }
    }
  }
  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }
  // The file the coordinator reads PRAGMA max_page_count from. A new
  // mtime is what it watches: wait out a coarse filesystem clock.
  void SetMaxPages(int64_t pages) {
    const auto before = fs::exists(Path("max_pages"))
                            ? fs::last_write_time(Path("max_pages"))
                            : fs::file_time_type::min();
    do {
      std::ofstream(Path("max_pages"), std::ios::trunc) << pages << "\n";
      if (fs::last_write_time(Path("max_pages")) != before) break;
      std::this_thread::sleep_for(10ms);
    } while (true);
  }
  std::string Metrics() {
    const std::string token = testing::ReadToken(dir_);
    const ExitStatus curl = RunToCompletion(
        {"/usr/bin/curl", "-sS", "-m", "20", "-H",
         absl::StrCat("Authorization: Bearer ", token),
         absl::StrCat("http://127.0.0.1:", http_port_, "/metrics")},
        Path("metrics.txt"));
    std::string text = ReadFile(Path("metrics.txt"));
    fs::remove(Path("metrics.txt"));
    if (curl.code != 0) absl::StrAppend(&text, "\ncurl: exit ", curl.code);
    return text;
  }
  // The value of one sample line of /metrics ("-1" when absent).
  static int64_t Sample(const std::string& text, const std::string& name) {
    const size_t at = text.find(absl::StrCat("\n", name, " "));
    int64_t v = -1;
    if (at == std::string::npos) return v;
    const size_t from = at + name.size() + 2;
    (void)absl::SimpleAtoi(text.substr(from, text.find('\n', from) - from), &v);
    return v;
  }

  fs::path dir_;
  std::string address_;
  int http_port_ = 0;
  std::unique_ptr<Subprocess> coordinator_;
  std::unique_ptr<Subprocess> worker_;
};

TEST_F(DiskFull, SweepCompletesWithEveryPointOnceSpaceReturns) {
  // Data: Genesis and Exodus of the KJV (Debian's bible-kjv).
  ASSERT_NO_FATAL_FAILURE(testing::PrepareTinyDataset(dir_));

  const std::string db = Path("isoflop.db");
  coordinator_ = testing::SpawnCoordinator(
      {"--listen", address_, "--db", db, "--http-listen",
       absl::StrCat("127.0.0.1:", http_port_), "--test-db-max-pages-file",
       Path("max_pages")},
      Path("coordinator.log"));
  ASSERT_TRUE(LogShows(Path("coordinator.log"), "dashboard on", 30s));
  worker_ = testing::SpawnWorker(
      dir_, address_, {"--cpu-slots", "2", "--logs-dir", Path("logs")},
      Path("worker.log"));
  std::ofstream(Path("sweep.textproto")) << kConfig;
  ExitStatus submit = RunToCompletion(
      {kBin + "/isoflop", "sweep", "submit", Path("sweep.textproto")},
      Path("submit.log"), CliEnv(dir_, address_));
  ASSERT_EQ(submit.code, 0) << ReadFile(Path("submit.log"));

  // Fill the disk once training reports: the cap is the current size.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return QueryInt(db,
                        "SELECT count(*) FROM metrics WHERE name = "
                        "'train_loss'") > 0;
      },
      120s, 200ms))
      << ReadFile(Path("worker.log"));
  SetMaxPages(1);
  ASSERT_TRUE(testing::WaitForText(Path("coordinator.log"),
                                   "database or disk is full", 60s))
      << ReadFile(Path("coordinator.log"));
  std::string metrics;
  ASSERT_TRUE(WaitUntil(
      [&] {
        metrics = Metrics();
        return Sample(metrics, "isoflop_store_degraded") == 1 &&
               Sample(metrics,
                      "isoflop_store_write_errors_total{code=\"full\"}") > 0;
      },
      30s, 200ms))
      << metrics;
  // Full for a while: trainers keep training (and some end), the worker
  // keeps what the coordinator refused.
  std::this_thread::sleep_for(8s);
  const int64_t refused =
      Sample(Metrics(), "isoflop_store_writes_refused_total");
  EXPECT_GT(refused, 0);
  SetMaxPages(1'000'000);  // space returns

  ASSERT_TRUE(WaitUntil(
      [&] {
        return QueryInt(db,
                        "SELECT count(*) FROM sweeps WHERE state = "
                        "'SWEEP_SUCCEEDED'") == 1;
      },
      300s, 200ms))
      << ReadFile(Path("coordinator.log")) << "\nworker:\n"
      << ReadFile(Path("worker.log"));

  // The episode ends at the first write (a heartbeat's) 10 s after its last
  // fault.
  EXPECT_TRUE(
      testing::WaitForText(Path("coordinator.log"), "succeed again", 60s));
  const std::string log = ReadFile(Path("coordinator.log"));
  // Shouted once per episode, not per write.
  EXPECT_THAT(log, HasSubstr("store: writes to"));
  size_t fail_lines = 0;
  for (size_t at = log.find(" fail: "); at != std::string::npos;
       at = log.find(" fail: ", at + 1)) {
    ++fail_lines;
  }
  EXPECT_EQ(fail_lines, 1u) << log;
  metrics = Metrics();
  EXPECT_EQ(Sample(metrics, "isoflop_store_degraded"), 0) << metrics;
  EXPECT_GT(Sample(metrics, "isoflop_store_write_errors_total{code=\"full\"}"),
            0);
  EXPECT_THAT(ReadFile(Path("worker.log")), Not(HasSubstr("dropping")));

  EXPECT_EQ(Query(db, "PRAGMA integrity_check")[0][0], "ok");
  EXPECT_EQ(QueryInt(db,
                     "SELECT count(*) FROM attempts WHERE ended_unix_ms "
                     "IS NULL OR outcome IS NULL"),
            0);
  // No attempt lost to the fault: every trial succeeded at its first.
  EXPECT_EQ(QueryInt(db,
                     "SELECT count(*) FROM trials WHERE state = "
                     "'SUCCEEDED' AND attempt = 1"),
            4);
  // Every trial's train_loss: steps log_every, 2 log_every, ... up to its
  // last step (the final one may be off the interval).
  std::map<std::string, std::vector<int64_t>> steps;
  for (const auto& row :
       Query(db,
             "SELECT trial_id, step FROM metrics WHERE name = "
             "'train_loss' ORDER BY trial_id, step")) {
    steps[row[0]].push_back(std::stoll(row[1]));
  }
  ASSERT_EQ(steps.size(), 4u);
  int64_t points = 0;
  for (const auto& [trial, s] : steps) {
    ASSERT_GE(s.size(), 2u) << trial;
    const int64_t every = s[0];
    for (size_t i = 1; i + 1 < s.size(); ++i) {
      EXPECT_EQ(s[i], s[i - 1] + every) << trial << " step index " << i;
    }
    EXPECT_LE(s.back() - s[s.size() - 2], every) << trial;
    EXPECT_EQ(s.back(),
              QueryInt(db, absl::StrCat("SELECT step FROM trials WHERE id = '",
                                        trial, "'")))
        << trial;
    points += static_cast<int64_t>(s.size());
  }
  std::printf(
      "disk full: %lld train_loss points checked, %lld writes "
      "refused while full\n",
      static_cast<long long>(points), static_cast<long long>(refused));
}

}  // namespace
}  // namespace isoflop
