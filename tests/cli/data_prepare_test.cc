#include "cli/data_prepare.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(DataPrepareArgv, PassesFlagsThroughToIsoflopData) {
  auto argv =
      DataPrepareArgv("/bin/isoflop-data",
                      {"kjv", "/d", 512, std::nullopt, {"a.txt", "b.txt"}});
  ASSERT_TRUE(argv.ok()) << argv.status();
  EXPECT_THAT(*argv, ElementsAre("/bin/isoflop-data", "prepare", "--out",
                                 "/d/kjv", "--vocab-size", "512", "--input",
                                 "a.txt", "--input", "b.txt"));
}

TEST(DataPrepareArgv, PassesSourceFlagsThroughToIsoflopData) {
  const DataPrepareOptions o{.name = "en",
                             .data_dir = "/d",
                             .vocab_size = std::nullopt,
                             .val_fraction = std::nullopt,
                             .inputs = {},
                             .source = "english",
                             .max_bytes = 1000000,
                             .cache_dir = "/c",
                             .source_dir = "/s",
                             .threads = 3};
  auto argv = DataPrepareArgv("/bin/isoflop-data", o);
  ASSERT_TRUE(argv.ok()) << argv.status();
  EXPECT_THAT(*argv, ElementsAre("/bin/isoflop-data", "prepare", "--out",
                                 "/d/en", "--source", "english", "--max-bytes",
                                 "1000000", "--cache-dir", "/c", "--source-dir",
                                 "/s", "--threads", "3"));
}

TEST(DataPrepareArgv, RefusesNameWithSlash) {
  auto argv = DataPrepareArgv("/bin/isoflop-data", {"../x", "/d", {}, {}, {}});
  EXPECT_EQ(argv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(argv.status().message(), HasSubstr("--name"));
}

TEST(FindCompanionBinary, PrefersTheSiblingThenPath) {
  auto sh = FindCompanionBinary("sh", "/bin/isoflop", "/nonexistent");
  ASSERT_TRUE(sh.ok());
  EXPECT_EQ(sh->string(), "/bin/sh");
  auto on_path =
      FindCompanionBinary("sh", "/nonexistent/isoflop", "/nowhere:/bin");
  ASSERT_TRUE(on_path.ok());
  EXPECT_EQ(on_path->string(), "/bin/sh");
  EXPECT_EQ(FindCompanionBinary("isoflop-nope", "/bin/isoflop", "/bin")
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace isoflop::cli
