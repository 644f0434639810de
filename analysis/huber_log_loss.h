// Chinchilla's Approach-3 objective with its analytic gradient, as a Ceres
// first-order function. Internal to analysis/; callers use approach3.h.
#ifndef ISOFLOP_ANALYSIS_HUBER_LOG_LOSS_H_
#define ISOFLOP_ANALYSIS_HUBER_LOG_LOSS_H_

#include <array>
#include <cstddef>
#include <vector>

#include "analysis/approach3.h"
#include "ceres/first_order_function.h"

namespace isoflop::analysis {

// Parameter vector x = (a, b, e, alpha, beta), with A = e^a, B = e^b, E = e^e.
inline constexpr int kNumParams = 5;
// Entries of the row-major Hessian.
inline constexpr size_t kHessianSize = size_t{kNumParams} * kNumParams;
using Params = LogParams;  // std::array<double, 5>

// f(x) = sum_i Huber_delta(LSE(a - alpha log N_i, b - beta log D_i, e) -
// log L_i), summed (not averaged), with Huber_delta(r) = r^2 / 2 for |r| <=
// delta and delta (|r| - delta / 2) beyond. The gradient is exact: the
// derivative of the log-sum-exp is its softmax weights. Values are computed
// with the max subtracted, so no exp overflows for any finite x. Immutable
// after construction; Evaluate may be called from many threads at once.
class HuberLogLoss final : public ceres::FirstOrderFunction {
 public:
  // `points` must already be validated (finite and > 0); they are copied.
  HuberLogLoss(const std::vector<Observation>& points, double delta);

  // Returns false (Ceres: "cannot evaluate here") if the value is not finite.
  // `gradient` may be null.
  bool Evaluate(const double* x, double* cost, double* gradient) const override;
  int NumParameters() const override { return kNumParams; }

  // The 5x5 Hessian at `x` by central differences of the exact gradient,
  // row-major and symmetrised. Used only to judge the conditioning of a fit.
  std::array<double, kHessianSize> Hessian(const Params& x) const;

 private:
  double delta_;
  std::vector<double> log_n_, log_d_, log_l_;
};

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_HUBER_LOG_LOSS_H_
