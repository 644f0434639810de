#include "coordinator/sweep/recipe.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/flops.h"
#include "common/status_macros.h"
#include "coordinator/sweep/validate.h"

namespace isoflop::coordinator {
namespace {

std::string Num(double v) { return absl::StrFormat("%g", v); }

// Marin's recipe (config.proto ShapeRule cites it).
constexpr double kLayersBase = 55;  // 64 + 4 log2 d - 9 = 55 + 4 log2 d
constexpr double kLayersLog2Slope = 4;
constexpr uint32_t kHeadDim = 128;
constexpr double kFfnRatio = 4;
constexpr uint32_t kMaxLayers = 1024;
constexpr uint32_t kMinDModel = 16;
constexpr uint32_t kMaxDModel = 65536;
// A target whose nearest shape is further off than this is outside the
// rule's widths.
constexpr double kMaxTargetRatio = 2;

absl::Status CheckRange(const std::string& field, double v, double lo,
                        double hi) {
  if (!(v >= lo))
    return InvalidField(field, Num(v), absl::StrCat("must be >= ", Num(lo)));
  if (!(v <= hi))
    return InvalidField(field, Num(v), absl::StrCat("must be <= ", Num(hi)));
  return absl::OkStatus();
}

// The divisor h of d nearest to `target` in log scale; ties: the smaller.
uint32_t NearestDivisor(uint32_t d, double target) {
  uint32_t best = 1;
  double best_err = std::numeric_limits<double>::infinity();
  for (uint32_t h = 1; h <= d; ++h) {
    if (d % h != 0) continue;
    const double err = std::abs(std::log(h / target));
    if (err < best_err - 1e-12) {
      best = h;
      best_err = err;
    }
  }
  return best;
}

// The rule's shape at width d; `r` resolved and valid.
v1::ModelShape ShapeAt(uint32_t d, const v1::ShapeRule& r) {
  const double denom = r.layers_base() + r.layers_log2_slope() *
                                             std::log2(static_cast<double>(d));
  const double layers = std::round(d / denom);
  v1::ModelShape s;
  s.set_d_model(d);
  s.set_n_layers(static_cast<uint32_t>(
      std::clamp(layers, static_cast<double>(r.min_layers()),
                 static_cast<double>(r.max_layers()))));
  s.set_n_heads(NearestDivisor(d, static_cast<double>(d) / r.head_dim()));
  s.set_d_ff(static_cast<uint32_t>(
      std::max(1.0, std::round(r.ffn_ratio() * static_cast<double>(d)))));
  return s;
}

// The rule's candidate widths for ShapeForParams, ascending.
std::vector<uint32_t> CandidateWidths(const v1::ShapeRule& r) {
  std::vector<uint32_t> out;
  if (r.d_model_step() > 0) {
    const uint32_t step = r.d_model_step();
    for (uint64_t d = (uint64_t{r.min_d_model()} + step - 1) / step * step;
         d <= r.max_d_model(); d += step) {
      out.push_back(static_cast<uint32_t>(d));
    }
    return out;
  }
  for (uint64_t scale = 1; scale * 8 <= r.max_d_model(); scale *= 2) {
    for (uint64_t k = 8; k < 16; ++k) {
      const uint64_t d = k * scale;
      // Wide models keep whole heads of head_dim (Marin: steps of 128).
      if (d >= 4 * uint64_t{r.head_dim()} && d % r.head_dim() != 0) continue;
      if (d >= r.min_d_model() && d <= r.max_d_model()) {
        out.push_back(static_cast<uint32_t>(d));
      }
    }
  }
  return out;
}

}  // namespace

v1::ShapeRule ResolveShapeRule(const v1::ShapeRule& rule) {
  v1::ShapeRule r = rule;
  if (r.layers_base() == 0) r.set_layers_base(kLayersBase);
  if (!r.has_layers_log2_slope()) r.set_layers_log2_slope(kLayersLog2Slope);
  if (r.head_dim() == 0) r.set_head_dim(kHeadDim);
  if (r.ffn_ratio() == 0) r.set_ffn_ratio(kFfnRatio);
  if (r.min_layers() == 0) r.set_min_layers(1);
  if (r.max_layers() == 0) r.set_max_layers(kMaxLayers);
  if (r.min_d_model() == 0) r.set_min_d_model(kMinDModel);
  if (r.max_d_model() == 0) r.set_max_d_model(kMaxDModel);
  return r;
}

absl::Status ValidateShapeRule(const v1::ShapeRule& rule,
                               const std::string& prefix) {
  const v1::ShapeRule r = ResolveShapeRule(rule);
  const std::string p = prefix + ".";
  RETURN_IF_ERROR(CheckRange(p + "layers_base", r.layers_base(), 1e-3, 1e6));
  RETURN_IF_ERROR(
      CheckRange(p + "layers_log2_slope", r.layers_log2_slope(), 0, 1e4));
  RETURN_IF_ERROR(CheckRange(p + "head_dim", r.head_dim(), 1, kMaxDModel));
  RETURN_IF_ERROR(CheckRange(p + "ffn_ratio", r.ffn_ratio(), 1.0 / 64, 16));
  RETURN_IF_ERROR(CheckRange(p + "min_layers", r.min_layers(), 1, kMaxLayers));
  RETURN_IF_ERROR(CheckRange(p + "max_layers", r.max_layers(), 1, kMaxLayers));
  if (r.min_layers() > r.max_layers()) {
    return InvalidField(
        p + "min_layers", Num(r.min_layers()),
        absl::StrCat("must be <= max_layers = ", r.max_layers()));
  }
  RETURN_IF_ERROR(
      CheckRange(p + "min_d_model", r.min_d_model(), 1, kMaxDModel));
  RETURN_IF_ERROR(
      CheckRange(p + "max_d_model", r.max_d_model(), 1, kMaxDModel));
  if (r.min_d_model() > r.max_d_model()) {
    return InvalidField(
        p + "min_d_model", Num(r.min_d_model()),
        absl::StrCat("must be <= max_d_model = ", r.max_d_model()));
  }
  RETURN_IF_ERROR(
      CheckRange(p + "d_model_step", r.d_model_step(), 0, kMaxDModel));
  if (CandidateWidths(r).empty()) {
    return InvalidField(
        p + "d_model_step", Num(r.d_model_step()),
        absl::StrCat("leaves no width in [min_d_model, max_d_model] = [",
                     r.min_d_model(), ", ", r.max_d_model(), "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ModelShape> ShapeForDModel(uint32_t d_model,
                                              const v1::ShapeRule& rule) {
  RETURN_IF_ERROR(ValidateShapeRule(rule));
  RETURN_IF_ERROR(CheckRange("d_model", d_model, 1, kMaxDModel));
  return ShapeAt(d_model, ResolveShapeRule(rule));
}

double ShapeParams(const v1::ModelShape& s, const v1::ModelSpec& model) {
  const uint32_t d_ff = s.d_ff() == 0 ? 4 * s.d_model() : s.d_ff();
  return static_cast<double>(
      CountParams({model.vocab_size(), model.context(), s.d_model(),
                   s.n_layers(), s.n_heads(), d_ff})
          .n_total);
}

absl::StatusOr<v1::ModelShape> ShapeForParams(double n_target,
                                              const v1::ShapeRule& rule,
                                              const v1::ModelSpec& model) {
  if (!std::isfinite(n_target) || n_target <= 0) {
    return InvalidField("n_target", Num(n_target), "must be finite and > 0");
  }
  if (model.vocab_size() == 0 || model.context() == 0) {
    return InvalidField("model",
                        absl::StrCat("{vocab_size: ", model.vocab_size(),
                                     " context: ", model.context(), "}"),
                        "needs vocab_size and context to count parameters");
  }
  RETURN_IF_ERROR(ValidateShapeRule(rule));
  const v1::ShapeRule r = ResolveShapeRule(rule);
  const std::vector<uint32_t> widths = CandidateWidths(r);
  v1::ModelShape best;
  double best_n = 0;
  double best_err = std::numeric_limits<double>::infinity();
  double lo = 0, hi = 0;
  for (uint32_t d : widths) {
    const v1::ModelShape s = ShapeAt(d, r);
    const double n = ShapeParams(s, model);
    if (lo == 0) lo = n;
    hi = n;
    const double err = std::abs(std::log(n / n_target));
    if (err < best_err - 1e-12) {
      best = s;
      best_n = n;
      best_err = err;
    }
  }
  if (best_err > std::log(kMaxTargetRatio)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "N target %g: the nearest shape of the rule (d_model %d, n_layers %d) "
        "has N = %g, more than %gx off; the rule's widths [%d, %d] span N = "
        "[%g, %g] at vocab_size %d and context %d",
        n_target, best.d_model(), best.n_layers(), best_n, kMaxTargetRatio,
        r.min_d_model(), r.max_d_model(), lo, hi, model.vocab_size(),
        model.context()));
  }
  return best;
}

// ------------------------------------------------------------ hyperparameters

namespace {

// Porian et al. 2024 as coded in OLMo-core (config.proto HparamPreset).
constexpr double kPorianRefParams = 108e6;
constexpr double kPorianLr = 0.0047;
constexpr double kPorianBatchTokens = 2048.0 * 160.0;
constexpr double kPorianBigBatch = 524288;  // tokens: beta2 0.95 from here
// DeepSeek LLM 2024, section 3.1.
constexpr double kDeepSeekLrCoef = 0.3118, kDeepSeekLrExp = -0.125;
constexpr double kDeepSeekBatchCoef = 0.2920, kDeepSeekBatchExp = 0.3271;

constexpr uint32_t kMaxBatchSequences = 65536;

const v1::HparamRule& RuleOf(const v1::Training& t, Hparam h) {
  switch (h) {
    case Hparam::kLr:
      return t.lr_rule();
    case Hparam::kBatchTokens:
      return t.batch_tokens_rule();
    case Hparam::kWarmupTokens:
      return t.warmup_tokens_rule();
    case Hparam::kBeta2:
      break;
  }
  return t.beta2_rule();
}

v1::HparamRule* MutableRuleOf(v1::Training& t, Hparam h) {
  switch (h) {
    case Hparam::kLr:
      return t.mutable_lr_rule();
    case Hparam::kBatchTokens:
      return t.mutable_batch_tokens_rule();
    case Hparam::kWarmupTokens:
      return t.mutable_warmup_tokens_rule();
    case Hparam::kBeta2:
      break;
  }
  return t.mutable_beta2_rule();
}

bool FixedIsZero(const v1::Training& t, Hparam h) {
  switch (h) {
    case Hparam::kLr:
      return t.lr() == 0;
    case Hparam::kBatchTokens:
      return t.batch_sequences() == 0;
    case Hparam::kWarmupTokens:
      return t.warmup_fraction() == 0;
    case Hparam::kBeta2:
      break;
  }
  return t.beta2() == 0;
}

bool IsSet(const v1::HparamRule& r) {
  return r.rule_case() != v1::HparamRule::RULE_NOT_SET;
}

// A value of a rule and how it came about ("0.3118*C^-0.125 = 0.00234 at
// C=1e+17").
struct Evaluated {
  double value = 0;
  std::string text;
};

std::string PowerLawText(double coef, const std::string& var, double ref,
                         double exponent) {
  const std::string base =
      ref == 1 ? var : absl::StrFormat("(%s/%g)", var, ref);
  return absl::StrFormat("%g*%s^%g", coef, base, exponent);
}

Evaluated EvalPreset(v1::HparamPreset p, Hparam h, double n, double c,
                     double batch_tokens) {
  const std::string name = PresetName(p);
  if (p == v1::DEEPSEEK2024) {
    const bool lr = h == Hparam::kLr;
    const double coef = lr ? kDeepSeekLrCoef : kDeepSeekBatchCoef;
    const double e = lr ? kDeepSeekLrExp : kDeepSeekBatchExp;
    const double v = coef * std::pow(c, e);
    return {v, absl::StrFormat("%s %s = %g at C=%g", name,
                               PowerLawText(coef, "C", 1, e), v, c)};
  }
  const double x = n / kPorianRefParams;
  switch (h) {
    case Hparam::kLr: {
      const double v = kPorianLr * std::cbrt(1 / x);
      return {v, absl::StrFormat("%s 0.0047*(N/108e6)^(-1/3) = %g at N=%g",
                                 name, v, n)};
    }
    case Hparam::kBatchTokens: {
      const double v = std::round(kPorianBatchTokens * std::cbrt(x * x));
      return {v, absl::StrFormat("%s 2048*160*(N/108e6)^(2/3) = %g at N=%g",
                                 name, v, n)};
    }
    case Hparam::kWarmupTokens:
      return {n, absl::StrFormat("%s N = %g", name, n)};
    case Hparam::kBeta2:
      break;
  }
  const bool big = batch_tokens >= kPorianBigBatch;
  return {big ? 0.95 : 0.99,
          absl::StrFormat("%s %g (batch %g tokens %s 524288)", name,
                          big ? 0.95 : 0.99, batch_tokens, big ? ">=" : "<")};
}

Evaluated Evaluate(const v1::HparamRule& r, Hparam h, double n, double c,
                   double batch_tokens) {
  switch (r.rule_case()) {
    case v1::HparamRule::kConstant:
      return {r.constant(), absl::StrFormat("constant %g", r.constant())};
    case v1::HparamRule::kPreset:
      return EvalPreset(r.preset(), h, n, c, batch_tokens);
    default:
      break;
  }
  const v1::HparamPowerLaw& p = r.power_law();
  const bool of_n = p.of() == v1::HPARAM_OF_N;
  const double x = of_n ? n : c;
  const double ref = p.reference() == 0 ? 1 : p.reference();
  const double raw = p.coefficient() * std::pow(x / ref, p.exponent());
  double v = raw;
  if (p.min() > 0) v = std::max(v, p.min());
  if (p.max() > 0) v = std::min(v, p.max());
  std::string text = absl::StrFormat(
      "%s = %g at %s=%g",
      PowerLawText(p.coefficient(), of_n ? "N" : "C", ref, p.exponent()), raw,
      of_n ? "N" : "C", x);
  if (v != raw) absl::StrAppendFormat(&text, ", clamped to %g", v);
  return {v, text};
}

// The value of `h` for the trial: its rule's, or nullopt-like `fixed`.
absl::StatusOr<Evaluated> ValueOf(const v1::Training& t, Hparam h, double n,
                                  double c, double batch_tokens) {
  const v1::HparamRule& r = RuleOf(t, h);
  Evaluated e = Evaluate(r, h, n, c, batch_tokens);
  const std::string field = absl::StrCat("training.", HparamName(h), "_rule");
  const auto refuse = [&](const std::string& rule) {
    return InvalidField(
        field, e.text,
        absl::StrFormat("for the trial of N = %g at C = %g: %s", n, c, rule));
  };
  if (!std::isfinite(e.value)) return refuse("must give a finite value");
  switch (h) {
    case Hparam::kLr:
    case Hparam::kBeta2:
      if (!(e.value > 0 && e.value < 1)) {
        return refuse(absl::StrCat("must give ", HparamName(h),
                                   " in (0, 1) (a power law can clamp it "
                                   "with min and max)"));
      }
      break;
    case Hparam::kBatchTokens:
    case Hparam::kWarmupTokens:
      if (!(e.value >= 0)) return refuse("must give a value >= 0");
      break;
  }
  return e;
}

}  // namespace

const char* HparamName(Hparam h) {
  switch (h) {
    case Hparam::kLr:
      return "lr";
    case Hparam::kBatchTokens:
      return "batch_tokens";
    case Hparam::kWarmupTokens:
      return "warmup_tokens";
    case Hparam::kBeta2:
      break;
  }
  return "beta2";
}

bool PresetCovers(v1::HparamPreset preset, Hparam h) {
  if (preset == v1::PORIAN2024) return true;
  if (preset == v1::DEEPSEEK2024) {
    return h == Hparam::kLr || h == Hparam::kBatchTokens;
  }
  return false;
}

std::string PresetName(v1::HparamPreset preset) {
  switch (preset) {
    case v1::PORIAN2024:
      return "porian2024";
    case v1::DEEPSEEK2024:
      return "deepseek2024";
    default:
      return absl::StrCat("preset ", static_cast<int>(preset));
  }
}

v1::Training ExpandHparamPreset(const v1::Training& training) {
  v1::Training t = training;
  const v1::HparamPreset p = t.hparam_preset();
  for (Hparam h : {Hparam::kLr, Hparam::kBatchTokens, Hparam::kWarmupTokens,
                   Hparam::kBeta2}) {
    if (PresetCovers(p, h) && FixedIsZero(t, h) && !IsSet(RuleOf(t, h))) {
      MutableRuleOf(t, h)->set_preset(p);
    }
  }
  t.clear_hparam_preset();
  return t;
}

absl::Status ValidateHparamRule(const v1::HparamRule& rule, Hparam h,
                                const std::string& field) {
  switch (rule.rule_case()) {
    case v1::HparamRule::RULE_NOT_SET:
      return InvalidField(field, "{}",
                          "must set one of constant, power_law or preset");
    case v1::HparamRule::kConstant: {
      const double v = rule.constant();
      const std::string f = field + ".constant";
      if (h == Hparam::kLr || h == Hparam::kBeta2) {
        if (!(v > 0 && v < 1))
          return InvalidField(f, Num(v), "must be in (0, 1)");
        return absl::OkStatus();
      }
      if (h == Hparam::kBatchTokens) return CheckRange(f, v, 1, 1e12);
      return CheckRange(f, v, 0, 1e15);
    }
    case v1::HparamRule::kPreset: {
      const v1::HparamPreset p = rule.preset();
      if (!v1::HparamPreset_IsValid(p) || p == v1::HPARAM_PRESET_UNSPECIFIED) {
        return InvalidField(field + ".preset", Num(p),
                            "must be PORIAN2024 (1) or DEEPSEEK2024 (2)");
      }
      if (!PresetCovers(p, h)) {
        return InvalidField(
            field + ".preset", v1::HparamPreset_Name(p),
            absl::StrCat(PresetName(p), " has no ", HparamName(h),
                         " rule (it gives lr and batch_tokens)"));
      }
      return absl::OkStatus();
    }
    case v1::HparamRule::kPowerLaw:
      break;
  }
  const v1::HparamPowerLaw& p = rule.power_law();
  const std::string f = field + ".power_law.";
  if (!(std::isfinite(p.coefficient()) && p.coefficient() > 0)) {
    return InvalidField(f + "coefficient", Num(p.coefficient()),
                        "must be finite and > 0");
  }
  RETURN_IF_ERROR(CheckRange(f + "exponent", p.exponent(), -4, 4));
  if (p.of() != v1::HPARAM_OF_N && p.of() != v1::HPARAM_OF_C) {
    return InvalidField(f + "of", Num(p.of()),
                        "must be HPARAM_OF_N (1) or HPARAM_OF_C (2)");
  }
  RETURN_IF_ERROR(CheckRange(f + "reference", p.reference(), 0, 1e30));
  RETURN_IF_ERROR(CheckRange(f + "min", p.min(), 0, 1e30));
  RETURN_IF_ERROR(CheckRange(f + "max", p.max(), 0, 1e30));
  if (p.min() > 0 && p.max() > 0 && p.min() > p.max()) {
    return InvalidField(f + "min", Num(p.min()),
                        absl::StrCat("must be <= max = ", Num(p.max())));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrialHparams> ResolveTrialHparams(const v1::Training& t,
                                                 uint32_t context,
                                                 double n_params,
                                                 double c_flops) {
  TrialHparams out;
  out.lr = t.lr();
  out.batch_sequences = t.batch_sequences();
  out.beta2 = t.beta2();
  out.warmup_fraction = t.warmup_fraction();
  if (IsSet(t.lr_rule())) {
    ASSIGN_OR_RETURN(Evaluated e,
                     ValueOf(t, Hparam::kLr, n_params, c_flops, 0));
    out.lr = e.value;
    out.reasons.push_back(absl::StrCat("lr: ", e.text));
  }
  if (IsSet(t.batch_tokens_rule())) {
    ASSIGN_OR_RETURN(Evaluated e,
                     ValueOf(t, Hparam::kBatchTokens, n_params, c_flops, 0));
    const double seqs = std::max(1.0, std::round(e.value / context));
    if (seqs > kMaxBatchSequences) {
      return InvalidField(
          "training.batch_tokens_rule", e.text,
          absl::StrFormat("for the trial of N = %g at C = %g: gives %g "
                          "sequences of %d tokens: must be at most %d (a "
                          "power law can clamp it with max)",
                          n_params, c_flops, seqs, context,
                          kMaxBatchSequences));
    }
    out.batch_sequences = static_cast<uint32_t>(seqs);
    out.reasons.push_back(
        absl::StrFormat("batch: %s tokens -> %d sequences of %d", e.text,
                        out.batch_sequences, context));
  }
  if (IsSet(t.beta2_rule())) {
    const double batch_tokens =
        static_cast<double>(out.batch_sequences) * context;
    ASSIGN_OR_RETURN(Evaluated e, ValueOf(t, Hparam::kBeta2, n_params, c_flops,
                                          batch_tokens));
    out.beta2 = e.value;
    out.reasons.push_back(absl::StrCat("beta2: ", e.text));
  }
  return out;
}

absl::Status ResolveTrialWarmup(const v1::Training& t, double n_params,
                                double c_flops, double trial_tokens,
                                TrialHparams& hparams) {
  if (!IsSet(t.warmup_tokens_rule())) return absl::OkStatus();
  ASSIGN_OR_RETURN(Evaluated e,
                   ValueOf(t, Hparam::kWarmupTokens, n_params, c_flops, 0));
  const double fraction =
      trial_tokens > 0 ? std::min(0.5, e.value / trial_tokens) : 0.5;
  hparams.warmup_fraction = fraction;
  hparams.reasons.push_back(absl::StrFormat(
      "warmup: %s tokens -> fraction %g of %g%s", e.text, fraction,
      trial_tokens, fraction == 0.5 ? " (capped at 0.5)" : ""));
  return absl::OkStatus();
}

}  // namespace isoflop::coordinator
