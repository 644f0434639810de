#include "coordinator/sweep/expand.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "absl/strings/str_format.h"
#include "common/flops.h"
#include "common/ids.h"
#include "common/status_macros.h"

namespace isoflop::coordinator {
namespace {

absl::Status Invalid(const std::string& field, const std::string& value,
                     const std::string& rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, " = ", value, ": ", rule));
}

std::string Num(double v) { return absl::StrFormat("%g", v); }

absl::Status ValidateShape(const v1::ModelShape& s, int i) {
  const std::string f = absl::StrCat("grid.model_shapes[", i, "].");
  if (s.d_model() < 1 || s.d_model() > 65536)
    return Invalid(f + "d_model", Num(s.d_model()), "must be in [1, 65536]");
  if (s.n_layers() < 1 || s.n_layers() > 1024)
    return Invalid(f + "n_layers", Num(s.n_layers()), "must be in [1, 1024]");
  if (s.n_heads() < 1)
    return Invalid(f + "n_heads", Num(s.n_heads()), "must be >= 1");
  if (s.d_model() % s.n_heads() != 0)
    return Invalid(f + "n_heads", Num(s.n_heads()),
                   absl::StrCat("must divide d_model = ", s.d_model()));
  if (s.d_ff() > 1 << 20)
    return Invalid(f + "d_ff", Num(s.d_ff()), "must be <= 1048576 (0 means 4 * d_model)");
  return absl::OkStatus();
}

absl::Status ValidateTraining(const v1::Training& t) {
  if (t.batch_sequences() < 1 || t.batch_sequences() > 65536)
    return Invalid("training.batch_sequences", Num(t.batch_sequences()), "must be in [1, 65536]");
  if (!(t.lr() > 0 && t.lr() < 1)) return Invalid("training.lr", Num(t.lr()), "must be in (0, 1)");
  if (!(t.warmup_fraction() >= 0 && t.warmup_fraction() <= 0.5))
    return Invalid("training.warmup_fraction", Num(t.warmup_fraction()), "must be in [0, 0.5]");
  if (!(t.min_lr_fraction() >= 0 && t.min_lr_fraction() <= 1))
    return Invalid("training.min_lr_fraction", Num(t.min_lr_fraction()), "must be in [0, 1]");
  if (!(t.weight_decay() >= 0 && t.weight_decay() < 1))
    return Invalid("training.weight_decay", Num(t.weight_decay()), "must be in [0, 1)");
  if (!(t.beta2() >= 0 && t.beta2() < 1))
    return Invalid("training.beta2", Num(t.beta2()), "must be in (0, 1) (0 means 0.95)");
  if (t.eval_batches() > 10000)
    return Invalid("training.eval_batches", Num(t.eval_batches()), "must be <= 10000");
  return absl::OkStatus();
}

int64_t StepsFor(double budget, double flops_per_token, int64_t tokens_per_step) {
  return static_cast<int64_t>(std::floor(budget / flops_per_token / tokens_per_step));
}

}  // namespace

absl::Status ValidateSweepConfig(const v1::SweepConfig& c) {
  if (c.name().empty() || c.name().size() > 128)
    return Invalid("name", absl::StrCat("\"", c.name(), "\""), "must be 1 to 128 characters");
  if (c.model().vocab_size() < 2 || c.model().vocab_size() > 65536)
    return Invalid("model.vocab_size", Num(c.model().vocab_size()), "must be in [2, 65536]");
  if (c.model().context() < 1 || c.model().context() > 65536)
    return Invalid("model.context", Num(c.model().context()), "must be in [1, 65536]");
  if (c.grid().flops_budgets_size() == 0)
    return Invalid("grid.flops_budgets", "[]", "must list at least one budget");
  if (c.grid().model_shapes_size() == 0)
    return Invalid("grid.model_shapes", "[]", "must list at least one shape");
  for (int i = 0; i < c.grid().flops_budgets_size(); ++i) {
    const double b = c.grid().flops_budgets(i);
    if (!std::isfinite(b) || b <= 0)
      return Invalid(absl::StrCat("grid.flops_budgets[", i, "]"), Num(b), "must be > 0");
  }
  for (int i = 0; i < c.grid().model_shapes_size(); ++i) {
    RETURN_IF_ERROR(ValidateShape(c.grid().model_shapes(i), i));
  }
  RETURN_IF_ERROR(ValidateTraining(c.training()));
  if (c.data().dataset().empty())
    return Invalid("data.dataset", "\"\"", "must name a dataset prepared with `isoflop data prepare`");
  if (c.data().dataset().find('/') != std::string::npos || c.data().dataset()[0] == '.')
    return Invalid("data.dataset", c.data().dataset(), "must be a plain name (no '/', no leading '.')");
  if (c.resources().gpus_per_trial() > 64)
    return Invalid("resources.gpus_per_trial", Num(c.resources().gpus_per_trial()), "must be <= 64");
  if (c.resources().max_attempts() > 100)
    return Invalid("resources.max_attempts", Num(c.resources().max_attempts()), "must be <= 100");
  if (c.resources().threads_per_trial() > 256)
    return Invalid("resources.threads_per_trial", Num(c.resources().threads_per_trial()), "must be <= 256");
  if (c.training().precision() == v1::BF16 && c.resources().gpus_per_trial() == 0)
    return Invalid("training.precision", "BF16", "needs resources.gpus_per_trial >= 1");
  return absl::OkStatus();
}

absl::StatusOr<ExpandedSweep> ExpandSweep(const v1::SweepConfig& config) {
  RETURN_IF_ERROR(ValidateSweepConfig(config));
  ExpandedSweep out;
  v1::SweepConfig& r = out.resolved;
  r = config;
  if (r.model().family() == v1::MODEL_FAMILY_UNSPECIFIED) r.mutable_model()->set_family(v1::GPT_RMSNORM);
  for (v1::ModelShape& s : *r.mutable_grid()->mutable_model_shapes()) {
    if (s.d_ff() == 0) s.set_d_ff(4 * s.d_model());
  }
  v1::Training& t = *r.mutable_training();
  if (t.schedule() == v1::LR_SCHEDULE_UNSPECIFIED) t.set_schedule(v1::COSINE);
  if (t.eval_batches() == 0) t.set_eval_batches(8);
  if (t.beta2() == 0) t.set_beta2(0.95);
  if (t.precision() == v1::PRECISION_UNSPECIFIED)
    t.set_precision(r.resources().gpus_per_trial() > 0 ? v1::BF16 : v1::FP32);
  v1::Resources& res = *r.mutable_resources();
  if (res.max_attempts() == 0) res.set_max_attempts(3);
  if (res.threads_per_trial() == 0) res.set_threads_per_trial(1);

  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  r.SerializeToCodedStream(&coded);
  coded.Trim();
  out.sweep_id = MakeId("sw", bytes);

  const int64_t tokens_per_step = int64_t{t.batch_sequences()} * r.model().context();
  for (int bi = 0; bi < r.grid().flops_budgets_size(); ++bi) {
    const double budget = r.grid().flops_budgets(bi);
    for (int si = 0; si < r.grid().model_shapes_size(); ++si) {
      const v1::ModelShape& s = r.grid().model_shapes(si);
      const ModelDims dims{r.model().vocab_size(), r.model().context(), s.d_model(),
                           s.n_layers(),           s.n_heads(),         s.d_ff()};
      const ParamCounts counts = CountParams(dims);
      const int64_t steps = StepsFor(budget, counts.flops_per_token, tokens_per_step);
      if (steps < 1) {
        return Invalid(absl::StrCat("grid.flops_budgets[", bi, "]"), Num(budget),
                       absl::StrFormat("too small for one optimizer step of "
                                       "grid.model_shapes[%d] (d_model %d, n_layers %d): "
                                       "needs >= %g FLOPs (%g FLOPs/token x %d tokens/step)",
                                       si, s.d_model(), s.n_layers(),
                                       counts.flops_per_token * tokens_per_step,
                                       counts.flops_per_token, tokens_per_step));
      }
      v1::TrialSpec spec;
      spec.set_sweep_id(out.sweep_id);
      spec.set_trial_id(MakeId("tr", absl::StrCat(out.sweep_id, "/", bi, "/", si)));
      *spec.mutable_model() = r.model();
      *spec.mutable_shape() = s;
      *spec.mutable_training() = t;
      spec.set_dataset(r.data().dataset());
      spec.set_flops_budget(budget);
      spec.set_steps(steps);
      spec.set_tokens(steps * tokens_per_step);
      spec.set_gpus(res.gpus_per_trial());
      spec.set_threads(res.threads_per_trial());
      spec.set_n_total(counts.n_total);
      spec.set_n_non_embedding(counts.n_non_embedding);
      spec.set_n_matmul(counts.n_matmul);
      spec.set_flops_per_token(counts.flops_per_token);
      out.trials.push_back(std::move(spec));
    }
  }
  return out;
}

}  // namespace isoflop::coordinator
