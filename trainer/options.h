// Flags of `isoflop-trainer train|bench|profile`, validated before any tensor
// exists. Plain data: main fills it from flags and the environment; nothing
// below main reads either.
#ifndef ISOFLOP_TRAINER_OPTIONS_H_
#define ISOFLOP_TRAINER_OPTIONS_H_

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace isoflop::trainer {

// A required floating-point flag not given.
inline constexpr double kUnset = std::numeric_limits<double>::quiet_NaN();

// ISOFLOP's fused pieces of the CUDA step, each switched back to its ATen
// reference by `--legacy qkv,loss,norm,gelu,embedding,adamw` for A/B
// measurement (bench/gpu/trainer_vs_pytorch.sh); all false: every
// optimisation on.
struct LegacyPaths {
  bool qkv = false, loss = false, norm = false, gelu = false, embedding = false,
       adamw = false;
};

// Parses the comma-separated list of --legacy ("" : none);
// INVALID_ARGUMENT naming an unknown entry.
absl::StatusOr<LegacyPaths> ParseLegacy(const std::string& list);

// Data-parallel rendezvous, read by main from the worker's environment
// (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). world_size 0: no
// process group.
struct DistOptions {
  int rank = 0;
  int local_rank = 0;  // LOCAL_RANK: the CUDA device of this rank
  int world_size = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

struct TrainOptions {
  std::string data_dir;  // dataset directory with train.bin and val.bin
  int64_t vocab_size = 0, context = 0, d_model = 0, n_layers = 0, n_heads = 0,
          d_ff = 0;
  // Global batch per optimizer step, split over ranks and micro-steps:
  // each rank runs grad_accum micro-batches of B / (world * grad_accum).
  int64_t batch_sequences = 0, steps = 0;
  int64_t grad_accum = 1;
  // The values of a trial, which its spec carries resolved (the coordinator's
  // sweep expansion is the one place defaults are applied,
  // coordinator/sweep/expand.h): no defaults here. Each is a required flag;
  // Validate names the first one left unset (NaN, -1, "").
  double lr = kUnset, min_lr_fraction = kUnset, weight_decay = kUnset,
         beta2 = kUnset;
  int64_t warmup_steps = -1;
  std::string schedule;       // cosine | wsd | constant (warm-up, then lr)
  uint64_t seed = 0;          // any value is a seed: only the flag is required
  int64_t eval_every = -1;    // 0: validate only at the end (train only)
  int64_t eval_batches = -1;  // train only
  // fp32 | bf16 | bf16-autocast | fp16 (main resolves auto by --device)
  std::string precision;
  int threads = -1;
  double wsd_decay_fraction = 0.2;  // wsd: last fraction of steps cools down
  // µP (trainer/README.md): width multiplier m = d_model / base; 0: off.
  int64_t mup_base_width = 0;
  std::string device = "cpu";  // cpu | cuda
  bool cuda_graphs = true;     // capture the whole step (cuda only)
  // The fused attention kernel (cuda): auto (ATen's choice) | cudnn | flash |
  // efficient | math.
  std::string attention = "auto";
  // Optimisations of the fused CUDA step switched off for A/B runs
  // (--legacy; trainer/model.h).
  LegacyPaths legacy;
  int64_t log_every = 10;
  int metrics_fd = -1;  // -1: stdout
  // Checkpoints: DIR/checkpoint.bin, every checkpoint_every_min minutes (0:
  // never on a timer) and on SIGTERM. resume: continue from it if present.
  std::string checkpoint_dir;
  double checkpoint_every_min = 10;
  bool resume = false;
  // With resume: first re-emit the checkpoint's metrics lines (every line
  // written before it, kept in it) whose step is >= this; -1: none. A worker
  // killed before relaying them would lose them otherwise (docs/faults.md).
  int64_t replay_metrics_from = -1;
  // Fencing (docs/faults.md "Split brain"): the lease epoch of this attempt
  // names its checkpoint (DIR/checkpoint.<epoch>.bin; 0: DIR/checkpoint.bin)
  // and claims DIR against older attempts. watchdog_fd >= 0: the worker
  // feeds the lease watchdog there (trainer/watchdog.h); unfed for
  // watchdog_timeout_s, the trainer exits kExitFenced (common/exit_codes.h).
  uint64_t lease_epoch = 0;
  int watchdog_fd = -1;
  double watchdog_timeout_s = 0;
  // Trunk (docs/architecture.md "Trunks and branches"): after each of these
  // steps write DIR/kept.<step>.bin (KeptCheckpointFileName), never
  // superseded, then the metrics line {"step": s, "checkpoint_kept": s,
  // "state_hash": H}. Ascending, distinct, in [1, steps]; needs
  // checkpoint_dir.
  std::vector<int64_t> save_at_steps;
  // Branch: without a checkpoint of its own to resume from, start from
  // INIT_FROM/kept.<init_step>.bin (weights, AdamW state, step; the data
  // position is the step) and emit {"step": s, "init_state_hash": H} (equal
  // to the trunk's state_hash). init_step in [1, steps); both or neither.
  std::string init_from;
  int64_t init_step = -1;
  // Dtype of DIR/model.bin, the final weights written after the last step.
  std::string model_dtype = "bf16";  // bf16 | fp32
  // Seconds since the Unix epoch at which the launching shell started the
  // process (date +%s.%N); 0: unknown. Only for time-to-first-step.
  double start_time_unix_s = 0;
  // ZeRO stage (trainer/zero.h): 0 replicates the AdamW state on every rank
  // (DDP); 1 shards the AdamW moments over the ranks: gradients are
  // reduce-scattered, each rank steps its shard, the weights are
  // all-gathered. Not with fp16 (its loss scaler's inf check is not
  // sharded); with one process it changes nothing.
  int zero_stage = 0;
  DistOptions dist;
};

// INVALID_ARGUMENT naming the flag, its value and the rule.
absl::Status Validate(const TrainOptions& o);

// Micro-batch sequences per rank per micro-step.
int64_t MicroBatch(const TrainOptions& o);

// The start offset of sequence `i` (0 <= i < batch) of optimizer step `step`
// in a split of `n_tokens` tokens: a stateless hash (SplitMix64), so the data
// position is the step number alone and bench/gpu/torch_reference.py reproduces
// it. Returns a value in [0, n_tokens - context - 1].
int64_t WindowOffset(uint64_t seed, int64_t step, int64_t batch, int64_t i,
                     int64_t n_tokens, int64_t context);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_OPTIONS_H_
