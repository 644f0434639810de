#include "trainer/options.h"

#include "absl/strings/str_cat.h"

namespace isoflop::trainer {
namespace {

absl::Status AtLeast(const char* flag, int64_t v, int64_t min) {
  if (v >= min) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " = ", v, ": must be >= ", min));
}

}  // namespace

absl::Status Validate(const TrainOptions& o) {
  if (o.data_dir.empty()) return absl::InvalidArgumentError("--data-dir: required");
  for (auto [flag, v, min] : {std::tuple{"--vocab-size", o.vocab_size, int64_t{2}},
                              {"--context", o.context, 1},
                              {"--d-model", o.d_model, 1},
                              {"--n-layers", o.n_layers, 1},
                              {"--n-heads", o.n_heads, 1},
                              {"--d-ff", o.d_ff, 1},
                              {"--batch-sequences", o.batch_sequences, 1},
                              {"--steps", o.steps, 1},
                              {"--warmup-steps", o.warmup_steps, 0},
                              {"--eval-every", o.eval_every, 0},
                              {"--eval-batches", o.eval_batches, 1},
                              {"--threads", int64_t{o.threads}, 1},
                              {"--log-every", o.log_every, 1}}) {
    if (absl::Status s = AtLeast(flag, v, min); !s.ok()) return s;
  }
  if (o.vocab_size > 65536) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--vocab-size = ", o.vocab_size, ": must be <= 65536 (uint16 token files)"));
  }
  if (o.d_model % o.n_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--n-heads = ", o.n_heads, ": must divide --d-model = ", o.d_model));
  }
  if (!(o.lr > 0 && o.lr < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("--lr = ", o.lr, ": must be in (0, 1)"));
  }
  if (!(o.min_lr_fraction >= 0 && o.min_lr_fraction <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--min-lr-fraction = ", o.min_lr_fraction, ": must be in [0, 1]"));
  }
  if (!(o.weight_decay >= 0 && o.weight_decay < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--weight-decay = ", o.weight_decay, ": must be in [0, 1)"));
  }
  if (!(o.beta2 > 0 && o.beta2 < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("--beta2 = ", o.beta2, ": must be in (0, 1)"));
  }
  if (o.device != "cpu" && o.device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("--device = ", o.device, ": must be cpu or cuda"));
  }
  if (o.precision != "fp32" && o.precision != "bf16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--precision = ", o.precision, ": must be fp32 or bf16"));
  }
  if (o.precision == "bf16" && o.device != "cuda") {
    return absl::InvalidArgumentError("--precision = bf16: needs --device cuda");
  }
  return absl::OkStatus();
}

}  // namespace isoflop::trainer
