#include "coordinator/scheduler/policy.h"

#include <algorithm>

namespace isoflop::coordinator {
namespace {

bool AtCapacity(const SweepQueue& s) {
  return s.max_concurrent_trials != 0 &&
         s.active_trials >= s.max_concurrent_trials;
}

// Indices of the sweeps that may lease now, in queue order.
std::vector<size_t> QueueOrder(const std::vector<SweepQueue>& sweeps) {
  std::vector<size_t> order;
  for (size_t i = 0; i < sweeps.size(); ++i) {
    if (!sweeps[i].pending.empty() && !AtCapacity(sweeps[i])) {
      order.push_back(i);
    }
  }
  std::stable_sort(order.begin(), order.end(), [&sweeps](size_t a, size_t b) {
    return sweeps[a].priority > sweeps[b].priority;
  });
  return order;
}

// True when `a` is the better worker to reserve: more free GPUs, then more
// GPUs, then the smaller id (deterministic).
bool BetterToReserve(const WorkerCapacity& a, const WorkerCapacity& b) {
  if (a.free_gpus != b.free_gpus) return a.free_gpus > b.free_gpus;
  if (a.gpus != b.gpus) return a.gpus > b.gpus;
  return a.worker_id < b.worker_id;
}

// The worker the head holds: the previous reservation's while it is still
// for this trial and the worker is still in the view, else the best one big
// enough. nullopt when no worker is big enough (the head is chosen so that
// one is).
std::optional<std::string_view> Reserve(const ClusterView& view,
                                        const PendingTrial& head) {
  const WorkerCapacity* best = nullptr;
  for (const WorkerCapacity& w : view.workers) {
    if (w.gpus < head.gpus || !MayRun(w.datasets.get(), head)) continue;
    if (view.reservation.has_value() &&
        view.reservation->trial_id == head.trial_id &&
        view.reservation->worker_id == w.worker_id) {
      return w.worker_id;  // sticky
    }
    if (best == nullptr || BetterToReserve(w, *best)) best = &w;
  }
  if (best == nullptr) return std::nullopt;
  return best->worker_id;
}

// Whether some worker of the view is big enough for `t` and holds its data.
bool SomeWorkerHosts(const ClusterView& view, const PendingTrial& t) {
  return std::any_of(view.workers.begin(), view.workers.end(),
                     [&t](const WorkerCapacity& w) {
                       return w.gpus >= t.gpus && MayRun(w.datasets.get(), t);
                     });
}

}  // namespace

bool MayRun(const DatasetVocab* datasets, const PendingTrial& trial) {
  if (datasets == nullptr || trial.dataset.empty()) return true;
  const auto it = datasets->find(trial.dataset);
  return it != datasets->end() &&
         (trial.vocab_size == 0 || it->second == trial.vocab_size);
}

bool Runnable(
    const PendingTrial& t,
    const std::vector<std::pair<std::string_view, TrunkProgress>>& trunks) {
  if (t.trunk_id.empty()) return true;
  for (const auto& [id, progress] : trunks) {
    if (id != t.trunk_id) continue;
    return progress.succeeded ||
           std::find(progress.kept_steps.begin(), progress.kept_steps.end(),
                     t.start_step) != progress.kept_steps.end();
  }
  return false;
}

BranchFate BranchOnTrunkEnd(TrunkEnd end) {
  switch (end) {
    case TrunkEnd::kFailed:
      return BranchFate::kFail;
    case TrunkEnd::kCancelled:
      return BranchFate::kCancel;
    case TrunkEnd::kRequeued:
    case TrunkEnd::kSucceeded:
      break;
  }
  return BranchFate::kWait;
}

Decision Schedule(const ClusterView& view, const LeaseAsk& ask) {
  const std::vector<size_t> order = QueueOrder(view.sweeps);
  // The head: the first GPU trial in queue order that a worker can host.
  std::optional<Decision::Pick> head;
  for (size_t s : order) {
    const std::vector<PendingTrial>& pending = view.sweeps[s].pending;
    for (size_t i = 0; i < pending.size() && !head.has_value(); ++i) {
      if (!Runnable(pending[i], view.trunks)) continue;
      if (pending[i].gpus > 0 && SomeWorkerHosts(view, pending[i])) {
        head = Decision::Pick{s, i};
      }
    }
    if (head.has_value()) break;
  }
  Decision out;
  std::optional<std::string_view> reserved;
  if (head.has_value()) {
    const PendingTrial& h = view.sweeps[head->sweep].pending[head->trial];
    reserved = Reserve(view, h);
    if (reserved.has_value()) {
      out.reservation =
          Reservation{std::string(h.trial_id), std::string(*reserved)};
    }
  }
  const bool asker_reserved =
      reserved.has_value() && *reserved == ask.worker_id;
  for (size_t s : order) {
    const std::vector<PendingTrial>& pending = view.sweeps[s].pending;
    for (size_t i = 0; i < pending.size(); ++i) {
      if (!Runnable(pending[i], view.trunks)) continue;
      const uint32_t gpus = pending[i].gpus;
      const bool is_head =
          head.has_value() && head->sweep == s && head->trial == i;
      if (gpus == 0 ? ask.free_cpu_slots < 1 : ask.free_gpus < gpus) continue;
      if (!MayRun(ask.datasets.get(), pending[i])) continue;
      if (gpus > 0 && asker_reserved && !is_head) continue;
      out.pick = Decision::Pick{s, i};
      if (is_head) out.reservation.reset();  // it starts: nothing to hold
      return out;
    }
  }
  return out;
}

}  // namespace isoflop::coordinator
