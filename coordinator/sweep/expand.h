// Sweep configs at the boundary: validation (every rule names field, value
// and rule) and expansion into fully resolved trials.
#ifndef ISOFLOP_COORDINATOR_SWEEP_EXPAND_H_
#define ISOFLOP_COORDINATOR_SWEEP_EXPAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "isoflop/v1/config.pb.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

// OK, or INVALID_ARGUMENT for the first broken rule, e.g.
// "grid.flops_budgets[1] = -1: must be > 0".
absl::Status ValidateSweepConfig(const v1::SweepConfig& config);

struct ExpandedSweep {
  std::string sweep_id;  // "sw-" + hash of the resolved config
  v1::SweepConfig resolved;  // defaults applied
  std::vector<v1::TrialSpec> trials;  // budgets x shapes, in that order
};

// Validates, applies defaults (d_ff 0 -> 4 d_model, max_attempts 0 -> 3,
// eval_batches 0 -> 8, beta2 0 -> 0.95, threads 0 -> 1, precision by device)
// and expands the grid. Each trial trains steps = floor(budget /
// flops_per_token / (B T)) whole steps; a budget below one step is refused
// naming the budget, the shape and the minimum. Ids are deterministic, so the
// same config always yields the same sweep and trial ids.
absl::StatusOr<ExpandedSweep> ExpandSweep(const v1::SweepConfig& config);

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SWEEP_EXPAND_H_
