#include "trainer/options.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/token_file.h"

namespace isoflop::trainer {
namespace {

absl::Status AtLeast(const char* flag, int64_t v, int64_t min) {
  if (v >= min) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " = ", v, ": must be >= ", min));
}

}  // namespace

absl::StatusOr<LegacyPaths> ParseLegacy(const std::string& list) {
  LegacyPaths l;
  for (absl::string_view what : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    bool* flag = what == "qkv"         ? &l.qkv
                 : what == "loss"      ? &l.loss
                 : what == "norm"      ? &l.norm
                 : what == "gelu"      ? &l.gelu
                 : what == "embedding" ? &l.embedding
                 : what == "adamw"     ? &l.adamw
                                       : nullptr;
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--legacy = ", list, ": unknown entry \"", what,
                       "\" (must be a comma-separated list of qkv, loss, "
                       "norm, gelu, embedding, adamw)"));
    }
    *flag = true;
  }
  return l;
}

absl::Status Validate(const TrainOptions& o) {
  if (o.data_dir.empty())
    return absl::InvalidArgumentError("--data-dir: required");
  // A trial's values have no default (trainer/options.h).
  for (auto [flag, unset] :
       {std::pair{"--lr", std::isnan(o.lr)},
        {"--schedule", o.schedule.empty()},
        {"--warmup-steps", o.warmup_steps == -1},
        {"--min-lr-fraction", std::isnan(o.min_lr_fraction)},
        {"--weight-decay", std::isnan(o.weight_decay)},
        {"--beta2", std::isnan(o.beta2)},
        {"--eval-every", o.eval_every == -1},
        {"--eval-batches", o.eval_batches == -1},
        {"--precision", o.precision.empty()},
        {"--threads", o.threads == -1}}) {
    if (unset) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": required (the trainer applies no default)"));
    }
  }
  for (auto [flag, v, min] :
       {std::tuple{"--vocab-size", o.vocab_size, int64_t{2}},
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
        {"--log-every", o.log_every, 1},
        {"--grad-accum", o.grad_accum, 1}}) {
    if (absl::Status s = AtLeast(flag, v, min); !s.ok()) return s;
  }
  if (static_cast<uint64_t>(o.vocab_size) > kMaxTokenFileVocab) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--vocab-size = ", o.vocab_size, ": must be <= ", kMaxTokenFileVocab,
        " (token files state it as uint32; docs/data-format.md)"));
  }
  if (o.d_model % o.n_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--n-heads = ", o.n_heads, ": must divide --d-model = ", o.d_model));
  }
  if (!(o.lr > 0 && o.lr < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lr = ", o.lr, ": must be in (0, 1)"));
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
    return absl::InvalidArgumentError(
        absl::StrCat("--beta2 = ", o.beta2, ": must be in (0, 1)"));
  }
  if (o.device != "cpu" && o.device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("--device = ", o.device, ": must be cpu or cuda"));
  }
  if (o.precision != "fp32" && o.precision != "bf16" &&
      o.precision != "bf16-autocast" && o.precision != "fp16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--precision = ", o.precision,
                     ": must be auto, fp32, bf16, bf16-autocast or fp16"));
  }
  if (o.attention != "auto" && o.attention != "cudnn" &&
      o.attention != "flash" && o.attention != "efficient" &&
      o.attention != "math") {
    return absl::InvalidArgumentError(
        absl::StrCat("--attention = ", o.attention,
                     ": must be auto, cudnn, flash, efficient or math"));
  }
  if (o.model_dtype != "bf16" && o.model_dtype != "fp32") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model-dtype = ", o.model_dtype, ": must be bf16 or fp32"));
  }
  if (o.precision != "fp32" && o.precision != "bf16" && o.device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("--precision = ", o.precision, ": needs --device cuda"));
  }
  if (o.schedule != "cosine" && o.schedule != "wsd" &&
      o.schedule != "constant") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--schedule = ", o.schedule, ": must be cosine, wsd or constant"));
  }
  for (size_t i = 0; i < o.save_at_steps.size(); ++i) {
    const int64_t s = o.save_at_steps[i];
    if (s < 1 || s > o.steps || (i > 0 && s <= o.save_at_steps[i - 1])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--save-at-steps = ", absl::StrJoin(o.save_at_steps, ","),
          ": must be ascending, distinct steps in [1, --steps = ", o.steps,
          "]"));
    }
  }
  if (!o.save_at_steps.empty() && o.checkpoint_dir.empty()) {
    return absl::InvalidArgumentError(
        "--save-at-steps: needs --checkpoint-dir");
  }
  if (o.init_from.empty() != (o.init_step < 0)) {
    return absl::InvalidArgumentError(
        "--init-from and --init-step: give both or neither");
  }
  if (!o.init_from.empty() && !(o.init_step >= 1 && o.init_step < o.steps)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--init-step = ", o.init_step,
                     ": must be in [1, --steps = ", o.steps, ")"));
  }
  if (!(o.wsd_decay_fraction > 0 && o.wsd_decay_fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--wsd-decay-fraction = ", o.wsd_decay_fraction,
                     ": must be in (0, 1]"));
  }
  if (o.mup_base_width < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--mup-base-width = ", o.mup_base_width, ": must be >= 0"));
  }
  if (!(o.checkpoint_every_min >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--checkpoint-every-min = ", o.checkpoint_every_min, ": must be >= 0"));
  }
  if (o.replay_metrics_from < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--replay-metrics-from = ", o.replay_metrics_from,
                     ": must be >= 0 (or -1: no replay)"));
  }
  if (o.watchdog_fd >= 0 && !(o.watchdog_timeout_s > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--watchdog-timeout-s = ", o.watchdog_timeout_s,
                     ": must be > 0 with --watchdog-fd"));
  }
  if (o.resume && o.checkpoint_dir.empty()) {
    return absl::InvalidArgumentError("--resume: needs --checkpoint-dir");
  }
  const int64_t world = std::max(o.dist.world_size, 1);
  if (o.dist.world_size < 0 || o.dist.rank < 0 || o.dist.rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RANK = ", o.dist.rank, ", WORLD_SIZE = ", o.dist.world_size,
        ": must satisfy 0 <= RANK < WORLD_SIZE"));
  }
  if (o.zero_stage != 0 && o.zero_stage != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--zero-stage = ", o.zero_stage, ": must be 0 (off) or 1"));
  }
  if (o.zero_stage == 1 && o.precision == "fp16") {
    return absl::InvalidArgumentError(
        "--zero-stage = 1: not with --precision fp16 (the loss scaler's "
        "inf/NaN check is not sharded); use bf16 or fp32");
  }
  if (o.batch_sequences % (world * o.grad_accum) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch-sequences = ", o.batch_sequences,
                     ": must be a multiple of WORLD_SIZE * "
                     "--grad-accum = ",
                     world * o.grad_accum));
  }
  return absl::OkStatus();
}

int64_t MicroBatch(const TrainOptions& o) {
  return o.batch_sequences / (std::max(o.dist.world_size, 1) * o.grad_accum);
}

namespace {

uint64_t SplitMix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

int64_t WindowOffset(uint64_t seed, int64_t step, int64_t batch, int64_t i,
                     int64_t n_tokens, int64_t context) {
  const uint64_t key =
      SplitMix64(seed) +
      static_cast<uint64_t>(step) * static_cast<uint64_t>(batch) +
      static_cast<uint64_t>(i);
  return static_cast<int64_t>(SplitMix64(key) %
                              static_cast<uint64_t>(n_tokens - context));
}

}  // namespace isoflop::trainer
