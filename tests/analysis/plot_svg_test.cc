// The one SVG writer (analysis/plot_svg.h): what each diagnostic figure
// draws, read back from the SVG text.
#include "analysis/plot_svg.h"

#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::analysis {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// The texts of the tick labels.
std::vector<std::string> Ticks(const std::string& svg) {
  static const std::regex tick("class=\"tick [xy]\"[^>]*>([^<]*)</text>");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), tick);
       it != std::sregex_iterator(); ++it) {
    out.push_back((*it)[1]);
  }
  return out;
}

// Significant digits of a label such as "3.6", "0.05", "2e15", "1.25".
int SignificantDigits(const std::string& label) {
  std::string mantissa = label.substr(0, label.find('e'));
  std::string digits;
  for (char c : mantissa) {
    if (c >= '0' && c <= '9') digits += c;
  }
  const size_t first = digits.find_first_not_of('0');
  if (first == std::string::npos) return 1;
  digits = digits.substr(first);
  if (mantissa.find('.') == std::string::npos) {
    const size_t last = digits.find_last_not_of('0');
    digits = digits.substr(0, last + 1);
  }
  return static_cast<int>(digits.size());
}

// The y pixel coordinates of every path's points (M/L commands).
std::vector<double> PathYs(const std::string& svg, const std::string& cls) {
  const std::regex path("<path d=\"([^\"]*)\" class=\"" + cls + "\"");
  const std::regex xy("[ML]([-0-9.]+) ([-0-9.]+)");
  std::vector<double> out;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), path);
       it != std::sregex_iterator(); ++it) {
    const std::string d = (*it)[1];
    for (auto p = std::sregex_iterator(d.begin(), d.end(), xy);
         p != std::sregex_iterator(); ++p) {
      out.push_back(std::stod((*p)[2]));
    }
  }
  return out;
}

Approach3Fit KnownLaw() { return LawWith(1.8, 400, 1200, 0.34, 0.28); }

// Three budgets of five points each under 6ND, losses from KnownLaw plus a
// small alternating offset.
std::vector<Point> Points() {
  std::vector<Point> points;
  int i = 0;
  for (double c : {1e17, 1e18, 1e19}) {
    const double n0 = std::sqrt(c / 6 / 20);
    for (double m : {0.25, 0.5, 1.0, 2.0, 4.0}) {
      const double n = n0 * m, d = c / (6 * n);
      const Approach3Fit f = KnownLaw();
      const double loss = f.e + f.a / std::pow(n, f.alpha) +
                          f.b / std::pow(d, f.beta) +
                          ((i++ % 2) ? 1e-3 : -1e-3);
      points.push_back({.n = n, .d = d, .flops = c, .loss = loss, .budget = c});
    }
  }
  return points;
}

TEST(ResidualsSvg, DrawsOnePointPerPanelAndAZeroLine) {
  const std::string svg = ResidualsSvg(PredictAll(Points(), KnownLaw()));
  EXPECT_EQ(Count(svg, "class=\"residual\""), 3u * 15u);
  EXPECT_THAT(svg, HasSubstr("Residuals against parameters N"));
  EXPECT_THAT(svg, HasSubstr("Residuals against tokens D"));
  EXPECT_THAT(svg, HasSubstr("Residuals against compute budget C"));
  EXPECT_THAT(svg, HasSubstr("stroke-dasharray=\"4 3\""));  // y = 0
}

TEST(PredictAll, GivesTheLawsLossAtEachPoint) {
  const std::vector<FitPoint> fitted = PredictAll(Points(), KnownLaw());
  ASSERT_EQ(fitted.size(), 15u);
  for (const FitPoint& p : fitted) {
    EXPECT_NEAR(p.observed - p.predicted, 0, 1.0000001e-3);
  }
}

TEST(PredictedVsObservedSvg, HasTheIdentityLine) {
  const std::string svg =
      PredictedVsObservedSvg(PredictAll(Points(), KnownLaw()));
  EXPECT_EQ(Count(svg, "class=\"identity\""), 1u);
  EXPECT_EQ(Count(svg, "<circle"), 15u);
}

TEST(IsoFlopProfilesSvg, MarksVerticesInsideAndOutsideTheSampledRange) {
  // ln N from 10 to 12; vertex of (x - 11)^2 inside, of (x - 13)^2 outside.
  ProfileSeries in{.flops = 1e18}, out{.flops = 1e19};
  for (double x : {10.0, 10.5, 11.0, 11.5, 12.0}) {
    in.points.emplace_back(std::exp(x), 3 + 0.1 * (x - 11) * (x - 11));
    out.points.emplace_back(std::exp(x), 2.5 + 0.1 * (x - 13) * (x - 13));
  }
  in.parabola = std::vector<double>{3 + 0.1 * 121, -0.1 * 22, 0.1};
  out.parabola = std::vector<double>{2.5 + 0.1 * 169, -0.1 * 26, 0.1};
  const std::string svg = IsoFlopProfilesSvg({in, out});
  EXPECT_EQ(Count(svg, "class=\"vertex inside\""), 1u);
  EXPECT_EQ(Count(svg, "class=\"vertex outside\""), 1u);
  EXPECT_THAT(svg, HasSubstr("vertex outside: not bracketed"));
}

TEST(IsoFlopProfilesSvg, WithoutALawStillDrawsThePointsAndSaysWhy) {
  ProfileSeries s{.flops = 1e18};
  s.points = {{1e6, 3.1}, {2e6, 3.0}};
  const std::string svg = IsoFlopProfilesSvg({s}, "no law: 2 points");
  EXPECT_EQ(Count(svg, "<circle"), 2u);
  EXPECT_THAT(svg, HasSubstr("no law: 2 points"));
}

TEST(FrontierSvg, BandsNeverReachZeroOnTheLogAxis) {
  FrontierData data;
  for (int k = 0; k <= 10; ++k) {
    const double c = 1e17 * std::pow(10, k * 0.5);
    data.flops.push_back(c);
    data.n_opt.push_back(1e-2 * std::pow(c, 0.5));
    data.d_opt.push_back(1e1 * std::pow(c, 0.5));
    // Low bounds of 0 (a bootstrap sample that ran away) in the middle.
    data.n_low.push_back(k >= 4 && k <= 6 ? 0 : 0.5 * data.n_opt.back());
    data.n_high.push_back(2 * data.n_opt.back());
    data.d_low.push_back(0.5 * data.d_opt.back());
    data.d_high.push_back(2 * data.d_opt.back());
  }
  const std::string svg = FrontierSvg(data);
  // Two runs for N (split at the zeros), one for D.
  EXPECT_EQ(Count(svg, "class=\"band\""), 3u);
  // Every band vertex lies within 10 plot heights of the frame: none was
  // sent towards log(0).
  for (double y : PathYs(svg, "band")) {
    EXPECT_GT(y, 50 - 10 * 380);
    EXPECT_LT(y, 430 + 10 * 380);
  }
  EXPECT_THAT(svg, Not(HasSubstr("nan")));
  EXPECT_THAT(svg, Not(HasSubstr("inf")));
}

TEST(FrontierSvg, AxesSpanTheFrontierNotTheOverlays) {
  FrontierData data;
  for (int k = 0; k <= 8; ++k) {
    const double c = 1e18 * std::pow(10, k * 0.5);
    data.flops.push_back(c);
    data.n_opt.push_back(1e-2 * std::pow(c, 0.5));
    data.d_opt.push_back(1e1 * std::pow(c, 0.5));
  }
  // A law far away must be clipped, not stretch the y axis.
  data.overlays.push_back(
      {.label = "far", .xy = {{1e18, 1e-30}, {1e22, 1e-29}}});
  const std::string svg = FrontierSvg(data);
  for (const std::string& t : Ticks(svg)) {
    EXPECT_THAT(t, Not(HasSubstr("e-"))) << "a tick below 1 from the overlay";
  }
  // Every point of the frontier's lines lies inside the frame (y 50..430).
  for (double y : PathYs(svg, "line")) {
    EXPECT_GE(y, 50 - 0.5);
    EXPECT_LE(y, 430 + 0.5);
  }
}

TEST(FrontierSvg, PublishedLawsAreOverlaidWithTheirSources) {
  FrontierData data;
  data.flops = {1e18, 1e19, 1e20};
  data.n_opt = {1e8, 3e8, 1e9};
  data.d_opt = {2e9, 6e9, 2e10};
  data.overlays = PublishedOverlays(data.flops);
  const std::string svg = FrontierSvg(data);
  EXPECT_EQ(Count(svg, "class=\"overlay\""), 2u);
  EXPECT_THAT(svg, HasSubstr("Chinchilla A3 (Hoffmann 2022)"));
  EXPECT_THAT(svg, HasSubstr("Epoch (Besiroglu 2024)"));
  ASSERT_EQ(PublishedLaws().size(), 2u);
  EXPECT_DOUBLE_EQ(PublishedLaws()[0].law.a, 406.4);
  EXPECT_DOUBLE_EQ(PublishedLaws()[1].law.b, 2085.43);
}

TEST(Figures, TickLabelsHaveAtMostFourSignificantDigits) {
  // Losses whose linear ticks step by 0.2 from 3.4 (3.6000000000000005 once).
  ProfileSeries s{.flops = 1e18};
  s.points = {{1e6, 3.41}, {3e6, 3.97}, {1e7, 4.53}};
  for (const std::string& svg :
       {IsoFlopProfilesSvg({s}),
        PredictedVsObservedSvg(PredictAll(Points(), KnownLaw())),
        ResidualsSvg(PredictAll(Points(), KnownLaw()))}) {
    const std::vector<std::string> ticks = Ticks(svg);
    EXPECT_GE(ticks.size(), 6u);
    for (const std::string& t : ticks) EXPECT_LE(SignificantDigits(t), 4) << t;
  }
}

// Tokens under another convention than 6ND (here D = C / 7.3N^1.02): the
// law drawn along the budget passes through each point's L(N, D).
TEST(LawAlongBudget, FollowsTheBudgetsOwnTokens) {
  const Approach3Fit f = KnownLaw();
  std::vector<std::pair<double, double>> n_d;
  for (double n : {1e6, 2e6, 4e6, 8e6}) {
    n_d.emplace_back(n, 1e18 / (7.3 * std::pow(n, 1.02)));
  }
  const auto curve = LawAlongBudget(f, n_d, 1e6, 8e6);
  ASSERT_EQ(curve.size(), 61u);
  for (const auto& [n, d] : n_d) {
    const double k = 60 * std::log(n / 1e6) / std::log(8.0);
    const auto& [cn, closs] = curve[static_cast<size_t>(std::lround(k))];
    EXPECT_NEAR(cn, n, 1e-6 * n);
    EXPECT_NEAR(closs,
                f.e + f.a / std::pow(n, f.alpha) + f.b / std::pow(d, f.beta),
                1e-9);
  }
}

TEST(HoldoutBacktest, PredictsANoiseFreeLawsLargestBudget) {
  std::vector<Point> points = Points();
  for (int i = 0; i < static_cast<int>(points.size()); ++i) {
    const Approach3Fit f = KnownLaw();
    points[i].loss = f.e + f.a / std::pow(points[i].n, f.alpha) +
                     f.b / std::pow(points[i].d, f.beta);
  }
  const absl::StatusOr<BacktestData> b = HoldoutBacktest(points);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_DOUBLE_EQ(b->holdout_flops, 1e19);
  EXPECT_EQ(b->train_points, 10);
  EXPECT_EQ(b->points.size(), 5u);
  EXPECT_LT(b->mean_abs_relative_error, 1e-3);
  const std::string svg = BacktestSvg(*b);
  EXPECT_EQ(Count(svg, "class=\"observed\""), 5u);
  EXPECT_EQ(Count(svg, "class=\"predicted\""), 5u);
}

TEST(HoldoutBacktest, OneBudgetIsRefusedSayingWhy) {
  std::vector<Point> points = Points();
  points.resize(5);
  const absl::StatusOr<BacktestData> b = HoldoutBacktest(points);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(b.status().message(), HasSubstr("needs >= 2"));
  EXPECT_THAT(BacktestSvg(std::nullopt, std::string(b.status().message())),
              HasSubstr("no backtest: 1 budget(s)"));
}

}  // namespace
}  // namespace isoflop::analysis
