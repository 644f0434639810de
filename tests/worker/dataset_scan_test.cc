#include "worker/dataset_scan.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

fs::path FreshDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void MakeDataset(const fs::path& root, const std::string& name,
                 const std::string& meta, bool train_bin = true) {
  fs::create_directories(root / name);
  if (!meta.empty()) std::ofstream(root / name / "meta.json") << meta;
  if (train_bin) std::ofstream(root / name / "train.bin") << "tokens";
}

TEST(ParseDatasetMeta, ReadsTheCountsAndTheOptionalDocumentsAndBytes) {
  absl::StatusOr<v1::WorkerDataset> d =
      ParseDatasetMeta("kjv", R"({"vocab_size": 512, "train_tokens": 800000,
                 "val_tokens": 40000, "documents": 66, "bytes": 4300000,
                 "source": "files"})");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->name(), "kjv");
  EXPECT_EQ(d->vocab_size(), 512u);
  EXPECT_EQ(d->train_tokens(), 800000u);
  EXPECT_EQ(d->val_tokens(), 40000u);
  EXPECT_EQ(d->documents(), 66u);
  EXPECT_EQ(d->bytes(), 4300000u);
}

TEST(ParseDatasetMeta, RefusesEachBadCountNamingKeyValueAndRule) {
  struct Case {
    std::string json, message;
  };
  for (const Case& c : {
           Case{"not json", "not a JSON object"},
           Case{R"({"train_tokens": 5, "val_tokens": 1})",
                "vocab_size is missing: must be an integer >= 2"},
           Case{R"({"vocab_size": 1, "train_tokens": 5, "val_tokens": 1})",
                "vocab_size = 1: must be an integer in [2, 4294967295]"},
           Case{R"({"vocab_size": 64, "train_tokens": -3, "val_tokens": 1})",
                "train_tokens = -3: must be an integer in [1, "},
           Case{R"({"vocab_size": 64, "train_tokens": 5, "val_tokens": 1.5})",
                "val_tokens = 1.5: must be an integer in [0, "},
           Case{R"({"vocab_size": 64, "train_tokens": 5, "val_tokens": 1,
                    "documents": "many"})",
                "documents = \"many\": must be an integer in [0, "},
       }) {
    absl::StatusOr<v1::WorkerDataset> d = ParseDatasetMeta("x", c.json);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(d.status().message(), HasSubstr(c.message)) << c.json;
  }
}

TEST(ScanDatasets, ReportsValidDatasetsAndSkipsTheOthersWithAReason) {
  const fs::path root = FreshDir("scan-datasets");
  MakeDataset(
      root, "tiny",
      R"({"vocab_size": 256, "train_tokens": 161949, "val_tokens": 7977})");
  MakeDataset(root, "broken", "{\"vocab_size\": 256, ");  // cut off
  MakeDataset(root, "no-train",
              R"({"vocab_size": 64, "train_tokens": 10, "val_tokens": 2})",
              /*train_bin=*/false);
  MakeDataset(root, "no-meta", "");
  fs::create_directories(root / ".hidden");
  std::ofstream(root / "README") << "a file, not a dataset";
  const DatasetScan scan = ScanDatasets(root);
  ASSERT_EQ(scan.datasets.size(), 1u);
  EXPECT_EQ(scan.datasets[0].name(), "tiny");
  EXPECT_EQ(scan.datasets[0].vocab_size(), 256u);
  EXPECT_EQ(scan.datasets[0].train_tokens(), 161949u);
  EXPECT_EQ(scan.datasets[0].val_tokens(), 7977u);
  EXPECT_THAT(
      scan.skipped,
      ElementsAre(AllOf(HasSubstr("broken: meta.json: not a JSON object")),
                  AllOf(HasSubstr("no-meta: meta.json: ")),
                  AllOf(HasSubstr("no-train: train.bin: missing"))));
}

// `data prepare` stages a dataset in NAME.tmp-XXXXXX and renames it when
// done: a complete-looking staging directory is not reported, nor skipped
// with a complaint.
TEST(ScanDatasets, ADatasetBeingWrittenIsNotReported) {
  const fs::path root = FreshDir("scan-staging");
  MakeDataset(
      root, "english.tmp-a1B2c3",
      R"({"vocab_size": 256, "train_tokens": 1000, "val_tokens": 100})");
  const DatasetScan scan = ScanDatasets(root);
  EXPECT_TRUE(scan.datasets.empty());
  EXPECT_TRUE(scan.skipped.empty());
}

TEST(ScanDatasets, AMissingDataDirectoryReportsNoDatasetAndSaysWhy) {
  const DatasetScan scan =
      ScanDatasets(fs::path(::testing::TempDir()) / "no-such-data-dir");
  EXPECT_TRUE(scan.datasets.empty());
  ASSERT_EQ(scan.skipped.size(), 1u);
  EXPECT_THAT(scan.skipped[0], HasSubstr("no datasets reported"));
}

}  // namespace
}  // namespace isoflop::worker
