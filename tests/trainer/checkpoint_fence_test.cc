// Fenced checkpoint directories (trainer/checkpoint.h): an older attempt can
// never commit a checkpoint over or after a newer attempt's claim.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/checkpoint.h"

namespace isoflop::trainer {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kFingerprint = 42;

// A fresh directory per test (libtorch.so's remove_all crashes on non-empty
// directories in this binary: never clean up).
std::string FreshDir() {
  const fs::path dir =
      fs::path(::testing::TempDir()) /
      absl::StrCat(
          "fence_",
          ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
          std::chrono::steady_clock::now().time_since_epoch().count());
  fs::create_directories(dir);
  return dir.string();
}

absl::Status WriteStep(const std::string& dir, uint64_t epoch, char step) {
  std::vector<char> bytes(100, step);
  return WriteFencedCheckpoint(dir, epoch, kFingerprint, {{"state", bytes}});
}

// The state blob of a checkpoint file ('\0' if unreadable).
char StepIn(const std::string& path) {
  auto blobs = ReadCheckpoint(path, kFingerprint);
  if (!blobs.ok() || blobs->empty() || (*blobs)[0].bytes.empty()) return '\0';
  return (*blobs)[0].bytes[0];
}

std::string FenceText(const std::string& dir) {
  std::ifstream in(fs::path(dir) / "fence");
  std::string text;
  std::getline(in, text);
  return text;
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(CheckpointFence, EachEpochWritesItsOwnFileAndTheClaimRecordsTheEpoch) {
  const std::string dir = FreshDir();
  ASSERT_TRUE(ClaimCheckpointDir(dir, 7).ok());
  EXPECT_EQ(FenceText(dir), "7");
  ASSERT_TRUE(WriteStep(dir, 7, 'a').ok());
  EXPECT_EQ(StepIn((fs::path(dir) / "checkpoint.7.bin").string()), 'a');
  EXPECT_THAT(Names(dir), ElementsAre("checkpoint.7.bin", "fence"));
}

TEST(CheckpointFence, StaleAttemptCannotCommitAfterANewerClaim) {
  const std::string dir = FreshDir();
  ASSERT_TRUE(ClaimCheckpointDir(dir, 3).ok());
  ASSERT_TRUE(WriteStep(dir, 3, 'a').ok());
  ASSERT_TRUE(ClaimCheckpointDir(dir, 5).ok());  // the new attempt starts
  const auto before = fs::last_write_time(fs::path(dir) / "checkpoint.3.bin");

  const absl::Status stale = WriteStep(dir, 3, 'b');
  EXPECT_EQ(stale.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(stale.message(), HasSubstr("lease epoch 5"));
  EXPECT_THAT(stale.message(), HasSubstr("--lease-epoch 3"));
  // Neither the old file nor a temporary one changed or appeared.
  EXPECT_EQ(StepIn((fs::path(dir) / "checkpoint.3.bin").string()), 'a');
  EXPECT_EQ(fs::last_write_time(fs::path(dir) / "checkpoint.3.bin"), before);
  EXPECT_THAT(Names(dir), ElementsAre("checkpoint.3.bin", "fence"));
}

TEST(CheckpointFence, NewerAttemptsCheckpointSurvivesAStaleWriter) {
  const std::string dir = FreshDir();
  ASSERT_TRUE(ClaimCheckpointDir(dir, 3).ok());
  ASSERT_TRUE(ClaimCheckpointDir(dir, 5).ok());
  ASSERT_TRUE(WriteStep(dir, 5, 'n').ok());
  EXPECT_EQ(WriteStep(dir, 3, 's').code(), absl::StatusCode::kAborted);
  EXPECT_EQ(StepIn((fs::path(dir) / "checkpoint.5.bin").string()), 'n');
  EXPECT_THAT(ResumeCandidates(dir, 6),
              ElementsAre((fs::path(dir) / "checkpoint.5.bin").string()));
}

TEST(CheckpointFence, ClaimByAnOlderEpochIsAbortedAndLeavesTheFence) {
  const std::string dir = FreshDir();
  ASSERT_TRUE(ClaimCheckpointDir(dir, 9).ok());
  const absl::Status s = ClaimCheckpointDir(dir, 4);
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(s.message(), HasSubstr("fenced"));
  EXPECT_EQ(FenceText(dir), "9");
  EXPECT_EQ(CheckCheckpointFence(dir, 4).code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(CheckCheckpointFence(dir, 9).ok());
  EXPECT_TRUE(ClaimCheckpointDir(dir, 9).ok());  // the same attempt again
}

TEST(CheckpointFence, EpochZeroClaimsNothingButIsFencedByAnyEpoch) {
  const std::string dir = FreshDir();
  ASSERT_TRUE(ClaimCheckpointDir(dir, 0).ok());
  ASSERT_TRUE(WriteStep(dir, 0, 'z').ok());  // a run outside any sweep
  EXPECT_EQ(StepIn((fs::path(dir) / "checkpoint.bin").string()), 'z');
  EXPECT_EQ(FenceText(dir), "");
  ASSERT_TRUE(ClaimCheckpointDir(dir, 1).ok());
  EXPECT_EQ(WriteStep(dir, 0, 'y').code(), absl::StatusCode::kAborted);
}

TEST(CheckpointFence, RefusedCommitHookLeavesNoFile) {
  const std::string dir = FreshDir();
  std::vector<char> bytes(10, 'x');
  const absl::Status s = WriteFencedCheckpoint(
      dir, 2, kFingerprint, {{"state", bytes}},
      [] { return absl::AbortedError("fenced: the lease watchdog expired"); });
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(s.message(), HasSubstr("watchdog"));
  EXPECT_THAT(Names(dir), ElementsAre("fence"));
}

TEST(CheckpointFence, CommitRemovesOlderEpochsCheckpoints) {
  const std::string dir = FreshDir();
  ASSERT_TRUE(WriteStep(dir, 0, 'a').ok());
  ASSERT_TRUE(WriteStep(dir, 2, 'b').ok());
  ASSERT_TRUE(ClaimCheckpointDir(dir, 4).ok());
  ASSERT_TRUE(WriteStep(dir, 4, 'c').ok());
  EXPECT_THAT(Names(dir), ElementsAre("checkpoint.4.bin", "fence"));
}

TEST(CheckpointFence, ResumeCandidatesAreNewestFirstAndNeverNewerThanUs) {
  const std::string dir = FreshDir();
  for (const char* name :
       {"checkpoint.bin", "checkpoint.3.bin", "checkpoint.12.bin",
        "checkpoint.20.bin", "checkpoint.5.bin.tmp", "checkpoint.05.bin",
        "checkpoint.x.bin", "model.bin", "fence"}) {
    std::ofstream(fs::path(dir) / name) << "x";
  }
  const auto at = [&](const char* name) {
    return (fs::path(dir) / name).string();
  };
  EXPECT_THAT(ResumeCandidates(dir, 12),
              ElementsAre(at("checkpoint.12.bin"), at("checkpoint.3.bin"),
                          at("checkpoint.bin")));
  EXPECT_THAT(ResumeCandidates(dir, 0), ElementsAre(at("checkpoint.bin")));
  EXPECT_TRUE(ResumeCandidates(FreshDir(), 5).empty());
}

}  // namespace
}  // namespace isoflop::trainer
