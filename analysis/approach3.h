// Chinchilla Approach 3: fit L(N, D) = E + A / N^alpha + B / D^beta to
// observed (N, D, loss) points, and the compute-optimal closed form.
#ifndef ISOFLOP_ANALYSIS_APPROACH3_H_
#define ISOFLOP_ANALYSIS_APPROACH3_H_

#include <array>
#include <atomic>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace isoflop::analysis {

struct Observation {
  double n = 0;     // parameters
  double d = 0;     // training tokens
  double loss = 0;  // validation loss (nats/token)
};

// A start or a solution in the solver's coordinates (a, b, e, alpha, beta),
// with A = e^a, B = e^b, E = e^e.
using LogParams = std::array<double, 5>;

struct Approach3Options {
  double huber_delta = 1e-3;  // Chinchilla's delta, on log-loss residuals
  int threads = 0;            // 0: hardware concurrency
  // Empty: Chinchilla's 4500-start grid (see FitApproach3). Otherwise these
  // starts, in order (StartsFromSpec builds sub-grids and random starts;
  // the bootstrap passes the full fit's optimum).
  std::vector<LogParams> starts;
  // Set (and true): the remaining starts are skipped and the fit returns
  // CANCELLED (a coordinator shutting down mid-fit).
  const std::atomic<bool>* cancel = nullptr;
};

struct Approach3Fit {
  double e = 0, a = 0, b = 0, alpha = 0, beta = 0;  // E, A, B (not logs)
  double objective = 0;  // summed Huber loss at the optimum
  int n_points = 0;
  int n_starts = 0;
  int n_starts_at_best = 0;   // starts ending within 1e-9 of the best objective
  bool on_grid_edge = false;  // a fitted parameter at/outside the start grid
  double condition_number = 0;   // of the Hessian at the optimum; inf if not PD
  bool ill_conditioned = false;  // condition number > 1e12 or not PD
  double huber_delta = 0;        // the delta used
  // One line, items joined by "; ": "best start: <Ceres's termination
  // message>", "polished: <Ceres's message>" if continuing the best start
  // improved it, "Hessian condition number <x>", then one "warning: ..." each
  // for a parameter on the grid's edge (naming it), an ill-conditioned
  // optimum (condition number > 1e12 or not positive definite: the points do
  // not determine all five parameters) and alpha or beta <= 0.
  std::string message;
};

// A law given by its five parameters (no fit statistics): stored fits and
// bootstrap samples read back from a file or the coordinator.
inline Approach3Fit LawWith(double e, double a, double b, double alpha,
                            double beta) {
  Approach3Fit law;
  law.e = e;
  law.a = a;
  law.b = b;
  law.alpha = alpha;
  law.beta = beta;
  return law;
}

// Parses the --starts flag: "grid" (Chinchilla's 4500 starts), "grid:K"
// (every K-th value along each axis of that grid, ends included: grid:2 gives
// 3x3x3x3x3 = 243 starts) or "random:K" / "random:K:SEED" (K starts drawn
// uniformly from the grid's box with std::mt19937_64(SEED), default seed 1).
// INVALID_ARGUMENT naming the flag, the value and the accepted forms.
absl::StatusOr<std::vector<LogParams>> StartsFromSpec(const std::string& spec);

// The fit's parameters in the solver's coordinates.
LogParams ToLogParams(const Approach3Fit& fit);

// Minimises sum_i Huber_delta(LSE(a - alpha log N_i, b - beta log D_i, e) -
// log L_i) (summed, not averaged) with Ceres L-BFGS and an exact gradient from
// each of `options.starts` (default: the 4500 starts of Chinchilla's grid:
// a, b in {0, 5, .., 25}; e in {-1, -.5, .., 1}; alpha, beta in {0, .5, ..,
// 2}) on `options.threads` threads (at most 500 iterations each), keeps the
// best and continues its descent (up to 10000 more); A = e^a, B = e^b,
// E = e^e. The result does not depend on the number of threads. Returns
// INVALID_ARGUMENT naming the point and field ("points[3].loss = -1: must
// be finite and > 0") when a value is not finite and > 0, when fewer than 5
// or more than 100000 points are given (a grid fit of more would take
// hours: aggregate or subsample), or when `options.huber_delta` is not
// finite and > 0, `options.threads` < 0 or a start is not finite. A poor fit
// is not an error: see `message`. Thread-safe; blocks until all starts
// finish (figures: bench/approach3_bench.cc).
absl::StatusOr<Approach3Fit> FitApproach3(
    const std::vector<Observation>& points,
    const Approach3Options& options = {});

struct ComputeOptimum {
  double flops = 0, n_opt = 0, d_opt = 0, loss = 0;
};

// Closed form under C = 6·N·D: G = (alpha A / (beta B))^(1 / (alpha + beta)),
// N_opt = G (C/6)^(beta / (alpha + beta)), D_opt = (C/6)^(alpha / (alpha +
// beta)) / G, loss = L(N_opt, D_opt), in full double precision. Meaningful
// only for alpha, beta, A, B > 0 and flops > 0; otherwise the fields may be
// NaN or infinite (callers check the fit's warnings first).
ComputeOptimum ComputeOptimalFor(const Approach3Fit& fit, double flops);

// Multi-line human summary: the law, E, A, B, alpha, beta to 10 significant
// digits, the objective, points, starts at best, then the items of
// `message`, one per line.
std::string FormatFit(const Approach3Fit& fit);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_APPROACH3_H_
