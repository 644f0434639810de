#include "cli/config_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(ParseSweepConfig, ReadsTextFormat) {
  auto config =
      ParseSweepConfig(R"pb(
                         name: "demo"
                         model { vocab_size: 512 context: 64 }
                         grid {
                           flops_budgets: [ 1e11, 3e11 ]
                           model_shapes { d_model: 32 n_layers: 2 n_heads: 2 }
                         }
                       )pb",
                       "demo.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name(), "demo");
  EXPECT_EQ(config->grid().flops_budgets_size(), 2);
  EXPECT_EQ(config->grid().model_shapes(0).d_model(), 32u);
}

TEST(ParseSweepConfig, UnknownFieldNamesFileLineColumnAndField) {
  auto config = ParseSweepConfig(
      "name: \"x\"\ntraining {\n  learning_rate_typo: 3\n}\n", "c.textproto");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              StartsWith("c.textproto:3:"));
  EXPECT_THAT(config.status().message(), HasSubstr("learning_rate_typo"));
}

TEST(ParseSweepConfig, SyntaxErrorNamesLineAndColumn) {
  auto config = ParseSweepConfig("name: \"x\"\nmodel { vocab_size: -5 }\n",
                                 "c.textproto");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              StartsWith("c.textproto:2:21: "));
}

TEST(ParseSweepConfig, UnclosedBraceIsAnError) {
  auto config = ParseSweepConfig("model {\n  vocab_size: 5\n", "c.textproto");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              StartsWith("c.textproto:3:"));
}

TEST(LoadSweepConfig, MissingFileIsNotFound) {
  auto config = LoadSweepConfig("/nonexistent/sweep.textproto");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(),
              HasSubstr("/nonexistent/sweep.textproto"));
}

TEST(LoadSweepConfig, ReadsTheRepositoryDemoConfig) {
  auto path = std::filesystem::path(::testing::TempDir()) /
              ("cfg-" + std::to_string(getpid()));
  std::ofstream(path) << "name: \"from-file\"\n";
  auto config = LoadSweepConfig(path.string());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name(), "from-file");
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace isoflop::cli
