// The real launcher against /bin/sh children. These wait for real processes,
// so they poll with a short sleep under a generous timeout.
#include "worker/posix_process_launcher.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/boot_clock.h"
#include "common/exit_codes.h"
#include "common/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class PosixProcessLauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("launcher-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  LaunchSpec Shell(const std::string& script) {
    return {{"/bin/sh", "-c", script}, {"GREETING=hello"}, dir_ / "child.log"};
  }
  // Polls until the process ends (10 s at most).
  ExitStatus WaitExit(ProcessId id) {
    for (int i = 0; i < 1000; ++i) {
      auto exit = launcher_.Poll(id);
      EXPECT_TRUE(exit.ok()) << exit.status();
      if (!exit.ok()) return ExitStatus::Code(-1);
      if (exit->has_value()) return **exit;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "process " << id << " did not end";
    return ExitStatus::Code(-1);
  }
  // Reads lines until `want` have arrived (10 s at most).
  std::vector<std::string> ReadAtLeast(ProcessId id, size_t want) {
    std::vector<std::string> lines;
    for (int i = 0; i < 1000 && lines.size() < want; ++i) {
      auto more = launcher_.ReadLines(id);
      if (!more.ok()) break;
      lines.insert(lines.end(), more->begin(), more->end());
      if (lines.size() < want)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return lines;
  }
  static std::string Slurp(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  fs::path dir_;
  FakeClock clock_;
  PosixProcessLauncher launcher_{&clock_};
};

TEST_F(PosixProcessLauncherTest, RelaysMetricsLinesThroughFd3) {
  auto id =
      launcher_.Launch(Shell("echo '{\"step\": 1}' >&3; printf '{\"step\": "
                             "2}\\n{\"step\"' >&3; printf ': 3}' >&3"));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(WaitExit(*id), ExitStatus::Code(0));
  auto lines = launcher_.ReadLines(*id);
  ASSERT_TRUE(lines.ok());
  EXPECT_THAT(*lines,
              ElementsAre("{\"step\": 1}", "{\"step\": 2}", "{\"step\": 3}"));
}

// The watchdog's feeds reach the child on fd 4 as boot-clock nanoseconds of
// the renewal time (here echoed back through the metrics descriptor).
TEST_F(PosixProcessLauncherTest, FeedsTheWatchdogOnFd4InBootClockTime) {
  LaunchSpec spec = Shell("head -n 2 <&4 >&3");
  spec.watchdog = true;
  auto id = launcher_.Launch(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  const int64_t boot_before = BootTimeNs();
  ASSERT_TRUE(launcher_.Feed(*id, clock_.Now() - absl::Seconds(2)).ok());
  ASSERT_TRUE(launcher_.Feed(*id, clock_.Now() - absl::Milliseconds(500)).ok());
  const int64_t boot_after = BootTimeNs();
  const std::vector<std::string> lines = ReadAtLeast(*id, 2);
  ASSERT_EQ(lines.size(), 2u);
  const int64_t first = std::stoll(lines[0]), second = std::stoll(lines[1]);
  EXPECT_GE(first, boot_before - 2'000'000'000);
  EXPECT_LE(first, boot_after - 2'000'000'000);
  EXPECT_GE(second - first, 1'500'000'000 - (boot_after - boot_before));
  EXPECT_LE(second - first, 1'500'000'000 + (boot_after - boot_before));
  EXPECT_EQ(WaitExit(*id), ExitStatus::Code(0));
  // A child that is gone costs no SIGPIPE and no error.
  EXPECT_TRUE(launcher_.Feed(*id, clock_.Now()).ok());
}

TEST_F(PosixProcessLauncherTest, FeedNeedsAWatchdog) {
  auto id = launcher_.Launch(Shell("exit 0"));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(launcher_.Feed(*id, clock_.Now()).code(),
            absl::StatusCode::kFailedPrecondition);
  WaitExit(*id);
}

TEST_F(PosixProcessLauncherTest, AppendsStdoutAndStderrToLogWithEnvironment) {
  auto id = launcher_.Launch(Shell("echo \"out $GREETING\"; echo oops >&2"));
  ASSERT_TRUE(id.ok()) << id.status();
  WaitExit(*id);
  std::string log = Slurp(dir_ / "child.log");
  EXPECT_THAT(log, HasSubstr("out hello"));
  EXPECT_THAT(log, HasSubstr("oops"));
}

// stdout_to_lines: what the child prints comes back as lines (sampling
// trainers answer on stdout); only stderr goes to the log.
TEST_F(PosixProcessLauncherTest, StdoutToLinesReadsStdoutAndLogsStderr) {
  LaunchSpec spec = Shell("echo '{\"token\": 1}'; echo oops >&2; echo two");
  spec.stdout_to_lines = true;
  auto id = launcher_.Launch(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_THAT(ReadAtLeast(*id, 2), ElementsAre("{\"token\": 1}", "two"));
  WaitExit(*id);
  const std::string log = Slurp(dir_ / "child.log");
  EXPECT_THAT(log, HasSubstr("oops"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("two")));
}

TEST_F(PosixProcessLauncherTest, ReportsExitCode75) {
  auto id = launcher_.Launch(Shell("exit 75"));
  ASSERT_TRUE(id.ok()) << id.status();
  ExitStatus exit = WaitExit(*id);
  EXPECT_EQ(exit, ExitStatus::Code(kExitRetryable));
  auto again = launcher_.Poll(*id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(**again, exit);  // stable after the end
}

TEST_F(PosixProcessLauncherTest, SignalDeathReads128PlusN) {
  auto id = launcher_.Launch(Shell("kill -SEGV $$"));
  ASSERT_TRUE(id.ok()) << id.status();
  ExitStatus exit = WaitExit(*id);
  EXPECT_TRUE(exit.signaled);
  EXPECT_EQ(exit.ShellCode(), 128 + SIGSEGV);
}

TEST_F(PosixProcessLauncherTest, TerminateKillsTheWholeProcessGroup) {
  auto id = launcher_.Launch(Shell("sleep 300 & echo $! >&3; wait"));
  ASSERT_TRUE(id.ok()) << id.status();
  std::vector<std::string> lines = ReadAtLeast(*id, 1);
  ASSERT_EQ(lines.size(), 1u);
  const std::string grandchild = "/proc/" + lines[0];
  ASSERT_TRUE(launcher_.Terminate(*id, absl::Seconds(30)).ok());
  ExitStatus exit = WaitExit(*id);
  EXPECT_EQ(exit.ShellCode(), 128 + SIGTERM);
  // The grandchild got SIGTERM too: gone, or a zombie awaiting its reaper.
  for (int i = 0; i < 500 && fs::exists(grandchild); ++i) {
    if (Slurp(grandchild + "/stat").find(") Z") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(!fs::exists(grandchild) ||
              Slurp(grandchild + "/stat").find(") Z") != std::string::npos);
}

TEST_F(PosixProcessLauncherTest, EscalatesToSigkillAfterGrace) {
  auto id = launcher_.Launch(
      Shell("trap '' TERM; echo ready >&3; while :; do sleep 0.05; done"));
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_EQ(ReadAtLeast(*id, 1).size(), 1u);
  ASSERT_TRUE(launcher_.Terminate(*id, absl::Seconds(5)).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto still = launcher_.Poll(*id);
  ASSERT_TRUE(still.ok());
  EXPECT_FALSE(still->has_value())
      << "SIGTERM is trapped: alive until the grace ends";
  clock_.Advance(absl::Seconds(5));
  ExitStatus exit = WaitExit(*id);
  EXPECT_EQ(exit, ExitStatus::Signal(SIGKILL));
}

TEST_F(PosixProcessLauncherTest, ExecFailureIsInternalWithReason) {
  auto id =
      launcher_.Launch({{"/nonexistent/isoflop-trainer"}, {}, dir_ / "x.log"});
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(id.status().message(), HasSubstr("No such file"));
}

TEST_F(PosixProcessLauncherTest, ReleaseRefusesRunningProcess) {
  auto id = launcher_.Launch(Shell("sleep 300"));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(launcher_.Release(*id).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(launcher_.Terminate(*id, absl::ZeroDuration()).ok());
  WaitExit(*id);
  EXPECT_TRUE(launcher_.Release(*id).ok());
  EXPECT_EQ(launcher_.Poll(*id).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace isoflop::worker
