// Robustness: a table of malformed inputs through the whole offline path
// (reader, grouping, fits), each with the documented error or a correct
// fit; and Approach 1 on training curves.
#include <cmath>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "analysis/fit_report.h"
#include "analysis/points_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::analysis {
namespace {

using ::testing::HasSubstr;

struct Case {
  std::string name, text;
  absl::StatusCode code;
  std::string expected;  // substring of the message
};

TEST(MalformedInput, EachGivesTheDocumentedErrorNeverACrash) {
  const Case table[] = {
      {"empty file", "", absl::StatusCode::kInvalidArgument,
       "src:1: empty: expected a header row"},
      {"header only", "params,tokens,loss\n",
       absl::StatusCode::kFailedPrecondition,
       "no fit from 0 points: approach 2: Approach 2: 0 usable budgets"},
      {"text in numeric column", "params,tokens,loss\n1e6,2e7,abc\n",
       absl::StatusCode::kInvalidArgument,
       "src:2: column 'loss' = 'abc': must be a finite number > 0"},
      {"negative params", "params,tokens,loss\n1e6,2e7,3\n-5,2e7,3\n",
       absl::StatusCode::kInvalidArgument, "src:3: column 'params' = '-5'"},
      {"NaN loss", "params,flops,loss\n1e6,6e13,NaN\n",
       absl::StatusCode::kInvalidArgument, "src:2: column 'loss' = 'NaN'"},
      {"duplicate column", "params,loss,tokens,loss\n1,2,3,4\n",
       absl::StatusCode::kInvalidArgument,
       "src:1: column 'loss' appears twice in the header"},
      {"step without run", "params,tokens,loss,step\n1,2,3,4\n",
       absl::StatusCode::kInvalidArgument,
       "src:1: column 'step' without column 'run'"},
      {"JSON not an array", "{\"params\": 1}",
       absl::StatusCode::kInvalidArgument,
       "src: JSON object: expected an array of objects"},
      {"JSON text value",
       "[{\"params\": 1e6, \"tokens\": 2e7, \"loss\": \"x\"}]",
       absl::StatusCode::kInvalidArgument,
       "src: [0]: column 'loss' = 'x': must be a finite number > 0"},
      {"JSON boolean", "[{\"params\": true, \"tokens\": 2e7, \"loss\": 3}]",
       absl::StatusCode::kInvalidArgument,
       "src: [0]: column 'params' = true: must be a number"},
      {"JSON missing column",
       "[{\"params\": 1e6, \"tokens\": 2e7, \"loss\": 3}, {\"params\": 1e6, "
       "\"loss\": 3}]",
       absl::StatusCode::kInvalidArgument,
       "src: [1]: missing column 'tokens' or 'flops'"},
      {"JSON truncated", "[{\"params\": 1e6,",
       absl::StatusCode::kInvalidArgument, "src: not valid JSON"},
  };
  FitRequest request;
  request.approaches = {2, 3};
  for (const Case& c : table) {
    absl::StatusOr<PointSet> set = ParsePoints(c.text, "src");
    absl::Status s = set.status();
    if (set.ok()) s = RunFits(*set, request).status();
    EXPECT_EQ(s.code(), c.code) << c.name << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.expected)) << c.name;
  }
}

TEST(MalformedInput, MillionRowFileIsReadAndFittedByApproach2) {
  // 10^6 rows: 4 budgets x 250000 points on the same 5 model sizes.
  std::string text = "params,flops,loss\n";
  text.reserve(40u << 20);
  for (int i = 0; i < 1000000; ++i) {
    const double c = std::pow(10.0, 19 + i % 4);
    const double n = 1e8 * std::pow(2.0, (i / 4) % 5);
    const double d = c / (6 * n);
    const double loss =
        1.69 + 406.4 / std::pow(n, 0.34) + 410.7 / std::pow(d, 0.28);
    absl::StrAppend(&text, n, ",", c, ",", loss, "\n");
  }
  absl::StatusOr<PointSet> set = ParsePoints(text, "big");
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->points.size(), 1000000u);
  FitRequest request;
  request.approaches = {2, 3};
  absl::StatusOr<FitReport> report = RunFits(*set, request);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(report->approach2.fit.has_value());
  EXPECT_EQ(report->approach2.fit->budgets.size(), 4u);
  // Approach 3 refuses (documented limit), without failing the report.
  EXPECT_FALSE(report->approach3.fit.has_value());
  EXPECT_THAT(report->approach3.reason,
              HasSubstr("1000000 given: Approach 3 takes at most 100000"));
}

TEST(Approach1, EnvelopeOfTrainingCurvesGivesPowerLaws) {
  // Curves from a known law: run r trains N_r on tokens D = k * 2e7 at step
  // k; the envelope's best N grows with C.
  std::string text = "run,step,params,tokens,loss\n";
  for (int r = 0; r < 6; ++r) {
    const double n = 1e7 * std::pow(3.0, r);
    for (int k = 1; k <= 400; ++k) {
      const double d = k * 5e7;
      const double loss =
          1.69 + 406.4 / std::pow(n, 0.34) + 410.7 / std::pow(d, 0.28);
      absl::StrAppend(&text, "r", r, ",", k, ",", n, ",", d, ",", loss, "\n");
    }
  }
  absl::StatusOr<PointSet> set = ParsePoints(text, "curves");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_TRUE(set->has_curves);
  FitRequest request;
  request.approaches = {1};
  absl::StatusOr<FitReport> report = RunFits(*set, request);
  ASSERT_TRUE(report.ok()) << report.status();
  const Approach1Fit& fit = *report->approach1.fit;
  EXPECT_EQ(fit.n_runs, 6);
  EXPECT_EQ(fit.envelope.size(), 1500u);
  // Loosely: the law's a = 0.45; the envelope only sees 6 sizes.
  EXPECT_NEAR(fit.n_opt.exponent, 0.45, 0.15);
  EXPECT_NEAR(fit.n_opt.exponent + fit.d_opt.exponent, 1.0, 1e-9);
  EXPECT_EQ(FinalPoints(*set).size(), 6u);
}

}  // namespace
}  // namespace isoflop::analysis
