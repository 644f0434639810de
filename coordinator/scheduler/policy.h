// The scheduling policy: pure, no I/O, no clock. The
// service core (LeaseTrial) builds a ClusterView under its lock, asks
// Schedule, leases the pick and keeps the returned reservation for the next
// call.
//
// The rules (README.md "Scheduling" repeats them for users):
// - Queue order: sweeps by priority (higher first), equal priorities in
//   submit order; within a sweep, its trials in grid order. A sweep that is
//   paused (left out of the view) or has max_concurrent_trials trials leased
//   or running is skipped: its trials neither run nor block others.
// - Gang: a GPU trial needing R GPUs is leased only to a worker that reports
//   R free GPUs, all of them at once; a trial holds nothing while it waits. A
//   CPU trial needs one CPU slot and never competes for GPUs.
// - Backfill without starvation: the head is the first GPU trial in queue
//   order that some live worker is big enough for (gpus >= R). It reserves
//   one such worker: the one with the most free GPUs when the reservation is
//   made (then most GPUs, then smallest id), kept until the head starts or
//   stops being the head, or the worker leaves the view (lost, drained). The
//   reserved worker takes no GPU trial but the head; every other worker
//   takes the first trial in queue order that fits it (backfill).
//   Hence: while a trial stays the head, no GPU trial starts on its reserved
//   worker, so the head starts at the latest when the trials that were
//   running there end (that worker then reports >= R free GPUs and the head
//   is the first GPU trial it may take), even if smaller trials keep
//   arriving; only a trial ahead of it in queue order (a higher priority
//   sweep, a resumed sweep, a retried trial) can take the head from it.
// - Gangs across workers (docs/architecture.md §2.3): a trial's units are its
//   GPUs, or for a CPU trial its CPU ranks (cpu_ranks; 0 counts as 1), one
//   CPU slot each. A trial that some live worker could host alone (gpus or
//   cpu_slots >= units) is only ever leased to one worker, as above. A trial
//   bigger than every live worker that may run it is gang-leased: all or
//   nothing, at the moment the asking worker has at least one free unit of
//   its kind and the asker plus other live workers that may run it have its
//   units free together. The asker takes min(its free units, units) and is
//   rank 0 (the rendezvous host); the rest go to the other workers in
//   BetterToReserve order (most free units, then most units, then smallest
//   id), each taking what it has free until the units are covered. Until
//   then the trial holds nothing.
// - A GPU gang head: a GPU trial bigger than every worker may still be the
//   head when the workers that may run it have >= R GPUs in all. It reserves
//   a set: workers in BetterToReserve order until their GPUs sum to >= R
//   (the previous reservation's set while it is for this trial, its workers
//   are still in the view and still sum to >= R). Every worker of the set
//   takes no GPU trial but the head, so, as for one reserved worker, the head
//   starts at the latest when the GPU trials running on the set end. A gang
//   that is not the head takes no reserved worker. CPU trials, gangs too,
//   reserve nothing (as before: they neither block nor are blocked by GPU
//   work).
// - Datasets: a trial goes only to a worker that holds its dataset with the
//   trial's vocabulary size (MayRun), as the worker reported it; a worker
//   that reported no inventory is taken to hold every dataset. The head is
//   the first GPU trial that some such worker is big enough for, and only
//   such a worker is reserved for it.
// - Trunk and branches (schedule WSD_BRANCHED, docs/architecture.md "Trunks
//   and branches"): a branch is runnable only once its trunk has kept the
//   checkpoint at the branch's start step (the trunk reported the metric
//   point `checkpoint_kept` at that step, or the trunk succeeded: a trunk
//   keeps every save step before it ends). Until then it is skipped like a
//   trial of a paused sweep: it neither runs nor blocks nor becomes the
//   head. While its trunk is pending again (a retryable failure or lease
//   expiry re-queued it) its branches wait; once the trunk has FAILED (out of
//   attempts) or was CANCELLED, its pending branches end the same way
//   (BranchOnTrunkEnd).
#ifndef ISOFLOP_COORDINATOR_SCHEDULER_POLICY_H_
#define ISOFLOP_COORDINATOR_SCHEDULER_POLICY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace isoflop::coordinator {

struct PendingTrial {
  std::string_view trial_id;  // not owned; outlives the Schedule call
  uint32_t gpus = 0;          // 0: a CPU trial, needs one CPU slot
  std::string_view dataset;   // not owned; "": any worker may run it
  uint32_t vocab_size = 0;    // the model's; 0: any vocabulary
  // A branch: its trunk (not owned) and the trunk step it starts from;
  // empty trunk_id: no dependency.
  std::string_view trunk_id;
  uint64_t start_step = 0;
  uint32_t cpu_ranks = 0;  // a CPU trial's ranks; 0 or 1: one process
};

// What a trial needs: its GPUs, else its CPU ranks (at least 1), one CPU slot
// each.
uint32_t Units(const PendingTrial& t);

// What the coordinator knows of one trunk: whether it succeeded and the
// steps of the checkpoints it reported kept (metric `checkpoint_kept`).
struct TrunkProgress {
  bool succeeded = false;
  std::vector<uint64_t> kept_steps;  // any order
};

// The datasets a worker reported: name -> vocabulary size.
using DatasetVocab = std::map<std::string, uint32_t, std::less<>>;

// Whether a worker with these datasets may run `trial`: it holds the trial's
// dataset with the trial's vocabulary size. `datasets` null: the worker did
// not report (every trial); a trial without a dataset: every worker.
bool MayRun(const DatasetVocab* datasets, const PendingTrial& trial);

// One sweep's share of the queue.
struct SweepQueue {
  int32_t priority = 0;                // higher first
  uint32_t max_concurrent_trials = 0;  // 0: unlimited
  uint32_t active_trials = 0;          // leased or running now
  std::vector<PendingTrial> pending;   // in grid (submit) order
};

// A worker that may be given work now: live and not draining.
struct WorkerCapacity {
  std::string_view worker_id;  // not owned
  uint32_t gpus = 0;           // in all
  uint32_t free_gpus = 0;      // not leased
  // As reported; null: not reported (MayRun).
  std::shared_ptr<const DatasetVocab> datasets;
  uint32_t cpu_slots = 0;       // in all (a CPU worker's; 0 on a GPU worker)
  uint32_t free_cpu_slots = 0;  // not leased
};

// The head trial's hold on one worker (see the rules above).
struct Reservation {
  std::string trial_id;
  std::string worker_id;
  // A gang head's other reserved workers (see the rules above); empty for a
  // head that fits worker_id alone.
  std::vector<std::string> gang_worker_ids;
  bool operator==(const Reservation&) const = default;
};

struct ClusterView {
  std::vector<SweepQueue> sweeps;       // submit order; paused sweeps left out
  std::vector<WorkerCapacity> workers;  // including the asking worker
  std::optional<Reservation> reservation;  // the previous Decision's
  // Trunks of the pending branches, by trunk id (not owned). A branch whose
  // trunk is missing here is not runnable.
  std::vector<std::pair<std::string_view, TrunkProgress>> trunks;
};

// True unless `t` is a branch whose trunk (in `trunks`) has neither kept the
// checkpoint at t.start_step nor succeeded.
bool Runnable(
    const PendingTrial& t,
    const std::vector<std::pair<std::string_view, TrunkProgress>>& trunks);

// What happens to a trunk's PENDING branches when the trunk's state changes.
enum class TrunkEnd {
  kRequeued,   // retryable failure or lease expiry, attempts left: PENDING
  kSucceeded,  // every checkpoint kept
  kFailed,     // out of attempts
  kCancelled,
};
enum class BranchFate {
  kWait,    // stay PENDING (runnable when their checkpoint is kept)
  kFail,    // FAILED: "trunk <id> failed: ..." (RetrySweep re-queues both)
  kCancel,  // CANCELLED
};
BranchFate BranchOnTrunkEnd(TrunkEnd end);

// What one worker asks for: its free resources as it counts them.
struct LeaseAsk {
  std::string_view worker_id;
  uint32_t free_gpus = 0;
  uint32_t free_cpu_slots = 0;
  // The asking worker's datasets; null: not reported (MayRun).
  std::shared_ptr<const DatasetVocab> datasets;
};

struct Decision {
  struct Pick {
    size_t sweep = 0;  // index into ClusterView::sweeps
    size_t trial = 0;  // index into that sweep's pending
    bool operator==(const Pick&) const = default;
  };
  std::optional<Pick> pick;  // nullopt: nothing for this worker now
  // To pass as ClusterView::reservation next time; nullopt when there is no
  // head (or it was just picked).
  std::optional<Reservation> reservation;
  // Non-empty when the pick is gang-leased: who runs how many of its ranks,
  // the asking worker first (ranks 0 .. units-1, the rendezvous host), then
  // the others; the units sum to the trial's.
  struct GangShare {
    std::string worker_id;
    uint32_t units = 0;
    bool operator==(const GangShare&) const = default;
  };
  std::vector<GangShare> gang;
};

// The trial to lease to the asking worker, if any, and the reservation to
// keep, by the rules above. Deterministic; never fails.
Decision Schedule(const ClusterView& view, const LeaseAsk& ask);

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SCHEDULER_POLICY_H_
