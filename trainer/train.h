// One training run: exactly `steps` optimizer steps of batch_sequences x
// context tokens, AdamW (fused ATen kernel), warm-up + cosine, validation at
// the end (and every eval_every steps). Metrics as JSON lines (see README).
#ifndef ISOFLOP_TRAINER_TRAIN_H_
#define ISOFLOP_TRAINER_TRAIN_H_

#include "absl/status/status.h"
#include "trainer/options.h"

namespace isoflop::trainer {

// Runs the training described by `options` (already validated). Returns
// INVALID_ARGUMENT / NOT_FOUND for bad data or devices (exit code 2),
// INTERNAL when the loss diverges or LibTorch fails. Not thread-safe: sets
// process-wide torch settings (threads, seed).
absl::Status Train(const TrainOptions& options);

// The learning rate at `step` (0-based): linear warm-up over warmup_steps,
// then cosine from lr down to min_lr_fraction * lr at the last step.
double LearningRate(const TrainOptions& options, int64_t step);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_TRAIN_H_
