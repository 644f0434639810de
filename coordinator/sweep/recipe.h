// Sweep recipes (docs/config.md): one knob (d_model, or a target parameter
// count N) to a whole model shape through a ShapeRule, and hyperparameters
// (lr, batch, warm-up, beta2) as rules of a trial's N or C. Pure functions of
// their arguments; the sweep expansion (coordinator/sweep/expand.h) and the
// adaptive planner call them.
#ifndef ISOFLOP_COORDINATOR_SWEEP_RECIPE_H_
#define ISOFLOP_COORDINATOR_SWEEP_RECIPE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "isoflop/v1/config.pb.h"

namespace isoflop::coordinator {

// ------------------------------------------------------------ shapes

// `rule` with every field left 0 (layers_log2_slope: unset) given its
// default (config.proto ShapeRule: Marin's recipe). Pure; no validation.
v1::ShapeRule ResolveShapeRule(const v1::ShapeRule& rule);

// OK, or INVALID_ARGUMENT naming the first bad field as
// `<prefix>.<field>` (prefix e.g. "grid.shape_rule"), its value and rule.
absl::Status ValidateShapeRule(const v1::ShapeRule& rule,
                               const std::string& prefix = "grid.shape_rule");

// The rule's shape at width `d_model` (d_ff resolved, never 0):
// n_layers = round(d / (layers_base + layers_log2_slope log2 d)) clamped to
// [min_layers, max_layers], n_heads = the divisor of d nearest to
// d / head_dim in log scale (ties: fewer heads), d_ff = round(ffn_ratio d).
// INVALID_ARGUMENT for a bad rule or d_model outside [1, 65536].
absl::StatusOr<v1::ModelShape> ShapeForDModel(uint32_t d_model,
                                              const v1::ShapeRule& rule);

// The rule's shape whose n_total (common/flops.h with `model`'s vocab_size
// and context: the N every fit uses) is nearest to `n_target` in log scale
// over the rule's candidate widths (config.proto ShapeRule; ties: the
// narrower). Monotone: a larger target never gives a smaller shape.
// INVALID_ARGUMENT for a target that is not finite and > 0, a bad rule, a
// model without vocab_size or context, or when the nearest shape's N is
// more than 2x from the target (outside the rule's widths); the message
// states the target and the N range the rule spans. Pure.
absl::StatusOr<v1::ModelShape> ShapeForParams(double n_target,
                                              const v1::ShapeRule& rule,
                                              const v1::ModelSpec& model);

// n_total of `shape` (d_ff 0 means 4 d_model) under common/flops.h.
double ShapeParams(const v1::ModelShape& shape, const v1::ModelSpec& model);

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SWEEP_RECIPE_H_
