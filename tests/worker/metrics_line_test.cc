#include "worker/metrics_line.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

TEST(ParseMetricsLine, ReadsStepAndEveryNumericKey) {
  auto line = ParseMetricsLine(
      R"({"step": 10, "train_loss": 3.5, "lr": 0.001, "note": "x"})");
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->step, 10u);
  EXPECT_THAT(line->values,
              ElementsAre(Pair("lr", 0.001), Pair("train_loss", 3.5)));
  EXPECT_FALSE(line->final);
}

TEST(ParseMetricsLine, FinalFlagIsNotAMetric) {
  auto line = ParseMetricsLine(
      R"({"step": 5, "val_loss": 2.5, "tokens_per_s": 100, "final": 1})");
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_TRUE(line->final);
  EXPECT_THAT(line->values,
              ElementsAre(Pair("tokens_per_s", 100.0), Pair("val_loss", 2.5)));
}

TEST(ParseMetricsLine, RejectsMalformedLinesNamingTheRule) {
  EXPECT_THAT(ParseMetricsLine("not json").status().message(),
              HasSubstr("JSON object"));
  EXPECT_THAT(ParseMetricsLine("[1, 2]").status().message(),
              HasSubstr("JSON object"));
  EXPECT_THAT(ParseMetricsLine(R"({"train_loss": 1})").status().message(),
              HasSubstr("\"step\""));
  EXPECT_THAT(ParseMetricsLine(R"({"step": -1, "x": 1})").status().message(),
              HasSubstr("non-negative"));
  EXPECT_THAT(ParseMetricsLine(R"({"step": 1.5})").status().message(),
              HasSubstr("integer"));
  EXPECT_EQ(ParseMetricsLine("{\"step\": 1, \"x\": NaN}").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace isoflop::worker
