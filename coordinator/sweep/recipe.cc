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

}  // namespace isoflop::coordinator
