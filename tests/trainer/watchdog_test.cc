// The trainer's lease watchdog (trainer/watchdog.h) with an injected clock
// and a real pipe: what the worker writes sets the deadline, late feeds with
// old times never extend it, and expiry fires exactly once.
#include "trainer/watchdog.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::trainer {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kTimeout = 1'000'000'000;  // 1 s in ns

class WatchdogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(pipe(fds_), 0);
    now_.store(50'000'000'000);
    watchdog_ = std::make_unique<Watchdog>(
        fds_[0], kTimeout, [this] { return now_.load(); },
        [this](const std::string& why) {
          why_ = why;
          fired_.fetch_add(1);
        });
  }
  void TearDown() override {
    watchdog_.reset();
    if (fds_[1] >= 0) close(fds_[1]);
  }
  void Feed(const std::string& text) {
    ASSERT_EQ(write(fds_[1], text.data(), text.size()),
              static_cast<ssize_t>(text.size()));
  }

  int fds_[2] = {-1, -1};
  std::atomic<int64_t> now_{0};
  std::atomic<int> fired_{0};
  std::string why_;
  std::unique_ptr<Watchdog> watchdog_;
};

TEST_F(WatchdogTest, UnfedExpiresOneTimeoutAfterStart) {
  EXPECT_EQ(watchdog_->deadline_ns(), 51'000'000'000);
  now_.store(50'999'999'999);
  EXPECT_FALSE(watchdog_->Check());
  now_.store(51'000'000'000);
  EXPECT_TRUE(watchdog_->Check());
  EXPECT_EQ(fired_.load(), 1);
  EXPECT_THAT(why_, HasSubstr("never fed"));
}

TEST_F(WatchdogTest, FirstFeedSetsTheDeadlineFromTheRenewalTime) {
  Feed("49500000000\n");  // renewed before the trainer started
  EXPECT_EQ(watchdog_->deadline_ns(), 50'500'000'000);
  now_.store(50'500'000'000);
  EXPECT_TRUE(watchdog_->Check());
}

TEST_F(WatchdogTest, LaterRenewalsExtendTheDeadline) {
  Feed("50000000000\n");
  now_.store(50'900'000'000);
  Feed("50800000000\n");
  EXPECT_FALSE(watchdog_->Check());
  EXPECT_EQ(watchdog_->deadline_ns(), 51'800'000'000);
}

// A worker stopped with SIGSTOP between the coordinator's answer and its
// write, and continued much later, writes an old renewal time: it must not
// revive a trainer whose lease is about to expire.
TEST_F(WatchdogTest, LateFeedOfAnOldRenewalDoesNotExtendTheDeadline) {
  Feed("50000000000\n");
  now_.store(50'990'000'000);  // continued just before the deadline
  Feed("49900000000\n");       // a renewal of 49.9 s, written only now
  EXPECT_EQ(watchdog_->deadline_ns(), 51'000'000'000);
  now_.store(51'000'000'000);
  EXPECT_TRUE(watchdog_->Check());
}

TEST_F(WatchdogTest, FeedFromTheFutureCountsAsNow) {
  Feed("99000000000\n");
  EXPECT_EQ(watchdog_->deadline_ns(), 51'000'000'000);
}

TEST_F(WatchdogTest, SplitAndMalformedLinesAreHandled) {
  Feed("4920");
  EXPECT_EQ(watchdog_->deadline_ns(), 51'000'000'000);  // no line yet
  Feed("0000000\nnot a time\n");
  EXPECT_EQ(watchdog_->deadline_ns(), 49'200'000'000 + kTimeout);
}

TEST_F(WatchdogTest, ClosedFeederKeepsTheDeadline) {
  Feed("50000000000\n");
  close(fds_[1]);
  fds_[1] = -1;
  now_.store(50'999'000'000);
  EXPECT_FALSE(watchdog_->Check());
  now_.store(51'000'000'000);
  EXPECT_TRUE(watchdog_->Check());
  EXPECT_THAT(why_, HasSubstr("worker gone"));
}

TEST_F(WatchdogTest, AtRiskOnceUnrenewedForHalfTheTimeout) {
  Feed("50000000000\n");
  now_.store(50'499'999'999);
  EXPECT_FALSE(watchdog_->AtRisk());
  now_.store(50'500'000'000);
  EXPECT_TRUE(watchdog_->AtRisk());
  Feed("50400000000\n");  // renewed again: no longer at risk
  EXPECT_FALSE(watchdog_->AtRisk());
  EXPECT_EQ(fired_.load(), 0);
}

TEST_F(WatchdogTest, ExpiryRunsOnce) {
  now_.store(60'000'000'000);
  EXPECT_TRUE(watchdog_->Check());
  EXPECT_TRUE(watchdog_->Check());
  EXPECT_EQ(fired_.load(), 1);
}

TEST_F(WatchdogTest, ThreadFiresWhenTheClockPassesTheDeadline) {
  Feed("50000000000\n");
  watchdog_->Start();
  now_.store(51'000'000'000);
  for (int i = 0; i < 1000 && fired_.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(fired_.load(), 1);
}

}  // namespace
}  // namespace isoflop::trainer
