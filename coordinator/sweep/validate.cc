#include "coordinator/sweep/validate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "common/token_file.h"
#include "coordinator/sweep/adaptive.h"
#include "coordinator/sweep/recipe.h"

namespace isoflop::coordinator {
namespace {

std::string Num(double v) { return absl::StrFormat("%g", v); }
// Values are echoed in messages that reach terminals: never raw control bytes.
std::string Quoted(const std::string& s) {
  return absl::StrCat("\"", EscapeUnprintable(s), "\"");
}

// Free text (name, data.dataset): printable UTF-8 (common/text.h).
absl::Status CheckText(const std::string& field, const std::string& value,
                       size_t shown) {
  if (std::optional<std::string> problem = TextProblem(value)) {
    return InvalidField(
        field, Quoted(value.substr(0, shown)),
        absl::StrCat(*problem,
                     ": must be printable UTF-8 (no control characters, "
                     "escape sequences or NUL)"));
  }
  return absl::OkStatus();
}

// Lower bound first, so the common mistake (0, a missing field) gets the
// short message "must be >= 1".
absl::Status CheckRange(const std::string& field, double v, double lo,
                        double hi) {
  if (!(v >= lo))
    return InvalidField(field, Num(v), absl::StrCat("must be >= ", Num(lo)));
  if (!(v <= hi))
    return InvalidField(field, Num(v), absl::StrCat("must be <= ", Num(hi)));
  return absl::OkStatus();
}

absl::Status ValidateModel(const v1::ModelSpec& m) {
  if (!v1::ModelFamily_IsValid(m.family())) {
    return InvalidField("model.family", Num(m.family()),
                        "unknown value: must be GPT_RMSNORM (1), or unset");
  }
  if (m.vocab_size() == 0)
    return InvalidField("model.vocab_size", "0", "must be set (>= 2)");
  // Token files hold uint32 ids past 65,536 (docs/data-format.md): the proto
  // field's own range is the limit.
  RETURN_IF_ERROR(CheckRange("model.vocab_size", m.vocab_size(), 2,
                             int64_t{kMaxTokenFileVocab}));
  if (m.context() == 0)
    return InvalidField("model.context", "0", "must be set (>= 1)");
  return CheckRange("model.context", m.context(), 1, 65536);
}

absl::Status ValidateShape(const v1::ModelShape& s, int i) {
  const std::string f = absl::StrCat("grid.model_shapes[", i, "].");
  RETURN_IF_ERROR(CheckRange(f + "d_model", s.d_model(), 1, 65536));
  RETURN_IF_ERROR(CheckRange(f + "n_layers", s.n_layers(), 1, 1024));
  RETURN_IF_ERROR(CheckRange(f + "n_heads", s.n_heads(), 1, 65536));
  if (s.d_model() % s.n_heads() != 0) {
    return InvalidField(f + "n_heads", Num(s.n_heads()),
                        absl::StrCat("must divide d_model = ", s.d_model()));
  }
  return CheckRange(f + "d_ff", s.d_ff(), 0, 1 << 20);  // 0 means 4 * d_model
}

// The shape as trained: d_ff 0 means 4 * d_model (ResolveDefaults).
std::string ShapeText(const v1::ModelShape& s) {
  return absl::StrCat("{d_model: ", s.d_model(), " n_layers: ", s.n_layers(),
                      " n_heads: ", s.n_heads(),
                      " d_ff: ", s.d_ff() == 0 ? 4 * s.d_model() : s.d_ff(),
                      "}");
}

// A repeated budget or shape would train the same cells twice.
absl::Status CheckDuplicates(const v1::Grid& g) {
  std::map<double, int> budgets;
  for (int i = 0; i < g.flops_budgets_size(); ++i) {
    auto [it, inserted] = budgets.emplace(g.flops_budgets(i), i);
    if (!inserted) {
      return InvalidField(
          absl::StrCat("grid.flops_budgets[", i, "]"), Num(g.flops_budgets(i)),
          absl::StrCat("duplicates grid.flops_budgets[", it->second,
                       "]: each budget must be listed once"));
    }
  }
  std::map<std::string, int> shapes;
  for (int i = 0; i < g.model_shapes_size(); ++i) {
    const std::string text = ShapeText(g.model_shapes(i));
    auto [it, inserted] = shapes.emplace(text, i);
    if (!inserted) {
      return InvalidField(
          absl::StrCat("grid.model_shapes[", i, "]"), text,
          absl::StrCat("duplicates grid.model_shapes[", it->second,
                       "]: each shape must be listed once"));
    }
  }
  return absl::OkStatus();
}

// The grid's shape list: model_shapes, n_targets or d_models (exactly one is
// non-empty in a valid grid; the longest here).
std::pair<std::string, int> ShapeSource(const v1::Grid& g) {
  std::pair<std::string, int> out{"grid.model_shapes", g.model_shapes_size()};
  if (g.n_targets_size() > out.second)
    out = {"grid.n_targets", g.n_targets_size()};
  if (g.d_models_size() > out.second)
    out = {"grid.d_models", g.d_models_size()};
  return out;
}

// Limits keep one sweep's expansion (budgets x shapes trials) bounded, and
// its request far below gRPC's message limit.
absl::Status CheckGridSize(const v1::Grid& g) {
  if (g.flops_budgets_size() > kMaxBudgets) {
    return InvalidField("grid.flops_budgets",
                        absl::StrCat(g.flops_budgets_size(), " budgets"),
                        absl::StrCat("must list at most ", kMaxBudgets));
  }
  const auto [source, n_shapes] = ShapeSource(g);
  if (n_shapes > kMaxShapes) {
    return InvalidField(source, absl::StrCat(n_shapes, " shapes"),
                        absl::StrCat("must list at most ", kMaxShapes));
  }
  const int trials = g.flops_budgets_size() * n_shapes;
  if (trials > kMaxTrials) {
    return InvalidField(
        "grid",
        absl::StrCat(g.flops_budgets_size(), " budgets x ", n_shapes,
                     " shapes = ", trials, " trials"),
        absl::StrCat("a sweep must have at most ", kMaxTrials, " trials"));
  }
  return absl::OkStatus();
}

// n_targets and d_models: each a valid, distinct knob value.
absl::Status ValidateShapeKnobs(const v1::Grid& g) {
  std::map<double, int> targets;
  for (int i = 0; i < g.n_targets_size(); ++i) {
    const double n = g.n_targets(i);
    const std::string f = absl::StrCat("grid.n_targets[", i, "]");
    if (!std::isfinite(n) || n <= 0)
      return InvalidField(f, Num(n), "must be > 0");
    if (n > 1e15) return InvalidField(f, Num(n), "must be <= 1e+15");
    auto [it, inserted] = targets.emplace(n, i);
    if (!inserted) {
      return InvalidField(f, Num(n),
                          absl::StrCat("duplicates grid.n_targets[", it->second,
                                       "]: each target must be listed once"));
    }
  }
  std::map<uint32_t, int> widths;
  for (int i = 0; i < g.d_models_size(); ++i) {
    const std::string f = absl::StrCat("grid.d_models[", i, "]");
    RETURN_IF_ERROR(CheckRange(f, g.d_models(i), 1, 65536));
    auto [it, inserted] = widths.emplace(g.d_models(i), i);
    if (!inserted) {
      return InvalidField(f, Num(g.d_models(i)),
                          absl::StrCat("duplicates grid.d_models[", it->second,
                                       "]: each width must be listed once"));
    }
  }
  if (g.has_shape_rule()) RETURN_IF_ERROR(ValidateShapeRule(g.shape_rule()));
  return absl::OkStatus();
}

absl::Status ValidateGrid(const v1::Grid& g) {
  if (g.flops_budgets_size() == 0) {
    return InvalidField("grid.flops_budgets", "[]",
                        "must list at least one budget");
  }
  const int sources = (g.model_shapes_size() > 0) + (g.n_targets_size() > 0) +
                      (g.d_models_size() > 0);
  if (sources == 0) {
    return InvalidField("grid.model_shapes", "[]",
                        "must list at least one shape (or give "
                        "grid.n_targets or grid.d_models)");
  }
  if (sources > 1) {
    // Name the second of the lists given, in field order.
    const bool second_is_targets =
        g.model_shapes_size() > 0 && g.n_targets_size() > 0;
    return InvalidField(
        second_is_targets ? "grid.n_targets" : "grid.d_models",
        absl::StrCat(second_is_targets ? g.n_targets_size() : g.d_models_size(),
                     " values"),
        "give the shapes by one of grid.model_shapes, grid.n_targets or "
        "grid.d_models, not several");
  }
  RETURN_IF_ERROR(CheckGridSize(g));
  for (int i = 0; i < g.flops_budgets_size(); ++i) {
    const double b = g.flops_budgets(i);
    if (!std::isfinite(b) || b <= 0) {
      return InvalidField(absl::StrCat("grid.flops_budgets[", i, "]"), Num(b),
                          "must be > 0");
    }
  }
  for (int i = 0; i < g.model_shapes_size(); ++i) {
    RETURN_IF_ERROR(ValidateShape(g.model_shapes(i), i));
  }
  RETURN_IF_ERROR(CheckDuplicates(g));
  if (g.has_adaptive()) RETURN_IF_ERROR(ValidateAdaptiveGrid(g.adaptive()));
  return ValidateShapeKnobs(g);
}

// A hyperparameter given by a rule (its own or hparam_preset's) leaves its
// fixed field 0.
absl::Status CheckRuleAndFixed(const v1::Training& t, Hparam h,
                               const char* fixed, double fixed_value) {
  const v1::HparamRule& rule =
      h == Hparam::kLr             ? t.lr_rule()
      : h == Hparam::kBatchTokens  ? t.batch_tokens_rule()
      : h == Hparam::kWarmupTokens ? t.warmup_tokens_rule()
                                   : t.beta2_rule();
  const std::string field = absl::StrCat("training.", HparamName(h), "_rule");
  RETURN_IF_ERROR(ValidateHparamRule(rule, h, field));
  if (fixed_value != 0) {
    return InvalidField(
        absl::StrCat("training.", fixed), Num(fixed_value),
        absl::StrCat("must be 0 (unset) when ", field, " gives it"));
  }
  return absl::OkStatus();
}

absl::Status ValidateTraining(const v1::Training& given) {
  if (!v1::HparamPreset_IsValid(given.hparam_preset())) {
    return InvalidField(
        "training.hparam_preset", Num(given.hparam_preset()),
        "unknown value: must be PORIAN2024 (1) or DEEPSEEK2024 (2), or unset");
  }
  // The preset becomes rules where no value or rule is given (recipe.h).
  const v1::Training t = ExpandHparamPreset(given);
  if (!v1::LrSchedule_IsValid(t.schedule())) {
    return InvalidField(
        "training.schedule", Num(t.schedule()),
        "unknown value: must be COSINE (1), WSD (2) or WSD_BRANCHED (3), or "
        "unset");
  }
  if (!v1::Precision_IsValid(t.precision())) {
    return InvalidField(
        "training.precision", Num(t.precision()),
        "unknown value: must be FP32 (1) or BF16 (2), or unset");
  }
  if (t.has_batch_tokens_rule()) {
    RETURN_IF_ERROR(CheckRuleAndFixed(t, Hparam::kBatchTokens,
                                      "batch_sequences", t.batch_sequences()));
  } else {
    RETURN_IF_ERROR(
        CheckRange("training.batch_sequences", t.batch_sequences(), 1, 65536));
  }
  if (t.has_lr_rule()) {
    RETURN_IF_ERROR(CheckRuleAndFixed(t, Hparam::kLr, "lr", t.lr()));
  } else if (!(t.lr() > 0 && t.lr() < 1)) {
    return InvalidField("training.lr", Num(t.lr()), "must be in (0, 1)");
  }
  if (t.has_warmup_tokens_rule()) {
    RETURN_IF_ERROR(CheckRuleAndFixed(t, Hparam::kWarmupTokens,
                                      "warmup_fraction", t.warmup_fraction()));
  } else if (!(t.warmup_fraction() >= 0 && t.warmup_fraction() <= 0.5)) {
    return InvalidField("training.warmup_fraction", Num(t.warmup_fraction()),
                        "must be in [0, 0.5]");
  }
  if (!(t.min_lr_fraction() >= 0 && t.min_lr_fraction() <= 1)) {
    return InvalidField("training.min_lr_fraction", Num(t.min_lr_fraction()),
                        "must be in [0, 1]");
  }
  if (!(t.weight_decay() >= 0 && t.weight_decay() < 1)) {
    return InvalidField("training.weight_decay", Num(t.weight_decay()),
                        "must be in [0, 1)");
  }
  if (t.has_beta2_rule()) {
    RETURN_IF_ERROR(CheckRuleAndFixed(t, Hparam::kBeta2, "beta2", t.beta2()));
  } else if (!(t.beta2() >= 0 && t.beta2() < 1)) {
    return InvalidField("training.beta2", Num(t.beta2()),
                        "must be in (0, 1) (0 means 0.95)");
  }
  RETURN_IF_ERROR(
      CheckRange("training.eval_batches", t.eval_batches(), 0, 10000));
  if (t.schedule() == v1::WSD || t.schedule() == v1::WSD_BRANCHED) {
    if (!(t.cooldown_fraction() >= 0 && t.cooldown_fraction() <= 1)) {
      return InvalidField("training.cooldown_fraction",
                          Num(t.cooldown_fraction()),
                          "must be in (0, 1] (0 means 0.2)");
    }
  } else if (t.cooldown_fraction() != 0) {
    return InvalidField("training.cooldown_fraction",
                        Num(t.cooldown_fraction()),
                        "is used only by schedules WSD and WSD_BRANCHED: must "
                        "be 0 (unset) with COSINE");
  }
  RETURN_IF_ERROR(
      CheckRange("training.mup_base_width", t.mup_base_width(), 0, 65536));
  return CheckRange("training.zero_stage", t.zero_stage(), 0, 1);
}

absl::Status ValidateDataAndResources(const v1::SweepConfig& c) {
  const std::string& dataset = c.data().dataset();
  if (dataset.empty()) {
    return InvalidField(
        "data.dataset", "\"\"",
        "must name a dataset prepared with `isoflop data prepare`");
  }
  RETURN_IF_ERROR(CheckText("data.dataset", dataset, 140));
  if (dataset.find('/') != std::string::npos || dataset[0] == '.') {
    return InvalidField("data.dataset", Quoted(dataset),
                        "must be a plain name (no '/', no leading '.')");
  }
  const v1::Resources& r = c.resources();
  RETURN_IF_ERROR(
      CheckRange("resources.gpus_per_trial", r.gpus_per_trial(), 0, 64));
  RETURN_IF_ERROR(
      CheckRange("resources.max_attempts", r.max_attempts(), 0, 100));
  RETURN_IF_ERROR(
      CheckRange("resources.threads_per_trial", r.threads_per_trial(), 0, 256));
  RETURN_IF_ERROR(CheckRange("resources.cpu_ranks_per_trial",
                             r.cpu_ranks_per_trial(), 0, 64));
  if (r.cpu_ranks_per_trial() > 1 && r.gpus_per_trial() > 0) {
    return InvalidField("resources.cpu_ranks_per_trial",
                        std::to_string(r.cpu_ranks_per_trial()),
                        "must be 0 for a GPU trial (its ranks are "
                        "resources.gpus_per_trial)");
  }
  if (c.training().precision() == v1::BF16 && r.gpus_per_trial() == 0) {
    return InvalidField("training.precision", "BF16",
                        "needs resources.gpus_per_trial >= 1");
  }
  return absl::OkStatus();
}

// Scheduling (config.proto): priorities are a small ordered scale, not ids.
constexpr int kMaxPriority = 100;

absl::Status ValidateScheduling(const v1::Scheduling& s) {
  RETURN_IF_ERROR(CheckRange("scheduling.priority", s.priority(), -kMaxPriority,
                             kMaxPriority));
  // No sweep has more trials than budgets x shapes.
  return CheckRange("scheduling.max_concurrent_trials",
                    s.max_concurrent_trials(), 0, kMaxTrials);
}

}  // namespace

absl::Status InvalidField(const std::string& field, const std::string& value,
                          const std::string& rule) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " = ", value, ": ", rule));
}

absl::Status ValidateSweepConfig(const v1::SweepConfig& c) {
  if (c.name().empty() || c.name().size() > 128) {
    return InvalidField("name", Quoted(c.name().substr(0, 140)),
                        "must be 1 to 128 characters");
  }
  RETURN_IF_ERROR(CheckText("name", c.name(), 140));
  RETURN_IF_ERROR(ValidateModel(c.model()));
  RETURN_IF_ERROR(ValidateGrid(c.grid()));
  RETURN_IF_ERROR(ValidateTraining(c.training()));
  // An adaptive grid adds cells as budgets end; trunks would have to be
  // planned before their longest branch is known (docs/architecture.md §2.2).
  if (c.grid().has_adaptive() && c.training().schedule() == v1::WSD_BRANCHED) {
    return InvalidField("training.schedule", "WSD_BRANCHED",
                        "cannot be combined with grid.adaptive (not "
                        "supported yet): use WSD or COSINE with an adaptive "
                        "grid, or a fixed grid with WSD_BRANCHED");
  }
  RETURN_IF_ERROR(ValidateDataAndResources(c));
  return ValidateScheduling(c.scheduling());
}

absl::Status ValidateSweepConfigLimits(const v1::SweepConfig& c) {
  RETURN_IF_ERROR(CheckText("name", c.name(), 140));
  RETURN_IF_ERROR(CheckGridSize(c.grid()));
  return CheckText("data.dataset", c.data().dataset(), 140);
}

absl::Status ValidateSweepId(const std::string& id) {
  const auto ok_char = [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  };
  if (id.empty() || id.size() > 64 ||
      !std::isalnum(static_cast<unsigned char>(id[0])) ||
      !std::all_of(id.begin(), id.end(), ok_char)) {
    return InvalidField(
        "id", Quoted(id.substr(0, 64)),
        "must be 1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit");
  }
  return absl::OkStatus();
}

}  // namespace isoflop::coordinator
