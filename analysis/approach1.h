// Chinchilla Approach 1: the lower envelope of training curves over FLOPs,
// then N_opt(C) and D_opt(C) as power laws.
#ifndef ISOFLOP_ANALYSIS_APPROACH1_H_
#define ISOFLOP_ANALYSIS_APPROACH1_H_

#include <vector>

#include "absl/status/statusor.h"
#include "analysis/points_io.h"
#include "analysis/power_law.h"

namespace isoflop::analysis {

struct EnvelopePoint {
  double flops = 0, n = 0, loss = 0;  // the best run at this budget
};

struct Approach1Fit {
  std::vector<EnvelopePoint> envelope;
  PowerLaw n_opt, d_opt;  // of C; D_opt = TokensForCompute(FlopsModelOf(set),
                          // N_opt, C) at each envelope point (flops.h)
  int n_runs = 0;
};

// `set` must hold training curves (step + run; points_io.h). Each run's loss
// is interpolated linearly in log C between its points; at
// `envelope_points` log-spaced C from the smallest to the largest FLOPs of
// any point, the run with the lowest loss among those whose curve spans C
// gives (N, loss). Power laws are then fitted over the envelope.
// INVALID_ARGUMENT if envelope_points < 2 or a run has two values of params;
// FAILED_PRECONDITION if there are no curves, or the envelope holds fewer
// than 2 distinct model sizes.
absl::StatusOr<Approach1Fit> FitApproach1(const PointSet& set,
                                          int envelope_points = 1500);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_APPROACH1_H_
