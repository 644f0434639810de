// Expansion of a validated sweep config into fully resolved trials (IsoFLOP
// grid: every budget crossed with every model shape).
#ifndef ISOFLOP_COORDINATOR_SWEEP_EXPAND_H_
#define ISOFLOP_COORDINATOR_SWEEP_EXPAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "isoflop/v1/config.pb.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

struct ExpandedSweep {
  // The client's id, else MakeId("sw", deterministic bytes of `resolved`
  // without its scheduling).
  std::string sweep_id;
  v1::SweepConfig resolved;  // defaults applied
  // Budget-major: budgets[0] x shapes, budgets[1] x ... With schedule
  // WSD_BRANCHED, one trunk per shape (in shape order) comes first, then
  // the cells as branches in the same order.
  std::vector<v1::TrialSpec> trials;
};

// Tokens a trial trains itself: its D, but a branch's only for its steps
// after start_step (its cool-down from the trunk's checkpoint).
uint64_t TrainedTokens(const v1::TrialSpec& spec);

// FLOPs a trial trains (common/flops.h): its C, but a branch's only for its
// steps after start_step. Summed over a sweep: its total compute, each trunk
// counted once (Sweep.total_flops).
double TrainedFlops(const v1::TrialSpec& spec);

// FLOPs of the trial's cell trained as an independent run: its C, 0 for a
// trunk (Sweep.independent_flops sums it).
double IndependentFlops(const v1::TrialSpec& spec);

// The one place defaults are applied: the worker passes the resolved trial
// spec to the trainer as is (worker/trial_command.h) and the trainer requires
// every value as a flag (trainer/options.h). Returns `config` with every
// default applied: family GPT_RMSNORM, schedule
// COSINE, cooldown_fraction 0 -> 0.2 with WSD, d_ff 0 -> 4 d_model,
// eval_batches 0 -> 8, beta2 0 -> 0.95 (without a beta2 rule), precision
// unspecified -> FP32 on CPU (gpus_per_trial 0) else BF16, max_attempts 0 ->
// 3, threads_per_trial 0 -> 1; grid.shape_rule's defaults filled in when
// the grid uses it (ResolveShapeRule), training.hparam_preset turned into
// per-hyperparameter rules (ExpandHparamPreset). Rules themselves are
// evaluated per trial by ExpandSweep. Pure; no validation.
v1::SweepConfig ResolveDefaults(const v1::SweepConfig& config);

// One shape of a grid and the field it came from ("grid.model_shapes[2]",
// "grid.n_targets[0]", "grid.d_models[1]").
struct GridShape {
  std::string field;
  v1::ModelShape shape;
};

// The shapes of a resolved config's grid, in the order of its list:
// model_shapes as given, d_models through ShapeForDModel, n_targets through
// ShapeForParams (coordinator/sweep/recipe.h) with grid.shape_rule.
// INVALID_ARGUMENT naming the entry when the rule refuses it, or when two
// n_targets give the same shape. Pure.
absl::StatusOr<std::vector<GridShape>> GridShapes(
    const v1::SweepConfig& resolved);

// Validates (ValidateSweepConfig), resolves defaults and expands the grid.
// Each trial's lr, batch_sequences B, warmup_fraction and beta2 come from
// the config's rules of its N and budget where it has them
// (coordinator/sweep/recipe.h ResolveTrialHparams; the trial's training
// carries the values, its rules cleared, and hparam_reason says which rule
// gave each). Each trial trains steps = floor(budget / flops_per_token / (B T))
// whole steps of B T tokens (tokens = steps B T, counts from common/flops.h); a
// budget below one step is INVALID_ARGUMENT naming the budget, the shape and
// the minimum.
// Schedule WSD_BRANCHED (docs/architecture.md "Trunks and branches"): per
// shape, warm-up W = round(warmup_fraction x its smallest cell's steps);
// each cell becomes a branch starting at s = max(W, steps - round(0.2
// steps)) of a trunk that trains to the largest s and keeps a checkpoint at
// every s; a cell with s < 1 or s >= steps is INVALID_ARGUMENT naming the
// budget. Deterministic: the same config always yields the same sweep
// id and trial ids (trial id = MakeId("tr", sweep id + cell)). A non-empty
// `sweep_id` (checked with ValidateSweepId) is used instead of the derived
// one, so its trial ids differ from the same config's without it. Pure.
absl::StatusOr<ExpandedSweep> ExpandSweep(const v1::SweepConfig& config,
                                          const std::string& sweep_id = "");

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SWEEP_EXPAND_H_
