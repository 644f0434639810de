// The inner loop of HuberLogLoss, in its own file so that it alone is built
// with -ffast-math and SIMD flags (analysis/CMakeLists.txt): glibc's libmvec
// then evaluates exp and log four points at a time. Internal to analysis/.
#ifndef ISOFLOP_ANALYSIS_HUBER_KERNEL_H_
#define ISOFLOP_ANALYSIS_HUBER_KERNEL_H_

#include <cstddef>

namespace isoflop::analysis {

// Returns sum_i Huber_delta(LSE(a - alpha ln_n[i], b - beta ln_d[i], e) -
// ln_l[i]) for x = (a, b, e, alpha, beta) and, when `gradient` is not null,
// writes its 5 partial derivatives there. Arrays hold `n` values. Built with
// -ffast-math: a non-finite input gives an unspecified (possibly non-finite)
// result, which the caller must check; the sum's order may differ from a
// plain loop's in the last bits.
double HuberLogLossKernel(const double* ln_n, const double* ln_d,
                          const double* ln_l, size_t n, const double* x,
                          double delta, double* gradient);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_HUBER_KERNEL_H_
