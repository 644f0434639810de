// One training run: exactly `steps` optimizer steps of batch_sequences x
// context tokens, AdamW (fused ATen kernel), warm-up + cosine, validation at
// the end (and every eval_every steps). Metrics: one JSON object per line on
// --metrics-fd (stdout if -1), flushed per line: {"step", "train_loss", "lr",
// "tokens_per_s"} every log_every steps, {"step", "val_loss"} per validation,
// and last {"step", "val_loss", "tokens_per_s", "final": 1}.
#ifndef ISOFLOP_TRAINER_TRAIN_H_
#define ISOFLOP_TRAINER_TRAIN_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/options.h"

namespace isoflop::trainer {

// Runs the training described by `options` (already validated). Returns
// INVALID_ARGUMENT / NOT_FOUND for bad data or devices (exit code 2),
// INTERNAL when the loss diverges or LibTorch fails. Not thread-safe: sets
// process-wide torch settings (threads, seed).
absl::Status Train(const TrainOptions& options);

struct BenchResult {
  int64_t n_params = 0;
  double steps_per_s = 0, tokens_per_s = 0;
  double flops_per_s = 0;  // training FLOPs by the convention of common/flops.h
  double mfu = 0;          // flops_per_s / peak
};

// Trains options.steps timed steps (after `warmup_steps` untimed ones) on
// uniformly random token ids in memory; options.data_dir and the eval flags
// are ignored. INVALID_ARGUMENT for a bad warm-up, peak or device.
absl::StatusOr<BenchResult> Bench(const TrainOptions& options, int64_t warmup_steps,
                                  double peak_flops);

// The learning rate at `step` (0-based): linear warm-up over warmup_steps,
// then cosine from lr down to min_lr_fraction * lr at the last step.
double LearningRate(const TrainOptions& options, int64_t step);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_TRAIN_H_
