#include "coordinator/scheduler/policy.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace isoflop::coordinator {
namespace {

using Pick = Decision::Pick;

// One sweep of `n` trials needing `gpus` each, ids "<name>0", "<name>1", ...
// (the views point into `ids`, which must outlive them).
SweepQueue Sweep(std::vector<std::string>& ids, const std::string& name, int n,
                 uint32_t gpus, int32_t priority = 0) {
  SweepQueue s;
  s.priority = priority;
  ids.reserve(1000);  // string_views into ids stay valid
  for (int i = 0; i < n; ++i) {
    ids.push_back(absl::StrCat(name, i));
    s.pending.push_back({ids.back(), gpus});
  }
  return s;
}

TEST(Schedule, TakesTheOldestTrialThatFits) {
  std::vector<std::string> ids;
  ClusterView view{.sweeps = {Sweep(ids, "a", 2, 0)}};
  EXPECT_EQ(Schedule(view, {"w", 0, 1}).pick, (Pick{0, 0}));
}

TEST(Schedule, NothingWhenNoSlotIsFree) {
  std::vector<std::string> ids;
  ClusterView view{.sweeps = {Sweep(ids, "a", 1, 0), Sweep(ids, "b", 1, 2)}};
  EXPECT_FALSE(Schedule(view, {"w", 0, 0}).pick.has_value());
}

TEST(Schedule, CpuTrialDoesNotTakeAGpu) {
  std::vector<std::string> ids;
  ClusterView view{.sweeps = {Sweep(ids, "cpu", 1, 0)}};
  EXPECT_FALSE(Schedule(view, {"w", 8, 0}).pick.has_value());
}

TEST(Schedule, EmptyQueueGivesNothing) {
  const Decision d = Schedule({}, {"w", 8, 8});
  EXPECT_FALSE(d.pick.has_value());
  EXPECT_FALSE(d.reservation.has_value());
}

TEST(Schedule, GpuTrialNeedsAllItsGpusOnOneWorker) {
  std::vector<std::string> ids;
  ClusterView view{.sweeps = {Sweep(ids, "big", 1, 4)},
                   .workers = {{"w1", 8, 2}, {"w2", 8, 3}}};
  // 5 GPUs free in all, but no worker has 4.
  EXPECT_FALSE(Schedule(view, {"w1", 2, 0}).pick.has_value());
  EXPECT_FALSE(Schedule(view, {"w2", 3, 0}).pick.has_value());
  view.workers[1].free_gpus = 4;
  EXPECT_EQ(Schedule(view, {"w2", 4, 0}).pick, (Pick{0, 0}));
}

TEST(Schedule, HigherPrioritySweepFirstThenSubmitOrder) {
  std::vector<std::string> ids;
  ClusterView view{
      .sweeps = {Sweep(ids, "low", 1, 0, -1), Sweep(ids, "mid1", 1, 0, 0),
                 Sweep(ids, "high", 1, 0, 5), Sweep(ids, "mid2", 1, 0, 0)}};
  std::vector<size_t> order;
  while (true) {
    const Decision d = Schedule(view, {"w", 0, 1});
    if (!d.pick.has_value()) break;
    order.push_back(d.pick->sweep);
    view.sweeps[d.pick->sweep].pending.clear();
  }
  EXPECT_EQ(order, (std::vector<size_t>{2, 1, 3, 0}));
}

TEST(Schedule, SweepAtMaxConcurrentTrialsIsSkipped) {
  std::vector<std::string> ids;
  ClusterView view{
      .sweeps = {Sweep(ids, "capped", 3, 0, 9), Sweep(ids, "other", 1, 0)}};
  view.sweeps[0].max_concurrent_trials = 2;
  view.sweeps[0].active_trials = 1;
  EXPECT_EQ(Schedule(view, {"w", 0, 1}).pick, (Pick{0, 0}));
  view.sweeps[0].active_trials = 2;
  EXPECT_EQ(Schedule(view, {"w", 0, 1}).pick, (Pick{1, 0}));
  view.sweeps[0].max_concurrent_trials = 0;  // unlimited
  view.sweeps[0].active_trials = 100;
  EXPECT_EQ(Schedule(view, {"w", 0, 1}).pick, (Pick{0, 0}));
}

TEST(Schedule, HeadReservesTheWorkerWithTheMostFreeGpus) {
  std::vector<std::string> ids;
  ClusterView view{
      .sweeps = {Sweep(ids, "big", 1, 4), Sweep(ids, "small", 2, 1)},
      .workers = {{"w1", 4, 1}, {"w2", 8, 3}, {"w3", 2, 2}}};
  // w2 (3 free) is held for big; w1 and w3 backfill.
  const Decision d2 = Schedule(view, {"w2", 3, 1});
  EXPECT_FALSE(d2.pick.has_value());
  EXPECT_EQ(d2.reservation, (Reservation{"big0", "w2"}));
  EXPECT_EQ(Schedule(view, {"w1", 1, 0}).pick, (Pick{1, 0}));
  EXPECT_EQ(Schedule(view, {"w3", 2, 0}).pick, (Pick{1, 0}));
}

TEST(Schedule, ReservedWorkerStillTakesCpuTrials) {
  std::vector<std::string> ids;
  ClusterView view{
      .sweeps = {Sweep(ids, "big", 1, 4), Sweep(ids, "small", 1, 1),
                 Sweep(ids, "cpu", 1, 0)},
      .workers = {{"w1", 4, 2}}};
  EXPECT_EQ(Schedule(view, {"w1", 2, 1}).pick, (Pick{2, 0}));
}

TEST(Schedule, ReservationIsKeptWhileTheHeadWaits) {
  std::vector<std::string> ids;
  ClusterView view{
      .sweeps = {Sweep(ids, "big", 1, 4), Sweep(ids, "small", 9, 1)},
      .workers = {{"w1", 4, 1}, {"w2", 4, 3}},
      .reservation = Reservation{"big0", "w1"}};
  // w2 now has more free GPUs, but w1 has been draining for big0.
  const Decision d = Schedule(view, {"w2", 3, 0});
  EXPECT_EQ(d.pick, (Pick{1, 0}));
  EXPECT_EQ(d.reservation, (Reservation{"big0", "w1"}));
}

TEST(Schedule, ReservationMovesWhenItsWorkerLeavesOrTheHeadChanges) {
  std::vector<std::string> ids;
  ClusterView view{
      .sweeps = {Sweep(ids, "big", 1, 4), Sweep(ids, "small", 9, 1)},
      .workers = {{"w2", 4, 1}, {"w3", 4, 2}},
      .reservation = Reservation{"big0", "w1"}};  // w1 drained
  EXPECT_EQ(Schedule(view, {"w2", 1, 0}).reservation,
            (Reservation{"big0", "w3"}));
  view.reservation = Reservation{"gone", "w2"};  // that head started
  EXPECT_EQ(Schedule(view, {"w2", 1, 0}).reservation,
            (Reservation{"big0", "w3"}));
}

TEST(Schedule, PickingTheHeadEndsItsReservation) {
  std::vector<std::string> ids;
  ClusterView view{.sweeps = {Sweep(ids, "big", 1, 4)},
                   .workers = {{"w1", 4, 4}},
                   .reservation = Reservation{"big0", "w1"}};
  const Decision d = Schedule(view, {"w1", 4, 0});
  EXPECT_EQ(d.pick, (Pick{0, 0}));
  EXPECT_FALSE(d.reservation.has_value());
}

TEST(Schedule, TrialNoWorkerCanHostBlocksNobody) {
  std::vector<std::string> ids;
  ClusterView view{
      .sweeps = {Sweep(ids, "huge", 1, 17), Sweep(ids, "big", 1, 4),
                 Sweep(ids, "small", 1, 1)},
      .workers = {{"w1", 8, 2}, {"w2", 8, 1}}};
  // huge fits no worker, nor both as a gang (16 GPUs); big is the head (w1
  // held), w2 backfills.
  const Decision d = Schedule(view, {"w2", 1, 0});
  EXPECT_EQ(d.pick, (Pick{2, 0}));
  EXPECT_EQ(d.reservation, (Reservation{"big0", "w1"}));
}

// A small cluster in discrete time: two 4-GPU workers full of 1-GPU trials
// ending at t = 1..4, a 4-GPU trial at the head and an endless supply of
// 1-GPU trials (10 time units each). Without a reservation every freed GPU
// would go to a small trial and the big one would never start.
TEST(Schedule,
     BigTrialStartsWhenItsWorkersRunningTrialsEndWhileOthersBackfill) {
  std::vector<std::string> ids;
  ClusterView view{
      .sweeps = {Sweep(ids, "big", 1, 4), Sweep(ids, "small", 200, 1)},
      .workers = {{"w1", 4, 0}, {"w2", 4, 0}}};
  struct Running {
    int ends;
    std::string_view trial_id;
    uint32_t gpus;
  };
  std::map<std::string_view, std::vector<Running>> running;
  for (int end = 1; end <= 4; ++end) {
    running["w1"].push_back({end, "initial", 1});
    running["w2"].push_back({end, "initial", 1});
  }
  int big_started = -1;
  std::string big_worker;
  std::map<std::string, int> small_started;  // by worker, t in [1, 4]
  for (int t = 1; t <= 10 && big_started < 0; ++t) {
    for (WorkerCapacity& w : view.workers) {
      std::erase_if(running[w.worker_id],
                    [t](const Running& r) { return r.ends <= t; });
      uint32_t used = 0;
      for (const Running& r : running[w.worker_id]) used += r.gpus;
      w.free_gpus = w.gpus - used;
    }
    for (WorkerCapacity& w : view.workers) {
      while (true) {
        const Decision d = Schedule(view, {w.worker_id, w.free_gpus, 0});
        view.reservation = d.reservation;
        if (!d.pick.has_value()) break;
        std::vector<PendingTrial>& q = view.sweeps[d.pick->sweep].pending;
        const PendingTrial p = q[d.pick->trial];
        q.erase(q.begin() + static_cast<std::ptrdiff_t>(d.pick->trial));
        running[w.worker_id].push_back({t + 10, p.trial_id, p.gpus});
        w.free_gpus -= p.gpus;
        if (p.trial_id == "big0") {
          big_started = t;
          big_worker = std::string(w.worker_id);
        } else if (t <= 4) {
          ++small_started[std::string(w.worker_id)];
        }
      }
    }
  }
  // w1 (smaller id, all else equal) was held: big0 starts as soon as the
  // four trials running there at the start have ended, at t = 4.
  EXPECT_EQ(big_worker, "w1");
  EXPECT_EQ(big_started, 4);
  EXPECT_EQ(small_started["w1"], 0);
  EXPECT_EQ(small_started["w2"], 4);  // one per freed GPU on w2
}

// Datasets (the rule in policy.h): a trial goes only to a worker holding its
// dataset with its vocabulary; a worker that reported nothing may run all.
std::shared_ptr<const DatasetVocab> Holds(DatasetVocab d) {
  return std::make_shared<const DatasetVocab>(std::move(d));
}

TEST(MayRun, NeedsTheDatasetWithTheTrialsVocabularyUnlessNotReported) {
  const PendingTrial t{"t", 0, "kjv", 512};
  const DatasetVocab kjv512 = {{"kjv", 512}};
  const DatasetVocab kjv256 = {{"kjv", 256}};
  const DatasetVocab other = {{"tiny", 512}};
  const DatasetVocab none;
  EXPECT_TRUE(MayRun(&kjv512, t));
  EXPECT_FALSE(MayRun(&kjv256, t));
  EXPECT_FALSE(MayRun(&other, t));
  EXPECT_FALSE(MayRun(&none, t));
  EXPECT_TRUE(MayRun(nullptr, t));  // not reported: as before datasets
}

TEST(Schedule, SkipsTrialsWhoseDatasetTheAskingWorkerLacks) {
  std::vector<std::string> ids = {"a0", "b0"};
  SweepQueue a, b;
  a.pending.push_back({ids[0], 0, "kjv", 512});
  b.pending.push_back({ids[1], 0, "tiny", 256});
  ClusterView view{.sweeps = {a, b}};
  LeaseAsk ask{"w", 0, 1, Holds({{"tiny", 256}})};
  EXPECT_EQ(Schedule(view, ask).pick, (Pick{1, 0}));
  ask.datasets = Holds({{"other", 256}});
  EXPECT_FALSE(Schedule(view, ask).pick.has_value());
  ask.datasets = nullptr;
  EXPECT_EQ(Schedule(view, ask).pick, (Pick{0, 0}));
}

TEST(Schedule, TheHeadReservesOnlyAWorkerHoldingItsDataset) {
  std::vector<std::string> ids = {"big0"};
  SweepQueue s;
  s.pending.push_back({ids[0], 2, "kjv", 512});
  // w1 has more free GPUs but not the data: w2 is reserved.
  ClusterView view{.sweeps = {s},
                   .workers = {{"w1", 8, 8, Holds({{"tiny", 256}})},
                               {"w2", 4, 1, Holds({{"kjv", 512}})}}};
  const Decision d = Schedule(view, {"w1", 8, 0, view.workers[0].datasets});
  EXPECT_FALSE(d.pick.has_value());
  ASSERT_TRUE(d.reservation.has_value());
  EXPECT_EQ(d.reservation->worker_id, "w2");
  // No worker holds it: no head, nothing reserved.
  view.workers[1].datasets = Holds({});
  EXPECT_FALSE(
      Schedule(view, {"w2", 1, 0, view.workers[1].datasets}).reservation);
}

// ---- Trunk and branches (schedule WSD_BRANCHED).

// A sweep of a trunk "t" (pending or not) and branches b0 (start 10) and b1
// (start 20), all CPU trials.
SweepQueue Family(bool trunk_pending) {
  SweepQueue s;
  if (trunk_pending) s.pending.push_back({"t", 0});
  s.pending.push_back({"b0", 0, "", 0, "t", 10});
  s.pending.push_back({"b1", 0, "", 0, "t", 20});
  return s;
}

TEST(Schedule, BranchWaitsUntilItsTrunkKeptItsCheckpoint) {
  ClusterView view{.sweeps = {Family(false)},
                   .trunks = {{"t", TrunkProgress{}}}};
  EXPECT_FALSE(Schedule(view, {"w", 0, 4}).pick.has_value());
  view.trunks[0].second.kept_steps = {20};  // b1's, not b0's
  EXPECT_EQ(Schedule(view, {"w", 0, 4}).pick, (Pick{0, 1}));
  view.trunks[0].second.kept_steps = {20, 10};
  EXPECT_EQ(Schedule(view, {"w", 0, 4}).pick, (Pick{0, 0}));
}

TEST(Schedule, BranchOfASucceededTrunkIsRunnable) {
  ClusterView view{.sweeps = {Family(false)},
                   .trunks = {{"t", TrunkProgress{.succeeded = true}}}};
  EXPECT_EQ(Schedule(view, {"w", 0, 4}).pick, (Pick{0, 0}));
}

TEST(Schedule, BranchWhoseTrunkIsUnknownNeverRuns) {
  ClusterView view{.sweeps = {Family(false)}};
  EXPECT_FALSE(Schedule(view, {"w", 0, 4}).pick.has_value());
}

TEST(Schedule, WaitingBranchesDoNotBlockTheTrunkOrOtherSweeps) {
  std::vector<std::string> ids;
  SweepQueue family = Family(false);
  family.pending.push_back({"t", 0});  // the trunk, re-queued after them
  ClusterView view{.sweeps = {family, Sweep(ids, "other", 1, 0)},
                   .trunks = {{"t", TrunkProgress{}}}};
  EXPECT_EQ(Schedule(view, {"w", 0, 4}).pick, (Pick{0, 2}));
  view.sweeps[0].pending.pop_back();
  EXPECT_EQ(Schedule(view, {"w", 0, 4}).pick, (Pick{1, 0}));
}

TEST(Schedule, WaitingGpuBranchIsNotTheHeadAndReservesNothing) {
  SweepQueue s;
  s.pending.push_back(
      {"b0", 8, "", 0, "t", 10});  // would need the whole worker
  s.pending.push_back({"small", 1});
  ClusterView view{.sweeps = {s},
                   .workers = {{"w1", 8, 8}},
                   .trunks = {{"t", TrunkProgress{}}}};
  const Decision d = Schedule(view, {"w1", 8, 0});
  EXPECT_EQ(d.pick, (Pick{0, 1}));
  EXPECT_FALSE(d.reservation.has_value());
}

using Share = Decision::GangShare;

// Two one-slot CPU workers; the asker is w1.
ClusterView TwoCpuWorkers(std::vector<std::string>& ids, uint32_t ranks) {
  ids.reserve(100);
  ids.push_back("g0");
  SweepQueue s;
  s.pending.push_back({.trial_id = ids.back(), .cpu_ranks = ranks});
  return {
      .sweeps = {s},
      .workers = {{.worker_id = "w1", .cpu_slots = 1, .free_cpu_slots = 1},
                  {.worker_id = "w2", .cpu_slots = 1, .free_cpu_slots = 1}}};
}

TEST(Units, GpusElseCpuRanksAtLeastOne) {
  EXPECT_EQ(Units({.gpus = 3, .cpu_ranks = 5}), 3u);
  EXPECT_EQ(Units({.cpu_ranks = 2}), 2u);
  EXPECT_EQ(Units({}), 1u);
}

TEST(Schedule, CpuTrialBiggerThanEveryWorkerIsGangLeasedAskerFirst) {
  std::vector<std::string> ids;
  const ClusterView view = TwoCpuWorkers(ids, 2);
  const Decision d =
      Schedule(view, {.worker_id = "w2", .free_gpus = 0, .free_cpu_slots = 1});
  EXPECT_EQ(d.pick, (Pick{0, 0}));
  EXPECT_EQ(d.gang, (std::vector<Share>{{"w2", 1}, {"w1", 1}}));
}

TEST(Schedule, GangIsAllOrNothing) {
  std::vector<std::string> ids;
  ClusterView view = TwoCpuWorkers(ids, 2);
  view.workers[1].free_cpu_slots = 0;  // w2 busy: 1 of 2 ranks free
  const Decision d =
      Schedule(view, {.worker_id = "w1", .free_gpus = 0, .free_cpu_slots = 1});
  EXPECT_FALSE(d.pick.has_value());
  EXPECT_TRUE(d.gang.empty());
}

TEST(Schedule, TrialOneWorkerCanHostIsNeverGangLeased) {
  std::vector<std::string> ids;
  ClusterView view = TwoCpuWorkers(ids, 2);
  view.workers[1].cpu_slots = 2;  // w2 could run both ranks alone
  const Decision d =
      Schedule(view, {.worker_id = "w1", .free_gpus = 0, .free_cpu_slots = 1});
  EXPECT_FALSE(d.pick.has_value());
  view.workers[1].free_cpu_slots = 2;
  const Decision alone =
      Schedule(view, {.worker_id = "w2", .free_gpus = 0, .free_cpu_slots = 2});
  EXPECT_EQ(alone.pick, (Pick{0, 0}));
  EXPECT_TRUE(alone.gang.empty());
}

TEST(Schedule, GangFillsFromTheWorkersWithTheMostFreeUnits) {
  std::vector<std::string> ids;
  ClusterView view{
      .sweeps = {Sweep(ids, "gang", 1, 5)},
      .workers = {{"w1", 2, 1}, {"w2", 2, 2}, {"w3", 4, 2}, {"w4", 4, 3}}};
  const Decision d = Schedule(view, {"w1", 1, 0});
  EXPECT_EQ(d.pick, (Pick{0, 0}));
  // w1 is rank 0; then w4 (3 free), then w3 (2 free, 4 GPUs) before w2.
  EXPECT_EQ(d.gang, (std::vector<Share>{{"w1", 1}, {"w4", 3}, {"w3", 1}}));
}

TEST(Schedule, GangHeadReservesASetWhoseGpusCoverIt) {
  std::vector<std::string> ids;
  ClusterView view{
      .sweeps = {Sweep(ids, "gang", 1, 4), Sweep(ids, "small", 2, 1)},
      .workers = {{"w1", 2, 0}, {"w2", 2, 0}, {"w3", 2, 2}}};
  // 2 GPUs free: the gang waits. Reserved: w3 (2 free), then w1 (id).
  const Decision d1 = Schedule(view, {"w3", 2, 0});
  EXPECT_FALSE(d1.pick.has_value());
  EXPECT_EQ(d1.reservation, (Reservation{"gang0", "w3", {"w1"}}));
  view.reservation = d1.reservation;
  // w2 is not reserved: it backfills a small trial.
  view.workers[1].free_gpus = 1;
  const Decision d2 = Schedule(view, {"w2", 1, 0});
  EXPECT_EQ(d2.pick, (Pick{1, 0}));
  EXPECT_TRUE(d2.gang.empty());
  EXPECT_EQ(d2.reservation, (Reservation{"gang0", "w3", {"w1"}}));
  // w1's GPUs free: the reserved set has 4 free, the head starts.
  view.workers[0].free_gpus = 2;
  view.workers[1].free_gpus = 0;
  const Decision d3 = Schedule(view, {"w1", 2, 0});
  EXPECT_EQ(d3.pick, (Pick{0, 0}));
  EXPECT_EQ(d3.gang, (std::vector<Share>{{"w1", 2}, {"w3", 2}}));
  EXPECT_FALSE(d3.reservation.has_value());
}

TEST(Schedule, GangReservationIsKeptWhileItsWorkersStayAndCoverIt) {
  std::vector<std::string> ids;
  ClusterView view{.sweeps = {Sweep(ids, "gang", 1, 4)},
                   .workers = {{"w1", 2, 0}, {"w2", 2, 0}, {"w3", 2, 2}},
                   .reservation = Reservation{"gang0", "w1", {"w2"}}};
  EXPECT_EQ(Schedule(view, {"w3", 2, 0}).reservation,
            (Reservation{"gang0", "w1", {"w2"}}));
  view.workers.erase(view.workers.begin() + 1);  // w2 drained
  EXPECT_EQ(Schedule(view, {"w3", 2, 0}).reservation,
            (Reservation{"gang0", "w3", {"w1"}}));
}

TEST(Schedule, GangBehindTheHeadTakesNoReservedWorker) {
  std::vector<std::string> ids;
  ClusterView view{
      .sweeps = {Sweep(ids, "big", 1, 4), Sweep(ids, "gang", 1, 5)},
      .workers = {{"w1", 4, 1}, {"w2", 3, 2}, {"w3", 3, 3}}};
  // big (fits w1 alone) holds w1; the 5-GPU gang may use w2 and w3 only.
  const Decision d = Schedule(view, {"w2", 2, 0});
  EXPECT_EQ(d.reservation, (Reservation{"big0", "w1"}));
  EXPECT_EQ(d.pick, (Pick{1, 0}));
  EXPECT_EQ(d.gang, (std::vector<Share>{{"w2", 2}, {"w3", 3}}));
  view.workers[2].free_gpus = 2;  // w2 + w3 have 4: w1's free GPU is held
  EXPECT_FALSE(Schedule(view, {"w2", 2, 0}).pick.has_value());
}

TEST(BranchOnTrunkEnd, BranchesWaitForARequeuedTrunkAndEndWithAnEndedOne) {
  EXPECT_EQ(BranchOnTrunkEnd(TrunkEnd::kRequeued), BranchFate::kWait);
  EXPECT_EQ(BranchOnTrunkEnd(TrunkEnd::kSucceeded), BranchFate::kWait);
  EXPECT_EQ(BranchOnTrunkEnd(TrunkEnd::kFailed), BranchFate::kFail);
  EXPECT_EQ(BranchOnTrunkEnd(TrunkEnd::kCancelled), BranchFate::kCancel);
}

}  // namespace
}  // namespace isoflop::coordinator
