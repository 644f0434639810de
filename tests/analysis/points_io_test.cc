#include "analysis/points_io.h"

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::analysis {
namespace {

using ::testing::HasSubstr;

std::string WriteCsv(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name, ".csv");
  std::ofstream(path) << text;
  return path;
}

TEST(ReadObservationsCsv, ReadsColumnsByNameAndDerivesTokensFromFlops) {
  auto points = ReadObservationsCsv(
      WriteCsv("ok", "loss,flops,params,run\n3.5, 6e12 ,1e6,a\n3.0,1.2e13,2e6,b\n"));
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_EQ(points->size(), 2u);
  EXPECT_DOUBLE_EQ((*points)[0].n, 1e6);
  EXPECT_DOUBLE_EQ((*points)[0].d, 1e6);
  EXPECT_DOUBLE_EQ((*points)[1].loss, 3.0);
}

struct BadCsv {
  std::string name, text, expected;
};

TEST(ReadObservationsCsv, RefusesMalformedInputNamingLineAndColumn) {
  const std::vector<BadCsv> table = {
      {"no_loss", "params,tokens\n1,2\n", ":1: missing column 'loss'"},
      {"no_tokens", "params,loss\n1,2\n", "missing column 'tokens' or 'flops'"},
      {"text", "params,tokens,loss\n1e6,2e7,abc\n", ":2: column 'loss' = 'abc'"},
      {"nan", "params,tokens,loss\n1e6,2e7,3\n1e6,nan,3\n", ":3: column 'tokens' = 'nan'"},
      {"inf", "params,tokens,loss\ninf,2e7,3\n", ":2: column 'params' = 'inf'"},
      {"zero", "params,tokens,loss\n0,2e7,3\n", ":2: column 'params' = '0'"},
      {"negative", "params,tokens,loss\n1e6,-2,3\n", ":2: column 'tokens' = '-2'"},
      {"empty_cell", "params,tokens,loss\n1e6,,3\n", ":2: column 'tokens' = ''"},
      {"columns", "params,tokens,loss\n1e6,2e7\n", ":2: 2 columns, header has 3"},
      {"empty", "", ":1: empty file"},
  };
  for (const BadCsv& c : table) {
    absl::Status s = ReadObservationsCsv(WriteCsv(c.name, c.text)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(s.message(), HasSubstr(c.expected)) << c.name;
  }
  EXPECT_EQ(ReadObservationsCsv("/nonexistent.csv").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace isoflop::analysis
