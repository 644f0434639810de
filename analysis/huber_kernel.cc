#include "analysis/huber_kernel.h"

#include <cmath>

namespace isoflop::analysis {

double HuberLogLossKernel(const double* ln_n, const double* ln_d,
                          const double* ln_l, size_t n, const double* x,
                          double delta, double* gradient) {
  const double a = x[0], b = x[1], e = x[2], alpha = x[3], beta = x[4];
  double f = 0, g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0;
  // Branch-free body (ternaries become blends) so the loop vectorises.
#pragma omp simd reduction(+ : f, g0, g1, g2, g3, g4)
  for (size_t i = 0; i < n; ++i) {
    const double t1 = a - alpha * ln_n[i];
    const double t2 = b - beta * ln_d[i];
    // Stable log-sum-exp: subtract the largest of the three terms.
    const double m12 = t1 > t2 ? t1 : t2;
    const double m = m12 > e ? m12 : e;
    const double w1 = std::exp(t1 - m);
    const double w2 = std::exp(t2 - m);
    const double w3 = std::exp(e - m);
    const double sum = w1 + w2 + w3;
    const double r = m + std::log(sum) - ln_l[i];
    const double abs_r = std::fabs(r);
    const bool inside = abs_r <= delta;
    f += inside ? 0.5 * r * r : delta * (abs_r - 0.5 * delta);
    // dHuber/dr, times the softmax weights dLSE/d(t1, t2, e).
    const double h = (inside ? r : (r > 0 ? delta : -delta)) / sum;
    g0 += h * w1;
    g1 += h * w2;
    g2 += h * w3;
    g3 -= h * w1 * ln_n[i];
    g4 -= h * w2 * ln_d[i];
  }
  if (gradient != nullptr) {
    gradient[0] = g0;
    gradient[1] = g1;
    gradient[2] = g2;
    gradient[3] = g3;
    gradient[4] = g4;
  }
  return f;
}

}  // namespace isoflop::analysis
