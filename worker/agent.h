// The worker's control loop as a plain object: registers with the
// coordinator, leases trials while it has free slots, runs each through a
// ProcessLauncher, relays metrics in batches, heartbeats its leases, kills
// trials whose lease is revoked and reports every outcome (retrying while the
// coordinator is unreachable). It never sleeps and never reads a clock: the
// caller passes the time to each periodic method (a thread calls Tick in
// production; tests call the methods directly).
#ifndef ISOFLOP_WORKER_AGENT_H_
#define ISOFLOP_WORKER_AGENT_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "worker/coordinator_client.h"
#include "worker/process_launcher.h"
#include "worker/trial_command.h"

namespace isoflop::worker {

// The trainer's stdout+stderr (its log file) is relayed to the coordinator
// (ReportLogs) in chunks of at most kLogChunkBytes, at the metrics' pace; when
// more than kLogTailBytes are waiting (the coordinator was unreachable), only
// the last kLogTailBytes are sent, which is all the coordinator keeps anyway.
// The whole log stays in the worker's --logs-dir.
inline constexpr uint64_t kLogChunkBytes = uint64_t{64} * 1024;
inline constexpr uint64_t kLogTailBytes = 1 << 20;

struct AgentOptions {
  std::string worker_id;  // empty: the coordinator assigns one
  std::string hostname;
  int cpu_slots = 1;  // concurrent CPU trials when gpus == 0
  int gpus = 0;       // > 0: GPU trials, CUDA_VISIBLE_DEVICES set
  // Trials sharing one GPU (plain concurrent processes): small models leave
  // most of an H100 idle between kernel launches. A trial asking for R GPUs
  // gets R distinct ones.
  int trials_per_gpu = 1;
  // Where this worker's rank 0 of a multi-rank trial listens (MASTER_ADDR,
  // MASTER_PORT), reported at registration (docs/architecture.md §2.3).
  // Empty host: the coordinator uses `hostname`; port count 0: its default.
  std::string rendezvous_host;
  uint32_t rendezvous_port_first = 0;
  uint32_t rendezvous_port_count = 0;
  TrainerCommandOptions trainer;
  absl::Duration metrics_flush_interval = absl::Seconds(1);
  int max_batch_points =
      256;  // a batch is sent at once when it reaches this size
  // Points read from a trainer stay here until the coordinator acknowledges
  // them (a transient error keeps them). At this many unacknowledged points
  // the worker stops reading the trainer's metrics pipe, so the trainer
  // blocks on it rather than the worker's memory growing without bound.
  size_t max_pending_points = 100'000;
  absl::Duration kill_grace = absl::Seconds(10);          // SIGTERM -> SIGKILL
  absl::Duration idle_lease_interval = absl::Seconds(1);  // after "no work"
  absl::Duration retry_initial =
      absl::Milliseconds(200);  // backoff of failed calls
  // At most a second between retries: a restarted coordinator hears from
  // its workers within ~1 s (docs/faults.md).
  absl::Duration retry_max = absl::Seconds(1);
  // Report the datasets under trainer.data_root (worker/dataset_scan.h) in
  // RegisterWorker and every Heartbeat, rescanning meta.json files at most
  // once per dataset_rescan_interval. Off: the worker does not report, and
  // the coordinator takes it to hold every dataset.
  bool report_datasets = false;
  absl::Duration dataset_rescan_interval = absl::Seconds(5);
  // Receives one human-readable line per event; must not be null.
  std::function<void(const std::string&)> log;
};

// Not thread-safe: one thread drives an Agent. `launcher` and `coordinator`
// must outlive it.
class Agent {
 public:
  Agent(AgentOptions options, ProcessLauncher* launcher,
        CoordinatorClient* coordinator);

  // All periodic work, in order: register (with backoff), poll children and
  // relay their metrics, heartbeat, report outcomes, lease while slots are
  // free.
  void Tick(absl::Time now);

  // The pieces of Tick, public so tests can drive them one at a time.
  void EnsureRegistered(absl::Time now);
  void PollTrials(absl::Time now);
  // Sends pending metric batches that are due (size or age), and the trainers'
  // new log bytes (by age); all when `force`.
  void FlushMetrics(absl::Time now, bool force);
  void Heartbeat(absl::Time now);
  void ReportOutcomes(absl::Time now);
  void LeaseWhileFree(absl::Time now);

  // Stops leasing and terminates every running trial (SIGTERM, SIGKILL after
  // kill_grace); their outcomes are reported as RETRYABLE. Keep calling Tick
  // until Idle().
  void BeginShutdown(absl::Time now);
  // True when no trial runs and nothing is left to report.
  bool Idle() const { return trials_.empty(); }
  // After BeginShutdown, once Idle(): tells the coordinator this worker is
  // leaving for good (HeartbeatRequest.leaving), which forgets it rather than
  // showing it lost (docs/cluster.md). One try; returns whether it was
  // acknowledged. Does nothing (false) unregistered or while not Idle().
  bool Leave();

  bool registered() const { return !worker_id_.empty(); }
  // The datasets the last scan found (report_datasets).
  const std::vector<v1::WorkerDataset>& datasets() const { return datasets_; }
  const std::string& worker_id() const { return worker_id_; }
  int running_trials() const;
  // CPU slots held by running trials (a multi-rank trial holds one per
  // local rank).
  int running_cpu_units() const;

 private:
  struct Trial {
    v1::LeaseRef lease;
    ProcessId process = 0;  // the first of this worker's ranks (or the only)
    // A multi-rank trial's other local ranks (RankPlacement), until reaped.
    std::vector<ProcessId> other_ranks;
    uint32_t first_rank = 0;  // > 0: a gang peer (no metrics, logs, success)
    int cpu_units = 1;        // CPU slots held (its local ranks)
    // The first process's exit, kept while other ranks are being reaped.
    std::optional<ExitStatus> first_exit;
    std::string rank_failure;    // another local rank ended first, failing
    std::vector<int> gpu_slots;  // see TakeGpuSlots
    std::string log_path;
    uint64_t log_base = 0;  // size of log_path before the launch
    uint64_t log_sent = 0;  // bytes of this attempt's log relayed (or skipped)
    absl::Time last_log_flush;
    std::vector<v1::MetricPoint> pending_points;
    absl::Time last_flush;
    double final_val_loss = std::numeric_limits<double>::quiet_NaN();
    double tokens_per_s = std::numeric_limits<double>::quiet_NaN();
    bool saw_final = false;
    bool revoked = false;  // lease lost: kill, report nothing
    bool stopped_by_worker = false;
    bool running = true;  // false once the process has ended
    std::optional<v1::ReportOutcomeRequest> outcome;  // set when it ended
    absl::Time next_report;
    absl::Duration report_delay;  // backoff of a failed ReportOutcome
    // A branch that is the last to need its trunk's checkpoint
    // (TrialSpec.release_start_checkpoint): deleted once it succeeded.
    std::optional<std::filesystem::path> release_checkpoint;
  };
  struct Backoff {
    absl::Time next = absl::InfinitePast();
    absl::Duration delay;
  };

  void StartTrial(const v1::LeaseTrialResponse& assignment, absl::Time now);
  // Polls the other local ranks, reaping those that ended; one that failed
  // while the first still runs stops the trial (every local rank).
  void PollOtherRanks(Trial& trial);
  // SIGTERM (SIGKILL after kill_grace) to every local rank still running.
  void TerminateRanks(Trial& trial);
  void DrainLines(Trial& trial, absl::Time now);
  void FinishTrial(Trial& trial, const ExitStatus& exit, absl::Time now);
  // Returns false if a transient error left points unsent.
  bool FlushTrial(Trial& trial, absl::Time now, bool force);
  // Relays the log's new bytes when due (or `force`); false if a transient
  // error left bytes unsent.
  bool FlushLogs(Trial& trial, absl::Time now, bool force);
  void Revoke(const v1::LeaseRef& lease);
  // Tells the trial's trainer its lease was renewed by a request sent no
  // earlier than `renewed_at` (its watchdog, trainer/watchdog.h).
  void FeedWatchdog(Trial& trial, absl::Time renewed_at);
  // Terminates every running trial once no heartbeat has been answered for
  // longer than the lease TTL (their leases have expired at the coordinator).
  void AbandonLeasesIfCutOff(absl::Time now);
  void HandleUnknownWorker(const absl::Status& status);
  // Rescans the data directory when due (report_datasets), logging what
  // changed: the datasets found and each directory newly skipped, with why.
  void RescanDatasets(absl::Time now);
  // The trainer's own reason, for an outcome message: the last line of the
  // attempt's log that starts "isoflop-trainer: " (trainer/main.cc prints
  // its error so), else "" .
  std::string TrainerReason(const Trial& trial) const;
  void Fail(Backoff& backoff, absl::Time now);
  // Takes a free slot on each of n distinct GPUs (all or none); returns the
  // slots. GPU of a slot: slot / trials_per_gpu.
  std::vector<int> TakeGpuSlots(int n);
  int FreeGpus() const;  // GPUs with at least one free slot

  AgentOptions options_;
  ProcessLauncher* launcher_;
  CoordinatorClient* coordinator_;
  std::string worker_id_;
  absl::Duration heartbeat_interval_ = absl::Seconds(2);
  absl::Duration lease_ttl_ = absl::Seconds(30);
  absl::Time last_contact_;  // registration or the last answered heartbeat
  Backoff register_backoff_, lease_backoff_;
  absl::Time next_heartbeat_ = absl::InfinitePast();
  std::vector<bool> gpu_slot_busy_;  // gpus * trials_per_gpu slots
  bool stopping_ = false;
  std::map<std::string, Trial> trials_;  // by trial id
  std::vector<v1::WorkerDataset> datasets_;
  std::vector<std::string> skipped_datasets_;  // as last logged
  absl::Time next_dataset_scan_ = absl::InfinitePast();
  bool datasets_scanned_ = false;
};

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_AGENT_H_
