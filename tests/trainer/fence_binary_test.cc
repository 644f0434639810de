// The real isoflop-trainer fences itself: an unfed watchdog stops it with
// kExitFenced and no checkpoint, a fed one lets it finish, and an attempt
// older than the checkpoint directory's fence refuses to start.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/boot_clock.h"
#include "common/exit_codes.h"
#include "common/token_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Fresh(const std::string& what) {
  return (fs::path(::testing::TempDir()) /
          absl::StrCat(
              "fence_bin_", what, "_", getpid(), "_",
              std::chrono::steady_clock::now().time_since_epoch().count()))
      .string();
}

std::string Dataset() {
  const std::string dir = Fresh("data");
  fs::create_directories(dir);
  std::vector<uint16_t> tokens(20000);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<uint16_t>((i * 7) % 64);
  }
  EXPECT_TRUE(
      WriteTokenFile((fs::path(dir) / "train.bin").string(), 64, tokens).ok());
  EXPECT_TRUE(WriteTokenFile((fs::path(dir) / "val.bin").string(), 64,
                             std::span(tokens).first(4000))
                  .ok());
  return dir;
}

struct TrainerChild {
  pid_t pid = -1;
  int feed_fd = -1;  // our end of the child's --watchdog-fd 5 (a socket)
  std::string err_path;
  TrainerChild() = default;
  TrainerChild(TrainerChild&& o) noexcept
      : pid(o.pid),
        feed_fd(std::exchange(o.feed_fd, -1)),
        err_path(std::move(o.err_path)) {}
  TrainerChild& operator=(TrainerChild&&) = delete;
  ~TrainerChild() {
    if (feed_fd >= 0) close(feed_fd);
  }
};

// Writes one feed; a trainer that is gone costs no SIGPIPE.
void Feed(int fd, int64_t boot_ns) {
  const std::string line = absl::StrCat(boot_ns, "\n");
  (void)!send(fd, line.data(), line.size(), MSG_NOSIGNAL);
}

// The trainer on a tiny model with `extra` flags; fd 5 of the child is one
// end of a socket pair whose other end the test keeps (feed_fd); stdout and
// stderr go to err_path.
TrainerChild Start(const std::string& data, int64_t steps,
                   const std::vector<std::string>& extra) {
  TrainerChild r;
  r.err_path = Fresh("stderr");
  int p[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
  r.feed_fd = p[1];
  std::vector<std::string> args = {
      ISOFLOP_TRAINER_BIN, "train", "--data-dir", data, "--vocab-size", "64",
      "--context", "16", "--d-model", "32", "--n-layers", "1", "--n-heads", "2",
      "--d-ff", "64", "--batch-sequences", "8", "--steps",
      std::to_string(steps), "--log-every", "10",
      // The values of a trial the trainer requires (trainer/options.h).
      "--lr", "1e-3", "--schedule", "cosine", "--warmup-steps", "0",
      "--min-lr-fraction", "0.1", "--weight-decay", "0.1", "--beta2", "0.95",
      "--seed", "0", "--eval-every", "0", "--eval-batches", "8", "--precision",
      "auto", "--threads", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // Closed first: our end may itself be descriptor 5.
  posix_spawn_file_actions_addclose(&actions, p[1]);
  posix_spawn_file_actions_adddup2(&actions, p[0], 5);
  posix_spawn_file_actions_addopen(&actions, 1, r.err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  EXPECT_EQ(
      posix_spawn(&r.pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(p[0]);
  return r;
}

// Waits up to `limit` for the child; its exit code (-1: still running, then
// SIGKILLed; 128 + n: killed by signal n).
int Finish(TrainerChild& r, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (waitpid(r.pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > until) {
      kill(r.pid, SIGKILL);
      waitpid(r.pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// An unfed watchdog: a checkpoint at half the timeout (the lease looks
// lost), then exit 76 at the timeout with nothing written after it.
TEST(TrainerFence, UnfedWatchdogStopsTheTrainerWithTheFencedCode) {
  const std::string ckpt = Fresh("ckpt");
  TrainerChild r =
      Start(Dataset(), 100000000,
            {"--checkpoint-dir", ckpt, "--resume", "--lease-epoch", "3",
             "--watchdog-fd", "5", "--watchdog-timeout-s", "1.5"});
  // One renewal, now; then the worker "stops" (nothing more is written).
  Feed(r.feed_fd, BootTimeNs());
  const auto fed = std::chrono::steady_clock::now();
  EXPECT_EQ(Finish(r, std::chrono::seconds(60)), kExitFenced)
      << Slurp(r.err_path);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - fed)
          .count();
  std::printf("fed once, fenced after %.2f s (timeout 1.5 s)\n", took);
  EXPECT_GE(took, 1.4);
  const std::string err = Slurp(r.err_path);
  EXPECT_THAT(err, HasSubstr("fenced: watchdog"));
  EXPECT_THAT(err, HasSubstr("step"));  // it was training when fenced
  // Half-way to the fence the lease looked lost: one checkpoint then, none
  // after the fence point (not even a temporary file).
  const size_t saved = err.find("checkpoint at step");
  ASSERT_NE(saved, std::string::npos) << err;
  EXPECT_LT(saved, err.find("fenced: watchdog"));
  EXPECT_EQ(err.find("checkpoint at step", saved + 1), std::string::npos);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(ckpt)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_THAT(names, ::testing::ElementsAre("checkpoint.3.bin", "fence"));
}

TEST(TrainerFence, FedWatchdogLetsTheTrainerFinish) {
  // Several times the 1 s timeout of training: unfed, it would be fenced.
  TrainerChild r = Start(Dataset(), 3000,
                         {"--lease-epoch", "2", "--watchdog-fd", "5",
                          "--watchdog-timeout-s", "1"});
  std::atomic<bool> done{false};
  std::thread feeder([&] {  // a healthy worker: renewals every 200 ms
    while (!done.load()) {
      Feed(r.feed_fd, BootTimeNs());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  const int code = Finish(r, std::chrono::seconds(120));
  done.store(true);
  feeder.join();
  EXPECT_EQ(code, kExitOk) << Slurp(r.err_path);
}

TEST(TrainerFence, AttemptOlderThanTheDirectorysFenceRefusesToStart) {
  const std::string ckpt = Fresh("ckpt");
  fs::create_directories(ckpt);
  std::ofstream(fs::path(ckpt) / "fence") << "9\n";
  TrainerChild r =
      Start(Dataset(), 50,
            {"--checkpoint-dir", ckpt, "--resume", "--lease-epoch", "4"});
  EXPECT_EQ(Finish(r, std::chrono::seconds(60)), kExitFenced);
  EXPECT_THAT(Slurp(r.err_path),
              HasSubstr("names lease epoch 9, newer than this attempt's "
                        "--lease-epoch 4"));
  EXPECT_FALSE(fs::exists(fs::path(ckpt) / "checkpoint.4.bin"));
}

TEST(TrainerFence, UnreadableWatchdogFdExitsWithInvalidConfig) {
  TrainerChild r = Start(Dataset(), 50,
                         {"--watchdog-fd", "97", "--watchdog-timeout-s", "1"});
  EXPECT_EQ(Finish(r, std::chrono::seconds(60)), kExitInvalidConfig);
  EXPECT_THAT(Slurp(r.err_path),
              HasSubstr("--watchdog-fd = 97: must be a file descriptor open "
                        "for reading"));
}

// Resume takes the newest valid checkpoint of an epoch <= ours: a newer
// epoch's file is not ours to take, a corrupt one is skipped for an older.
TEST(TrainerFence, ResumeTakesTheNewestValidCheckpointOfOurEpochOrOlder) {
  const std::string data = Dataset();
  const std::string ckpt = Fresh("ckpt");
  TrainerChild first =
      Start(data, 100000000, {"--checkpoint-dir", ckpt, "--lease-epoch", "2"});
  for (int i = 0; i < 3000 &&
                  Slurp(first.err_path).find("train_loss") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(first.pid, SIGTERM);
  EXPECT_EQ(Finish(first, std::chrono::seconds(60)), 128 + SIGTERM);
  ASSERT_TRUE(fs::exists(fs::path(ckpt) / "checkpoint.2.bin"))
      << Slurp(first.err_path);
  std::ofstream(fs::path(ckpt) / "checkpoint.3.bin") << "ISOFCKP1 garbage";
  fs::copy_file(fs::path(ckpt) / "checkpoint.2.bin",
                fs::path(ckpt) / "checkpoint.9.bin");  // a newer attempt's

  TrainerChild resumed =
      Start(data, 100000000,
            {"--checkpoint-dir", ckpt, "--resume", "--lease-epoch", "4",
             "--checkpoint-every-min", "0"});
  for (int i = 0; i < 3000 && Slurp(resumed.err_path).find("resumed from") ==
                                  std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(resumed.pid, SIGKILL);
  Finish(resumed, std::chrono::seconds(30));
  const std::string err = Slurp(resumed.err_path);
  EXPECT_THAT(err,
              HasSubstr("warning: checkpoint " + ckpt + "/checkpoint.3.bin: "));
  EXPECT_THAT(err, HasSubstr("refusing to load it"));
  EXPECT_THAT(err, HasSubstr("resumed from " + ckpt + "/checkpoint.2.bin"));
}

}  // namespace
}  // namespace isoflop
