#include "cli/data_import.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(DataImportArgv, PassesFlagsAndInputsThroughToIsoflopData) {
  auto argv =
      DataImportArgv("/bin/isoflop-data", {.format = "jsonl",
                                           .name = "mine",
                                           .data_dir = "/d",
                                           .inputs = {"a.jsonl", "-odd.jsonl"},
                                           .tokenizer = "t.model",
                                           .vocab_size = 32000,
                                           .val_fraction = 0.1});
  ASSERT_TRUE(argv.ok()) << argv.status();
  EXPECT_THAT(
      *argv,
      ElementsAre("/bin/isoflop-data", "import", "--format", "jsonl", "--out",
                  "/d/mine", "--tokenizer", "t.model", "--vocab-size", "32000",
                  "--val-fraction", "0.1", "--", "a.jsonl", "-odd.jsonl"));
}

TEST(DataImportArgv, RefusesABadNameOrNoInput) {
  for (const char* name : {"", "../x", ".hidden"}) {
    auto argv = DataImportArgv(
        "/bin/isoflop-data",
        {.format = "npy", .name = name, .data_dir = "/d", .inputs = {"a"}});
    EXPECT_EQ(argv.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(argv.status().message(), HasSubstr("--name = \""));
  }
  auto none = DataImportArgv("/bin/isoflop-data",
                             {.format = "npy", .name = "x", .data_dir = "/d"});
  EXPECT_THAT(none.status().message(), HasSubstr("INPUT: at least one"));
}

}  // namespace
}  // namespace isoflop::cli
