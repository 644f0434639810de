// Bootstrap confidence intervals: resample the points with replacement,
// refit, and take the 2.5 % and 97.5 % percentiles of each quantity.
#ifndef ISOFLOP_ANALYSIS_BOOTSTRAP_H_
#define ISOFLOP_ANALYSIS_BOOTSTRAP_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "analysis/approach2.h"
#include "analysis/approach3.h"
#include "analysis/flops.h"

namespace isoflop::analysis {

struct Interval {
  double low = 0, high = 0;
};

struct BootstrapOptions {
  int resamples = 1000;
  uint64_t seed = 1;  // resample i draws from std::seed_seq{seed, i}
  int threads = 0;    // 0: hardware concurrency
  // Set (and true): the remaining resamples are skipped and the bootstrap
  // returns CANCELLED.
  const std::atomic<bool>* cancel = nullptr;
};

// The refits of the resamples that succeeded (`failed` counts the others).
// The results depend on the seed, never on the number of threads.
struct Approach3Bootstrap {
  std::vector<Approach3Fit> samples;  // law fields only (no message)
  int failed = 0;
};
struct Approach2Bootstrap {
  std::vector<std::pair<PowerLaw, PowerLaw>> samples;  // (N_opt, D_opt)
  int failed = 0;
};

// Each resample draws points.size() points with replacement and refits
// Approach 3 from `full`'s optimum (one L-BFGS descent and its polish, with
// full.huber_delta). INVALID_ARGUMENT if resamples < 2, threads < 0 or the
// points are invalid (as FitApproach3).
absl::StatusOr<Approach3Bootstrap> BootstrapApproach3(
    const std::vector<Observation>& points, const Approach3Fit& full,
    const BootstrapOptions& options);

// Resamples within each budget group (each keeps its size) and refits
// Approach 2; a resample in which fewer than 2 budgets fit counts as failed.
absl::StatusOr<Approach2Bootstrap> BootstrapApproach2(
    const std::vector<Point>& points, const Grouping& grouping,
    const Approach2Options& fit_options, const BootstrapOptions& options);

// The 2.5 % and 97.5 % percentiles (linear interpolation) of `values`;
// non-finite values are left out; NaN bounds when none is left.
Interval Percentile95(std::vector<double> values);

// 95 % intervals of E, A, B, alpha, beta, a, b and G (names as in the JSON
// report) over the samples.
std::map<std::string, Interval> Approach3Intervals(
    const std::vector<Approach3Fit>& samples);
// 95 % intervals of N_opt, D_opt and the loss at `flops` ("n_opt", "d_opt",
// "loss"), each sample's optimum under `model` (ComputeOptimalUnder).
std::map<std::string, Interval> OptimumIntervals(
    const std::vector<Approach3Fit>& samples, double flops,
    const FlopsModel& model);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_BOOTSTRAP_H_
