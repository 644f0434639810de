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

// ------------------------------------------------------------ hyperparameters

enum class Hparam { kLr, kBatchTokens, kWarmupTokens, kBeta2 };

// "lr", "batch_tokens", "warmup_tokens", "beta2".
const char* HparamName(Hparam h);

// Whether `preset` has a rule for `h` (PORIAN2024: all four; DEEPSEEK2024:
// lr and batch_tokens).
bool PresetCovers(v1::HparamPreset preset, Hparam h);

// "porian2024", "deepseek2024".
std::string PresetName(v1::HparamPreset preset);

// `training` with hparam_preset turned into per-hyperparameter rules
// ({preset: P}) for each one it covers whose fixed field is 0 and whose rule
// is unset, and hparam_preset cleared: the same sweep whether the preset is
// given once or per rule. Pure; no validation.
v1::Training ExpandHparamPreset(const v1::Training& training);

// OK, or INVALID_ARGUMENT naming `field` (e.g. "training.lr_rule"): no
// alternative set, a constant out of the hyperparameter's range, a power law
// with a coefficient <= 0, an exponent outside [-4, 4], no `of`, a negative
// reference or clamp, min > max, or a preset without a rule for `h`.
absl::Status ValidateHparamRule(const v1::HparamRule& rule, Hparam h,
                                const std::string& field);

// The hyperparameters of one trial after the rules of `training` (as
// resolved by ResolveDefaults: presets expanded; a hyperparameter without a
// rule keeps its fixed value).
struct TrialHparams {
  double lr = 0;
  uint32_t batch_sequences = 0;
  double beta2 = 0;
  double warmup_fraction = 0;
  // One entry per hyperparameter a rule set: "lr: deepseek2024
  // 0.3118*C^-0.125 = 0.00234 (C=1e+17)".
  std::vector<std::string> reasons;
};

// Stage 1 (before the trial's steps are known): lr, batch_sequences =
// max(1, round(batch tokens / context)) and beta2 for a trial of n_total
// `n_params` at budget `c_flops`. INVALID_ARGUMENT naming the rule's field
// when a rule gives lr or beta2 outside (0, 1), a batch above 65536
// sequences, or a value that is not finite.
absl::StatusOr<TrialHparams> ResolveTrialHparams(const v1::Training& training,
                                                 uint32_t context,
                                                 double n_params,
                                                 double c_flops);

// Stage 2: warmup_fraction = min(0.5, warm-up tokens / `trial_tokens`) when
// training.warmup_tokens_rule is set (else training.warmup_fraction), and
// its reason. INVALID_ARGUMENT naming the rule for a negative or non-finite
// warm-up.
absl::Status ResolveTrialWarmup(const v1::Training& training, double n_params,
                                double c_flops, double trial_tokens,
                                TrialHparams& hparams);

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SWEEP_RECIPE_H_
