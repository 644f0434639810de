#include "coordinator/scheduler/fifo.h"

#include "gtest/gtest.h"

namespace isoflop::coordinator {
namespace {

TEST(PickFifo, TakesTheOldestTrialThatFits) {
  const std::vector<PendingTrial> pending = {{"a", 0}, {"b", 0}};
  EXPECT_EQ(PickFifo(pending, {.gpus = 0, .cpu_slots = 1}), 0u);
}

TEST(PickFifo, NothingWhenNoSlotIsFree) {
  const std::vector<PendingTrial> pending = {{"a", 0}, {"b", 2}};
  EXPECT_EQ(PickFifo(pending, {.gpus = 0, .cpu_slots = 0}), std::nullopt);
}

TEST(PickFifo, GpuTrialNeedsAllItsGpusOnOneWorker) {
  const std::vector<PendingTrial> pending = {{"big", 4}, {"small", 1}};
  EXPECT_EQ(PickFifo(pending, {.gpus = 2, .cpu_slots = 0}), 1u);
  EXPECT_EQ(PickFifo(pending, {.gpus = 4, .cpu_slots = 0}), 0u);
}

TEST(PickFifo, CpuTrialDoesNotTakeAGpu) {
  const std::vector<PendingTrial> pending = {{"cpu", 0}};
  EXPECT_EQ(PickFifo(pending, {.gpus = 8, .cpu_slots = 0}), std::nullopt);
}

TEST(PickFifo, EmptyQueueGivesNothing) {
  EXPECT_EQ(PickFifo({}, {.gpus = 8, .cpu_slots = 8}), std::nullopt);
}

}  // namespace
}  // namespace isoflop::coordinator
