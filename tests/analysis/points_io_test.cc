#include "analysis/points_io.h"

#include <cmath>
#include <fstream>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::analysis {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A real file under the test's temporary directory.
std::string WriteCsv(const std::string& name, const std::string& text) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/points_", name, ".csv");
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(ReadObservationsCsv, ReadsColumnsByNameAndDerivesTokensFromFlops) {
  auto points = ReadObservationsCsv(WriteCsv(
      "ok", "loss,flops,params,run\n3.5, 6e12 ,1e6,a\n3.0,1.2e13,2e6,b\n"));
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_EQ(points->size(), 2u);
  EXPECT_DOUBLE_EQ((*points)[0].n, 1e6);
  EXPECT_DOUBLE_EQ((*points)[0].d, 1e6);
  EXPECT_DOUBLE_EQ((*points)[0].loss, 3.5);
  EXPECT_DOUBLE_EQ((*points)[1].d, 1e6);
  EXPECT_DOUBLE_EQ((*points)[1].loss, 3.0);
}

TEST(ReadObservationsCsv, PrefersTokensOverFlopsWhenBothAreGiven) {
  auto points = ReadObservationsCsv(
      WriteCsv("both", "params,tokens,flops,loss\n1e6,5e6,6e12,3\n"));
  ASSERT_TRUE(points.ok()) << points.status();
  EXPECT_DOUBLE_EQ((*points)[0].d, 5e6);
}

TEST(ReadObservationsCsv, AcceptsByteOrderMarkCrlfAndBlankLines) {
  auto points = ReadObservationsCsv(
      WriteCsv("crlf",
               "\xEF\xBB\xBFparams,tokens,loss\r\n1e6,2e7,3.25\r\n\r\n  \n"
               "2e6,4e7,3\r\n"));
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_EQ(points->size(), 2u);
  EXPECT_DOUBLE_EQ((*points)[0].loss, 3.25);
  EXPECT_DOUBLE_EQ((*points)[1].d, 4e7);
}

struct BadCsv {
  std::string name, text, expected;
};

TEST(ReadObservationsCsv, RefusesMalformedInputNamingLineAndColumn) {
  const std::vector<BadCsv> table = {
      {"empty", "", ":1: empty: expected a header row"},
      {"no_loss", "params,tokens\n1,2\n", ":1: missing column 'loss'"},
      {"no_params", "tokens,loss\n1,2\n", ":1: missing column 'params'"},
      {"no_tokens", "params,loss\n1,2\n",
       ":1: missing column 'tokens' or 'flops'"},
      {"repeated", "params,tokens,loss,params\n1,2,3,4\n",
       ":1: column 'params' appears twice"},
      {"unnamed", "params,,tokens,loss\n1,2,3,4\n",
       ":1: header column 2 has no name"},
      {"text", "params,tokens,loss\n1e6,2e7,abc\n",
       ":2: column 'loss' = 'abc': must be a finite number > 0"},
      {"nan", "params,tokens,loss\n1e6,2e7,3\n1e6,nan,3\n",
       ":3: column 'tokens' = 'nan'"},
      {"inf", "params,tokens,loss\ninf,2e7,3\n", ":2: column 'params' = 'inf'"},
      {"zero", "params,tokens,loss\n0,2e7,3\n", ":2: column 'params' = '0'"},
      {"negative", "params,tokens,loss\n1e6,-2,3\n",
       ":2: column 'tokens' = '-2'"},
      {"negative_flops", "params,flops,loss\n1e6,-6e12,3\n",
       ":2: column 'flops' = '-6e12'"},
      {"flops_underflow", "params,flops,loss\n1e300,1e-300,3\n",
       ":2: column 'flops' = '1e-300' gives tokens = flops / (6 params) = 0"},
      {"empty_cell", "params,tokens,loss\n1e6,,3\n",
       ":2: column 'tokens' = ''"},
      {"trailing_junk", "params,tokens,loss\n1e6,2e7x,3\n",
       ":2: column 'tokens' = '2e7x'"},
      {"unclosed_quote", "params,tokens,loss\n1e6,2e7,3\n\"1e6,2e7,3\n",
       ":3: "},
      {"quote_in_cell", "params,tokens,loss\n1e6,2e\"7,3\n", ":2: "},
      {"quoted_bad_number", "params,tokens,loss\n\"1e6x\",2e7,3\n",
       ":2: column 'params' = '1e6x'"},
      {"short_row", "params,tokens,loss\n1e6,2e7\n",
       ":2: 2 cells, header has 3: column 'loss' is missing"},
      {"long_row", "params,tokens,loss\n1e6,2e7,3,9\n",
       ":2: 4 cells, header has 3: cell '9' has no column"},
      {"late_error", "params,tokens,loss\n1,2,3\n\n1,2,3\n1,2,-3\n",
       ":5: column 'loss' = '-3'"},
  };
  for (const BadCsv& c : table) {
    const std::string path = WriteCsv(c.name, c.text);
    absl::Status s = ReadObservationsCsv(path).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(s.message()), StartsWith(path)) << c.name;
    EXPECT_THAT(s.message(), HasSubstr(c.expected)) << c.name;
  }
}

// What W&B's "Export as CSV" writes: every cell quoted, extra columns
// (names with commas, quotes and newlines inside quotes), a BOM and CRLF.
TEST(ParsePoints, ReadsQuotedCsvAsExportedByWandb) {
  const std::string text =
      "\xEF\xBB\xBF\"Name\",\"params\",\"tokens\",\"loss\",\"Notes\"\r\n"
      "\"run-a, lr=1e-3\",\"1000000\",\"20000000\",\"3.25\",\"said "
      "\"\"fine\"\"\"\r\n"
      "\"run-b\",\"2000000\",\"40000000\",\"3.0\",\"two\r\nlines\"\r\n"
      "\"run-c\",\" 4e6 \",\"8e7\",\"2.75\",\"\"\r\n";
  absl::StatusOr<PointSet> set = ParsePoints(text, "wandb.csv");
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->points.size(), 3u);
  EXPECT_DOUBLE_EQ(set->points[0].n, 1e6);
  EXPECT_DOUBLE_EQ(set->points[0].loss, 3.25);
  EXPECT_DOUBLE_EQ(set->points[1].d, 4e7);
  EXPECT_DOUBLE_EQ(set->points[2].n, 4e6);
  EXPECT_EQ(set->points[2].line, 5);  // after the cell spanning two lines
}

// --column maps an export's own headers (W&B's "summary/val_loss") to the
// reader's names; a file column already called `loss` is then ignored.
TEST(ParsePoints, ColumnMapRenamesTheFilesColumnsInCsvAndJson) {
  absl::StatusOr<ColumnMap> map = ParseColumnMap(
      {"params=Total Params", "loss=summary/val_loss", "tokens=tokens_seen"});
  ASSERT_TRUE(map.ok()) << map.status();
  absl::StatusOr<PointSet> csv = ParsePoints(
      "\"Total Params\",\"tokens_seen\",\"loss\",\"summary/val_loss\"\n"
      "\"1e6\",\"2e7\",\"9.9\",\"3.25\"\n",
      "wandb.csv", *map);
  ASSERT_TRUE(csv.ok()) << csv.status();
  ASSERT_EQ(csv->points.size(), 1u);
  EXPECT_DOUBLE_EQ(csv->points[0].n, 1e6);
  EXPECT_DOUBLE_EQ(csv->points[0].loss, 3.25);
  absl::StatusOr<PointSet> js = ParsePoints(
      R"([{"Total Params": 1e6, "tokens_seen": 2e7, "loss": 9.9,
           "summary/val_loss": 3.25}])",
      "runs.json", *map);
  ASSERT_TRUE(js.ok()) << js.status();
  EXPECT_DOUBLE_EQ(js->points[0].loss, 3.25);
  EXPECT_THAT(ParsePoints("params,tokens,loss\n1,2,3\n", "p.csv", *map)
                  .status()
                  .message(),
              HasSubstr("--column loss=summary/val_loss: no column "
                        "'summary/val_loss' in p.csv"));
  EXPECT_THAT(ParseColumnMap({"size=N"}).status().message(),
              HasSubstr("--column = 'size=N': NAME must be one of"));
  EXPECT_THAT(ParseColumnMap({"loss"}).status().message(),
              HasSubstr("must be NAME=FILE_COLUMN"));
}

TEST(ParsePoints, NamesTheLineAfterAQuotedCellSpanningLines) {
  absl::Status s = ParsePoints(
                       "params,tokens,loss,notes\n1e6,2e7,3,\"a\nb\"\n"
                       "2e6,4e7,x,\"\"\n",
                       "p.csv")
                       .status();
  EXPECT_THAT(s.message(), HasSubstr("p.csv:4: column 'loss' = 'x'"));
}

// The trials.csv of `isoflop report` (cli/report_command.h): a `state`
// column; trials that did not succeed (no loss) are not points.
TEST(ParsePoints, ReadsOnlySucceededRowsWhenThereIsAStateColumn) {
  absl::StatusOr<PointSet> set = ParsePoints(
      "trial_id,state,params,tokens,loss\n"
      "t1,SUCCEEDED,1e6,2e7,3.2\n"
      "t2,FAILED,2e6,1e7,\n"
      "t3,SUCCEEDED,2e6,1e7,\n"  // a trunk: succeeded, no cell of the grid
      "t4,SUCCEEDED,4e6,5e6,3.1\n",
      "trials.csv");
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->points.size(), 2u);
  EXPECT_DOUBLE_EQ(set->points[0].n, 1e6);
  EXPECT_DOUBLE_EQ(set->points[1].n, 4e6);
}

TEST(ReadObservationsCsv, ReturnsNotFoundForMissingFile) {
  absl::Status s = ReadObservationsCsv("/nonexistent/points.csv").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("/nonexistent/points.csv"));
}

TEST(ParseObservationsCsv, NamesTheSourceInMessages) {
  absl::Status s =
      ParseObservationsCsv("params,tokens,loss\n1,x,3\n", "<stdin>").status();
  EXPECT_THAT(s.message(), HasSubstr("<stdin>:2: column 'tokens' = 'x'"));
}

TEST(ParseObservationsCsv,
     RandomlyCorruptedInputIsParsedOrRefusedNeverCrashes) {
  // A poor man's fuzz target: byte flips, deletions and insertions of CSV
  // punctuation into a valid file. Every result is a point list of finite
  // positive values or INVALID_ARGUMENT.
  const std::string valid =
      "params,tokens,loss,flops\n1e6,2e7,3.5,1.2e14\n2e6,4e7,3.1,4.8e14\n";
  const std::string alphabet = ",\n\r -.e0123456789nai\"\xEF";
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text = valid;
    for (int edits = 1 + rng() % 4; edits > 0 && !text.empty(); --edits) {
      const size_t at = rng() % text.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          text[at] = c;
          break;
        case 1:
          text.erase(at, 1);
          break;
        default:
          text.insert(at, 1, c);
          break;
      }
    }
    auto points = ParseObservationsCsv(text, "fuzz");
    if (!points.ok()) {
      ASSERT_EQ(points.status().code(), absl::StatusCode::kInvalidArgument)
          << text;
      continue;
    }
    for (const Observation& p : *points) {
      ASSERT_TRUE(std::isfinite(p.n) && p.n > 0) << text;
      ASSERT_TRUE(std::isfinite(p.loss) && p.loss > 0) << text;
      ASSERT_TRUE(std::isfinite(p.d) && p.d > 0) << text;
    }
  }
}

}  // namespace
}  // namespace isoflop::analysis

namespace isoflop::analysis {
namespace {

TEST(ParsePoints, ReadsUniqueTokensAndDerivesEpochs) {
  const absl::StatusOr<PointSet> set = ParsePoints(
      "params,tokens,loss,unique_tokens\n1e6,4e8,3.1,1e8\n2e6,5e7,3.2,1e8\n",
      "p.csv");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_TRUE(set->has_unique_tokens);
  EXPECT_DOUBLE_EQ(set->points[0].unique_tokens, 1e8);
  EXPECT_DOUBLE_EQ(set->points[0].epochs, 4);
  EXPECT_DOUBLE_EQ(set->points[1].epochs, 0.5);
}

TEST(ParsePoints, DerivesUniqueTokensFromEpochsInJson) {
  const absl::StatusOr<PointSet> set = ParsePoints(
      R"([{"params": 1e6, "tokens": 4e8, "loss": 3.1, "epochs": 8}])",
      "p.json");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_TRUE(set->has_unique_tokens);
  EXPECT_DOUBLE_EQ(set->points[0].unique_tokens, 5e7);
  EXPECT_DOUBLE_EQ(set->points[0].epochs, 8);
}

TEST(ParsePoints, WithoutRepetitionColumnsLeavesThemZero) {
  const absl::StatusOr<PointSet> set =
      ParsePoints("params,tokens,loss\n1e6,4e8,3.1\n", "p.csv");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_FALSE(set->has_unique_tokens);
  EXPECT_EQ(set->points[0].unique_tokens, 0);
  EXPECT_EQ(set->points[0].epochs, 0);
}

TEST(ParsePoints, RefusesEpochsThatDisagreeWithUniqueTokens) {
  const absl::StatusOr<PointSet> set = ParsePoints(
      "params,tokens,loss,unique_tokens,epochs\n1e6,4e8,3.1,1e8,2\n", "p.csv");
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(set.status().message(),
              HasSubstr("p.csv:2: column 'epochs' = '2' but tokens / "
                        "unique_tokens = 4: must agree within 1 %"));
}

TEST(ParsePoints, RefusesZeroUniqueTokens) {
  const absl::StatusOr<PointSet> set =
      ParsePoints("params,tokens,loss,unique_tokens\n1e6,4e8,3.1,0\n", "p.csv");
  EXPECT_THAT(set.status().message(),
              HasSubstr("p.csv:2: column 'unique_tokens' = '0': must be a "
                        "finite number > 0"));
}

}  // namespace
}  // namespace isoflop::analysis
