// LeaseTable: the workers the coordinator knows and the leases they hold
// (docs/architecture.md §1.1). Its own lock, held only for memory: a heartbeat
// takes this lock alone, never the sweep book's, and no store commit happens
// under it (the caller commits first, then applies). Thread-safe.
#ifndef ISOFLOP_COORDINATOR_SERVICE_LEASE_TABLE_H_
#define ISOFLOP_COORDINATOR_SERVICE_LEASE_TABLE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/scheduler/policy.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

// INVALID_ARGUMENT unless 1 to 128 characters.
absl::Status RequireWorkerId(const std::string& worker_id);

class LeaseTable {
 public:
  // A gang's other worker (docs/architecture.md §2.3): it holds the same
  // attempt and epoch, renews its own expiry and runs some of the ranks.
  struct Peer {
    std::string worker_id;
    absl::Time expires;
    uint32_t gpus = 0;       // held on that worker
    uint32_t cpu_slots = 0;  // held on that worker (a CPU trial's ranks)
  };
  // One current lease: a trial's attempt held by a worker (and, for a gang,
  // its peers). A lease exists exactly while its trial is LEASED or RUNNING.
  struct Lease {
    std::string worker_id;  // rank 0's for a multi-rank trial
    uint32_t attempt = 0;
    uint64_t epoch = 0;
    absl::Time expires;
    uint32_t gpus = 0;  // the trial's, held on that worker
    // CPU slots held on worker_id: a CPU trial's ranks there (0 for a trial
    // of one rank, which counts as 1).
    uint32_t cpu_slots = 0;
    std::vector<Peer> peers;
    uint32_t rendezvous_port = 0;  // 0: one rank
  };
  struct Worker {
    int64_t seen_ms = 0;  // last register, lease or heartbeat (or Recover)
    v1::WorkerResources resources;
    bool draining = false;
    // As last reported (SetDatasets); vocab is null unless reports_datasets
    // (scheduler/policy.h MayRun: such a worker may run every trial).
    bool reports_datasets = false;
    std::vector<v1::WorkerDataset> datasets;
    std::shared_ptr<const DatasetVocab> vocab;
  };
  // A lease that expired (Expire): the trial, its lease, and the reason.
  struct Expired {
    std::string trial_id;
    Lease lease;
    std::string reason;
  };

  // `clock` is not owned and must outlive the table.
  LeaseTable(const Clock* clock, absl::Duration lease_ttl,
             absl::Duration heartbeat_interval);

  // ---- Workers
  void PutWorker(const std::string& worker_id, int64_t seen_ms,
                 const v1::WorkerResources& resources);
  // Registered (or recovered) with that id; else NOT_FOUND ("register
  // again"), or INVALID_ARGUMENT for a malformed id.
  absl::Status RequireWorker(const std::string& worker_id) const;
  // Marks the worker seen now; false for an unknown worker.
  bool Touch(const std::string& worker_id);
  // Forgets a worker that is leaving (HeartbeatRequest.leaving): OK if it is
  // gone or was unknown, FAILED_PRECONDITION naming a trial while it holds a
  // lease.
  absl::Status RemoveWorker(const std::string& worker_id);
  std::optional<Worker> GetWorker(const std::string& worker_id) const;
  void SetDraining(const std::string& worker_id, bool draining);
  // Replaces the datasets the worker reported (checked by the caller:
  // Core::RegisterWorker, Core::Heartbeat); nothing for an unknown worker.
  void SetDatasets(
      const std::string& worker_id, bool reported,
      const google::protobuf::RepeatedPtrField<v1::WorkerDataset>& datasets);
  // Every worker heard from within 3 heartbeat intervals (draining ones
  // too), by id, with what it reported: submit's dataset check and a
  // sweep's pending reason.
  struct LiveDatasets {
    std::string worker_id;
    bool draining = false;
    bool reports_datasets = false;
    std::vector<v1::WorkerDataset> datasets;
  };
  std::vector<LiveDatasets> LiveWorkerDatasets() const;
  // A fresh id for a worker that registers without one.
  uint64_t NextRegistration();

  // ---- Leases
  void Put(const std::string& trial_id, Lease lease);
  void Erase(const std::string& trial_id);
  // The current lease of `ref` held by `worker_id` (rank 0's worker or a
  // gang peer), renewed for one TTL (when `renew`; a peer renews its own
  // expiry); ABORTED naming what is current otherwise.
  absl::Status Check(const std::string& worker_id, const v1::LeaseRef& ref,
                     bool renew);
  // Renews each of `refs` that is current and held by `worker_id` and
  // returns the others (the worker must stop them); NOT_FOUND for an
  // unregistered worker. The worker is marked seen.
  absl::StatusOr<std::vector<v1::LeaseRef>> Heartbeat(
      const std::string& worker_id,
      const google::protobuf::RepeatedPtrField<v1::LeaseRef>& refs);
  // The current lease of a trial, if any.
  std::optional<Lease> Get(const std::string& trial_id) const;
  // A rendezvous port of `worker_id`'s range (WorkerResources; default
  // 29500..29999) for a lease of epoch `epoch`: first + epoch mod count,
  // moved on past ports that current leases with that rank 0 worker use.
  uint32_t RendezvousPort(const std::string& worker_id, uint64_t epoch) const;
  // Removes and returns every lease with expiry <= now, with the reason (its
  // worker silent for 3 heartbeat intervals: "lost"; else not renewed). A
  // gang's lease expires as soon as any one of its workers' does: the whole
  // trial ends, and the others find it revoked in their next heartbeat.
  std::vector<Expired> Expire(absl::Time now);
  // The scheduler's view of the workers that may take work (live, not
  // draining): GPUs and CPU slots in all and not leased; the asking worker's
  // free GPUs and slots as it reported them in `r`.
  std::vector<WorkerCapacity> Capacities(const v1::LeaseTrialRequest& r) const;
  absl::Time NewExpiry() const { return clock_->Now() + lease_ttl_; }

  // ---- Views
  // ListWorkers' rows, by worker id.
  v1::ListWorkersResponse List() const;
  // One worker's row; NOT_FOUND for an unknown worker.
  absl::StatusOr<v1::Worker> View(const std::string& worker_id) const;
  int64_t LiveWorkers() const;
  int64_t expired_count() const;
  int64_t lost_count() const;

 private:
  int64_t NowMs() const { return absl::ToUnixMillis(clock_->Now()); }
  v1::Worker ViewLocked(const std::string& worker_id, const Worker& w) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const Clock* const clock_;
  const absl::Duration lease_ttl_;
  const absl::Duration heartbeat_interval_;
  mutable absl::Mutex mu_;
  std::map<std::string, Lease> leases_ ABSL_GUARDED_BY(mu_);    // by trial
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);  // by id
  uint64_t registrations_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t expired_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t lost_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_LEASE_TABLE_H_
