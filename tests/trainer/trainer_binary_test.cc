// Runs the real isoflop-trainer binary as a child process on token files.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/exit_codes.h"
#include "common/flops.h"
#include "common/token_file.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace isoflop {
namespace {

namespace fs = std::filesystem;

// A learnable stream: a repeating 16-token phrase with a little noise.
std::vector<uint16_t> PatternTokens(size_t n, uint16_t vocab) {
  std::vector<uint16_t> t(n);
  uint64_t x = 42;
  for (size_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    t[i] = (x >> 60) == 0 ? static_cast<uint16_t>((x >> 33) % vocab)
                          : static_cast<uint16_t>((i % 16) * 3 % vocab);
  }
  return t;
}

std::string MakeDataset(const std::string& name, uint32_t header_vocab) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::create_directories(dir);
  auto tokens = PatternTokens(20000, 64);
  EXPECT_TRUE(
      WriteTokenFile((dir / "train.bin").string(), header_vocab, tokens).ok());
  EXPECT_TRUE(WriteTokenFile((dir / "val.bin").string(), header_vocab,
                             std::span(tokens).first(4000))
                  .ok());
  return dir.string();
}

// The values of a trial the trainer requires as flags (trainer/options.h),
// here those it used to default to, so the runs below compute as before.
std::vector<std::string> TrialValues(bool lr = true, bool warmup = true,
                                     bool eval = true) {
  std::vector<std::string> v = {
      "--schedule",     "cosine", "--min-lr-fraction", "0.1",
      "--weight-decay", "0.1",    "--beta2",           "0.95",
      "--seed",         "0",      "--precision",       "auto",
      "--threads",      "1"};
  if (lr) v.insert(v.end(), {"--lr", "1e-3"});
  if (warmup) v.insert(v.end(), {"--warmup-steps", "0"});
  if (eval) v.insert(v.end(), {"--eval-every", "0", "--eval-batches", "8"});
  return v;
}

// `args` with `flag` given `value`, replacing its value if present (the
// trainer refuses a flag given twice).
void SetFlag(std::vector<std::string>& args, const std::string& flag,
             const std::string& value) {
  auto it = std::find(args.begin(), args.end(), flag);
  if (it != args.end() && it + 1 != args.end()) {
    *(it + 1) = value;
  } else {
    args.insert(args.end(), {flag, value});
  }
}

struct TrainerRun {
  int exit_code = -1;
  std::string stdout_text;
};

TrainerRun RunTrainer(const std::string& data_dir,
                      const std::string& extra = "") {
  const std::string cmd =
      absl::StrCat(ISOFLOP_TRAINER_BIN, " train --data-dir ", data_dir,
                   " --vocab-size 64 --context 16 --d-model 32 --n-layers 1 "
                   "--n-heads 2 --d-ff 64"
                   " --batch-sequences 8 --steps 60 --lr 1e-2 --warmup-steps 5 "
                   "--log-every 10"
                   " --eval-every 30 --eval-batches 2 ",
                   absl::StrJoin(TrialValues(/*lr=*/false, /*warmup=*/false,
                                             /*eval=*/false),
                                 " "),
                   " ", extra, " 2>/dev/null");
  TrainerRun r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) r.stdout_text += buf;
  const int raw = pclose(p);
  r.exit_code = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

TEST(TrainerBinary, LossFallsAndMetricsLinesParseWithAFinalValLoss) {
  TrainerRun r = RunTrainer(MakeDataset("pattern", 64));
  ASSERT_EQ(r.exit_code, kExitOk) << r.stdout_text;
  std::vector<nlohmann::json> lines;
  std::istringstream in(r.stdout_text);
  for (std::string line; std::getline(in, line);)
    lines.push_back(nlohmann::json::parse(line));
  std::vector<double> train_losses;
  int val_lines = 0;
  for (const auto& j : lines) {
    ASSERT_TRUE(j.contains("step"));
    if (j.contains("train_loss"))
      train_losses.push_back(j["train_loss"].get<double>());
    if (j.contains("val_loss")) ++val_lines;
  }
  ASSERT_EQ(train_losses.size(), 6u);
  EXPECT_LT(train_losses.back(), train_losses.front() - 1.0);
  EXPECT_EQ(val_lines, 2);  // step 30 and the final line
  const auto& last = lines.back();
  EXPECT_EQ(last["final"], 1);
  EXPECT_EQ(last["step"], 60);
  EXPECT_LT(last["val_loss"].get<double>(), std::log(64.0));
  EXPECT_GT(last["tokens_per_s"].get<double>(), 0);
  // 60 steps x 8 x 16 tokens drawn from 20,000 training tokens.
  ASSERT_TRUE(lines.front().contains("epochs"));
  EXPECT_NEAR(lines.front()["epochs"].get<double>(), 60.0 * 8 * 16 / 20000,
              1e-4);
}

TEST(TrainerBinary, DatasetWithALargerVocabularyExitsWithInvalidConfig) {
  TrainerRun r = RunTrainer(MakeDataset("big_vocab", 300));
  EXPECT_EQ(r.exit_code, kExitInvalidConfig);
}

TEST(TrainerBinary, TokenIdOutsideTheVocabularyExitsWithInvalidConfig) {
  // The header claims vocab 64 but one id is 64: only a scan of the ids sees
  // it.
  const std::string dir = MakeDataset("id_too_large", 64);
  const std::string train = (fs::path(dir) / "train.bin").string();
  std::fstream f(train, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(kTokenFileHeaderBytes + 2 * 123);
  const char id64[2] = {64, 0};
  f.write(id64, 2);
  f.close();
  EXPECT_EQ(RunTrainer(dir).exit_code, kExitInvalidConfig);
}

TEST(TrainerBinary, MetricsGoToTheGivenFileDescriptor) {
  const std::string out =
      (fs::path(::testing::TempDir()) / "metrics.jsonl").string();
  TrainerRun r =
      RunTrainer(MakeDataset("fd", 64), absl::StrCat("--metrics-fd 7 7>", out));
  ASSERT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(r.stdout_text, "");
  std::ifstream in(out);
  std::string line, last;
  while (std::getline(in, line)) last = line;
  EXPECT_EQ(nlohmann::json::parse(last)["final"], 1);
}

TEST(TrainerBinary, UnwritableMetricsFdExitsWithInvalidConfig) {
  EXPECT_EQ(RunTrainer(MakeDataset("bad_fd", 64), "--metrics-fd 97").exit_code,
            kExitInvalidConfig);
}

TEST(TrainerBinary, SigtermStopsTrainingPromptly) {
  const std::string dir = MakeDataset("sigterm", 64);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::vector<std::string> args = {
      ISOFLOP_TRAINER_BIN, "train", "--data-dir", dir,
      "--vocab-size",      "64",    "--context",  "16",
      "--d-model",         "32",    "--n-layers", "1",
      "--n-heads",         "2",     "--d-ff",     "64",
      "--batch-sequences", "8",     "--steps",    "100000000",
      "--log-every",       "1"};
  for (const std::string& v : TrialValues()) args.push_back(v);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ),
            0);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  char c;  // the first metrics line: training has started
  ASSERT_EQ(read(fds[0], &c, 1), 1);
  const auto sent = std::chrono::steady_clock::now();
  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  close(fds[0]);
  EXPECT_LT(std::chrono::steady_clock::now() - sent, std::chrono::seconds(5));
  const bool by_sigterm =
      (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) ||
      (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM);
  EXPECT_TRUE(by_sigterm) << status;
}

TEST(TrainerBinary, BenchPrintsThroughputAsOneJsonLine) {
  const std::string cmd = absl::StrCat(
      ISOFLOP_TRAINER_BIN,
      " bench --vocab-size 64 --context 16 --d-model 32 --n-layers 1",
      " --n-heads 2 --d-ff 64 --batch-sequences 4 --steps 3 --untimed-steps 1 ",
      absl::StrJoin(TrialValues(/*lr=*/true, /*warmup=*/true, /*eval=*/false),
                    " "),
      " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096] = {};
  ASSERT_NE(std::fgets(buf, sizeof(buf), p), nullptr);
  ASSERT_EQ(pclose(p), 0);
  const nlohmann::json j = nlohmann::json::parse(buf);
  EXPECT_GT(j["tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["steps_per_s"].get<double>(), 0);
  EXPECT_GT(j["mfu"].get<double>(), 0);
  EXPECT_EQ(j["n_params"], CountParams({64, 16, 32, 1, 2, 64}).n_total);
}

// Spawns the trainer with `args` (after the binary), stdout to a pipe,
// stderr to `err_path`.
struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;
};

Child Spawn(std::vector<std::string> args,
            const std::vector<std::string>& env_extra = {},
            const std::string& err_path = "/dev/null") {
  args.insert(args.begin(), ISOFLOP_TRAINER_BIN);
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store(env_extra);
  for (char** e = environ; *e != nullptr; ++e) env_store.push_back(*e);
  std::vector<char*> envp;
  for (std::string& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  Child c;
  EXPECT_EQ(
      posix_spawn(&c.pid, argv[0], &actions, nullptr, argv.data(), envp.data()),
      0);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  c.out = fdopen(fds[0], "r");
  return c;
}

// step -> train_loss of each metrics line; `until_step` > 0: stop reading
// after that step's line (the rest stays in the pipe).
std::map<int, double> ReadLosses(FILE* out, int until_step = 0) {
  std::map<int, double> losses;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), out) != nullptr) {
    const nlohmann::json j = nlohmann::json::parse(buf);
    if (!j.contains("train_loss")) continue;
    losses[j["step"].get<int>()] = j["train_loss"].get<double>();
    if (j["step"].get<int>() == until_step) break;
  }
  return losses;
}

int Wait(const Child& c) {
  int status = 0;
  EXPECT_EQ(waitpid(c.pid, &status, 0), c.pid);
  fclose(c.out);
  return status;
}

std::vector<std::string> SmallRun(const std::string& data_dir, int steps) {
  std::vector<std::string> args = {"train",
                                   "--data-dir",
                                   data_dir,
                                   "--vocab-size",
                                   "64",
                                   "--context",
                                   "32",
                                   "--d-model",
                                   "64",
                                   "--n-layers",
                                   "2",
                                   "--n-heads",
                                   "4",
                                   "--d-ff",
                                   "128",
                                   "--batch-sequences",
                                   "8",
                                   "--steps",
                                   std::to_string(steps),
                                   "--lr",
                                   "1e-2",
                                   "--warmup-steps",
                                   "10",
                                   "--log-every",
                                   "1"};
  for (const std::string& v :
       TrialValues(/*lr=*/false, /*warmup=*/false, /*eval=*/true))
    args.push_back(v);
  return args;
}

std::map<int, double> Losses(std::vector<std::string> args,
                             const std::vector<std::string>& env = {}) {
  Child c = Spawn(std::move(args), env);
  std::map<int, double> losses = ReadLosses(c.out);
  const int status = Wait(c);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  return losses;
}

TEST(TrainerBinary, ResumeAfterSigtermContinuesTheSameLossCurveBitwise) {
  const std::string data = MakeDataset("resume", 64);
  const std::map<int, double> full = Losses(SmallRun(data, 300));
  ASSERT_EQ(full.size(), 300u);

  // A fresh directory per run: libtorch.so exports its own
  // std::filesystem::remove_all, which crashes on a non-empty directory.
  const std::string ckpt =
      (fs::path(::testing::TempDir()) /
       absl::StrCat(
           "resume_ckpt_", getpid(), "_",
           std::chrono::steady_clock::now().time_since_epoch().count()))
          .string();
  std::vector<std::string> args = SmallRun(data, 300);
  args.insert(args.end(), {"--checkpoint-dir", ckpt, "--resume"});
  Child first = Spawn(args);
  std::map<int, double> losses = ReadLosses(first.out, /*until_step=*/150);
  kill(first.pid, SIGTERM);
  for (auto [step, loss] : ReadLosses(first.out))
    losses[step] = loss;  // lines in flight
  const int status = Wait(first);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
  const int killed_after = losses.rbegin()->first;
  ASSERT_GE(killed_after, 150);
  ASSERT_LT(killed_after, 300) << "finished before SIGTERM arrived";

  const std::map<int, double> resumed = Losses(args);
  ASSERT_FALSE(resumed.empty());
  EXPECT_EQ(resumed.begin()->first, killed_after + 1);
  for (auto [step, loss] : resumed) losses[step] = loss;
  for (int step = 151; step <= 300; ++step) {
    ASSERT_EQ(losses.count(step), 1u) << step;
    EXPECT_EQ(losses[step], full.at(step)) << "step " << step;  // bitwise
  }
}

// A worker killed with SIGKILL closes the metrics pipe: the trainer's next
// metrics line must not kill it with SIGPIPE before it checkpoints (the CI
// failure of 2026-11-25: the resumed attempt restarted from step 0).
TEST(TrainerBinary, MetricsReaderGoneCheckpointsAndExitsRetryable) {
  const std::string data = MakeDataset("reader_gone", 64);
  const std::string ckpt =
      (fs::path(::testing::TempDir()) /
       absl::StrCat(
           "reader_gone_ckpt_", getpid(), "_",
           std::chrono::steady_clock::now().time_since_epoch().count()))
          .string();
  std::vector<std::string> args = SmallRun(data, 100000000);
  args.insert(args.end(), {"--checkpoint-dir", ckpt, "--resume"});
  Child child = Spawn(args);
  ASSERT_FALSE(ReadLosses(child.out, /*until_step=*/20).empty());
  fclose(child.out);  // the reader is gone
  const auto closed = std::chrono::steady_clock::now();
  int status = 0;
  ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
  EXPECT_LT(std::chrono::steady_clock::now() - closed,
            std::chrono::seconds(10));
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), kExitRetryable);
  EXPECT_TRUE(fs::exists(fs::path(ckpt) / "checkpoint.bin"));
}

// Issue 18 defect 1: the lines a killed worker never relayed (written after
// the last one it read, before the checkpoint) come back: the checkpoint
// keeps every metrics line and --replay-metrics-from re-emits them.
TEST(TrainerBinary, ResumeReplaysTheMetricsLinesTheDeadReaderMissed) {
  const std::string data = MakeDataset("replay", 64);
  const std::string ckpt =
      (fs::path(::testing::TempDir()) /
       absl::StrCat(
           "replay_ckpt_", getpid(), "_",
           std::chrono::steady_clock::now().time_since_epoch().count()))
          .string();
  std::vector<std::string> args = SmallRun(data, 200);
  args.insert(args.end(), {"--checkpoint-dir", ckpt, "--resume"});
  Child first = Spawn(args);
  const std::map<int, double> read = ReadLosses(first.out, /*until_step=*/20);
  ASSERT_EQ(read.rbegin()->first, 20);
  fclose(first.out);  // the worker is gone: later lines are lost
  int status = 0;
  ASSERT_EQ(waitpid(first.pid, &status, 0), first.pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kExitRetryable)
      << status;

  args.insert(args.end(), {"--replay-metrics-from", "0"});
  const std::map<int, double> resumed = Losses(args);
  for (int step = 1; step <= 200; ++step) {
    ASSERT_EQ(resumed.count(step), 1u) << "step " << step << " missing";
  }
  for (auto [step, loss] : read) {
    EXPECT_EQ(resumed.at(step), loss) << "step " << step;  // as first sent
  }
}

TEST(TrainerBinary, CorruptCheckpointIsRefusedWithAClearError) {
  const std::string data = MakeDataset("corrupt", 64);
  const std::string ckpt =
      (fs::path(::testing::TempDir()) / "corrupt_ckpt").string();
  fs::create_directories(ckpt);
  std::ofstream(fs::path(ckpt) / "checkpoint.bin")
      << "ISOFCKP1 but then garbage";
  const std::string cmd =
      absl::StrCat(ISOFLOP_TRAINER_BIN, " train --data-dir ", data,
                   " --vocab-size 64 --context 16 --d-model 32 --n-layers 1"
                   " --n-heads 2 --d-ff 64 --batch-sequences 8 --steps 5 ",
                   absl::StrJoin(TrialValues(), " "), " --checkpoint-dir ",
                   ckpt, " --resume 2>&1 >/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  std::string err;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) err += buf;
  const int raw = pclose(p);
  EXPECT_TRUE(WIFEXITED(raw) && WEXITSTATUS(raw) == 1) << raw;
  EXPECT_NE(err.find("refusing to load it"), std::string::npos) << err;
}

TEST(TrainerBinary, TwoRankDdpMatchesOneRankAndGradientAccumulation) {
  const std::string data = MakeDataset("ddp", 64);
  std::vector<std::string> args = SmallRun(data, 30);
  const std::map<int, double> one = Losses(args);
  std::vector<std::string> accum = args;
  accum.insert(accum.end(), {"--grad-accum", "2"});
  const std::map<int, double> accumulated = Losses(accum);
  const std::string port = std::to_string(20000 + getpid() % 20000);
  Child rank1 = Spawn(args, {"WORLD_SIZE=2", "RANK=1", "MASTER_PORT=" + port});
  const std::map<int, double> two =
      Losses(args, {"WORLD_SIZE=2", "RANK=0", "MASTER_PORT=" + port});
  EXPECT_TRUE(ReadLosses(rank1.out).empty());  // only rank 0 writes metrics
  const int status = Wait(rank1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_EQ(two.size(), 30u);
  for (auto [step, loss] : two) {
    EXPECT_EQ(loss, accumulated.at(step)) << step;  // same reduction order
    EXPECT_NEAR(loss, one.at(step), 1e-4 * one.at(step)) << step;
  }
  // The bf16 working copy: its gradients are cast into the fp32 buffer
  // before the all-reduce.
  for (std::vector<std::string>* a : {&args, &accum})
    SetFlag(*a, "--precision", "bf16");
  const std::map<int, double> accumulated16 = Losses(accum);
  const std::string port16 = std::to_string(20001 + getpid() % 20000);
  Child r1 = Spawn(args, {"WORLD_SIZE=2", "RANK=1", "MASTER_PORT=" + port16});
  const std::map<int, double> two16 =
      Losses(args, {"WORLD_SIZE=2", "RANK=0", "MASTER_PORT=" + port16});
  Wait(r1);
  ASSERT_EQ(two16.size(), 30u);
  for (auto [step, loss] : two16)
    EXPECT_EQ(loss, accumulated16.at(step)) << step;
}

// The bytes of the AdamW moments a rank reports holding on stderr
// (trainer/train.cc: "rank R: optimizer state (AdamW moments) N bytes").
int64_t OptimizerBytes(const std::string& err_path) {
  std::ifstream in(err_path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t at = line.find("optimizer state (AdamW moments) ");
    if (at != std::string::npos) {
      return std::stoll(line.substr(at + 32));
    }
  }
  ADD_FAILURE() << "no optimizer state line in " << err_path;
  return -1;
}

// ZeRO-1 (trainer/zero.h) over 2 ranks: the curve of unsharded data
// parallelism (2-rank DDP is bitwise 1 rank with --grad-accum 2, tested
// above) within fp32 rounding (the global gradient norm is summed from the
// shards in another order), half the AdamW moments per rank, and a SIGTERM
// to rank 1 alone checkpoints both (the ranks agree, then gather the shards)
// and the resumed pair continues bitwise.
TEST(TrainerBinary, ZeroOneMatchesDdpHalvesOptimizerStateAndResumesBitwise) {
  const std::string data = MakeDataset("zero", 64);
  const std::string tmp = ::testing::TempDir();
  const std::string pid = std::to_string(getpid());
  std::vector<std::string> ddp = SmallRun(data, 60);
  ddp.insert(ddp.end(), {"--grad-accum", "2"});
  const std::string ddp_err = tmp + "/zero_ddp_" + pid + ".err";
  Child ref_child = Spawn(ddp, {}, ddp_err);
  const std::map<int, double> ref = ReadLosses(ref_child.out);
  Wait(ref_child);

  std::vector<std::string> zero = SmallRun(data, 60);
  zero.insert(zero.end(), {"--zero-stage", "1"});
  auto env = [](int rank, int port) {
    return std::vector<std::string>{"WORLD_SIZE=2", absl::StrCat("RANK=", rank),
                                    absl::StrCat("MASTER_PORT=", port)};
  };
  const int port = 20000 + getpid() % 20000;
  const std::string err0 = tmp + "/zero_r0_" + pid + ".err",
                    err1 = tmp + "/zero_r1_" + pid + ".err";
  Child r1 = Spawn(zero, env(1, port), err1);
  Child r0 = Spawn(zero, env(0, port), err0);
  const std::map<int, double> sharded = ReadLosses(r0.out);
  const int s0 = Wait(r0), s1 = Wait(r1);
  EXPECT_TRUE(WIFEXITED(s0) && WEXITSTATUS(s0) == 0) << s0;
  EXPECT_TRUE(WIFEXITED(s1) && WEXITSTATUS(s1) == 0) << s1;
  ASSERT_EQ(sharded.size(), 60u);
  EXPECT_EQ(sharded.at(1), ref.at(1));  // before any step: the same batch
  double worst = 0;
  for (auto [step, loss] : sharded)
    worst = std::max(worst, std::abs(loss - ref.at(step)) / ref.at(step));
  EXPECT_LT(worst, 1e-5) << "ZeRO-1 strays from DDP";
  EXPECT_LT(sharded.at(60), sharded.at(1) - 1.0);  // it trains

  const int64_t full = OptimizerBytes(ddp_err);
  const int64_t total = CountParams({64, 32, 64, 2, 4, 128}).n_total;
  EXPECT_EQ(full, 2 * 4 * total);  // two fp32 moments per parameter
  for (const std::string& err : {err0, err1}) {
    // Half each, the odd element of padding included.
    EXPECT_EQ(OptimizerBytes(err), 2 * 4 * ((total + 1) / 2)) << err;
  }

  const std::string ckpt = tmp + "/zero_ckpt_" + pid;
  zero.insert(zero.end(), {"--checkpoint-dir", ckpt, "--resume"});
  SetFlag(zero, "--steps", "60");
  const int port2 = port + 1;
  Child a1 = Spawn(zero, env(1, port2));
  Child a0 = Spawn(zero, env(0, port2));
  std::map<int, double> part = ReadLosses(a0.out, /*until_step=*/10);
  kill(a1.pid, SIGTERM);  // rank 1 only: rank 0 hears of it from rank 1
  for (auto [step, loss] : ReadLosses(a0.out)) part[step] = loss;
  const int k0 = Wait(a0), k1 = Wait(a1);
  EXPECT_TRUE(WIFSIGNALED(k1) && WTERMSIG(k1) == SIGTERM) << k1;
  EXPECT_TRUE(WIFSIGNALED(k0) && WTERMSIG(k0) == SIGTERM) << k0;
  const int killed_after = part.rbegin()->first;
  ASSERT_LT(killed_after, 60) << "finished before SIGTERM arrived";
  for (auto [step, loss] : part) EXPECT_EQ(loss, sharded.at(step)) << step;
  const int port3 = port + 2;
  Child b1 = Spawn(zero, env(1, port3));
  const std::map<int, double> resumed = Losses(zero, env(0, port3));
  Wait(b1);
  ASSERT_FALSE(resumed.empty());
  EXPECT_EQ(resumed.begin()->first, killed_after + 1);
  EXPECT_EQ(resumed.rbegin()->first, 60);
  for (auto [step, loss] : resumed)
    EXPECT_EQ(loss, sharded.at(step)) << "step " << step;  // bitwise
}

// --precision bf16 trains a bf16 working copy of fp32 master weights (the
// code path of CUDA, here on CPU): it must follow the fp32 curve to bf16
// accuracy, accumulate micro-steps in fp32, and resume bitwise.
TEST(TrainerBinary, Bf16WorkingCopyFollowsFp32AndResumesBitwise) {
  const std::string data = MakeDataset("bf16", 64);
  std::vector<std::string> fp32 = SmallRun(data, 60);
  std::vector<std::string> bf16 = fp32;
  SetFlag(bf16, "--precision", "bf16");
  const std::map<int, double> ref = Losses(fp32), got = Losses(bf16);
  ASSERT_EQ(got.size(), 60u);
  double worst = 0;
  for (auto [step, loss] : got) {
    worst = std::max(worst, std::abs(loss - ref.at(step)) / ref.at(step));
  }
  EXPECT_LT(worst, 0.03) << "bf16 strays from fp32";
  EXPECT_GT(worst, 0) << "bf16 computed in fp32";
  EXPECT_LT(got.at(60), got.at(1) - 1.0);

  std::vector<std::string> accum = bf16;
  accum.insert(accum.end(), {"--grad-accum", "2"});
  const std::map<int, double> accumulated = Losses(accum);
  ASSERT_EQ(accumulated.size(), 60u);
  EXPECT_NEAR(accumulated.at(60), got.at(60), 0.03 * got.at(60));

  const std::string ckpt =
      (fs::path(::testing::TempDir()) / absl::StrCat("bf16_ckpt_", getpid()))
          .string();
  std::vector<std::string> first = bf16;
  first[std::find(first.begin(), first.end(), "--steps") - first.begin() + 1] =
      "60";
  first.insert(first.end(), {"--checkpoint-dir", ckpt, "--resume"});
  Child a = Spawn(first);
  std::map<int, double> part = ReadLosses(a.out, /*until_step=*/30);
  kill(a.pid, SIGTERM);
  for (auto [step, loss] : ReadLosses(a.out)) part[step] = loss;
  Wait(a);
  const int killed_after = part.rbegin()->first;
  ASSERT_LT(killed_after, 60) << "finished before SIGTERM arrived";
  const std::map<int, double> resumed = Losses(first);
  ASSERT_EQ(resumed.begin()->first, killed_after + 1);
  for (auto [step, loss] : resumed)
    EXPECT_EQ(loss, got.at(step)) << "step " << step;  // bitwise
}

TEST(TrainerBinary, MissingDataAndBadFlagsExitWithInvalidConfig) {
  EXPECT_EQ(RunTrainer("/nonexistent").exit_code, kExitInvalidConfig);
  EXPECT_EQ(RunTrainer(MakeDataset("flags", 64), "--device tpu").exit_code,
            kExitInvalidConfig);
}

// Runs `isoflop-trainer ARGS` through the shell; stdout and the exit code.
TrainerRun RunCommand(const std::string& args) {
  TrainerRun r;
  FILE* p = popen(absl::StrCat(ISOFLOP_TRAINER_BIN, " ", args).c_str(), "r");
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) r.stdout_text += buf;
  const int raw = pclose(p);
  r.exit_code = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

TEST(TrainerBinary, FinalModelBinServesGenerateAndEval) {
  const std::string data = MakeDataset("model_bin", 64);
  const std::string run =
      (fs::path(::testing::TempDir()) / "model_bin_run").string();
  const std::string model = (fs::path(run) / "model.bin").string();
  // std::remove: libtorch.so exports a std::filesystem::remove_all that
  // crashes when the test binary's calls bind to it.
  std::remove(model.c_str());
  TrainerRun train = RunTrainer(data, "--checkpoint-dir " + run);
  ASSERT_EQ(train.exit_code, kExitOk) << train.stdout_text;
  ASSERT_TRUE(fs::exists(model));
  std::istringstream metrics(train.stdout_text);
  double val_loss = 0;
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("final")) val_loss = j["val_loss"].get<double>();
  }
  ASSERT_GT(val_loss, 0);

  // The learned phrase 0, 3, 6, ... continues under greedy decoding.
  TrainerRun gen = RunCommand(absl::StrCat(
      "generate --model ", model,
      " --prompt-ids 0,3,6,9 --max-new-tokens 8 --temperature 0 2>/dev/null"));
  ASSERT_EQ(gen.exit_code, kExitOk) << gen.stdout_text;
  std::vector<int> tokens;
  std::string reason;
  std::istringstream lines(gen.stdout_text);
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["id"], "prompt");
    if (j.contains("token")) {
      EXPECT_EQ(j["i"].get<size_t>(), tokens.size());
      tokens.push_back(j["token"].get<int>());
    }
    if (j.contains("done")) reason = j["reason"].get<std::string>();
  }
  ASSERT_EQ(tokens.size(), 8u);
  EXPECT_EQ(reason, "length");
  int right = 0;
  for (int i = 0; i < 8; ++i) right += tokens[i] == (i + 4) % 16 * 3;
  EXPECT_GE(right, 6) << gen.stdout_text;

  // Eval over all of val.bin: learned, and near the trainer's validation loss
  // (which saw 2 batches of windows, with fp32 weights).
  TrainerRun eval = RunCommand(absl::StrCat("eval --model ", model, " --data ",
                                            data, "/val.bin --bytes 8000"));
  ASSERT_EQ(eval.exit_code, kExitOk) << eval.stdout_text;
  const auto j = nlohmann::json::parse(eval.stdout_text);
  EXPECT_EQ(j["tokens"], 3999);
  EXPECT_LT(j["loss"].get<double>(), std::log(64.0) - 2);
  EXPECT_NEAR(j["loss"].get<double>(), val_loss, 0.4);
  EXPECT_NEAR(j["bits_per_byte"].get<double>(),
              j["loss"].get<double>() * 3999 / (std::log(2.0) * 8000), 1e-5);

  // A bad single request exits 2 naming the field on stderr.
  TrainerRun bad = RunCommand(
      absl::StrCat("generate --model ", model, " --prompt-ids 1,64 2>&1"));
  EXPECT_EQ(bad.exit_code, kExitInvalidConfig);
  EXPECT_NE(bad.stdout_text.find(
                "prompt_ids[1] = 64: must be >= 0 and < vocab_size = 64"),
            std::string::npos)
      << bad.stdout_text;
}

// A 100,000-piece vocabulary: ids past 65,535, so the token files hold uint32
// (docs/data-format.md). The phrase uses ids on both sides of 65,536.
std::string MakeWideDataset(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::create_directories(dir);
  std::vector<uint32_t> tokens;
  for (uint16_t t : PatternTokens(20000, 64)) tokens.push_back(t * 1562 + 7);
  EXPECT_TRUE(
      WriteTokenFile((dir / "train.bin").string(), 100000, tokens).ok());
  EXPECT_TRUE(WriteTokenFile((dir / "val.bin").string(), 100000,
                             std::span(tokens).first(400))
                  .ok());
  return dir.string();
}

std::string SmallRun(const std::string& data, int64_t vocab, int steps) {
  return absl::StrCat(
      "train --data-dir ", data, " --vocab-size ", vocab,
      " --context 16 --d-model 16 --n-layers 1 --n-heads 2 --d-ff 32"
      " --batch-sequences 8 --steps ",
      steps, " --lr 1e-2 --warmup-steps 0 --log-every 5 --eval-every 0",
      " --eval-batches 2 ",
      absl::StrJoin(TrialValues(/*lr=*/false, /*warmup=*/false,
                                /*eval=*/false),
                    " "));
}

std::vector<double> TrainLosses(const std::string& stdout_text) {
  std::vector<double> losses;
  std::istringstream in(stdout_text);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("train_loss"))
      losses.push_back(j["train_loss"].get<double>());
  }
  return losses;
}

TEST(TrainerBinary, Uint32TokensOfA100kVocabularyTrainAndEvaluate) {
  const std::string data = MakeWideDataset("wide_vocab");
  ASSERT_EQ(TokenFile::Open(data + "/train.bin")->dtype(), TokenDtype::kUint32);
  const std::string run =
      (fs::path(::testing::TempDir()) / "wide_vocab_run").string();
  const std::string model = (fs::path(run) / "model.bin").string();
  std::remove(model.c_str());
  TrainerRun train = RunCommand(absl::StrCat(
      SmallRun(data, 100000, 20), " --checkpoint-dir ", run, " 2>/dev/null"));
  ASSERT_EQ(train.exit_code, kExitOk) << train.stdout_text;
  const std::vector<double> losses = TrainLosses(train.stdout_text);
  ASSERT_EQ(losses.size(), 4u) << train.stdout_text;
  // Starts near ln(100,000) = 11.5 and learns the phrase's 16 wide ids.
  EXPECT_NEAR(losses.front(), std::log(100000.0), 1.0);
  EXPECT_LT(losses.back(), losses.front() - 1.0) << train.stdout_text;

  TrainerRun eval = RunCommand(
      absl::StrCat("eval --model ", model, " --data ", data, "/val.bin"));
  ASSERT_EQ(eval.exit_code, kExitOk) << eval.stdout_text;
  const auto j = nlohmann::json::parse(eval.stdout_text);
  EXPECT_EQ(j["tokens"], 399);
  EXPECT_LT(j["loss"].get<double>(), losses.front());
}

TEST(TrainerBinary, Uint32DatasetOfALargerVocabularyIsRefusedNamingIt) {
  const std::string data = MakeWideDataset("wide_too_large");
  TrainerRun r =
      RunCommand(absl::StrCat(SmallRun(data, 99000, 5), " 2>&1 >/dev/null"));
  EXPECT_EQ(r.exit_code, kExitInvalidConfig);
  EXPECT_NE(r.stdout_text.find("train.bin: vocab_size = 100000: must be <= "
                               "--vocab-size = 99000"),
            std::string::npos)
      << r.stdout_text;
}

// Token files as isoflop wrote them before uint32 ids (version 1, no width
// field) still train.
TEST(TrainerBinary, VersionOneTokenFilesStillTrain) {
  const fs::path dir = fs::path(::testing::TempDir()) / "version1";
  fs::create_directories(dir);
  const std::vector<uint16_t> tokens = PatternTokens(20000, 64);
  for (const char* name : {"train.bin", "val.bin"}) {
    std::string b(kTokenFileHeaderBytes, '\0');
    const uint32_t version = 1, vocab = 64;
    const uint64_t count = tokens.size();
    std::memcpy(b.data(), "ISOFTOK1", 8);
    std::memcpy(b.data() + 8, &version, 4);
    std::memcpy(b.data() + 12, &vocab, 4);
    std::memcpy(b.data() + 16, &count, 8);
    b.append(reinterpret_cast<const char*>(tokens.data()), 2 * tokens.size());
    std::ofstream((dir / name).string(), std::ios::binary) << b;
  }
  ASSERT_EQ(TokenFile::Open((dir / "train.bin").string())->version(), 1u);
  TrainerRun r =
      RunCommand(absl::StrCat(SmallRun(dir.string(), 64, 20), " 2>/dev/null"));
  ASSERT_EQ(r.exit_code, kExitOk) << r.stdout_text;
  const std::vector<double> losses = TrainLosses(r.stdout_text);
  ASSERT_EQ(losses.size(), 4u);
  EXPECT_LT(losses.back(), losses.front() - 0.5);
}

// The trainer applies no default to a trial's values: each missing flag is
// exit 2 with the flag named (the worker passes every one, worker/
// trial_command.h).
TEST(TrainerBinary, RefusesEachMissingTrialValueNamingTheFlag) {
  const std::string data = MakeDataset("missing", 64);
  const std::vector<std::string> full = SmallRun(data, 1);
  for (const char* flag :
       {"--lr", "--schedule", "--warmup-steps", "--min-lr-fraction",
        "--weight-decay", "--beta2", "--seed", "--eval-every", "--eval-batches",
        "--precision", "--threads"}) {
    std::vector<std::string> args = full;
    auto it = std::find(args.begin(), args.end(), flag);
    ASSERT_NE(it, args.end()) << flag;
    args.erase(it, it + 2);
    std::string cmd = ISOFLOP_TRAINER_BIN;
    for (const std::string& a : args) absl::StrAppend(&cmd, " ", a);
    absl::StrAppend(&cmd, " 2>&1 >/dev/null");
    FILE* p = popen(cmd.c_str(), "r");
    std::string err;
    char buf[4096];
    while (std::fgets(buf, sizeof(buf), p) != nullptr) err += buf;
    const int raw = pclose(p);
    EXPECT_TRUE(WIFEXITED(raw) && WEXITSTATUS(raw) == kExitInvalidConfig)
        << flag << ": " << raw;
    EXPECT_NE(err.find(absl::StrCat(flag, " is required")), std::string::npos)
        << flag << ": " << err;
  }
}

// --legacy loss takes the fp32 log-soft-max loss in place of the soft-max kept
// in the logits' dtype: with bf16 logits (the working copy, on CPU too) the
// curve changes. The environment variable it replaces is no longer read.
TEST(TrainerBinary, LegacyFlagSwitchesTheLossPathAndTheEnvironmentDoesNot) {
  const std::string data = MakeDataset("legacy", 64);
  std::vector<std::string> bf16 = SmallRun(data, 3);
  SetFlag(bf16, "--precision", "bf16");
  std::vector<std::string> legacy = bf16;
  legacy.insert(legacy.end(), {"--legacy", "loss"});
  const std::map<int, double> fused = Losses(bf16);
  const std::map<int, double> reference = Losses(legacy);
  const std::map<int, double> env =
      Losses(bf16, {"ISOFLOP_TRAINER_LEGACY=loss,norm,qkv,gelu,embedding"});
  ASSERT_EQ(fused.size(), 3u);
  ASSERT_EQ(reference.size(), 3u);
  EXPECT_NE(fused.at(1), reference.at(1));
  EXPECT_NEAR(fused.at(1), reference.at(1), 0.01 * reference.at(1));
  EXPECT_EQ(env, fused);
  std::vector<std::string> bad = bf16;
  bad.insert(bad.end(), {"--legacy", "loss,bogus"});
  Child c = Spawn(bad);
  EXPECT_TRUE(ReadLosses(c.out).empty());
  const int status = Wait(c);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kExitInvalidConfig)
      << status;
}

}  // namespace
}  // namespace isoflop
