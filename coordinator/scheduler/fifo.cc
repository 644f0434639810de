#include "coordinator/scheduler/fifo.h"

namespace isoflop::coordinator {

std::optional<size_t> PickFifo(const std::vector<PendingTrial>& pending,
                               const FreeResources& free) {
  for (size_t i = 0; i < pending.size(); ++i) {
    const PendingTrial& t = pending[i];
    if (t.gpus == 0 ? free.cpu_slots >= 1 : free.gpus >= t.gpus) return i;
  }
  return std::nullopt;
}

}  // namespace isoflop::coordinator
