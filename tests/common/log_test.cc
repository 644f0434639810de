#include "common/log.h"

#include <string>

#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace isoflop {
namespace {

using ::testing::HasSubstr;

const absl::Time kNoon =
    absl::FromCivil(absl::CivilSecond(2026, 5, 1, 12, 0, 0),
                    absl::UTCTimeZone()) +
    absl::Milliseconds(123);

TEST(LogFormatTest, OnlyTextAndJsonParse) {
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  absl::StatusOr<LogFormat> bad = ParseLogFormat("JSON");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(),
              HasSubstr("--log-format = \"JSON\": must be text or json"));
}

TEST(LoggerTest, TextIsTheSentenceWithoutFields) {
  const Logger log("isoflop-worker", LogFormat::kText);
  const std::string line = log.Format(
      kNoon, LogLevel::kInfo, "registered as wk-1", {{"worker", "wk-1"}});
  EXPECT_THAT(line, HasSubstr(" isoflop-worker: registered as wk-1\n"));
  EXPECT_EQ(line.find("worker="), std::string::npos);
}

TEST(LoggerTest, JsonLineHasTsLevelComponentMsgAndFields) {
  const Logger log("isoflop-coordinator", LogFormat::kJson);
  const std::string line =
      log.Format(kNoon, LogLevel::kWarning, "generate tr-1: client gone",
                 {{"trial", "tr-1"}, {"attempt", "2"}});
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["ts"], "2026-05-01T12:00:00.123Z");
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["component"], "isoflop-coordinator");
  EXPECT_EQ(j["msg"], "generate tr-1: client gone");
  EXPECT_EQ(j["trial"], "tr-1");
  EXPECT_EQ(j["attempt"], "2");
}

// Messages carry text from outside (gRPC errors, paths, trainer output):
// every byte sequence must still give one line of valid JSON.
TEST(LoggerTest, JsonEscapesQuotesControlBytesAndInvalidUtf8) {
  const Logger log("c", LogFormat::kJson);
  const std::string hostile = std::string("a\"b\\c\nd\te\x01\x7f") +
                              "caf\xc3\xa9 \xe2\x82\xac" +  // é €: kept
                              "\xff\xc3(\xed\xa0\x80\xf0\x9f\x98";  // invalid
  const std::string line =
      log.Format(kNoon, LogLevel::kError, hostile, {{"path", "/tmp/\"x\"\n"}});
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  const nlohmann::json j = nlohmann::json::parse(line);
  const std::string kept = std::string("a\"b\\c\nd\te\x01\x7f") + "caf\xc3\xa9";
  EXPECT_EQ(j["msg"].get<std::string>().substr(0, kept.size()), kept);
  EXPECT_THAT(j["msg"].get<std::string>(), HasSubstr("\xe2\x82\xac"));
  EXPECT_THAT(j["msg"].get<std::string>(),
              HasSubstr("\xef\xbf\xbd"));  // U+FFFD
  EXPECT_EQ(j["path"], "/tmp/\"x\"\n");
  EXPECT_EQ(j["level"], "error");
}

}  // namespace
}  // namespace isoflop
