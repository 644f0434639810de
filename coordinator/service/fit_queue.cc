#include "coordinator/service/fit_queue.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace isoflop::coordinator {
namespace {

absl::Status Cancelled(const std::string& sweep_id) {
  return absl::CancelledError(
      absl::StrCat("sweep ", sweep_id, ": fit cancelled (shutting down)"));
}

}  // namespace

FitQueue::FitQueue(const Clock* clock, absl::Duration refit_min_interval,
                   FitFn fit)
    : clock_(clock),
      refit_min_interval_(refit_min_interval),
      fit_(std::move(fit)) {}

FitQueue::~FitQueue() { Stop(); }

void FitQueue::Queue(const std::string& sweep_id, bool final) {
  absl::MutexLock lock(&mu_);
  pending_[sweep_id].final |= final;
  ++generation_;
}

void FitQueue::Request(const std::string& sweep_id, Done done) {
  if (cancelled_.load()) {
    if (done) done(Cancelled(sweep_id));
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (!stop_) {
      Pending& p = pending_[sweep_id];
      p.asked = true;
      if (done) p.waiters.push_back(std::move(done));
      ++generation_;
      return;
    }
  }
  if (done) done(Cancelled(sweep_id));
}

void FitQueue::Begin(const std::string& sweep_id) {
  absl::MutexLock lock(&mu_);
  fitting_.insert(sweep_id);
}

void FitQueue::End(const std::string& sweep_id) {
  absl::MutexLock lock(&mu_);
  fitting_.erase(sweep_id);
  ++generation_;
}

int FitQueue::RunPending() {
  std::map<std::string, Pending> due;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    for (auto it = pending_.begin(); it != pending_.end();) {
      const Pending& p = it->second;
      const auto last = last_refit_.find(it->first);
      const bool too_soon = !p.final && !p.asked && last != last_refit_.end() &&
                            now - last->second < refit_min_interval_;
      if (fitting_.count(it->first) != 0 || too_soon) {
        ++it;  // one fit per sweep: runs after the current one
        continue;
      }
      if (!p.final && !p.asked) last_refit_[it->first] = now;
      fitting_.insert(it->first);
      due.insert(std::move(*it));
      it = pending_.erase(it);
    }
  }
  int ran = 0;
  for (auto& [id, p] : due) {
    absl::StatusOr<v1::ScalingLawFit> fit = Cancelled(id);
    if (!cancelled_.load()) {
      // A fit someone asked for is final when the sweep has ended (FitSweep's
      // rule); one the core queued is what it asked for.
      fit = fit_(id, p.final   ? std::optional<bool>(true)
                     : p.asked ? std::nullopt
                               : std::optional<bool>(false));
      ++ran;
    }
    {
      absl::MutexLock lock(&mu_);
      fitting_.erase(id);
      ++generation_;
    }
    for (Done& done : p.waiters) done(fit);
  }
  return ran;
}

void FitQueue::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { Loop(); });
}

void FitQueue::Loop() {
  // Fits yield the cores to the RPCs (leases, heartbeats, ingest): the
  // threads a fit starts inherit this nice value (Linux: per thread).
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
  while (true) {
    uint64_t seen = 0;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      seen = generation_;
    }
    if (RunPending() > 0) continue;
    absl::MutexLock lock(&mu_);
    // Woken by a change; else within 200 ms (a throttled refit falls due).
    const auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_ || generation_ != seen;
    };
    mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Milliseconds(200));
  }
}

void FitQueue::Cancel() {
  cancelled_.store(true);
  std::map<std::string, Pending> dropped;
  {
    absl::MutexLock lock(&mu_);
    // Keep what the core queued (a later RunPending reports 0 and stores
    // nothing); answer whoever waits.
    for (auto& [id, p] : pending_) {
      if (!p.waiters.empty()) dropped[id].waiters = std::move(p.waiters);
      p.waiters.clear();
    }
    ++generation_;
  }
  for (auto& [id, p] : dropped) {
    for (Done& done : p.waiters) done(Cancelled(id));
  }
}

void FitQueue::Stop() {
  Cancel();
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    ++generation_;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace isoflop::coordinator
