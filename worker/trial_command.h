// Pure functions from a leased trial to the trainer's command line, and from
// the trainer's exit to the outcome reported to the coordinator
// (exit-code contract: common/exit_codes.h, docs/architecture.md §5.2).
#ifndef ISOFLOP_WORKER_TRIAL_COMMAND_H_
#define ISOFLOP_WORKER_TRIAL_COMMAND_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "isoflop/v1/service.pb.h"
#include "worker/process_launcher.h"

namespace isoflop::worker {

struct TrainerCommandOptions {
  std::filesystem::path trainer_path;  // the isoflop-trainer binary
  std::filesystem::path data_root;     // datasets are ROOT/<spec.dataset>/
  std::filesystem::path logs_dir;      // logs are LOGS/<trial>-<attempt>.log
  // Non-empty: the trainer checkpoints to CKPT/<trial>/ (on a timer and on
  // SIGTERM) and every attempt resumes from there, so a trial re-run on a
  // worker that shares this directory continues where the last one stopped.
  std::filesystem::path checkpoint_root;
  // The devices the worker itself was given, as its CUDA_VISIBLE_DEVICES
  // listed them (a Slurm step's "2,3", docs/cluster.md): the worker's GPU i
  // is visible_devices[i]. Empty: GPU i is CUDA device i.
  std::vector<std::string> visible_devices;
};

// The worker's own CUDA_VISIBLE_DEVICES (`env`, may be null or empty) as the
// devices of its `gpus` GPUs: empty when unset; the first `gpus` entries;
// refused, naming the variable and the count, when it lists fewer.
absl::StatusOr<std::vector<std::string>> VisibleDevices(const char* env,
                                                        int gpus);

// Where BuildTrainerLaunch puts the trial's checkpoint ("" without a root).
std::filesystem::path CheckpointDir(const v1::TrialSpec& spec,
                                    const TrainerCommandOptions& options);

// A branch's trunk checkpoint: CKPT/<trunk>/kept.<start_step>.bin (trainer/
// checkpoint.h); "" for another role or without a root.
std::filesystem::path TrunkCheckpointPath(const v1::TrialSpec& spec,
                                          const TrainerCommandOptions& options);

// How an attempt is fenced (docs/faults.md "Split brain"): its lease epoch
// (--lease-epoch: names its checkpoint and claims the checkpoint directory)
// and the timeout of its lease watchdog (--watchdog-fd kChildWatchdogFd
// --watchdog-timeout-s, fed by the worker per renewal). Epoch 0: no flags.
struct AttemptFence {
  uint64_t lease_epoch = 0;
  absl::Duration watchdog_timeout = absl::ZeroDuration();
};

// The trainer's watchdog timeout W for a lease of `lease_ttl` renewed every
// `heartbeat`: three quarters of the way from the heartbeat to the TTL.
//
// Why a trainer whose worker stops renewing is gone before the coordinator
// can re-queue its trial: the worker feeds the watchdog the time t_s of a
// tick before it sent the request whose answer renewed the lease; the
// coordinator renewed it later, at t_r >= t_s, to expire at t_r + TTL, and
// re-queues the trial only once a lease has expired (Core::
// ReapExpiredLeases). The trainer exits at t_s + W (+ the ~1 ms its thread
// takes to wake), so it has stopped (TTL - W) = (TTL - heartbeat) / 4 before
// the earliest re-queue: 7 s with the defaults (30 s TTL, 2 s heartbeats).
// W > heartbeat leaves a healthy worker (TTL - heartbeat) * 3/4 of slack to
// renew: a missed heartbeat or two cost nothing.
absl::Duration WatchdogTimeout(absl::Duration lease_ttl,
                               absl::Duration heartbeat);

// OK when `spec` carries every value the trainer needs (TrialSpec in
// proto/isoflop/v1/service.proto is fully resolved by the coordinator's sweep
// expansion, coordinator/sweep/expand.h), else INVALID_ARGUMENT naming the
// first missing field: a zero size, d_ff, eval_batches, steps, threads, lr or
// beta2, an unspecified family, schedule or precision, a WSD schedule
// without a cooldown_fraction in (0, 1], an empty trial id or dataset. Zero
// is a value for warmup_fraction, min_lr_fraction, weight_decay,
// eval_every_steps, seed, mup_base_width (standard parametrisation) and
// gpus.
absl::Status CheckResolved(const v1::TrialSpec& spec);

// The launch of `isoflop-trainer train` for one attempt of `spec`, every
// flag the trainer requires given from the spec as is: steps = spec.steps,
// warm-up steps = round(warmup_fraction * steps), --schedule cosine|wsd
// (wsd with --wsd-decay-fraction cooldown_fraction), --mup-base-width
// mup_base_width, --zero-stage zero_stage when it is not 0, device cuda
// when `gpu_ids`
// is non-empty (CUDA_VISIBLE_DEVICES set to them) else cpu, metrics on
// kChildMetricsFd. No defaults are applied here: a spec CheckResolved refuses
// is INVALID_ARGUMENT naming the field. With fence.lease_epoch > 0:
// --lease-epoch, and with a watchdog timeout the watchdog flags and
// LaunchSpec::watchdog. Trunk and branch (docs/architecture.md "Trunks and
// branches"): --warmup-steps is spec.warmup_steps; a trunk trains
// --schedule constant with --save-at-steps, a branch --schedule wsd
// --wsd-decay-fraction --init-from CKPT/<trunk> --init-step; both need a
// checkpoint root (else FAILED_PRECONDITION), and a branch whose trunk
// checkpoint (TrunkCheckpointPath) is not visible is UNAVAILABLE naming the
// path (the worker reports it RETRYABLE).
absl::StatusOr<LaunchSpec> BuildTrainerLaunch(
    const v1::TrialSpec& spec, uint32_t attempt,
    const std::vector<int>& gpu_ids, const TrainerCommandOptions& options,
    const AttemptFence& fence = {});

// What the worker knows about an attempt when its trainer has ended.
struct AttemptEnd {
  ExitStatus exit;
  bool saw_final = false;          // a metrics line with "final" arrived
  bool stopped_by_worker = false;  // the worker is shutting down and killed it
};

struct OutcomeDecision {
  v1::Outcome outcome = v1::OUTCOME_UNSPECIFIED;
  std::string message;  // one line, for the trial's `error` field
};

// 0 with a final line -> SUCCEEDED (without one -> FAILED); 2 -> FAILED;
// 75 -> RETRYABLE; 76 (fenced) -> RETRYABLE; killed by
// SIGTERM/SIGKILL/SIGINT/SIGHUP (or exit 128+n for those) -> RETRYABLE
// (preemption, out-of-memory killer); killed by the worker itself -> RETRYABLE;
// any other signal or code -> FAILED.
OutcomeDecision DecideOutcome(const AttemptEnd& end);

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_TRIAL_COMMAND_H_
