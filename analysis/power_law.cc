#include "analysis/power_law.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ceres/ceres.h"

namespace isoflop::analysis {
namespace {

// One weighted residual sqrt(w) (y - sum_k c_k u^k), u the scaled x.
struct PolynomialResidual {
  double u, y, sqrt_w;
  int degree;
  template <typename T>
  bool operator()(const T* c, T* residual) const {
    T value = c[degree];
    for (int k = degree - 1; k >= 0; --k) value = value * u + c[k];
    residual[0] = sqrt_w * (y - value);
    return true;
  }
};

}  // namespace

double PowerLaw::operator()(double x) const {
  return coef * std::pow(x, exponent);
}

std::vector<double> FitPolynomial(const std::vector<double>& x,
                                  const std::vector<double>& y,
                                  const std::vector<double>& weights,
                                  int degree) {
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  const double centre = 0.5 * (*lo + *hi);
  const double scale = *hi > *lo ? 0.5 * (*hi - *lo) : 1.0;
  double c[3] = {0, 0, 0};
  ceres::Problem problem;
  for (size_t i = 0; i < x.size(); ++i) {
    const double w = weights.empty() ? 1.0 : weights[i];
    auto* cost =
        degree == 2
            ? static_cast<ceres::CostFunction*>(
                  new ceres::AutoDiffCostFunction<PolynomialResidual, 1, 3>(
                      new PolynomialResidual{(x[i] - centre) / scale, y[i],
                                             std::sqrt(w), 2}))
            : new ceres::AutoDiffCostFunction<PolynomialResidual, 1, 2>(
                  new PolynomialResidual{(x[i] - centre) / scale, y[i],
                                         std::sqrt(w), 1});
    problem.AddResidualBlock(cost, nullptr, c);
  }
  ceres::Solver::Options options;
  options.linear_solver_type = ceres::DENSE_QR;
  options.function_tolerance = 1e-16;
  options.gradient_tolerance = 1e-16;
  options.parameter_tolerance = 1e-16;
  options.logging_type = ceres::SILENT;
  ceres::Solver::Summary summary;
  ceres::Solve(options, &problem, &summary);
  // Undo the scaling: p(u) with u = (x - centre) / scale, expanded in x.
  const double s = 1.0 / scale, t = -centre / scale;  // u = s x + t
  if (degree == 1) return {c[0] + c[1] * t, c[1] * s};
  return {c[0] + c[1] * t + c[2] * t * t, c[1] * s + 2 * c[2] * s * t,
          c[2] * s * s};
}

absl::StatusOr<PowerLaw> FitPowerLaw(const std::vector<double>& x,
                                     const std::vector<double>& y,
                                     const std::vector<double>& weights) {
  if (x.size() != y.size() ||
      (!weights.empty() && weights.size() != x.size())) {
    return absl::InvalidArgumentError(
        "power law: x, y and weights differ in size");
  }
  std::set<double> distinct;
  std::vector<double> lx, ly;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(std::isfinite(x[i]) && x[i] > 0 && std::isfinite(y[i]) && y[i] > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("power law: point ", i, " = (", x[i], ", ", y[i],
                       "): must be finite and > 0"));
    }
    distinct.insert(x[i]);
    lx.push_back(std::log(x[i]));
    ly.push_back(std::log(y[i]));
  }
  if (distinct.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("power law: ", distinct.size(),
                     " distinct budgets: a power law needs >= 2"));
  }
  const std::vector<double> c = FitPolynomial(lx, ly, weights, 1);
  return PowerLaw{std::exp(c[0]), c[1]};
}

bool FitParabola(const std::vector<std::pair<double, double>>& xy,
                 double coef[3]) {
  std::vector<double> xs;
  xs.reserve(xy.size());
  for (const auto& p : xy) xs.push_back(p.first);
  std::sort(xs.begin(), xs.end());
  if (std::unique(xs.begin(), xs.end()) - xs.begin() < 3) return false;
  // Centred and scaled x keeps the normal equations well conditioned.
  double mean = 0;
  for (const auto& p : xy) mean += p.first;
  mean /= static_cast<double>(xy.size());
  double s[5] = {0, 0, 0, 0, 0}, t[3] = {0, 0, 0};
  for (const auto& [x, y] : xy) {
    const double u = x - mean;
    double pow_u = 1;
    for (int k = 0; k < 5; ++k) {
      s[k] += pow_u;
      if (k < 3) t[k] += pow_u * y;
      pow_u *= u;
    }
  }
  // Solve [[s0 s1 s2][s1 s2 s3][s2 s3 s4]] q = t by Cramer's rule.
  auto det3 = [](double a, double b, double c, double d, double e, double f,
                 double g, double h, double i) {
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  };
  const double det = det3(s[0], s[1], s[2], s[1], s[2], s[3], s[2], s[3], s[4]);
  if (!(std::fabs(det) > 0)) return false;
  const double q0 =
      det3(t[0], s[1], s[2], t[1], s[2], s[3], t[2], s[3], s[4]) / det;
  const double q1 =
      det3(s[0], t[0], s[2], s[1], t[1], s[3], s[2], t[2], s[4]) / det;
  const double q2 =
      det3(s[0], s[1], t[0], s[1], s[2], t[1], s[2], s[3], t[2]) / det;
  // Back to y = c0 + c1 x + c2 x^2 with u = x - mean.
  coef[0] = q0 - q1 * mean + q2 * mean * mean;
  coef[1] = q1 - 2 * q2 * mean;
  coef[2] = q2;
  return true;
}

}  // namespace isoflop::analysis
