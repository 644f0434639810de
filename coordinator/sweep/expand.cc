#include "coordinator/sweep/expand.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/flops.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "coordinator/sweep/recipe.h"
#include "coordinator/sweep/validate.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace isoflop::coordinator {
namespace {

// Field order and map order fixed, so the bytes (and the id) are stable for
// one proto definition.
std::string DeterministicBytes(const v1::SweepConfig& config) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    config.SerializeToCodedStream(&coded);
  }
  return bytes;
}

// More optimizer steps than any real run takes: a typo'd budget, refused.
constexpr double kMaxSteps = 1e12;

// One grid cell, or INVALID_ARGUMENT when the budget buys no whole step or
// a hyperparameter rule gives a value out of range. `shape_field` names the
// shape in messages ("grid.model_shapes[2]", "grid.n_targets[0]").
absl::StatusOr<v1::TrialSpec> MakeTrial(const v1::SweepConfig& r,
                                        const std::string& sweep_id,
                                        int budget_index, int shape_index,
                                        const v1::ModelShape& s,
                                        const std::string& shape_field) {
  const double budget = r.grid().flops_budgets(budget_index);
  const ParamCounts counts =
      CountParams({r.model().vocab_size(), r.model().context(), s.d_model(),
                   s.n_layers(), s.n_heads(), s.d_ff()});
  const auto n_total = static_cast<double>(counts.n_total);
  ASSIGN_OR_RETURN(
      TrialHparams hp,
      ResolveTrialHparams(r.training(), r.model().context(), n_total, budget));
  const int64_t tokens_per_step =
      int64_t{hp.batch_sequences} * r.model().context();
  const double min_budget =
      counts.flops_per_token * static_cast<double>(tokens_per_step);
  const double whole_steps = std::floor(budget / min_budget);
  if (!(whole_steps <= kMaxSteps)) {  // also guards the int64 conversion
    return InvalidField(
        absl::StrCat("grid.flops_budgets[", budget_index, "]"),
        absl::StrFormat("%g", budget),
        absl::StrFormat("buys %g optimizer steps of %s: must be at most %g",
                        whole_steps, shape_field, kMaxSteps));
  }
  const auto steps = static_cast<int64_t>(whole_steps);
  if (steps < 1) {
    return InvalidField(
        absl::StrCat("grid.flops_budgets[", budget_index, "]"),
        absl::StrFormat("%g", budget),
        absl::StrFormat("too small for one optimizer step of %s "
                        "(d_model %d, n_layers %d): must be >= %g FLOPs "
                        "(%g FLOPs/token x %d tokens/step)",
                        shape_field, s.d_model(), s.n_layers(), min_budget,
                        counts.flops_per_token, tokens_per_step));
  }
  const int64_t tokens = steps * tokens_per_step;
  RETURN_IF_ERROR(ResolveTrialWarmup(r.training(), n_total, budget,
                                     static_cast<double>(tokens), hp));
  v1::TrialSpec spec;
  spec.set_sweep_id(sweep_id);
  spec.set_trial_id(MakeId(
      "tr", absl::StrCat(sweep_id, "/", budget_index, "/", shape_index)));
  *spec.mutable_model() = r.model();
  *spec.mutable_shape() = s;
  v1::Training& t = *spec.mutable_training();
  t = r.training();
  // The trial carries values, not rules; hparam_reason says which rule.
  t.clear_lr_rule();
  t.clear_batch_tokens_rule();
  t.clear_warmup_tokens_rule();
  t.clear_beta2_rule();
  t.clear_hparam_preset();
  t.set_lr(hp.lr);
  t.set_batch_sequences(hp.batch_sequences);
  t.set_beta2(hp.beta2);
  t.set_warmup_fraction(hp.warmup_fraction);
  spec.set_hparam_reason(absl::StrJoin(hp.reasons, "; "));
  spec.set_dataset(r.data().dataset());
  spec.set_flops_budget(budget);
  spec.set_steps(static_cast<uint64_t>(steps));
  spec.set_tokens(static_cast<uint64_t>(tokens));
  spec.set_gpus(r.resources().gpus_per_trial());
  spec.set_threads(r.resources().threads_per_trial());
  spec.set_cpu_ranks(r.resources().cpu_ranks_per_trial());
  spec.set_n_total(static_cast<uint64_t>(counts.n_total));
  spec.set_n_non_embedding(static_cast<uint64_t>(counts.n_non_embedding));
  spec.set_n_matmul(static_cast<uint64_t>(counts.n_matmul));
  spec.set_flops_per_token(counts.flops_per_token);
  spec.set_flops(
      TrialCompute(counts.flops_per_token, static_cast<double>(spec.tokens())));
  return spec;
}

// The cool-down fraction of a branched sweep's branches when
// training.cooldown_fraction is 0: Hägele et al. 2024's 20%
// (docs/architecture.md "Trunks and branches").
constexpr double kBranchCooldownFraction = 0.2;

// Where a branch of a WSD run of `steps` steps leaves its trunk: the first
// cool-down step of trainer/train.cc LearningRate's wsd schedule (constant
// before it, for warm-up `warmup` < steps).
uint64_t BranchStart(uint64_t steps, uint64_t warmup, double cooldown) {
  const auto decay = static_cast<uint64_t>(
      std::llround(cooldown * static_cast<double>(steps)));
  return std::max(warmup, steps - std::min(decay, steps));
}

// A trunk trains once for every budget of its shape, so what it trains with
// must be the same in each of its cells: a rule of C that gives two budgets
// different values is refused, naming the rule (docs/config.md).
absl::Status CheckTrunkHparams(const v1::TrialSpec& first,
                               const v1::TrialSpec& cell, int shape,
                               int budget_index) {
  const v1::Training& a = first.training();
  const v1::Training& b = cell.training();
  const auto refuse = [&](const char* field, double x, double y) {
    return InvalidField(
        field,
        absl::StrFormat("%g at budget %g, %g at budget %g", x,
                        first.flops_budget(), y, cell.flops_budget()),
        absl::StrFormat("schedule WSD_BRANCHED trains one trunk per shape for "
                        "all its budgets (shape %d, grid.flops_budgets[%d]), "
                        "so it must not depend on the budget: use a fixed "
                        "value or a rule of N (of: HPARAM_OF_N) in %s",
                        shape, budget_index, field));
  };
  if (a.batch_sequences() != b.batch_sequences()) {
    return refuse("training.batch_tokens_rule", a.batch_sequences(),
                  b.batch_sequences());
  }
  if (a.lr() != b.lr()) {
    return refuse("training.lr_rule", a.lr(), b.lr());
  }
  if (a.beta2() != b.beta2()) {
    return refuse("training.beta2_rule", a.beta2(), b.beta2());
  }
  return absl::OkStatus();
}

// Turns the grid's cells (budget-major, `n_shapes` per budget) into one trunk
// per shape, first, and one branch per cell (docs/architecture.md "Trunks and
// branches").
absl::Status BranchTrials(const v1::SweepConfig& r, size_t n_shapes,
                          std::vector<v1::TrialSpec>& cells) {
  const double cooldown = r.training().cooldown_fraction() > 0
                              ? r.training().cooldown_fraction()
                              : kBranchCooldownFraction;
  if (!(cooldown < 1)) {
    return InvalidField("training.cooldown_fraction",
                        absl::StrFormat("%g", cooldown),
                        "must be < 1 with schedule WSD_BRANCHED (a branch "
                        "needs a trunk step before its cool-down)");
  }
  const size_t stride = n_shapes;
  std::vector<v1::TrialSpec> trunks;
  for (size_t s = 0; s < stride; ++s) {
    const uint64_t tokens_per_step =
        uint64_t{cells[s].training().batch_sequences()} * r.model().context();
    uint64_t min_steps = 0;
    double warmup_fraction = 0;
    for (size_t i = s; i < cells.size(); i += stride) {
      RETURN_IF_ERROR(CheckTrunkHparams(cells[s], cells[i], static_cast<int>(s),
                                        static_cast<int>(i / stride)));
      if (min_steps == 0 || cells[i].steps() < min_steps) {
        min_steps = cells[i].steps();
        warmup_fraction = cells[i].training().warmup_fraction();
      }
    }
    // The shortest cell's warm-up (a warm-up rule resolved per cell).
    const auto warmup = static_cast<uint64_t>(
        std::llround(warmup_fraction * static_cast<double>(min_steps)));
    v1::TrialSpec trunk = cells[s];
    trunk.set_trial_id(
        MakeId("tr", absl::StrCat(cells[s].sweep_id(), "/trunk/", s)));
    trunk.set_role(v1::TRIAL_ROLE_TRUNK);
    trunk.set_warmup_steps(warmup);
    trunk.set_cooldown_fraction(cooldown);
    std::map<uint64_t, int> branches_at;  // start step -> branches
    for (size_t i = s; i < cells.size(); i += stride) {
      v1::TrialSpec& b = cells[i];
      const uint64_t start = BranchStart(b.steps(), warmup, cooldown);
      if (start < 1 || start >= b.steps()) {
        return InvalidField(
            absl::StrCat("grid.flops_budgets[", i / stride, "]"),
            absl::StrFormat("%g", b.flops_budget()),
            absl::StrFormat(
                "schedule WSD_BRANCHED: grid.model_shapes[%d] gets %d steps, "
                "too few for a trunk step and a cool-down step after %d "
                "warm-up steps: must buy more steps",
                s, b.steps(), warmup));
      }
      b.set_role(v1::TRIAL_ROLE_BRANCH);
      b.set_trunk_trial_id(trunk.trial_id());
      b.set_start_step(start);
      b.set_warmup_steps(warmup);
      b.set_cooldown_fraction(cooldown);
      ++branches_at[start];
    }
    for (size_t i = s; i < cells.size(); i += stride) {
      cells[i].set_release_start_checkpoint(
          branches_at[cells[i].start_step()] == 1);
    }
    for (const auto& [step, n] : branches_at) trunk.add_save_at_steps(step);
    const uint64_t steps = branches_at.rbegin()->first;
    trunk.set_steps(steps);
    trunk.set_tokens(steps * tokens_per_step);
    trunk.set_flops(TrialCompute(trunk.flops_per_token(),
                                 static_cast<double>(trunk.tokens())));
    trunk.set_flops_budget(trunk.flops());
    trunks.push_back(std::move(trunk));
  }
  cells.insert(cells.begin(), std::make_move_iterator(trunks.begin()),
               std::make_move_iterator(trunks.end()));
  return absl::OkStatus();
}

// The spec's C as stored (computed for specs stored before the field).
double CellFlops(const v1::TrialSpec& spec) {
  return spec.flops() > 0 ? spec.flops()
                          : TrialCompute(spec.flops_per_token(),
                                         static_cast<double>(spec.tokens()));
}

}  // namespace

uint64_t TrainedTokens(const v1::TrialSpec& spec) {
  if (spec.role() != v1::TRIAL_ROLE_BRANCH) return spec.tokens();
  const uint64_t trained =
      spec.steps() - std::min(spec.start_step(), spec.steps());
  const uint64_t tokens_per_step =
      spec.steps() == 0 ? 0 : spec.tokens() / spec.steps();
  return trained * tokens_per_step;
}

double TrainedFlops(const v1::TrialSpec& spec) {
  if (spec.role() != v1::TRIAL_ROLE_BRANCH) return CellFlops(spec);
  return TrialCompute(spec.flops_per_token(),
                      static_cast<double>(TrainedTokens(spec)));
}

double IndependentFlops(const v1::TrialSpec& spec) {
  return spec.role() == v1::TRIAL_ROLE_TRUNK ? 0 : CellFlops(spec);
}

v1::SweepConfig ResolveDefaults(const v1::SweepConfig& config) {
  v1::SweepConfig r = config;
  if (r.model().family() == v1::MODEL_FAMILY_UNSPECIFIED) {
    r.mutable_model()->set_family(v1::GPT_RMSNORM);
  }
  v1::Grid& g = *r.mutable_grid();
  for (v1::ModelShape& s : *g.mutable_model_shapes()) {
    if (s.d_ff() == 0) s.set_d_ff(4 * s.d_model());
  }
  if (g.has_shape_rule() || g.n_targets_size() > 0 || g.d_models_size() > 0) {
    *g.mutable_shape_rule() = ResolveShapeRule(g.shape_rule());
  }
  v1::Training& t = *r.mutable_training();
  t = ExpandHparamPreset(t);
  if (t.schedule() == v1::LR_SCHEDULE_UNSPECIFIED) t.set_schedule(v1::COSINE);
  if (t.schedule() == v1::WSD && t.cooldown_fraction() == 0) {
    t.set_cooldown_fraction(0.2);
  }
  if (t.eval_batches() == 0) t.set_eval_batches(8);
  if (t.beta2() == 0 && !t.has_beta2_rule()) t.set_beta2(0.95);
  v1::Resources& res = *r.mutable_resources();
  if (t.precision() == v1::PRECISION_UNSPECIFIED) {
    t.set_precision(res.gpus_per_trial() > 0 ? v1::BF16 : v1::FP32);
  }
  if (res.max_attempts() == 0) res.set_max_attempts(3);
  if (res.threads_per_trial() == 0) res.set_threads_per_trial(1);
  return r;
}

absl::StatusOr<ExpandedSweep> ExpandSweep(const v1::SweepConfig& config,
                                          const std::string& sweep_id) {
  if (!sweep_id.empty()) RETURN_IF_ERROR(ValidateSweepId(sweep_id));
  RETURN_IF_ERROR(ValidateSweepConfig(config));
  ExpandedSweep out;
  out.resolved = ResolveDefaults(config);
  if (sweep_id.empty()) {
    // Scheduling says how to run the grid, not what it is: a config that
    // differs only there is the same sweep (Core::Submit updates it).
    v1::SweepConfig identity = out.resolved;
    identity.clear_scheduling();
    out.sweep_id = MakeId("sw", DeterministicBytes(identity));
  } else {
    out.sweep_id = sweep_id;
  }
  ASSIGN_OR_RETURN(std::vector<GridShape> shapes, GridShapes(out.resolved));
  const v1::Grid& grid = out.resolved.grid();
  for (int b = 0; b < grid.flops_budgets_size(); ++b) {
    for (int s = 0; s < static_cast<int>(shapes.size()); ++s) {
      ASSIGN_OR_RETURN(v1::TrialSpec spec,
                       MakeTrial(out.resolved, out.sweep_id, b, s,
                                 shapes[s].shape, shapes[s].field));
      out.trials.push_back(std::move(spec));
    }
  }
  if (out.resolved.training().schedule() == v1::WSD_BRANCHED) {
    RETURN_IF_ERROR(BranchTrials(out.resolved, shapes.size(), out.trials));
  }
  return out;
}

absl::StatusOr<std::vector<GridShape>> GridShapes(
    const v1::SweepConfig& resolved) {
  const v1::Grid& g = resolved.grid();
  std::vector<GridShape> out;
  out.reserve(g.model_shapes_size() + g.d_models_size() + g.n_targets_size());
  for (int i = 0; i < g.model_shapes_size(); ++i) {
    out.push_back(
        {absl::StrCat("grid.model_shapes[", i, "]"), g.model_shapes(i)});
  }
  for (int i = 0; i < g.d_models_size(); ++i) {
    const std::string field = absl::StrCat("grid.d_models[", i, "]");
    absl::StatusOr<v1::ModelShape> s =
        ShapeForDModel(g.d_models(i), g.shape_rule());
    if (!s.ok()) {
      return InvalidField(field, absl::StrCat(g.d_models(i)),
                          std::string(s.status().message()));
    }
    out.push_back({field, *s});
  }
  std::map<std::string, int> seen;  // shape -> index into g.n_targets
  for (int i = 0; i < g.n_targets_size(); ++i) {
    const std::string field = absl::StrCat("grid.n_targets[", i, "]");
    const std::string value = absl::StrFormat("%g", g.n_targets(i));
    absl::StatusOr<v1::ModelShape> s =
        ShapeForParams(g.n_targets(i), g.shape_rule(), resolved.model());
    if (!s.ok())
      return InvalidField(field, value, std::string(s.status().message()));
    auto [it, inserted] = seen.emplace(s->SerializeAsString(), i);
    if (!inserted) {
      return InvalidField(
          field, value,
          absl::StrFormat("gives the same shape (d_model %d, n_layers %d) as "
                          "grid.n_targets[%d] = %g: space the targets further "
                          "apart or use a finer grid.shape_rule.d_model_step",
                          s->d_model(), s->n_layers(), it->second,
                          g.n_targets(it->second)));
    }
    out.push_back({field, *s});
  }
  return out;
}

}  // namespace isoflop::coordinator
