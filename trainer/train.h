// One training run: exactly `steps` optimizer steps of batch_sequences x
// context tokens (global over ranks and micro-steps), AdamW (fused ATen
// kernel, LR in a device tensor), warm-up + cosine or WSD, validation at the
// end (and every eval_every steps). On CUDA the whole step (forward,
// backward, all-reduce, clipping, optimizer, loss scaling) is captured in one
// CUDA graph after two eager warm-up steps and replayed with no host sync; the
// loss is read from a device buffer every log_every steps.
//
// Metrics: one JSON object per line on --metrics-fd (stdout if -1), flushed
// per line, from rank 0 only: {"step", "train_loss", "lr", "tokens_per_s",
// "skipped_steps"[, "loss_scale"]} every log_every steps, {"step",
// "val_loss"} per validation, and last {"step", "val_loss", "tokens_per_s",
// "final": 1}.
#ifndef ISOFLOP_TRAINER_TRAIN_H_
#define ISOFLOP_TRAINER_TRAIN_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/options.h"

namespace isoflop::trainer {

// Runs the training described by `options` (already validated). Returns
// INVALID_ARGUMENT / NOT_FOUND for bad data or devices (exit code 2),
// DATA_LOSS / FAILED_PRECONDITION for a checkpoint that cannot be resumed,
// CANCELLED after SIGTERM once the checkpoint is written (main re-raises the
// signal), INTERNAL when the loss diverges or LibTorch fails. Not
// thread-safe: sets process-wide torch settings (threads, seed) and, with a
// checkpoint directory, a SIGTERM handler.
absl::Status Train(const TrainOptions& options);

struct BenchResult {
  int64_t n_params = 0, n_non_embedding = 0, n_matmul = 0;
  double flops_per_token = 0;
  double steps_per_s = 0, tokens_per_s = 0, ms_per_step = 0;
  double flops_per_s = 0;  // training FLOPs by the convention of common/flops.h
  double mfu = 0;          // flops_per_s / peak
  double peak_allocated_gib = 0, peak_reserved_gib = 0;  // CUDA only
  double first_step_s = 0;  // process start (or Bench call) -> end of step 1
  bool start_from_shell = false;  // first_step_s measured from --start-time
  std::string attention_backend;  // "cudnn", "flash", ... ("" on CPU)
};

// Trains options.steps timed steps (after `warmup_steps` untimed ones, which
// include the graph capture) on uniformly random token ids in memory;
// options.data_dir and the eval flags are ignored. INVALID_ARGUMENT for a
// bad warm-up, peak or device.
absl::StatusOr<BenchResult> Bench(const TrainOptions& options,
                                  int64_t warmup_steps, double peak_flops);

// Runs `warmup_steps` untimed steps, then records `options.steps` steps with
// the Kineto profiler (CPU + CUDA activities, memory events) and writes a
// Chrome/Perfetto trace to `trace_path`. Returns a table of the top CUDA
// kernels by total time. INVALID_ARGUMENT for a bad device or path.
absl::StatusOr<std::string> Profile(const TrainOptions& options,
                                    int64_t warmup_steps,
                                    const std::string& trace_path);

// The learning rate at `step` (0-based): linear warm-up over warmup_steps,
// then cosine from lr down to min_lr_fraction * lr at the last step, or (wsd)
// constant until the last wsd_decay_fraction of the steps and a (1 - sqrt)
// cool-down to min_lr_fraction * lr at the last step. Multiply by a group's
// lr_scale (µP).
double LearningRate(const TrainOptions& options, int64_t step);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_TRAIN_H_
