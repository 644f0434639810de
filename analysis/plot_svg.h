// The diagnostic figures of isoflop, written by hand as static SVG (Debian
// packages no plotting library for C++, and neither `fit --plot` nor
// `isoflop report` may need Python). This is the one SVG writer: `isoflop
// fit --plot` (PlotSvg, from a FitReport) and `isoflop report` (the figure
// functions, from the stored fit and the trials) draw through it.
//
// The figure functions are pure: plain data in, SVG text out, no I/O. Every
// figure keeps its axes to its own data (lines that leave the plot are
// clipped, never stretch it), tick labels have at most 4 significant digits,
// and nothing <= 0 is drawn on a log axis.
#ifndef ISOFLOP_ANALYSIS_PLOT_SVG_H_
#define ISOFLOP_ANALYSIS_PLOT_SVG_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "analysis/approach3.h"
#include "analysis/backtest.h"
#include "analysis/budgets.h"
#include "analysis/fit_report.h"
#include "analysis/points_io.h"

namespace isoflop::analysis {

// One IsoFLOP budget: its trials' (N, final loss); when Approach 2 fitted
// (or could fit) the budget, the parabola loss = c0 + c1 ln N + c2 (ln N)^2;
// and, when there is a law, Approach 3 along the budget as (N, loss).
struct ProfileSeries {
  double flops = 0;
  std::vector<std::pair<double, double>> points;  // (N, loss)
  std::optional<std::vector<double>> parabola;    // c0, c1, c2
  std::vector<std::pair<double, double>> law;     // (N, loss); may be empty
};

// Approach 3's loss along one IsoFLOP budget, from N = n_lo to n_hi (61
// points, log-spaced): D at each N follows the budget's own points, ln D
// fitted as a line in ln N through their (N, D), so that the curve passes
// through the points whatever FLOP convention set their tokens (under
// C = 6 N D it is D = C / 6N exactly). Empty with no points.
std::vector<std::pair<double, double>> LawAlongBudget(
    const Approach3Fit& law, const std::vector<std::pair<double, double>>& n_d,
    double n_lo, double n_hi);

// Final loss against N (log axis), one colour per budget: the points, the
// parabola, its vertex (a filled diamond, class "vertex inside", when it lies
// inside the budget's sampled N range; a hollow one, class "vertex outside",
// when the minimum is not bracketed) and, dashed, the Approach-3 law. Each
// budget is one <g class="series"> element. `note` (e.g. why there is no
// law) is printed under the title. Never fails: with no points the figure
// says so.
std::string IsoFlopProfilesSvg(const std::vector<ProfileSeries>& series,
                               const std::string& note = "");

// A published law drawn for comparison on the frontier.
struct PublishedLaw {
  std::string label;  // legend text, with its source
  Approach3Fit law;
};

// Chinchilla's Approach 3 (Hoffmann et al. 2022, eq. 10: E = 1.69,
// A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28) and Epoch's replication
// of it (Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt",
// Table 1: E = 1.82, A = 482.01, B = 2085.43, alpha = 0.3478,
// beta = 0.3658). Both were fitted under C = 6 N D.
const std::vector<PublishedLaw>& PublishedLaws();

// A labelled line on a figure (e.g. a published law's N_opt(C)).
struct Overlay {
  std::string label;
  std::vector<std::pair<double, double>> xy;
  std::string color = "#666";
  std::string dash = "2 3";  // SVG stroke-dasharray; empty: solid
};

// Compute-optimal N and D against C (log-log).
struct FrontierData {
  // Approach 3 on a grid of C: the optimum and, when the fit has bootstrap
  // samples, its 95 % band (low/high empty otherwise).
  std::vector<double> flops, n_opt, d_opt;
  std::vector<double> n_low, n_high, d_low, d_high;
  // Approach 2: the per-budget vertices (C, N_opt) and (C, D_opt), and the
  // power laws N_opt = coef C^exponent when fitted.
  std::vector<std::pair<double, double>> a2_n_points, a2_d_points;
  std::optional<std::pair<double, double>> a2_n_law, a2_d_law;  // coef, exp
  // A dashed line at the sweep's largest budget (0: none), and circles at
  // (C, N or D) points such as the optima at 10x, 100x and 1000x it.
  double largest_budget = 0;
  std::vector<std::pair<double, double>> marks;
  // Further lines (Approach 1, published laws): drawn, clipped to the axes,
  // but they do not size them.
  std::vector<Overlay> overlays;
};

// The N_opt(C) of each of PublishedLaws() over `flops`, as overlays.
std::vector<Overlay> PublishedOverlays(const std::vector<double>& flops);

// N_opt(C) and D_opt(C) lines with their bands, the Approach 2 points and
// dashed lines, the overlays. The axes span the lines and points (not the
// bands or overlays, which are clipped); a band is drawn only where both its
// bounds are > 0. Empty data gives a figure that says there is no fit.
std::string FrontierSvg(const FrontierData& data, const std::string& note = "");

// A point with the law's prediction at it.
struct FitPoint {
  double n = 0, d = 0, flops = 0;  // flops: the point's budget (colour)
  double observed = 0, predicted = 0;
};

// The points of `points` with L(N, D) of `law` as their prediction.
std::vector<FitPoint> PredictAll(const std::vector<Point>& points,
                                 const Approach3Fit& law);

// Residuals (observed - predicted loss) against N, D and C: three panels,
// log x, a zero line, one colour per budget.
std::string ResidualsSvg(const std::vector<FitPoint>& points,
                         const std::string& note = "");

// Predicted against observed loss, with the y = x line.
std::string PredictedVsObservedSvg(const std::vector<FitPoint>& points,
                                   const std::string& note = "");

// The largest budget left out: the law refitted on the other budgets and
// that budget's points predicted by it.
struct BacktestData {
  double holdout_flops = 0;
  int train_points = 0;
  Approach3Fit law;              // fitted without the holdout budget
  std::vector<FitPoint> points;  // the holdout budget's points
  double mean_abs_relative_error = 0;
};

// Refits Approach 3 (one thread; from `starts`, empty: Chinchilla's grid) on
// all budgets but the largest and predicts the largest's points.
// FAILED_PRECONDITION naming what is missing (fewer than 2 budgets, fewer
// than 5 points left to fit) or the fit's error.
absl::StatusOr<BacktestData> HoldoutBacktest(
    const std::vector<Point>& points, std::vector<LogParams> starts = {});

// HoldoutBacktest's answer from a backtest already made of `grouping`'s
// largest budget (`backtest.holdout_flops` is groups.back().flops: the last
// of a Rollout), so that a caller with the rollout does not refit it.
BacktestData BacktestDataOf(const std::vector<Point>& points,
                            const Grouping& grouping, const Backtest& backtest);

// The holdout budget's observed loss (points) and prediction (line and
// crosses) against N, titled with the mean absolute relative error. Without
// data, a figure that says why (`why`).
std::string BacktestSvg(const std::optional<BacktestData>& data,
                        const std::string& why = "");

// `isoflop fit --plot out.svg`: one SVG with the IsoFLOP profiles, the
// frontier (Approach 3 with its band, Approach 2, Approach 1, published laws),
// the residuals, predicted vs observed and the backtest. FAILED_PRECONDITION
// when the report has no points.
absl::StatusOr<std::string> PlotSvg(const FitReport& report);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_PLOT_SVG_H_
