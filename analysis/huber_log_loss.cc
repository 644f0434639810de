#include "analysis/huber_log_loss.h"

#include <algorithm>
#include <cmath>

#include "analysis/huber_kernel.h"

namespace isoflop::analysis {

HuberLogLoss::HuberLogLoss(const std::vector<Observation>& points, double delta)
    : delta_(delta) {
  log_n_.reserve(points.size());
  log_d_.reserve(points.size());
  log_l_.reserve(points.size());
  for (const Observation& p : points) {
    log_n_.push_back(std::log(p.n));
    log_d_.push_back(std::log(p.d));
    log_l_.push_back(std::log(p.loss));
  }
}

bool HuberLogLoss::Evaluate(const double* x, double* cost,
                            double* gradient) const {
  Params g{};
  const double f =
      HuberLogLossKernel(log_n_.data(), log_d_.data(), log_l_.data(),
                         log_n_.size(), x, delta_, g.data());
  if (!std::isfinite(f) || !std::all_of(g.begin(), g.end(), [](double v) {
        return std::isfinite(v);
      })) {
    return false;
  }
  *cost = f;
  if (gradient != nullptr) std::copy(g.begin(), g.end(), gradient);
  return true;
}

std::array<double, kHessianSize> HuberLogLoss::Hessian(const Params& x) const {
  std::array<double, kHessianSize> h{};
  for (int j = 0; j < kNumParams; ++j) {
    const double step = 1e-6 * std::max(1.0, std::abs(x[j]));
    Params plus = x, minus = x;
    plus[j] += step;
    minus[j] -= step;
    Params g_plus{}, g_minus{};
    double unused = 0;
    Evaluate(plus.data(), &unused, g_plus.data());
    Evaluate(minus.data(), &unused, g_minus.data());
    for (int i = 0; i < kNumParams; ++i) {
      h[i * kNumParams + j] = (g_plus[i] - g_minus[i]) / (2 * step);
    }
  }
  for (int i = 0; i < kNumParams; ++i) {
    for (int j = 0; j < i; ++j) {
      const double mean = 0.5 * (h[i * kNumParams + j] + h[j * kNumParams + i]);
      h[i * kNumParams + j] = h[j * kNumParams + i] = mean;
    }
  }
  return h;
}

}  // namespace isoflop::analysis
