#include "coordinator/service/lease_table.h"

#include <algorithm>
#include <set>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"

namespace isoflop::coordinator {

absl::Status RequireWorkerId(const std::string& v) {
  if (v.empty() || v.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker_id = \"", v.substr(0, 32), "\": must be 1 to 128 characters"));
  }
  return absl::OkStatus();
}

LeaseTable::LeaseTable(const Clock* clock, absl::Duration lease_ttl,
                       absl::Duration heartbeat_interval)
    : clock_(clock),
      lease_ttl_(lease_ttl),
      heartbeat_interval_(heartbeat_interval) {}

void LeaseTable::PutWorker(const std::string& worker_id, int64_t seen_ms,
                           const v1::WorkerResources& resources) {
  absl::MutexLock lock(&mu_);
  Worker& w = workers_[worker_id];  // a drained worker stays drained
  w.seen_ms = seen_ms;
  w.resources = resources;
}

absl::Status LeaseTable::RemoveWorker(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  for (const auto& [trial, lease] : leases_) {
    if (lease.worker_id == worker_id) {
      return absl::FailedPreconditionError(absl::StrCat(
          "leaving = true: worker ", worker_id, " still holds the lease of ",
          trial, " (report its outcome first)"));
    }
  }
  workers_.erase(worker_id);
  return absl::OkStatus();
}

void LeaseTable::SetDatasets(
    const std::string& worker_id, bool reported,
    const google::protobuf::RepeatedPtrField<v1::WorkerDataset>& datasets) {
  reported = reported || !datasets.empty();
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  Worker& w = it->second;
  // Heartbeats repeat the same list: nothing to rebuild then.
  if (w.reports_datasets == reported &&
      std::equal(w.datasets.begin(), w.datasets.end(), datasets.begin(),
                 datasets.end(),
                 [](const v1::WorkerDataset& a, const v1::WorkerDataset& b) {
                   return google::protobuf::util::MessageDifferencer::Equals(a,
                                                                             b);
                 })) {
    return;
  }
  w.reports_datasets = reported;
  w.datasets.assign(datasets.begin(), datasets.end());
  if (!reported) {
    w.vocab.reset();
    return;
  }
  auto vocab = std::make_shared<DatasetVocab>();
  for (const v1::WorkerDataset& d : datasets) {
    (*vocab)[d.name()] = d.vocab_size();
  }
  w.vocab = std::move(vocab);
}

std::vector<LeaseTable::LiveDatasets> LeaseTable::LiveWorkerDatasets() const {
  absl::MutexLock lock(&mu_);
  const int64_t now_ms = NowMs();
  const int64_t live_ms = absl::ToInt64Milliseconds(3 * heartbeat_interval_);
  std::vector<LiveDatasets> out;
  for (const auto& [id, w] : workers_) {
    if (now_ms - w.seen_ms >= live_ms) continue;
    out.push_back({id, w.draining, w.reports_datasets, w.datasets});
  }
  return out;
}

absl::Status LeaseTable::RequireWorker(const std::string& worker_id) const {
  if (absl::Status s = RequireWorkerId(worker_id); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (!workers_.count(worker_id)) {
    return absl::NotFoundError(absl::StrCat(
        "worker ", worker_id, ": not registered (register again)"));
  }
  return absl::OkStatus();
}

bool LeaseTable::Touch(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return false;
  it->second.seen_ms = NowMs();
  return true;
}

std::optional<LeaseTable::Worker> LeaseTable::GetWorker(
    const std::string& worker_id) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return std::nullopt;
  return it->second;
}

void LeaseTable::SetDraining(const std::string& worker_id, bool draining) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.draining = draining;
}

uint64_t LeaseTable::NextRegistration() {
  absl::MutexLock lock(&mu_);
  return ++registrations_;
}

void LeaseTable::Put(const std::string& trial_id, Lease lease) {
  absl::MutexLock lock(&mu_);
  leases_[trial_id] = std::move(lease);
}

void LeaseTable::Erase(const std::string& trial_id) {
  absl::MutexLock lock(&mu_);
  leases_.erase(trial_id);
}

namespace {

// The expiry `worker_id` renews in `lease`: its own or its peer entry's;
// null when it holds no part of it.
absl::Time* HolderExpiry(LeaseTable::Lease& lease,
                         const std::string& worker_id) {
  if (lease.worker_id == worker_id) return &lease.expires;
  for (LeaseTable::Peer& p : lease.peers) {
    if (p.worker_id == worker_id) return &p.expires;
  }
  return nullptr;
}

}  // namespace

absl::Status LeaseTable::Check(const std::string& worker_id,
                               const v1::LeaseRef& ref, bool renew) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(ref.trial_id());
  absl::Time* expiry =
      it == leases_.end() ? nullptr : HolderExpiry(it->second, worker_id);
  if (expiry == nullptr || it->second.attempt != ref.attempt() ||
      it->second.epoch != ref.lease_epoch()) {
    return absl::AbortedError(absl::StrCat(
        "trial ", ref.trial_id(), " attempt ", ref.attempt(), " epoch ",
        ref.lease_epoch(), ": stale lease (",
        it == leases_.end()
            ? std::string("the trial holds no lease")
            : absl::StrCat("current attempt ", it->second.attempt, " epoch ",
                           it->second.epoch, " held by worker ",
                           it->second.worker_id),
        ")"));
  }
  if (renew) *expiry = clock_->Now() + lease_ttl_;
  return absl::OkStatus();
}

std::optional<LeaseTable::Lease> LeaseTable::Get(
    const std::string& trial_id) const {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(trial_id);
  if (it == leases_.end()) return std::nullopt;
  return it->second;
}

uint32_t LeaseTable::RendezvousPort(const std::string& worker_id,
                                    uint64_t epoch) const {
  absl::MutexLock lock(&mu_);
  uint32_t first = 29500, count = 500;
  if (auto w = workers_.find(worker_id);
      w != workers_.end() && w->second.resources.rendezvous_port_count() > 0) {
    first = w->second.resources.rendezvous_port_first();
    count = w->second.resources.rendezvous_port_count();
  }
  std::set<uint32_t> used;
  for (const auto& [trial_id, lease] : leases_) {
    if (lease.worker_id == worker_id && lease.rendezvous_port != 0) {
      used.insert(lease.rendezvous_port);
    }
  }
  const uint64_t start = epoch % count;
  for (uint64_t k = 0; k < count; ++k) {
    const auto port = static_cast<uint32_t>(first + (start + k) % count);
    if (!used.contains(port)) return port;
  }
  return static_cast<uint32_t>(first + start);  // every port in use: reuse
}

absl::StatusOr<std::vector<v1::LeaseRef>> LeaseTable::Heartbeat(
    const std::string& worker_id,
    const google::protobuf::RepeatedPtrField<v1::LeaseRef>& refs) {
  if (absl::Status s = RequireWorkerId(worker_id); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  auto w = workers_.find(worker_id);
  if (w == workers_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "worker ", worker_id, ": not registered (register again)"));
  }
  w->second.seen_ms = NowMs();
  const absl::Time expires = clock_->Now() + lease_ttl_;
  std::vector<v1::LeaseRef> revoked;
  for (const v1::LeaseRef& ref : refs) {
    auto it = leases_.find(ref.trial_id());
    absl::Time* expiry =
        it == leases_.end() ? nullptr : HolderExpiry(it->second, worker_id);
    if (expiry == nullptr || it->second.attempt != ref.attempt() ||
        it->second.epoch != ref.lease_epoch()) {
      revoked.push_back(ref);
      continue;
    }
    *expiry = expires;
  }
  return revoked;
}

std::vector<LeaseTable::Expired> LeaseTable::Expire(absl::Time now) {
  absl::MutexLock lock(&mu_);
  // A trial is re-queued only once its lease has expired, a full TTL after
  // the last renewal, however long its worker has been silent: until then
  // its trainer may still run (a worker stopped with SIGSTOP, or cut off,
  // cannot stop it). The worker feeds the trainer's watchdog per renewal with
  // a timeout of at most TTL - (TTL - heartbeat) / 4, so by expiry the old
  // trainer has stopped itself (worker/trial_command.h WatchdogTimeout,
  // docs/faults.md "Split brain"). A worker silent for 3 heartbeat intervals
  // is reported lost (ListWorkers, the reason below), but that alone
  // re-queues nothing. A restarted coordinator gives every lease it reloads a
  // full TTL (Core::Recover), so a restart alone never re-queues either.
  const absl::Duration lost_after = 3 * heartbeat_interval_;
  const std::string fenced =
      absl::StrCat("; its trainer's watchdog has fenced it (lease TTL ",
                   absl::FormatDuration(lease_ttl_), ")");
  std::vector<Expired> out;
  for (auto it = leases_.begin(); it != leases_.end();) {
    const Lease& lease = it->second;
    // The member whose expiry passed first (rank 0's worker, or a peer's).
    std::string member = lease.worker_id;
    absl::Time earliest = lease.expires;
    for (const Peer& p : lease.peers) {
      if (p.expires < earliest) {
        earliest = p.expires;
        member = p.worker_id;
      }
    }
    if (earliest > now) {
      ++it;
      continue;
    }
    const std::string gang =
        lease.peers.empty()
            ? std::string()
            : absl::StrCat(" (gang of ", lease.peers.size() + 1,
                           " workers: the trial ends on all of them)");
    const auto w = workers_.find(member);
    const absl::Duration silent =
        w == workers_.end() ? absl::InfiniteDuration()
                            : now - absl::FromUnixMillis(w->second.seen_ms);
    std::string reason;
    if (silent >= lost_after) {
      ++lost_;
      reason = absl::StrCat(
          "worker ", member, " lost: silent for ",
          absl::FormatDuration(absl::Trunc(silent, absl::Milliseconds(1))),
          " (3 heartbeat intervals); lease expired", gang, fenced);
    } else {
      ++expired_;
      reason = absl::StrCat("lease expired: worker ", member,
                            " did not renew it for ",
                            absl::FormatDuration(lease_ttl_), gang, fenced);
    }
    out.push_back({it->first, lease, std::move(reason)});
    it = leases_.erase(it);
  }
  return out;
}

std::vector<WorkerCapacity> LeaseTable::Capacities(
    const v1::LeaseTrialRequest& r) const {
  absl::MutexLock lock(&mu_);
  std::map<std::string_view, std::pair<uint32_t, uint32_t>> used;  // gpus, cpu
  for (const auto& [trial_id, lease] : leases_) {
    auto& mine = used[lease.worker_id];
    mine.first += lease.gpus;
    mine.second += lease.gpus > 0 ? 0 : std::max<uint32_t>(1, lease.cpu_slots);
    for (const Peer& p : lease.peers) {
      used[p.worker_id].first += p.gpus;
      used[p.worker_id].second += p.cpu_slots;
    }
  }
  const int64_t lost_ms = absl::ToInt64Milliseconds(3 * heartbeat_interval_);
  const int64_t now_ms = NowMs();
  std::vector<WorkerCapacity> out;
  for (const auto& [id, info] : workers_) {
    if (info.draining || now_ms - info.seen_ms >= lost_ms) continue;
    const uint32_t gpus = info.resources.gpus();
    // A GPU worker runs no CPU trial (worker/agent.cc).
    const uint32_t cpu = gpus > 0 ? 0 : info.resources.cpu_slots();
    const auto it = used.find(id);
    const uint32_t used_gpus =
        it == used.end() ? 0 : std::min(gpus, it->second.first);
    const uint32_t used_cpu =
        it == used.end() ? 0 : std::min(cpu, it->second.second);
    const bool asker = id == r.worker_id();
    out.push_back(
        {.worker_id = id,
         .gpus = gpus,
         .free_gpus = asker ? r.free_gpus() : gpus - used_gpus,
         .datasets = info.vocab,
         .cpu_slots = cpu,
         .free_cpu_slots = asker ? r.free_cpu_slots() : cpu - used_cpu});
  }
  return out;
}

v1::Worker LeaseTable::ViewLocked(const std::string& worker_id,
                                  const Worker& info) const {
  v1::Worker out;
  out.set_worker_id(worker_id);
  *out.mutable_resources() = info.resources;
  const int64_t age_ms = NowMs() - info.seen_ms;
  const bool lost =
      age_ms >= absl::ToInt64Milliseconds(3 * heartbeat_interval_);
  out.set_state(lost            ? v1::WORKER_LOST
                : info.draining ? v1::WORKER_DRAINING
                                : v1::WORKER_LIVE);
  out.set_draining(info.draining);
  for (const auto& [trial_id, lease] : leases_) {
    const bool peer = std::any_of(
        lease.peers.begin(), lease.peers.end(),
        [&worker_id](const Peer& p) { return p.worker_id == worker_id; });
    if (lease.worker_id == worker_id || peer) {
      out.add_running_trial_ids(trial_id);
    }
  }
  out.set_last_heartbeat_unix_ms(info.seen_ms);
  out.set_heartbeat_age_ms(std::max<int64_t>(0, age_ms));
  out.mutable_datasets()->Add(info.datasets.begin(), info.datasets.end());
  out.set_reports_datasets(info.reports_datasets);
  return out;
}

v1::ListWorkersResponse LeaseTable::List() const {
  absl::MutexLock lock(&mu_);
  v1::ListWorkersResponse out;
  for (const auto& [id, info] : workers_)
    *out.add_workers() = ViewLocked(id, info);
  return out;
}

absl::StatusOr<v1::Worker> LeaseTable::View(
    const std::string& worker_id) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("worker ", worker_id, ": not found"));
  }
  return ViewLocked(worker_id, it->second);
}

int64_t LeaseTable::LiveWorkers() const {
  absl::MutexLock lock(&mu_);
  const int64_t now_ms = NowMs();
  const int64_t live_ms = absl::ToInt64Milliseconds(3 * heartbeat_interval_);
  int64_t n = 0;
  for (const auto& [id, w] : workers_) n += now_ms - w.seen_ms < live_ms;
  return n;
}

int64_t LeaseTable::expired_count() const {
  absl::MutexLock lock(&mu_);
  return expired_;
}
int64_t LeaseTable::lost_count() const {
  absl::MutexLock lock(&mu_);
  return lost_;
}

}  // namespace isoflop::coordinator
