// The scheduling policy: pure, no I/O, no clock (STYLE.md "Seams").
#ifndef ISOFLOP_COORDINATOR_SCHEDULER_FIFO_H_
#define ISOFLOP_COORDINATOR_SCHEDULER_FIFO_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace isoflop::coordinator {

struct PendingTrial {
  std::string trial_id;
  uint32_t gpus = 0;  // 0: a CPU trial, needs one CPU slot
};

struct FreeResources {
  uint32_t gpus = 0;
  uint32_t cpu_slots = 0;
};

// FIFO: the first trial in `pending` (already in submit order) that fits the
// worker's free resources; a GPU trial needs all its GPUs on this worker
// (gang, all-or-nothing), a CPU trial one slot. nullopt: nothing fits.
std::optional<size_t> PickFifo(const std::vector<PendingTrial>& pending,
                               const FreeResources& free);

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SCHEDULER_FIFO_H_
