// Gang leases in the core (docs/architecture.md §2.3): a trial of more ranks
// than any worker has is leased across several workers at once, each told
// its ranks and rank 0's rendezvous address; losing any one ends it on all.
#include <memory>
#include <string>

#include "common/fake_clock.h"
#include "coordinator/service/core.h"
#include "coordinator/store/fake_trial_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::SmallConfig;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kTtl = absl::Seconds(30);

class GangLeaseTest : public ::testing::Test {
 protected:
  GangLeaseTest()
      : core_(std::make_unique<Core>(
            &store_, &clock_,
            CoreOptions{.lease_ttl = kTtl, .heartbeat_interval = kTtl})) {}

  // A sweep of 2-rank CPU trials.
  std::string Submit(uint32_t ranks = 2) {
    v1::SubmitSweepRequest request;
    *request.mutable_config() = SmallConfig();
    request.mutable_config()->mutable_resources()->set_cpu_ranks_per_trial(
        ranks);
    return core_->Submit(request).value().sweep_id();
  }
  void Register(const std::string& id, uint32_t cpu_slots,
                const std::string& host = "") {
    v1::RegisterWorkerRequest request;
    request.set_worker_id(id);
    request.mutable_resources()->set_cpu_slots(cpu_slots);
    request.mutable_resources()->set_hostname(id + ".cluster");
    request.mutable_resources()->set_rendezvous_host(host);
    request.mutable_resources()->set_rendezvous_port_first(4000);
    request.mutable_resources()->set_rendezvous_port_count(10);
    ASSERT_TRUE(core_->RegisterWorker(request).ok());
  }
  v1::LeaseTrialResponse Lease(const std::string& worker, uint32_t free) {
    v1::LeaseTrialRequest request;
    request.set_worker_id(worker);
    request.set_free_cpu_slots(free);
    return core_->LeaseTrial(request).value();
  }
  static v1::LeaseRef Ref(const v1::LeaseTrialResponse& lease) {
    v1::LeaseRef ref;
    ref.set_trial_id(lease.spec().trial_id());
    ref.set_attempt(lease.attempt());
    ref.set_lease_epoch(lease.lease_epoch());
    return ref;
  }
  // The leases of `lease`'s trial that a heartbeat of `worker` finds revoked.
  int Revoked(const std::string& worker, const v1::LeaseTrialResponse& lease) {
    v1::HeartbeatRequest request;
    request.set_worker_id(worker);
    *request.add_leases() = Ref(lease);
    return core_->Heartbeat(request).value().revoked_size();
  }
  absl::Status Outcome(const std::string& worker,
                       const v1::LeaseTrialResponse& lease, v1::Outcome o) {
    v1::ReportOutcomeRequest request;
    request.set_worker_id(worker);
    *request.mutable_lease() = Ref(lease);
    request.set_outcome(o);
    request.set_final_val_loss(o == v1::OUTCOME_SUCCEEDED ? 3.5 : 0);
    request.set_exit_code(o == v1::OUTCOME_SUCCEEDED ? 0 : 1);
    request.set_message("rendezvous store closed");
    return core_->ReportOutcome(request);
  }
  v1::Trial TrialOf(const std::string& sweep, const std::string& trial) {
    const v1::Sweep s = core_->GetSweep(sweep).value();
    for (const v1::Trial& t : s.trials()) {
      if (t.spec().trial_id() == trial) return t;
    }
    ADD_FAILURE() << "no trial " << trial;
    return {};
  }

  FakeClock clock_;
  FakeTrialStore store_;
  std::unique_ptr<Core> core_;
};

TEST_F(GangLeaseTest, RanksAreSharedAcrossWorkersWithRankZerosAddress) {
  Submit();
  Register("wk-a", 1, "10.0.0.1");
  Register("wk-b", 1);
  const v1::LeaseTrialResponse a = Lease("wk-a", 1);
  ASSERT_TRUE(a.has_assignment());
  EXPECT_EQ(a.spec().cpu_ranks(), 2u);
  EXPECT_EQ(a.ranks().world_size(), 2u);
  EXPECT_EQ(a.ranks().first_rank(), 0u);
  EXPECT_EQ(a.ranks().local_ranks(), 1u);
  EXPECT_EQ(a.ranks().master_addr(), "10.0.0.1");
  EXPECT_GE(a.ranks().master_port(), 4000u);
  EXPECT_LE(a.ranks().master_port(), 4009u);
  EXPECT_THAT(a.ranks().gang_worker_ids(), ElementsAre("wk-a", "wk-b"));
  // wk-b's share of the same attempt waits for its next LeaseTrial.
  const v1::LeaseTrialResponse b = Lease("wk-b", 1);
  ASSERT_TRUE(b.has_assignment());
  EXPECT_EQ(b.spec().trial_id(), a.spec().trial_id());
  EXPECT_EQ(b.attempt(), a.attempt());
  EXPECT_EQ(b.lease_epoch(), a.lease_epoch());
  EXPECT_EQ(b.ranks().first_rank(), 1u);
  EXPECT_EQ(b.ranks().local_ranks(), 1u);
  EXPECT_EQ(b.ranks().master_addr(), "10.0.0.1");
  EXPECT_EQ(b.ranks().master_port(), a.ranks().master_port());
  // Both hold the lease (ListWorkers) and both renew it.
  const v1::ListWorkersResponse workers = core_->ListWorkers();
  for (const v1::Worker& w : workers.workers()) {
    EXPECT_THAT(w.running_trial_ids(), ElementsAre(a.spec().trial_id()));
  }
  clock_.Advance(kTtl - absl::Seconds(1));
  EXPECT_EQ(Revoked("wk-a", a), 0);
  EXPECT_EQ(Revoked("wk-b", b), 0);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(core_->ReapExpiredLeases(clock_.Now()), 0);
}

TEST_F(GangLeaseTest, OneWorkerWithTheSlotsRunsAllRanksItself) {
  Submit();
  Register("wk-a", 2);  // no hostname override: its hostname
  const v1::LeaseTrialResponse a = Lease("wk-a", 2);
  ASSERT_TRUE(a.has_assignment());
  EXPECT_EQ(a.ranks().world_size(), 2u);
  EXPECT_EQ(a.ranks().local_ranks(), 2u);
  EXPECT_EQ(a.ranks().master_addr(), "wk-a.cluster");
  EXPECT_THAT(a.ranks().gang_worker_ids(), ElementsAre("wk-a"));
}

TEST_F(GangLeaseTest, ASilentPeerEndsTheTrialOnEveryWorker) {
  const std::string sweep = Submit();
  Register("wk-a", 1);
  Register("wk-b", 1);
  const v1::LeaseTrialResponse a = Lease("wk-a", 1);
  const v1::LeaseTrialResponse b = Lease("wk-b", 1);
  // wk-b goes silent; wk-a keeps renewing.
  clock_.Advance(kTtl - absl::Seconds(1));
  EXPECT_EQ(Revoked("wk-a", a), 0);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(core_->ReapExpiredLeases(clock_.Now()), 1);
  const v1::Trial t = TrialOf(sweep, a.spec().trial_id());
  EXPECT_EQ(t.state(), v1::PENDING);
  EXPECT_THAT(t.error(), HasSubstr("worker wk-b"));
  EXPECT_THAT(t.error(), HasSubstr("gang of 2 workers"));
  EXPECT_EQ(Revoked("wk-a", a), 1);  // rank 0 is stopped too
}

TEST_F(GangLeaseTest, APeersFailureRequeuesAndOnlyRankZeroReportsSuccess) {
  const std::string sweep = Submit();
  Register("wk-a", 1);
  Register("wk-b", 1);
  const v1::LeaseTrialResponse a = Lease("wk-a", 1);
  const v1::LeaseTrialResponse b = Lease("wk-b", 1);
  const absl::Status success = Outcome("wk-b", b, v1::OUTCOME_SUCCEEDED);
  EXPECT_TRUE(absl::IsInvalidArgument(success)) << success;
  EXPECT_THAT(success.message(), HasSubstr("only rank 0's worker (wk-a)"));
  // The peer's rank died (exit 1): retried, not failed, and rank 0 stops.
  ASSERT_TRUE(Outcome("wk-b", b, v1::OUTCOME_FAILED).ok());
  const v1::Trial t = TrialOf(sweep, a.spec().trial_id());
  EXPECT_EQ(t.state(), v1::PENDING);
  EXPECT_THAT(t.error(), HasSubstr("gang peer wk-b: OUTCOME_FAILED"));
  EXPECT_EQ(store_.AttemptOutcome(a.spec().trial_id(), 1), "OUTCOME_RETRYABLE");
  EXPECT_EQ(Revoked("wk-a", a), 1);
  EXPECT_TRUE(absl::IsAborted(Outcome("wk-a", a, v1::OUTCOME_RETRYABLE)));
}

TEST_F(GangLeaseTest, RankZerosSuccessEndsTheTrialAndRevokesThePeer) {
  const std::string sweep = Submit();
  Register("wk-a", 1);
  Register("wk-b", 1);
  const v1::LeaseTrialResponse a = Lease("wk-a", 1);
  const v1::LeaseTrialResponse b = Lease("wk-b", 1);
  ASSERT_TRUE(Outcome("wk-a", a, v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(TrialOf(sweep, a.spec().trial_id()).state(), v1::SUCCEEDED);
  EXPECT_EQ(Revoked("wk-b", b), 1);
}

TEST_F(GangLeaseTest, GangWaitsWhileThePeersSlotIsLeased) {
  // A 2-rank sweep first, then a 1-rank one. wk-b alone cannot host the gang:
  // it takes a 1-rank trial. Then wk-a's 1 free slot and wk-b's 0 do not
  // cover 2 ranks (all or nothing): wk-a takes a 1-rank trial too.
  Submit();
  v1::SubmitSweepRequest one;
  *one.mutable_config() = SmallConfig();
  one.mutable_config()->set_name("one-rank");
  ASSERT_TRUE(core_->Submit(one).ok());
  Register("wk-b", 1);
  const v1::LeaseTrialResponse single = Lease("wk-b", 1);
  ASSERT_TRUE(single.has_assignment());
  EXPECT_FALSE(single.has_ranks());
  EXPECT_EQ(single.spec().cpu_ranks(), 0u);
  Register("wk-a", 1);
  const v1::LeaseTrialResponse next = Lease("wk-a", 1);
  ASSERT_TRUE(next.has_assignment());
  EXPECT_FALSE(next.has_ranks());
  EXPECT_EQ(next.spec().cpu_ranks(), 0u);
}

}  // namespace
}  // namespace isoflop::coordinator
