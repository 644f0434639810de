// Flags of `isoflop-trainer train`, validated before any tensor exists.
#ifndef ISOFLOP_TRAINER_OPTIONS_H_
#define ISOFLOP_TRAINER_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace isoflop::trainer {

struct TrainOptions {
  std::string data_dir;  // dataset directory with train.bin and val.bin
  int64_t vocab_size = 0, context = 0, d_model = 0, n_layers = 0, n_heads = 0,
          d_ff = 0;
  int64_t batch_sequences = 0, steps = 0;
  double lr = 1e-3, min_lr_fraction = 0.1, weight_decay = 0.1, beta2 = 0.95;
  int64_t warmup_steps = 0;
  uint64_t seed = 0;
  int64_t eval_every = 0;  // 0: validate only at the end
  int64_t eval_batches = 8;
  std::string device = "cpu";      // cpu | cuda
  std::string precision = "fp32";  // fp32 | bf16 (cuda only)
  int threads = 1;
  int64_t log_every = 10;
  int metrics_fd = -1;  // -1: stdout
};

// INVALID_ARGUMENT naming the flag, its value and the rule.
absl::Status Validate(const TrainOptions& o);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_OPTIONS_H_
