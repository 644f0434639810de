#include "analysis/huber_log_loss.h"

#include <algorithm>
#include <cmath>

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
  const double a = x[0], b = x[1], e = x[2], alpha = x[3], beta = x[4];
  double f = 0;
  Params g{};
  for (size_t i = 0; i < log_n_.size(); ++i) {
    const double t1 = a - alpha * log_n_[i];
    const double t2 = b - beta * log_d_[i];
    // Stable log-sum-exp: subtract the largest term, whose weight is then
    // exactly 1 (two exps per point instead of three).
    const double m = std::max({t1, t2, e});
    const double w1 = t1 == m ? 1.0 : std::exp(t1 - m);
    const double w2 = t2 == m ? 1.0 : std::exp(t2 - m);
    const double w3 = e == m ? 1.0 : std::exp(e - m);
    const double sum = w1 + w2 + w3;
    const double r = m + std::log(sum) - log_l_[i];
    const double abs_r = std::abs(r);
    f += abs_r <= delta_ ? 0.5 * r * r : delta_ * (abs_r - 0.5 * delta_);
    if (gradient == nullptr) continue;
    // dHuber/dr, times the softmax weights dLSE/d(t1, t2, e).
    const double h = (abs_r <= delta_ ? r : std::copysign(delta_, r)) / sum;
    g[0] += h * w1;
    g[1] += h * w2;
    g[2] += h * w3;
    g[3] -= h * w1 * log_n_[i];
    g[4] -= h * w2 * log_d_[i];
  }
  if (!std::isfinite(f)) return false;
  *cost = f;
  if (gradient != nullptr) std::copy(g.begin(), g.end(), gradient);
  return true;
}

std::array<double, kNumParams * kNumParams> HuberLogLoss::Hessian(
    const Params& x) const {
  std::array<double, kNumParams * kNumParams> h{};
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
