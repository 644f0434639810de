// The two figures of `isoflop report`, written by hand as static SVG: Debian
// packages no plotting library for C++, and the report must not need Python.
// Pure functions from plain data to the SVG text; nothing here does I/O.
#ifndef ISOFLOP_CLI_REPORT_SVG_H_
#define ISOFLOP_CLI_REPORT_SVG_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace isoflop::cli {

// One IsoFLOP budget: its trials' (N, final loss) and, when Approach 2 fitted
// the budget, the parabola loss = c0 + c1 ln N + c2 (ln N)^2 and its vertex.
struct ProfileSeries {
  double flops = 0;
  std::vector<std::pair<double, double>> points;  // (N, loss)
  std::optional<std::vector<double>> parabola;    // c0, c1, c2
};

// Final loss against N (log axis), one colour per budget: the points, the
// parabola over the budget's range of N and its vertex (a diamond). Each
// budget is one <g class="series"> element. Never fails: with no points the
// figure says so.
std::string IsoFlopProfilesSvg(const std::vector<ProfileSeries>& series);

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
};

// N_opt(C) and D_opt(C) lines with their bands, the Approach 2 points and
// dashed lines. Empty data gives a figure that says there is no fit.
std::string FrontierSvg(const FrontierData& data);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_REPORT_SVG_H_
