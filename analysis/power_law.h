// y = k x^p by least squares in log space (Ceres), shared by Approaches 1
// and 2.
#ifndef ISOFLOP_ANALYSIS_POWER_LAW_H_
#define ISOFLOP_ANALYSIS_POWER_LAW_H_

#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace isoflop::analysis {

struct PowerLaw {
  double coef = 0, exponent = 0;  // y = coef * x^exponent
  double operator()(double x) const;
};

// Minimises sum_i w_i (log y_i - log k - p log x_i)^2 (w_i = 1 when
// `weights` is empty). INVALID_ARGUMENT when fewer than 2 distinct x are
// given, sizes differ, or a value is not finite and > 0.
absl::StatusOr<PowerLaw> FitPowerLaw(const std::vector<double>& x,
                                     const std::vector<double>& y,
                                     const std::vector<double>& weights = {});

// Weighted least squares of a polynomial of degree `degree` (1 or 2) in
// `x`: returns coefficients c0, c1[, c2] of c0 + c1 x + c2 x^2. Solved with
// Ceres (autodiff, dense QR) after centring and scaling x, so large log N
// values stay well conditioned. The caller ensures >= degree + 1 points.
std::vector<double> FitPolynomial(const std::vector<double>& x,
                                  const std::vector<double>& y,
                                  const std::vector<double>& weights,
                                  int degree);

// Least squares loss = c0 + c1 x + c2 x^2 over (x, loss) pairs in closed
// form (centred normal equations, Cramer's rule): the dashboard's IsoFLOP
// parabolas on every read. False when fewer than 3 distinct x.
bool FitParabola(const std::vector<std::pair<double, double>>& xy,
                 double coef[3]);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_POWER_LAW_H_
