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

// The units of `t`'s kind that `w` has in all and free now.
uint32_t TotalFor(const WorkerCapacity& w, const PendingTrial& t) {
  return t.gpus > 0 ? w.gpus : w.cpu_slots;
}
uint32_t FreeFor(const WorkerCapacity& w, const PendingTrial& t) {
  return t.gpus > 0 ? w.free_gpus : w.free_cpu_slots;
}

// Whether some worker of the view is big enough for `t` alone and holds its
// data.
bool SomeWorkerHosts(const ClusterView& view, const PendingTrial& t) {
  return std::any_of(
      view.workers.begin(), view.workers.end(), [&t](const WorkerCapacity& w) {
        return TotalFor(w, t) >= Units(t) && MayRun(w.datasets.get(), t);
      });
}

// A gang trial: bigger than every worker that may run it (the asker's own
// size counts only through the view).
bool IsGang(const ClusterView& view, const PendingTrial& t) {
  return Units(t) > 1 && !SomeWorkerHosts(view, t);
}

// Whether the workers that may run `t` have its units in all (a gang could
// ever form).
bool GangCouldForm(const ClusterView& view, const PendingTrial& t) {
  uint64_t total = 0;
  for (const WorkerCapacity& w : view.workers) {
    if (MayRun(w.datasets.get(), t)) total += TotalFor(w, t);
  }
  return total >= Units(t);
}

// True when `a` is the better worker to reserve (or to fill a gang with):
// more free units, then more units, then the smaller id (deterministic).
bool BetterFor(const PendingTrial& t, const WorkerCapacity& a,
               const WorkerCapacity& b) {
  if (FreeFor(a, t) != FreeFor(b, t)) return FreeFor(a, t) > FreeFor(b, t);
  if (TotalFor(a, t) != TotalFor(b, t)) return TotalFor(a, t) > TotalFor(b, t);
  return a.worker_id < b.worker_id;
}

// The worker the head holds: the previous reservation's while it is still
// for this trial and the worker is still in the view, else the best one big
// enough. nullopt when no worker is big enough (the head is chosen so that
// one is).
std::optional<Reservation> ReserveOne(const ClusterView& view,
                                      const PendingTrial& head) {
  const WorkerCapacity* best = nullptr;
  for (const WorkerCapacity& w : view.workers) {
    if (w.gpus < head.gpus || !MayRun(w.datasets.get(), head)) continue;
    if (view.reservation.has_value() &&
        view.reservation->trial_id == head.trial_id &&
        view.reservation->worker_id == w.worker_id) {
      return Reservation{std::string(head.trial_id),
                         std::string(w.worker_id)};  // sticky
    }
    if (best == nullptr || BetterFor(head, w, *best)) best = &w;
  }
  if (best == nullptr) return std::nullopt;
  return Reservation{std::string(head.trial_id), std::string(best->worker_id)};
}

// A gang head's set: the previous one while it is for this trial and its
// workers are still in the view (and may run it) with >= R GPUs in all, else
// workers in BetterFor order until their GPUs reach R.
std::optional<Reservation> ReserveGang(const ClusterView& view,
                                       const PendingTrial& head) {
  std::vector<const WorkerCapacity*> candidates;
  for (const WorkerCapacity& w : view.workers) {
    if (w.gpus > 0 && MayRun(w.datasets.get(), head)) {
      candidates.push_back(&w);
    }
  }
  auto find = [&candidates](std::string_view id) -> const WorkerCapacity* {
    for (const WorkerCapacity* w : candidates) {
      if (w->worker_id == id) return w;
    }
    return nullptr;
  };
  if (view.reservation.has_value() &&
      view.reservation->trial_id == head.trial_id) {
    std::vector<std::string> ids = view.reservation->gang_worker_ids;
    ids.insert(ids.begin(), view.reservation->worker_id);
    uint64_t gpus = 0;
    bool all_there = true;
    for (const std::string& id : ids) {
      const WorkerCapacity* w = find(id);
      all_there = all_there && w != nullptr;
      if (w != nullptr) gpus += w->gpus;
    }
    if (all_there && gpus >= head.gpus) return view.reservation;  // sticky
  }
  std::sort(candidates.begin(), candidates.end(),
            [&head](const WorkerCapacity* a, const WorkerCapacity* b) {
              return BetterFor(head, *a, *b);
            });
  Reservation out{std::string(head.trial_id), ""};
  uint64_t gpus = 0;
  for (const WorkerCapacity* w : candidates) {
    if (gpus >= head.gpus) break;
    if (out.worker_id.empty()) {
      out.worker_id = std::string(w->worker_id);
    } else {
      out.gang_worker_ids.emplace_back(w->worker_id);
    }
    gpus += w->gpus;
  }
  if (gpus < head.gpus) return std::nullopt;
  return out;
}

bool InReservation(const std::optional<Reservation>& r, std::string_view id) {
  if (!r.has_value()) return false;
  return r->worker_id == id ||
         std::find(r->gang_worker_ids.begin(), r->gang_worker_ids.end(), id) !=
             r->gang_worker_ids.end();
}

// The gang for `t` with the asker as rank 0, or empty when the free units of
// the asker and the other workers that may run it (leaving out `reserved`
// unless `t` is the head) do not cover it.
std::vector<Decision::GangShare> FormGang(
    const ClusterView& view, const LeaseAsk& ask, const PendingTrial& t,
    const std::optional<Reservation>& reserved, bool is_head) {
  const uint32_t units = Units(t);
  const uint32_t ask_free = t.gpus > 0 ? ask.free_gpus : ask.free_cpu_slots;
  if (ask_free == 0) return {};
  std::vector<Decision::GangShare> gang = {
      {std::string(ask.worker_id), std::min(ask_free, units)}};
  uint32_t left = units - gang[0].units;
  std::vector<const WorkerCapacity*> others;
  for (const WorkerCapacity& w : view.workers) {
    if (w.worker_id == ask.worker_id || FreeFor(w, t) == 0 ||
        !MayRun(w.datasets.get(), t)) {
      continue;
    }
    if (!is_head && InReservation(reserved, w.worker_id)) continue;
    others.push_back(&w);
  }
  std::sort(others.begin(), others.end(),
            [&t](const WorkerCapacity* a, const WorkerCapacity* b) {
              return BetterFor(t, *a, *b);
            });
  for (const WorkerCapacity* w : others) {
    if (left == 0) break;
    const uint32_t take = std::min(FreeFor(*w, t), left);
    gang.push_back({std::string(w->worker_id), take});
    left -= take;
  }
  if (left > 0) return {};  // all or nothing
  return gang;
}

}  // namespace

uint32_t Units(const PendingTrial& t) {
  return t.gpus > 0 ? t.gpus : std::max<uint32_t>(1, t.cpu_ranks);
}

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
  // The head: the first GPU trial in queue order that a worker can host, or
  // that the workers together can (a gang).
  std::optional<Decision::Pick> head;
  for (size_t s : order) {
    const std::vector<PendingTrial>& pending = view.sweeps[s].pending;
    for (size_t i = 0; i < pending.size() && !head.has_value(); ++i) {
      if (!Runnable(pending[i], view.trunks)) continue;
      if (pending[i].gpus > 0 && (SomeWorkerHosts(view, pending[i]) ||
                                  GangCouldForm(view, pending[i]))) {
        head = Decision::Pick{s, i};
      }
    }
    if (head.has_value()) break;
  }
  Decision out;
  if (head.has_value()) {
    const PendingTrial& h = view.sweeps[head->sweep].pending[head->trial];
    out.reservation =
        IsGang(view, h) ? ReserveGang(view, h) : ReserveOne(view, h);
  }
  const std::optional<Reservation> reserved = out.reservation;
  const bool asker_reserved = InReservation(reserved, ask.worker_id);
  for (size_t s : order) {
    const std::vector<PendingTrial>& pending = view.sweeps[s].pending;
    for (size_t i = 0; i < pending.size(); ++i) {
      const PendingTrial& t = pending[i];
      if (!Runnable(t, view.trunks)) continue;
      const bool is_head =
          head.has_value() && head->sweep == s && head->trial == i;
      if (!MayRun(ask.datasets.get(), t)) continue;
      if (t.gpus > 0 && asker_reserved && !is_head) continue;
      const bool fits = t.gpus == 0 ? ask.free_cpu_slots >= Units(t)
                                    : ask.free_gpus >= t.gpus;
      if (!fits) {
        if (!IsGang(view, t)) continue;
        std::vector<Decision::GangShare> gang =
            FormGang(view, ask, t, reserved, is_head);
        if (gang.empty()) continue;
        out.gang = std::move(gang);
      }
      out.pick = Decision::Pick{s, i};
      if (is_head) out.reservation.reset();  // it starts: nothing to hold
      return out;
    }
  }
  return out;
}

}  // namespace isoflop::coordinator
