#include "trainer/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::trainer {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Path(const std::string& name) {
  return (fs::path(::testing::TempDir()) / name).string();
}

std::string WriteSample(const std::string& name) {
  const std::string path = Path(name);
  std::vector<char> a(1000, 'a'), b = {'x', 'y'};
  EXPECT_TRUE(WriteCheckpoint(path, 42, {{"a", a}, {"b", b}}).ok());
  return path;
}

TEST(Checkpoint, RoundTripsBlobsAndLeavesNoTemporaryFile) {
  const std::string path = WriteSample("round_trip.bin");
  auto blobs = ReadCheckpoint(path, 42);
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  ASSERT_EQ(blobs->size(), 2u);
  EXPECT_EQ((*blobs)[0].name, "a");
  EXPECT_EQ((*blobs)[0].bytes, std::vector<char>(1000, 'a'));
  EXPECT_EQ((*blobs)[1].bytes, (std::vector<char>{'x', 'y'}));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(Checkpoint, MissingFileIsNotFound) {
  EXPECT_EQ(ReadCheckpoint(Path("none.bin"), 42).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(Checkpoint, TruncatedFileIsRefusedAsDataLoss) {
  const std::string path = WriteSample("truncated.bin");
  fs::resize_file(path, fs::file_size(path) - 100);
  const absl::Status s = ReadCheckpoint(path, 42).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("truncated"));
}

TEST(Checkpoint, FlippedByteIsRefusedByTheChecksum) {
  const std::string path = WriteSample("flipped.bin");
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(500);
    f.put('b');
  }
  const absl::Status s = ReadCheckpoint(path, 42).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("checksum mismatch"));
}

TEST(Checkpoint, OtherFileIsRefusedByItsMagic) {
  const std::string path = Path("not_a_checkpoint.bin");
  std::ofstream(path) << "hello world, not a checkpoint";
  EXPECT_THAT(ReadCheckpoint(path, 42).status().message(),
              HasSubstr("bad magic"));
}

TEST(Checkpoint, OtherConfigurationIsAFailedPrecondition) {
  const std::string path = WriteSample("other_config.bin");
  EXPECT_EQ(ReadCheckpoint(path, 43).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace isoflop::trainer
