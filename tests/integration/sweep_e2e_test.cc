// End to end over real processes: isoflop-data prepares a corpus, a real
// isoflop-coordinator (gRPC on loopback, SQLite file) and isoflop-worker
// (spawning real isoflop-trainer children) run a tiny IsoFLOP sweep that the
// CLI submits and waits for; then the database is inspected.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/blackhole_proxy.h"
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

const std::string kBin = ISOFLOP_BIN_DIR;

// A sweep small enough for seconds of CPU: 3 budgets x 3 shapes, chosen so
// that the fitted law is usable (alpha, beta > 0) and the CLI prints N_opt.
std::string TinyConfig(const std::string& grid_override = "",
                       const std::string& extra = "") {
  std::string grid = grid_override.empty() ? R"(
  flops_budgets: [3e9, 1e10, 3e10]
  model_shapes { d_model: 16 n_layers: 1 n_heads: 2 }
  model_shapes { d_model: 24 n_layers: 2 n_heads: 2 }
  model_shapes { d_model: 32 n_layers: 2 n_heads: 4 })"
                                           : grid_override;
  return absl::StrCat(R"(name: "tiny"
model { vocab_size: 256 context: 32 family: GPT_RMSNORM }
grid {)",
                      grid, R"(
}
training { batch_sequences: 8 lr: 1e-2 warmup_fraction: 0.05 min_lr_fraction: 0.1 eval_batches: 4 seed: 7)",
                      extra, R"( }
data { dataset: "tiny" }
resources { gpus_per_trial: 0 max_attempts: 2 }
)");
}

// One HTTP/1.1 request to 127.0.0.1:port on a fresh connection, read raw (so
// that a test sees when each byte arrives and can hang up mid-stream).
// `on_data` gets everything received so far after each read and returns
// false to close the connection. Returns the status code (0: no answer).
int HttpCall(int port, const std::string& method, const std::string& path,
             const std::string& token, const std::string& body,
             const std::function<bool(const std::string&)>& on_data) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return 0;
  }
  std::string req = absl::StrCat(method, " ", path,
                                 " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 "Connection: close\r\nContent-Type: "
                                 "application/json\r\nContent-Length: ",
                                 body.size(), "\r\n");
  if (!token.empty())
    absl::StrAppend(&req, "Authorization: Bearer ", token, "\r\n");
  absl::StrAppend(&req, "\r\n", body);
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(req.size())) {
    close(fd);
    return 0;
  }
  std::string got;
  char buf[4096];
  while (true) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, n);
    if (!on_data(got)) break;
  }
  close(fd);
  int status = 0;
  if (got.rfind("HTTP/1.1 ", 0) == 0) status = std::atoi(got.c_str() + 9);
  return status;
}

// The JSON of the first `event: NAME` in an SSE text, or null.
nlohmann::json EventData(const std::string& sse, const std::string& name) {
  const size_t at = sse.find(absl::StrCat("event: ", name, "\ndata: "));
  if (at == std::string::npos) return nullptr;
  const size_t from = sse.find("data: ", at) + 6;
  return nlohmann::json::parse(sse.substr(from, sse.find('\n', from) - from),
                               nullptr, false);
}

class SweepE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("isoflop-e2e", {"data", "logs"});
    state_ = dir_;
    address_ = absl::StrCat("127.0.0.1:", testing::FreePort());
  }
  void TearDown() override {
    for (auto* p : {worker_.get(), coordinator_.get()}) {
      if (p != nullptr) {
        ASSERT_NO_FATAL_FAILURE(
            testing::StopCleanly(*p, std::chrono::seconds(20)));
      }
    }
  }
  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }

  void StartCoordinator(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> flags = {"--listen", address_, "--db",
                                      Path("isoflop.db")};
    flags.insert(flags.end(), extra.begin(), extra.end());
    coordinator_ =
        testing::SpawnCoordinator(std::move(flags), Path("coordinator.log"));
    ASSERT_TRUE(testing::LogShows(Path("coordinator.log"), "listening on",
                                  std::chrono::seconds(30)));
  }
  void PrepareData() {
    // Genesis and Exodus of the KJV (Debian's bible-kjv), ~380 KB of text.
    ASSERT_NO_FATAL_FAILURE(testing::PrepareTinyDataset(dir_));
  }
  void StartWorker() {
    worker_ = testing::SpawnWorker(
        dir_, address_, {"--cpu-slots", "2", "--logs-dir", Path("logs")},
        Path("worker.log"));
  }
  ExitStatus Cli(std::vector<std::string> args, const std::string& log) {
    args.insert(args.begin(), kBin + "/isoflop");
    return RunToCompletion(std::move(args), Path(log),
                           testing::CliEnv(state_, address_));
  }
  std::string WriteConfig(const std::string& name, const std::string& text) {
    std::ofstream(Path(name)) << text;
    return Path(name);
  }
  // Submits a sweep of one point, ~25 s of training on 2 cores: still
  // running when a worker gives up on the lease (cut + ~5 s).
  void SubmitOneLongTrial() {
    ExitStatus submit =
        Cli({"sweep", "submit",
             WriteConfig("one.textproto",
                         TinyConfig("\n  flops_budgets: [5e11]\n  model_shapes "
                                    "{ d_model: 32 n_layers: 2 n_heads: 4 }"))},
            "submit.log");
    ASSERT_EQ(submit.code, 0) << ReadFile(Path("submit.log"));
  }
  // The highest train_loss step stored (0 before any): a running trial's
  // row keeps its step in memory, the metrics table shows the progress.
  static int MaxTrainLossStep(Db& db) {
    return std::stoi(
        "0" +
        db.Query(
            "SELECT max(step) FROM metrics WHERE name = 'train_loss'")[0][0]);
  }
  // Polls `done` every 50 ms for up to `seconds` (testing::WaitUntil).
  static bool WaitUntil(const std::function<bool()>& done, int seconds) {
    return testing::WaitUntil(done, std::chrono::seconds(seconds));
  }

  fs::path dir_;
  fs::path state_;  // the coordinator's token files (dir_ unless moved)
  std::string address_;
  std::unique_ptr<Subprocess> coordinator_;
  std::unique_ptr<Subprocess> worker_;
};

TEST_F(SweepE2E, TinySweepRunsToAFittedLawThroughRealProcesses) {
  ASSERT_NO_FATAL_FAILURE(PrepareData());
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  StartWorker();
  ExitStatus submit =
      Cli({"sweep", "submit", WriteConfig("tiny.textproto", TinyConfig()),
           "--wait"},
          "submit.log");
  const std::string out = ReadFile(Path("submit.log"));
  ASSERT_EQ(submit.code, 0) << out << "\nworker:\n"
                            << ReadFile(Path("worker.log"));
  EXPECT_THAT(out, HasSubstr("alpha"));
  EXPECT_THAT(out, HasSubstr("N_opt"));
  // Issue 20: the fit converts with the trials' own FLOPs/token and says so,
  // with the sensitivity line of the final fit.
  EXPECT_THAT(out, HasSubstr("C: C = D x FLOPs/token(N)"));
  EXPECT_THAT(out, HasSubstr("Sensitivity of the N_opt exponent a: "));

  Db db(Path("isoflop.db"));
  EXPECT_EQ(db.Query("PRAGMA integrity_check")[0][0], "ok");
  EXPECT_EQ(db.Query("SELECT count(*) FROM trials")[0][0], "9");
  // Every trial reported training losses and the loss fell from first to last.
  auto curves = db.Query(
      "SELECT trial_id, value FROM metrics WHERE name = 'train_loss' ORDER BY "
      "trial_id, step");
  std::map<std::string, std::vector<double>> by_trial;
  for (const auto& row : curves) by_trial[row[0]].push_back(std::stod(row[1]));
  ASSERT_EQ(by_trial.size(), 9u);
  for (const auto& [trial, losses] : by_trial) {
    ASSERT_GE(losses.size(), 2u) << trial;
    EXPECT_LT(losses.back(), losses.front()) << trial;
  }
  EXPECT_GE(std::stoi(db.Query(
                "SELECT count(*) FROM metrics WHERE name = 'val_loss'")[0][0]),
            9);
  EXPECT_EQ(db.Query("SELECT count(*) FROM fits")[0][0], "1");
}

// Issue 21: a sweep whose shapes come from parameter targets through the
// shape rule, whose lr and batch come from the deepseek2024 preset, trained
// under WSD with µP: the real trainer accepts the flags the worker builds
// from each expanded trial, and its reported lr holds at the peak through
// the middle of the run and cools down over the last 20% of the steps.
TEST_F(SweepE2E, RecipeSweepWithWsdAndMupRunsThroughRealProcesses) {
  ASSERT_NO_FATAL_FAILURE(PrepareData());
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  StartWorker();
  const std::string config = R"(name: "recipe"
model { vocab_size: 256 context: 32 }
grid { flops_budgets: [3e9] n_targets: [12e3, 24e3] }
training { hparam_preset: DEEPSEEK2024 schedule: WSD mup_base_width: 16
           warmup_fraction: 0.05 min_lr_fraction: 0.1 eval_batches: 2 }
data { dataset: "tiny" }
resources { gpus_per_trial: 0 max_attempts: 1 }
)";
  ExitStatus submit =
      Cli({"sweep", "submit", WriteConfig("recipe.textproto", config)},
          "submit.log");
  ASSERT_EQ(submit.code, 0) << ReadFile(Path("submit.log"));
  Db db(Path("isoflop.db"));
  // Two trials of a few seconds each; a refused flag fails them at once.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return db.Query(
                   "SELECT count(*) FROM trials WHERE state IN "
                   "('SUCCEEDED', 'FAILED')")[0][0] == "2";
      },
      120));
  EXPECT_EQ(
      db.Query("SELECT count(*) FROM trials WHERE state = 'SUCCEEDED'")[0][0],
      "2")
      << ReadFile(Path("worker.log"));
  // lr per step of each trial: deepseek2024 at C = 3e9 gives 0.3118 *
  // 3e9^-0.125 = 0.02044 as the peak.
  auto rows = db.Query(
      "SELECT trial_id, step, value FROM metrics WHERE name = 'lr' ORDER BY "
      "trial_id, step");
  std::map<std::string, std::vector<std::pair<int, double>>> by_trial;
  for (const auto& r : rows) {
    by_trial[r[0]].push_back({std::stoi(r[1]), std::stod(r[2])});
  }
  ASSERT_EQ(by_trial.size(), 2u);
  for (const auto& [trial, lr] : by_trial) {
    SCOPED_TRACE(trial);
    ASSERT_GE(lr.size(), 10u);
    const int last = lr.back().first;
    double at_middle = 0;
    for (const auto& [step, v] : lr) {
      if (step <= last / 2) at_middle = v;
    }
    EXPECT_NEAR(at_middle, 0.3118 * std::pow(3e9, -0.125), 1e-4);
    EXPECT_LT(lr.back().second, 0.5 * at_middle);  // cooled down
  }
}

// Issue 21 point 5: the worker reports the datasets under its --data-dir
// (`worker list`), and a trial that its trainer refuses for its data (exit 2)
// says why in `sweep status`, in the trainer's own words, not only in its
// log. The dataset's meta.json is valid but its train.bin is not a token
// file.
TEST_F(SweepE2E, ADataFailureSaysWhyInSweepStatus) {
  fs::create_directories(dir_ / "data" / "broken");
  std::ofstream(dir_ / "data" / "broken" / "meta.json")
      << R"({"vocab_size": 256, "train_tokens": 5000, "val_tokens": 500})";
  std::ofstream(dir_ / "data" / "broken" / "train.bin")
      << std::string(200, 'x');
  std::ofstream(dir_ / "data" / "broken" / "val.bin") << std::string(200, 'x');
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  StartWorker();
  ASSERT_TRUE(testing::LogShows(Path("worker.log"), "registered as",
                                std::chrono::seconds(60)));
  ExitStatus list = Cli({"worker", "list"}, "workers.log");
  ASSERT_EQ(list.code, 0) << ReadFile(Path("workers.log"));
  EXPECT_THAT(ReadFile(Path("workers.log")), HasSubstr("broken(V=256, "));

  std::string config = TinyConfig(
      "\n  flops_budgets: [3e9]\n  model_shapes { d_model: 16 n_layers: 1 "
      "n_heads: 2 }");
  config.replace(config.find("dataset: \"tiny\""), 16, "dataset: \"broken\"");
  ExitStatus submit =
      Cli({"sweep", "submit", WriteConfig("broken.textproto", config)},
          "submit.log");
  const std::string submitted = ReadFile(Path("submit.log"));
  ASSERT_EQ(submit.code, 0) << submitted;
  Db db(Path("isoflop.db"));
  ASSERT_TRUE(WaitUntil(
      [&db] {
        const auto rows = db.Query("SELECT state FROM sweeps");
        return !rows.empty() && rows[0][0] == "SWEEP_FAILED";
      },
      120))
      << ReadFile(Path("worker.log"));
  const std::string sweep_id = db.Query("SELECT id FROM sweeps")[0][0];
  ExitStatus status = Cli({"sweep", "status", sweep_id}, "status.log");
  const std::string text = ReadFile(Path("status.log"));
  ASSERT_EQ(status.code, 0) << text;
  EXPECT_THAT(text, HasSubstr("trainer refused its flags or data (exit 2): "));
  EXPECT_THAT(text, HasSubstr("broken/train.bin")) << text;
}

// Kill -9 of a worker mid-trial: the kernel SIGTERMs its trainer (which
// checkpoints), the coordinator declares the worker lost after 3 silent
// heartbeat intervals (1 s each) and re-queues the trial when its lease
// expires (TTL 6 s), and a second worker sharing the checkpoint directory
// resumes it to success.
TEST_F(SweepE2E, WorkerKilledMidTrialIsRequeuedAndResumedByAnotherWorker) {
  ASSERT_NO_FATAL_FAILURE(PrepareData());
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator({"--lease-ttl-s", "6", "--heartbeat-interval-s", "1"}));
  const std::string checkpoints = Path("checkpoints");
  auto worker = [&](const std::string& name) {
    return testing::SpawnWorker(
        dir_, address_,
        {"--cpu-slots", "1", "--logs-dir", Path("logs-" + name),
         "--checkpoint-dir", checkpoints},
        Path(name + ".log"));
  };
  std::unique_ptr<Subprocess> first = worker("first");
  ASSERT_NO_FATAL_FAILURE(SubmitOneLongTrial());

  Db db(Path("isoflop.db"));
  const auto trial_row = [&db] {
    return db.Query("SELECT state, attempt, step FROM trials")[0];
  };
  // Trial rows keep their step in memory while running; the metrics table
  // shows the progress.
  ASSERT_TRUE(WaitUntil([&] { return MaxTrainLossStep(db) >= 100; }, 120))
      << ReadFile(Path("first.log"));

  first->Signal(SIGKILL);
  ASSERT_TRUE(first->Wait(std::chrono::seconds(5)).has_value());
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitUntil([&] { return trial_row()[0] == "PENDING"; }, 30))
      << "state " << trial_row()[0];
  const double requeue_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed)
          .count();
  std::printf("worker kill -9 -> trial PENDING in %.2f s\n", requeue_s);
  EXPECT_LE(requeue_s, 10.0);  // the 6 s TTL + the reaper's period
  EXPECT_THAT(db.Query("SELECT error FROM trials")[0][0], HasSubstr("lost"));

  std::unique_ptr<Subprocess> second = worker("second");
  ASSERT_TRUE(WaitUntil([&] { return trial_row()[0] == "SUCCEEDED"; }, 180))
      << ReadFile(Path("second.log"));
  EXPECT_EQ(trial_row()[1], "2");
  // The second attempt resumed from the first one's SIGTERM checkpoint (and
  // re-reported the steps before it: the store keeps the latest attempt's).
  const std::string trial = db.Query("SELECT id FROM trials")[0][0];
  const std::string resumed_log =
      ReadFile(Path(absl::StrCat("logs-second/", trial, "-2.log")));
  const size_t at = resumed_log.find("resumed from ");
  ASSERT_NE(at, std::string::npos) << resumed_log;
  const size_t after = resumed_log.find(" after step ", at);
  ASSERT_NE(after, std::string::npos) << resumed_log;
  EXPECT_GE(std::atoi(resumed_log.c_str() + after + 12), 100) << resumed_log;
  EXPECT_TRUE(db.Query("SELECT trial_id, step, name FROM metrics GROUP BY "
                       "trial_id, step, name HAVING count(*) > 1")
                  .empty());
  EXPECT_EQ(db.Query("PRAGMA integrity_check")[0][0], "ok");
  // The finished trial's checkpoint goes (the worker frees it once the
  // coordinator has acknowledged the outcome, so just after the CLI sees
  // SUCCEEDED), its final weights stay (for `trial sample`).
  std::vector<std::string> left;
  for (int i = 0; i < 200; ++i) {
    left.clear();
    std::error_code ec;  // a file may go while we look
    for (auto it = fs::recursive_directory_iterator(checkpoints, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec)) {
        left.push_back(fs::relative(it->path(), checkpoints).string());
      }
    }
    if (left.size() == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_THAT(left, ::testing::ElementsAre(::testing::EndsWith("/model.bin")));
  second->Signal(SIGTERM);
  ASSERT_TRUE(second->Wait(std::chrono::seconds(20)).has_value());
}

// A network cut (a proxy that drops every byte, no connection reset) between
// a worker and the coordinator: the coordinator declares the worker lost and
// re-queues the trial once the lease expired, the trainer's watchdog has
// stopped it before that (the worker would kill it once no heartbeat got
// through for longer than the lease), a second worker runs the trial to
// success, and when the network heals the first worker's stale messages are
// refused: the trial ran to success exactly once.
TEST_F(SweepE2E, NetworkCutWorkerKillsItsTrainerAndTheTrialRunsOnceElsewhere) {
  ASSERT_NO_FATAL_FAILURE(PrepareData());
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(
      {"--lease-ttl-s", "3", "--heartbeat-interval-s", "0.5"}));
  testing::BlackholeProxy proxy(
      std::stoi(address_.substr(address_.find(':') + 1)));
  auto worker = [&](const std::string& name, const std::string& address) {
    return testing::SpawnWorker(dir_, address,
                                {"--cpu-slots", "1", "--logs-dir",
                                 Path("logs-" + name), "--rpc-timeout-s", "1"},
                                Path(name + ".log"));
  };
  std::unique_ptr<Subprocess> first = worker("first", proxy.address());
  ASSERT_NO_FATAL_FAILURE(SubmitOneLongTrial());
  Db db(Path("isoflop.db"));
  const auto trial_row = [&db] {
    return db.Query("SELECT id, state, attempt FROM trials")[0];
  };
  ASSERT_TRUE(WaitUntil([&] { return MaxTrainLossStep(db) >= 50; }, 120))
      << ReadFile(Path("first.log"));
  const std::string trial = trial_row()[0];

  proxy.Cut();
  const auto cut = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitUntil([&] { return trial_row()[1] == "PENDING"; }, 30))
      << "state " << trial_row()[1];
  const std::string first_trainer_log = Path("logs-first/" + trial + "-1.log");
  // The trainer stops instead of training on: its watchdog, unfed since the
  // cut, fences it (2.375 s) before the lease expires (3 s).
  ASSERT_TRUE(testing::WaitForText(first_trainer_log, "fenced: watchdog",
                                   std::chrono::seconds(20)))
      << ReadFile(first_trainer_log);
  const double kill_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - cut)
          .count();
  std::printf("network cut -> the trainer's fence seen after %.2f s\n", kill_s);

  std::unique_ptr<Subprocess> second = worker("second", address_);
  ASSERT_TRUE(WaitUntil([&] { return trial_row()[1] == "SUCCEEDED"; }, 180))
      << ReadFile(Path("second.log"));
  EXPECT_EQ(trial_row()[2], "2");

  proxy.Heal();  // the first worker reconnects and offers what it still has
  ASSERT_TRUE(testing::WaitForText(Path("first.log"), "registered as",
                                   std::chrono::seconds(30)));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(trial_row()[1], "SUCCEEDED");
  EXPECT_EQ(trial_row()[2], "2");
  EXPECT_THAT(ReadFile(first_trainer_log), Not(HasSubstr("done:")));
  EXPECT_THAT(ReadFile(Path("logs-second/" + trial + "-2.log")),
              HasSubstr("done:"));
  EXPECT_EQ(db.Query("SELECT group_concat(attempt || ':' || outcome) FROM "
                     "attempts")[0][0],
            "1:LEASE_EXPIRED,2:OUTCOME_SUCCEEDED");
  EXPECT_TRUE(db.Query("SELECT trial_id, attempt, step, name FROM metrics "
                       "GROUP BY trial_id, attempt, step, name HAVING "
                       "count(*) > 1")
                  .empty());
  EXPECT_EQ(db.Query("PRAGMA integrity_check")[0][0], "ok");
  for (auto* p : {first.get(), second.get()}) {
    p->Signal(SIGTERM);
    ASSERT_TRUE(p->Wait(std::chrono::seconds(20)).has_value());
  }
}

struct BadConfig {
  std::string name;
  std::string text;
  std::string field;  // must appear in the error
};

// `argv` run where `hidden` (a directory) reads as an empty tmpfs: in a
// mount namespace of its own (unshare, in a user namespace when not root).
// Empty if this host allows no such namespace.
std::vector<std::string> HidingFrom(const fs::path& hidden,
                                    std::vector<std::string> argv) {
  static const bool can = RunToCompletion({"/usr/bin/unshare", "-rm", "/bin/sh",
                                           "-c", "mount -t tmpfs none /mnt"},
                                          "/dev/null")
                              .code == 0;
  if (!can) return {};
  std::vector<std::string> out = {
      "/usr/bin/unshare",
      "-rm",
      "/bin/sh",
      "-c",
      "mount -t tmpfs -o size=1m none \"$0\" && exec \"$@\"",
      hidden.string()};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

// Sampling a trained trial: POST /api/v1/trials/{id}/generate streams the
// trainer's tokens as Server-Sent Events while they are produced; bad or
// unauthenticated requests are refused with a reason; a client that hangs up
// ends its trainer and frees its slot. The coordinator and the worker keep
// their state, data and checkpoints under separate directories, each hidden
// from the other process (an empty tmpfs over it): the job goes to the
// worker over its gRPC stream and the tokens come back the same way.
TEST_F(SweepE2E, GenerateStreamsTokensAsProducedAndAGoneClientEndsTheTrainer) {
  const fs::path coord = dir_ / "coordinator", work = dir_ / "worker";
  fs::create_directories(coord);
  fs::create_directories(work / "data");
  state_ = coord;
  ASSERT_NO_FATAL_FAILURE(testing::PrepareTinyDataset(work));
  const int http = testing::FreePort();
  std::vector<std::string> coordinator = {kBin + "/isoflop-coordinator",
                                          "--listen",
                                          address_,
                                          "--db",
                                          (coord / "isoflop.db").string(),
                                          "--http-listen",
                                          absl::StrCat("127.0.0.1:", http),
                                          "--max-generations",
                                          "1"};
  std::vector<std::string> hidden = HidingFrom(work, coordinator);
  if (hidden.empty()) {
    std::printf(
        "note: no mount namespace here (unshare -rm fails): the "
        "directories are apart but not hidden\n");
  }
  coordinator_ = std::make_unique<Subprocess>(
      hidden.empty() ? coordinator : hidden, Path("coordinator.log"));
  ASSERT_TRUE(testing::LogShows(Path("coordinator.log"), "listening on",
                                std::chrono::seconds(30)));
  // The worker gets its own copy of the worker token.
  fs::copy_file(coord / "worker_token", work / "worker_token");
  std::vector<std::string> worker = {kBin + "/isoflop-worker",
                                     "--token-file",
                                     (work / "worker_token").string(),
                                     "--coordinator",
                                     address_,
                                     "--data-dir",
                                     (work / "data").string(),
                                     "--trainer",
                                     kBin + "/isoflop-trainer",
                                     "--cpu-slots",
                                     "2",
                                     "--logs-dir",
                                     (work / "logs").string()};
  hidden = HidingFrom(coord, worker);
  worker_ = std::make_unique<Subprocess>(hidden.empty() ? worker : hidden,
                                         Path("worker.log"));
  // One trial with a context long enough for a few hundred new tokens.
  const std::string config = R"(name: "sample"
model { vocab_size: 256 context: 512 family: GPT_RMSNORM }
grid { flops_budgets: [2e11] model_shapes { d_model: 128 n_layers: 4 n_heads: 4 } }
training { batch_sequences: 8 lr: 1e-2 eval_batches: 2 seed: 7 }
data { dataset: "tiny" }
resources { gpus_per_trial: 0 max_attempts: 1 }
)";
  // One point fits no law, so --wait ends non-zero; the trial is what counts.
  Cli({"sweep", "submit", WriteConfig("sample.textproto", config), "--wait"},
      "submit.log");
  std::string trial;
  {
    Db db((coord / "isoflop.db").string());
    const auto rows = db.Query("SELECT id, state FROM trials");
    ASSERT_EQ(rows.size(), 1u);
    ASSERT_EQ(rows[0][1], "SUCCEEDED") << ReadFile(Path("worker.log"));
    trial = rows[0][0];
  }
  ASSERT_TRUE(
      fs::is_regular_file(work / "logs/checkpoints" / trial / "model.bin"));
  const std::string token = testing::ReadToken(coord);
  const std::string path = absl::StrCat("/api/v1/trials/", trial, "/generate");
  std::string reply;
  auto keep = [&reply](const std::string& got) {
    reply = got;
    return true;
  };

  EXPECT_EQ(HttpCall(http, "POST", path, "", R"({"prompt": "x"})", keep), 401);
  EXPECT_EQ(HttpCall(http, "POST", path, token,
                     R"({"prompt": "x", "max_new_tokens": 100000})", keep),
            400);
  EXPECT_THAT(reply, HasSubstr("max_new_tokens = 100000: must be an integer"));
  EXPECT_EQ(
      HttpCall(http, "POST", path, token,
               absl::StrCat(R"({"prompt": ")", std::string(5000, 'a'), R"("})"),
               keep),
      400);
  EXPECT_THAT(reply, HasSubstr("prompt: 5000 bytes: must be at most 4096"));
  EXPECT_EQ(HttpCall(http, "POST", path, token,
                     R"({"prompt": "x", "temprature": 1})", keep),
            400);
  EXPECT_THAT(reply, HasSubstr("temprature: unknown field"));
  EXPECT_EQ(HttpCall(http, "POST", "/api/v1/trials/tr-none/generate", token,
                     R"({"prompt": "x"})", keep),
            404);

  // Streaming: the first token reaches the client long before the last.
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  std::optional<Clock::time_point> first_token, done;
  const int status = HttpCall(
      http, "POST", path, token,
      R"({"prompt": "In the beginning", "max_new_tokens": 400,
          "temperature": 0.8, "seed": 3, "ignore_eos": true})",
      [&](const std::string& got) {
        reply = got;
        if (!first_token && got.find("event: token") != std::string::npos)
          first_token = Clock::now();
        if (!done && got.find("event: done") != std::string::npos)
          done = Clock::now();
        return true;
      });
  ASSERT_EQ(status, 200) << reply;
  ASSERT_TRUE(first_token.has_value() && done.has_value()) << reply;
  const nlohmann::json start = EventData(reply, "start");
  ASSERT_TRUE(start.is_object()) << reply;
  EXPECT_GE(start["prompt_tokens"].get<int>(), 1);
  const nlohmann::json end = EventData(reply, "done");
  ASSERT_TRUE(end.is_object()) << reply;
  EXPECT_EQ(end["n"], 400);
  EXPECT_FALSE(end["text"].get<std::string>().empty());
  // How long the trainer took from its first token to its last, as the
  // coordinator read them, against how far apart the client saw them.
  const double produced_ms =
      end["last_token_ms"].get<double>() - end["first_token_ms"].get<double>();
  const double seen_ms =
      std::chrono::duration<double, std::milli>(*done - *first_token).count();
  std::printf(
      "generate: first token %.1f ms after the request, the last %.1f ms "
      "after it; the trainer produced the 400 tokens over %.1f ms\n",
      std::chrono::duration<double, std::milli>(*first_token - t0).count(),
      seen_ms, produced_ms);
  ASSERT_GT(produced_ms, 20) << "too fast to tell streaming from buffering";
  EXPECT_GE(seen_ms, 0.5 * produced_ms)
      << "first token after "
      << std::chrono::duration<double, std::milli>(*first_token - t0).count()
      << " ms, the rest " << seen_ms << " ms later; produced over "
      << produced_ms << " ms";

  // A client that hangs up after the first token: the coordinator kills the
  // trainer and the one slot (--max-generations 1) is free again.
  HttpCall(http, "POST", path, token,
           R"({"prompt_ids": [5, 6, 7], "max_new_tokens": 500,
               "ignore_eos": true})",
           [](const std::string& got) {
             return got.find("event: token") == std::string::npos;
           });
  EXPECT_TRUE(testing::WaitForText(Path("coordinator.log"), "client gone after",
                                   std::chrono::seconds(20)))
      << ReadFile(Path("coordinator.log"));
  // The worker ended that trainer (the coordinator's cancel reached it).
  EXPECT_TRUE(testing::WaitForText(Path("worker.log"),
                                   "cancelled by the coordinator (client gone)",
                                   std::chrono::seconds(20)))
      << ReadFile(Path("worker.log"));
  bool free = false;
  for (int i = 0; i < 200 && !free; ++i) {
    HttpCall(http, "GET", "/metrics", token, "", keep);
    free = reply.find("isoflop_generations_running 0") != std::string::npos;
    if (!free) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(free) << reply;
  EXPECT_EQ(HttpCall(http, "POST", path, token,
                     R"({"prompt_ids": [5, 6, 7], "max_new_tokens": 4})", keep),
            200);
  EXPECT_THAT(reply, HasSubstr("event: done"));

  // The CLI: `trial sample` prints the prompt and its continuation, `trial
  // eval` the loss on a dataset's validation tokens, by name only.
  const std::string url = absl::StrCat("http://127.0.0.1:", http);
  ExitStatus sample =
      Cli({"trial", "sample", trial, "--http", url, "--prompt", "And God said",
           "--max-new-tokens", "24", "--ignore-eos", "--seed", "5"},
          "sample.log");
  const std::string sampled = ReadFile(Path("sample.log"));
  EXPECT_EQ(sample.code, 0) << sampled;
  EXPECT_THAT(sampled, HasSubstr("And God said"));
  EXPECT_THAT(sampled, HasSubstr("24 tokens (length); first token after"));
  ExitStatus eval = Cli(
      {"trial", "eval", trial, "--http", url, "--data", "tiny"}, "eval.log");
  const std::string evaluated = ReadFile(Path("eval.log"));
  EXPECT_EQ(eval.code, 0) << evaluated;
  EXPECT_THAT(evaluated, HasSubstr("nats/token over"));
  ExitStatus by_path =
      Cli({"trial", "eval", trial, "--http", url, "--data", Path("text.txt")},
          "eval-path.log");
  EXPECT_NE(by_path.code, 0);
  EXPECT_THAT(ReadFile(Path("eval-path.log")),
              HasSubstr("must be a dataset name"));
  ExitStatus bad =
      Cli({"trial", "sample", "tr-none", "--http", url, "--prompt", "x"},
          "sample-bad.log");
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(ReadFile(Path("sample-bad.log")),
              HasSubstr("NOT_FOUND: trial tr-none: unknown"));
}

// `trial logs -f` follows a running trial's trainer output (relayed by the
// worker, kept by the coordinator) and ends when the trial does; afterwards
// `trial logs` and GET /api/v1/trials/{id}/logs serve the same bytes.
TEST_F(SweepE2E, TrialLogsFollowsTheTrainersOutputUntilTheTrialEnds) {
  ASSERT_NO_FATAL_FAILURE(PrepareData());
  const int http = testing::FreePort();
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator({"--http-listen", absl::StrCat("127.0.0.1:", http)}));
  StartWorker();
  ExitStatus submit =
      Cli({"sweep", "submit",
           WriteConfig("one.textproto",
                       TinyConfig("\n  flops_budgets: [3e10]\n  model_shapes { "
                                  "d_model: 24 n_layers: 2 n_heads: 2 }"))},
          "submit.log");
  ASSERT_EQ(submit.code, 0) << ReadFile(Path("submit.log"));
  std::string trial;
  {
    Db db(Path("isoflop.db"));
    trial = db.Query("SELECT id FROM trials")[0][0];
  }
  Subprocess follow({kBin + "/isoflop", "trial", "logs", trial, "-f"},
                    Path("follow.log"), testing::CliEnv(dir_, address_));
  const std::optional<ExitStatus> followed =
      follow.Wait(std::chrono::seconds(120));
  ASSERT_TRUE(followed.has_value()) << ReadFile(Path("follow.log"));
  const std::string out = ReadFile(Path("follow.log"));
  EXPECT_EQ(followed->code, 0) << out;
  EXPECT_THAT(out, HasSubstr("isoflop-trainer: done:"));
  EXPECT_THAT(out, HasSubstr("step "));
  {
    Db db(Path("isoflop.db"));  // -f ended because the trial did
    EXPECT_EQ(db.Query("SELECT state FROM trials")[0][0], "SUCCEEDED");
  }
  // The worker's own copy of the log is what was relayed, byte for byte.
  const std::string file =
      ReadFile(Path(absl::StrCat("logs/", trial, "-1.log")));
  ASSERT_THAT(file, HasSubstr("isoflop-trainer: done:"));
  ExitStatus once = Cli({"trial", "logs", trial}, "once.log");
  EXPECT_EQ(once.code, 0);
  EXPECT_EQ(ReadFile(Path("once.log")), file);

  const std::string token = testing::ReadToken(dir_);
  std::string reply;
  auto keep = [&reply](const std::string& got) {
    reply = got;
    return true;
  };
  ASSERT_EQ(HttpCall(http, "GET",
                     absl::StrCat("/api/v1/trials/", trial, "/logs?offset=0"),
                     token, "", keep),
            200)
      << reply;
  const nlohmann::json j = nlohmann::json::parse(
      reply.substr(reply.find("\r\n\r\n") + 4), nullptr, false);
  EXPECT_EQ(j.value("data", ""), file);
  EXPECT_EQ(j.value("finished", false), true);
  EXPECT_EQ(j.value("next_offset", 0u), file.size());
  EXPECT_EQ(HttpCall(http, "GET",
                     absl::StrCat("/api/v1/trials/", trial, "/logs?offset=-1"),
                     token, "", keep),
            400);
  EXPECT_THAT(reply, HasSubstr("offset = -1: must be >= 0"));

  ExitStatus bad = Cli({"trial", "logs", "tr-none"}, "bad.log");
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(ReadFile(Path("bad.log")),
              HasSubstr("NOT_FOUND: trial tr-none: not found"));
  // The calls above show in /metrics: one latency histogram per RPC method.
  ASSERT_EQ(HttpCall(http, "GET", "/metrics", token, "", keep), 200);
  for (const char* method : {"GetTrialLogs", "ReportLogs", "ReportOutcome",
                             "RegisterWorker", "SubmitSweep"}) {
    EXPECT_THAT(reply, HasSubstr(absl::StrCat(
                           "isoflop_rpc_duration_seconds_bucket{method=\"",
                           method, "\",le=\"+Inf\"} ")));
    EXPECT_THAT(reply,
                HasSubstr(absl::StrCat(
                    "isoflop_rpc_duration_seconds_count{method=\"", method)));
  }
  // Three `trial logs` runs: at least one call each (-f polls more).
  const size_t at = reply.find(
      "isoflop_rpc_duration_seconds_count{method=\"GetTrialLogs\"} ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GE(std::atoi(reply.c_str() + reply.find("} ", at) + 2), 3) << reply;
}

TEST_F(SweepE2E, SubmitRefusesBadConfigsNamingTheFieldAndWritesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  const std::string shapes =
      "\n  model_shapes { d_model: 16 n_layers: 1 n_heads: 2 }";
  const std::vector<BadConfig> table = {
      {"negative_budget", TinyConfig("\n  flops_budgets: [-1, 1e10]" + shapes),
       "grid.flops_budgets[0]"},
      {"unknown_field", TinyConfig("", "\n  learning_rate_typo: 3"),
       "learning_rate_typo"},
      {"zero_layers",
       TinyConfig("\n  flops_budgets: [1e10]\n  model_shapes { d_model: 16 "
                  "n_layers: 0 n_heads: 2 }"),
       "n_layers"},
      {"heads_not_dividing",
       TinyConfig("\n  flops_budgets: [1e10]\n  model_shapes { d_model: 30 "
                  "n_layers: 1 n_heads: 4 }"),
       "n_heads"},
      {"budget_below_one_step", TinyConfig("\n  flops_budgets: [1e3]" + shapes),
       "flops_budgets"},
  };
  for (const BadConfig& c : table) {
    ExitStatus s =
        Cli({"sweep", "submit", WriteConfig(c.name + ".textproto", c.text)},
            c.name + ".log");
    const std::string out = ReadFile(Path(c.name + ".log"));
    EXPECT_NE(s.code, 0) << c.name << ": " << out;
    EXPECT_THAT(out, HasSubstr(c.field)) << c.name;
  }
  Db db(Path("isoflop.db"));
  EXPECT_EQ(db.Query("SELECT count(*) FROM sweeps")[0][0], "0");
  EXPECT_EQ(db.Query("SELECT count(*) FROM trials")[0][0], "0");
  EXPECT_EQ(db.Query("PRAGMA integrity_check")[0][0], "ok");
}

}  // namespace
}  // namespace isoflop
