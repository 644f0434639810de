#include "coordinator/service/core.h"

#include <cmath>
#include <memory>
#include <string>

#include "absl/strings/str_join.h"
#include "analysis/approach3.h"
#include "analysis/flops.h"
#include "common/fake_clock.h"
#include "common/flops.h"
#include "coordinator/store/fake_trial_store.h"
#include "coordinator/store/sqlite_trial_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::FreshDir;
using ::isoflop::coordinator::testing::SmallConfig;
using ::testing::HasSubstr;

constexpr absl::Duration kTtl = absl::Seconds(30);

// The law the fake trainer "measures": L = E + A / N^alpha + B / D^beta.
double Law(const v1::TrialSpec& s) {
  return 2.0 + 300.0 / std::pow(static_cast<double>(s.n_total()), 0.4) +
         500.0 / std::pow(static_cast<double>(s.tokens()), 0.3);
}

class CoreTest : public ::testing::Test {
 protected:
  // The fits start from 243 points (grid:2), not Chinchilla's 4500: the fake
  // trainer's losses follow Law exactly, so both find it, and a fitted case
  // takes seconds under ASan, not half a minute. The coordinator's default
  // grid runs in the integration tests (coordinator_process_test, SweepE2E).
  CoreTest() : core_(std::make_unique<Core>(&store_, &clock_, Options())) {}
  static CoreOptions Options() {
    return {.lease_ttl = kTtl,
            .heartbeat_interval = kTtl,
            .fit_starts = *analysis::StartsFromSpec("grid:2")};
  }

  std::string Submit(v1::SweepConfig config = SmallConfig()) {
    v1::SubmitSweepRequest request;
    *request.mutable_config() = std::move(config);
    absl::StatusOr<v1::SubmitSweepResponse> r = core_->Submit(request);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->sweep_id() : "";
  }
  std::string Register(const std::string& id = "wk-a", uint32_t cpu_slots = 8) {
    v1::RegisterWorkerRequest request;
    request.set_worker_id(id);
    request.mutable_resources()->set_cpu_slots(cpu_slots);
    return core_->RegisterWorker(request).value().worker_id();
  }
  v1::LeaseTrialResponse Lease(const std::string& worker = "wk-a",
                               uint32_t free_slots = 1) {
    v1::LeaseTrialRequest request;
    request.set_worker_id(worker);
    request.set_free_cpu_slots(free_slots);
    absl::StatusOr<v1::LeaseTrialResponse> r = core_->LeaseTrial(request);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(v1::LeaseTrialResponse());
  }
  static v1::LeaseRef Ref(const v1::LeaseTrialResponse& lease) {
    v1::LeaseRef ref;
    ref.set_trial_id(lease.spec().trial_id());
    ref.set_attempt(lease.attempt());
    ref.set_lease_epoch(lease.lease_epoch());
    return ref;
  }
  absl::Status Outcome(const v1::LeaseTrialResponse& lease, v1::Outcome outcome,
                       double val_loss = std::nan(""),
                       const std::string& worker = "wk-a") {
    v1::ReportOutcomeRequest request;
    request.set_worker_id(worker);
    *request.mutable_lease() = Ref(lease);
    request.set_outcome(outcome);
    request.set_final_val_loss(val_loss);
    request.set_exit_code(outcome == v1::OUTCOME_SUCCEEDED ? 0 : 75);
    return core_->ReportOutcome(request);
  }
  absl::StatusOr<v1::ReportMetricsResponse> Metrics(
      const v1::LeaseTrialResponse& lease,
      const std::vector<v1::MetricPoint>& points) {
    v1::ReportMetricsRequest request;
    request.set_worker_id("wk-a");
    *request.mutable_lease() = Ref(lease);
    for (auto& p : points) *request.add_points() = p;
    return core_->ReportMetrics(request);
  }
  static v1::MetricPoint Point(uint64_t step, const std::string& name,
                               double value) {
    v1::MetricPoint p;
    p.set_step(step);
    p.set_name(name);
    p.set_value(value);
    return p;
  }
  v1::Trial TrialOf(const std::string& sweep_id, const std::string& trial_id) {
    const v1::Sweep sweep = core_->GetSweep(sweep_id).value();
    for (const v1::Trial& t : sweep.trials()) {
      if (t.spec().trial_id() == trial_id) return t;
    }
    ADD_FAILURE() << "no trial " << trial_id;
    return {};
  }

  FakeClock clock_;
  FakeTrialStore store_;
  std::unique_ptr<Core> core_;
};

TEST_F(CoreTest, SubmittingTheSameConfigTwiceIsIdempotent) {
  const std::string first = Submit();
  const std::string second = Submit();
  EXPECT_EQ(first, second);
  EXPECT_EQ(core_->ListSweeps().sweeps_size(), 1);
  absl::StatusOr<std::vector<SweepRecord>> stored = store_.LoadAll();
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].trials.size(), 6u);
  EXPECT_EQ(core_->GetSweep(first)->trial_counts().at("PENDING"), 6u);
}

TEST_F(CoreTest, ClientChosenIdIsHonouredIdempotentAndRefusedForAnotherConfig) {
  v1::SubmitSweepRequest request;
  *request.mutable_config() = SmallConfig();
  request.set_id("my-sweep.v1");
  absl::StatusOr<v1::SubmitSweepResponse> first = core_->Submit(request);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->sweep_id(), "my-sweep.v1");
  EXPECT_EQ(first->n_trials(), 6u);
  // The same config under the same id: the stored sweep, nothing written.
  EXPECT_EQ(core_->Submit(request)->sweep_id(), "my-sweep.v1");
  EXPECT_EQ(store_.LoadAll()->size(), 1u);
  // Without the id, the same config is another sweep with other trial ids.
  const std::string derived = Submit();
  EXPECT_NE(derived, "my-sweep.v1");
  EXPECT_NE(core_->GetSweep(derived)->trials(0).spec().trial_id(),
            core_->GetSweep("my-sweep.v1")->trials(0).spec().trial_id());
  // Other scheduling under the same id: the same sweep, its scheduling
  // updated.
  v1::SubmitSweepRequest rescheduled = request;
  rescheduled.mutable_config()->mutable_scheduling()->set_priority(9);
  EXPECT_EQ(core_->Submit(rescheduled)->sweep_id(), "my-sweep.v1");
  EXPECT_EQ(core_->GetSweep("my-sweep.v1")->config().scheduling().priority(),
            9);
  // Another config under a used id, client-chosen or derived.
  v1::SubmitSweepRequest other = request;
  other.mutable_config()->mutable_training()->set_lr(3e-3);
  absl::StatusOr<v1::SubmitSweepResponse> clash = core_->Submit(other);
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(clash.status().message()),
              HasSubstr("id = \"my-sweep.v1\": sweep my-sweep.v1 (\"unit\") "
                        "exists with a different config"));
  other.set_id(derived);
  EXPECT_EQ(core_->Submit(other).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_.LoadAll()->size(), 2u);
}

TEST_F(CoreTest, MalformedClientIdsAreRefusedNamingTheRule) {
  for (const std::string& id :
       {std::string("-leading-dash"), std::string("has space"),
        std::string("slash/y"), std::string(65, 'a'),
        std::string("\xc3\xa9")}) {
    v1::SubmitSweepRequest request;
    *request.mutable_config() = SmallConfig();
    request.set_id(id);
    absl::StatusOr<v1::SubmitSweepResponse> r = core_->Submit(request);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << id;
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("must be 1 to 64 of [A-Za-z0-9_.-], starting with a "
                          "letter or digit"))
        << id;
  }
  EXPECT_EQ(store_.LoadAll()->size(), 0u);
}

TEST_F(CoreTest, ResubmittingWithOtherSchedulingUpdatesTheSweep) {
  const std::string id = Submit();
  v1::SweepConfig config = SmallConfig();
  config.mutable_scheduling()->set_priority(7);
  config.mutable_scheduling()->set_max_concurrent_trials(2);
  EXPECT_EQ(Submit(config), id);
  EXPECT_EQ(core_->ListSweeps().sweeps_size(), 1);
  EXPECT_EQ(core_->GetSweep(id)->config().scheduling().priority(), 7);
  absl::StatusOr<std::vector<SweepRecord>> stored = store_.LoadAll();
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].sweep.config().scheduling().max_concurrent_trials(),
            2u);
}

// Two 4-GPU workers, a sweep of 4-GPU trials and then one of 1-GPU trials:
// the core counts each worker's leased GPUs, so the next 4-GPU trial (the
// head) holds the worker with GPUs free and no 1-GPU trial takes them.
TEST_F(CoreTest, GpuTrialsLeaseAllTheirGpusOnOneWorker) {
  v1::SweepConfig big = SmallConfig();
  big.set_name("big");
  big.mutable_resources()->set_gpus_per_trial(4);
  v1::SweepConfig small = SmallConfig();
  small.set_name("small");
  small.mutable_resources()->set_gpus_per_trial(1);
  Submit(big);
  Submit(small);
  for (const char* id : {"wk-1", "wk-2"}) {
    v1::RegisterWorkerRequest request;
    request.set_worker_id(id);
    request.mutable_resources()->set_gpus(4);
    ASSERT_TRUE(core_->RegisterWorker(request).ok());
  }
  auto lease = [&](const std::string& worker, uint32_t free_gpus) {
    v1::LeaseTrialRequest request;
    request.set_worker_id(worker);
    request.set_free_gpus(free_gpus);
    return core_->LeaseTrial(request).value();
  };
  EXPECT_EQ(lease("wk-1", 4).spec().gpus(), 4u);  // a big trial, all 4
  // wk-2 has 3 free: the next big trial is the head and holds wk-2 (wk-1 has
  // none free), so no small trial lands there.
  EXPECT_FALSE(lease("wk-2", 3).has_assignment());
  EXPECT_EQ(lease("wk-2", 4).spec().gpus(), 4u);
}

TEST_F(CoreTest, UnknownSweepIsNotFoundAndEmptyIdIsInvalid) {
  EXPECT_EQ(core_->GetSweep("sw-nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->GetSweep("").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->CancelSweep("sw-nope").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoreTest, LeasesPendingTrialsInSubmitOrderWithFreshEpochs) {
  const std::string sweep = Submit();
  Register();
  const v1::Sweep view = core_->GetSweep(sweep).value();
  const v1::LeaseTrialResponse a = Lease();
  const v1::LeaseTrialResponse b = Lease();
  ASSERT_TRUE(a.has_assignment() && b.has_assignment());
  EXPECT_EQ(a.spec().trial_id(), view.trials(0).spec().trial_id());
  EXPECT_EQ(b.spec().trial_id(), view.trials(1).spec().trial_id());
  EXPECT_EQ(a.attempt(), 1u);
  EXPECT_LT(a.lease_epoch(), b.lease_epoch());
  EXPECT_EQ(a.lease_expires_unix_ms(), absl::ToUnixMillis(clock_.Now() + kTtl));
  EXPECT_EQ(TrialOf(sweep, a.spec().trial_id()).state(), v1::LEASED);
  EXPECT_FALSE(Lease("wk-a", /*free_slots=*/0).has_assignment());
}

TEST_F(CoreTest, UnregisteredWorkerCannotLease) {
  Submit();
  v1::LeaseTrialRequest request;
  request.set_worker_id("wk-ghost");
  request.set_free_cpu_slots(1);
  EXPECT_EQ(core_->LeaseTrial(request).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoreTest, WorkerOfferingNothingIsRefused) {
  v1::RegisterWorkerRequest request;
  absl::StatusOr<v1::RegisterWorkerResponse> r = core_->RegisterWorker(request);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("resources.cpu_slots = 0"));
}

TEST_F(CoreTest, RegisterAssignsAnIdAndTellsTheTimings) {
  v1::RegisterWorkerRequest request;
  request.mutable_resources()->set_cpu_slots(2);
  absl::StatusOr<v1::RegisterWorkerResponse> r = core_->RegisterWorker(request);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->worker_id(), ::testing::StartsWith("wk-"));
  EXPECT_EQ(r->lease_ttl_ms(), 30000);
  // The fixture's heartbeat interval (= TTL, so lease-expiry tests are not
  // pre-empted by worker-loss detection).
  EXPECT_EQ(r->heartbeat_interval_ms(), 30000);
}

TEST_F(CoreTest, ExpiredLeaseRequeuesThenFailsAfterMaxAttempts) {
  const std::string sweep = Submit();  // max_attempts 2
  Register();
  const v1::LeaseTrialResponse first = Lease();
  clock_.Advance(kTtl - absl::Seconds(1));
  EXPECT_EQ(core_->ReapExpiredLeases(clock_.Now()), 0);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(core_->ReapExpiredLeases(clock_.Now()), 1);
  v1::Trial t = TrialOf(sweep, first.spec().trial_id());
  EXPECT_EQ(t.state(), v1::PENDING);
  EXPECT_THAT(t.error(), HasSubstr("lease expired"));
  EXPECT_EQ(store_.AttemptOutcome(first.spec().trial_id(), 1), "LEASE_EXPIRED");

  const v1::LeaseTrialResponse second = Lease();
  EXPECT_EQ(second.spec().trial_id(), first.spec().trial_id());
  EXPECT_EQ(second.attempt(), 2u);
  clock_.Advance(kTtl);
  EXPECT_EQ(core_->ReapExpiredLeases(clock_.Now()), 1);
  t = TrialOf(sweep, first.spec().trial_id());
  EXPECT_EQ(t.state(), v1::FAILED);
  EXPECT_THAT(t.error(), HasSubstr("(attempt 2 of 2)"));
}

// Split brain (issue 18): a worker silent for 3 heartbeats is reported lost,
// but its trial is re-queued only once its lease has expired, a full TTL
// after the last renewal: by then the old trainer's watchdog has stopped it.
TEST(CoreLiveness, SilentWorkerIsLostButItsTrialWaitsForTheLeaseToExpire) {
  FakeTrialStore store;
  FakeClock clock;
  Core core(&store, &clock,
            CoreOptions{.lease_ttl = absl::Seconds(30),
                        .heartbeat_interval = absl::Seconds(2)});
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = SmallConfig();
  const std::string sweep = core.Submit(submit).value().sweep_id();
  for (const char* id : {"wk-a", "wk-b"}) {
    v1::RegisterWorkerRequest r;
    r.set_worker_id(id);
    r.mutable_resources()->set_cpu_slots(1);
    ASSERT_TRUE(core.RegisterWorker(r).ok());
  }
  v1::LeaseTrialRequest lease_a;
  lease_a.set_worker_id("wk-a");
  lease_a.set_free_cpu_slots(1);
  const v1::LeaseTrialResponse a = core.LeaseTrial(lease_a).value();
  ASSERT_TRUE(a.has_assignment());
  v1::HeartbeatRequest hb_a;  // the last renewal, 1 s after the lease
  hb_a.set_worker_id("wk-a");
  v1::LeaseRef* ref = hb_a.add_leases();
  ref->set_trial_id(a.spec().trial_id());
  ref->set_attempt(a.attempt());
  ref->set_lease_epoch(a.lease_epoch());
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(core.Heartbeat(hb_a).ok());
  v1::HeartbeatRequest hb_b;  // wk-b stays alive, wk-a goes silent
  hb_b.set_worker_id("wk-b");
  for (int i = 0; i < 15; ++i) {  // 29.9 s of silence
    clock.Advance(i < 14 ? absl::Seconds(2) : absl::Seconds(1.9));
    ASSERT_TRUE(core.Heartbeat(hb_b).ok());
    EXPECT_EQ(core.ReapExpiredLeases(clock.Now()), 0) << i;
  }
  EXPECT_EQ(core.ListWorkers().workers(0).state(), v1::WORKER_LOST);
  clock.Advance(absl::Seconds(0.1));  // 30 s since the last renewal
  EXPECT_EQ(core.ReapExpiredLeases(clock.Now()), 1);
  const v1::Sweep s = core.GetSweep(sweep).value();
  for (const v1::Trial& t : s.trials()) {
    if (t.spec().trial_id() != a.spec().trial_id()) continue;
    EXPECT_EQ(t.state(), v1::PENDING);
    EXPECT_THAT(t.error(), HasSubstr("worker wk-a lost: silent for 30s"));
    EXPECT_THAT(t.error(), HasSubstr("lease expired"));
    EXPECT_THAT(t.error(), HasSubstr("watchdog has fenced it"));
  }
  EXPECT_EQ(store.AttemptOutcome(a.spec().trial_id(), 1), "LEASE_EXPIRED");
  v1::LeaseTrialRequest lease_b;
  lease_b.set_worker_id("wk-b");
  lease_b.set_free_cpu_slots(1);
  const v1::LeaseTrialResponse b = core.LeaseTrial(lease_b).value();
  EXPECT_EQ(b.spec().trial_id(), a.spec().trial_id());
  EXPECT_EQ(b.attempt(), 2u);
  EXPECT_GT(b.lease_epoch(), a.lease_epoch());
}

TEST_F(CoreTest, DrainingWorkerGetsNoLeaseWhileAnotherDoes) {
  Submit();
  Register("wk-a");
  Register("wk-b");
  const v1::LeaseTrialResponse running = Lease("wk-a");
  ASSERT_TRUE(running.has_assignment());

  absl::StatusOr<v1::Worker> drained = core_->SetWorkerDraining("wk-a", true);
  ASSERT_TRUE(drained.ok()) << drained.status();
  EXPECT_EQ(drained->state(), v1::WORKER_DRAINING);
  EXPECT_THAT(drained->running_trial_ids(),
              ::testing::ElementsAre(running.spec().trial_id()));
  EXPECT_FALSE(Lease("wk-a").has_assignment());
  EXPECT_TRUE(Lease("wk-b").has_assignment());
  // Its running trial still finishes; it still gets nothing new.
  EXPECT_TRUE(Outcome(running, v1::OUTCOME_SUCCEEDED, 3.5).ok());
  EXPECT_FALSE(Lease("wk-a").has_assignment());
  Register("wk-a");  // registering again does not undrain it
  EXPECT_FALSE(Lease("wk-a").has_assignment());

  ASSERT_TRUE(core_->SetWorkerDraining("wk-a", false).ok());
  EXPECT_TRUE(Lease("wk-a").has_assignment());
}

TEST_F(CoreTest, ListWorkersShowsResourcesTrialsAgeAndState) {
  Submit();
  v1::RegisterWorkerRequest request;
  request.set_worker_id("wk-a");
  request.mutable_resources()->set_hostname("host-a");
  request.mutable_resources()->set_gpus(2);
  request.mutable_resources()->set_cpu_slots(4);
  ASSERT_TRUE(core_->RegisterWorker(request).ok());
  Register("wk-b");
  Register("wk-c");
  const v1::LeaseTrialResponse lease = Lease("wk-a");
  ASSERT_TRUE(core_->SetWorkerDraining("wk-b", true).ok());
  clock_.Advance(absl::Seconds(1));

  v1::ListWorkersResponse list = core_->ListWorkers();
  ASSERT_EQ(list.workers_size(), 3);
  const v1::Worker& a = list.workers(0);
  EXPECT_EQ(a.worker_id(), "wk-a");
  EXPECT_EQ(a.resources().hostname(), "host-a");
  EXPECT_EQ(a.resources().gpus(), 2u);
  EXPECT_EQ(a.state(), v1::WORKER_LIVE);
  EXPECT_THAT(a.running_trial_ids(),
              ::testing::ElementsAre(lease.spec().trial_id()));
  EXPECT_EQ(a.heartbeat_age_ms(), 1000);
  EXPECT_EQ(list.workers(1).state(), v1::WORKER_DRAINING);
  EXPECT_TRUE(list.workers(1).draining());
  EXPECT_EQ(list.workers(2).state(), v1::WORKER_LIVE);

  // Silent for 3 heartbeat intervals (kTtl each here): lost, still drained.
  clock_.Advance(3 * kTtl);
  list = core_->ListWorkers();
  EXPECT_EQ(list.workers(1).state(), v1::WORKER_LOST);
  EXPECT_TRUE(list.workers(1).draining());
}

TEST_F(CoreTest, DrainNamesABadOrUnknownWorker) {
  EXPECT_THAT(
      core_->SetWorkerDraining("", true).status(),
      ::testing::AllOf(::testing::Property(&absl::Status::code,
                                           absl::StatusCode::kInvalidArgument),
                       ::testing::Property(&absl::Status::message,
                                           HasSubstr("worker_id = \"\""))));
  const absl::Status unknown =
      core_->SetWorkerDraining("wk-nope", true).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.message(), HasSubstr("wk-nope"));
}

TEST_F(CoreTest, HeartbeatsKeepTheLeaseAlive) {
  const std::string sweep = Submit();
  Register();
  const v1::LeaseTrialResponse lease = Lease();
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(kTtl / 2);
    v1::HeartbeatRequest hb;
    hb.set_worker_id("wk-a");
    *hb.add_leases() = Ref(lease);
    absl::StatusOr<v1::HeartbeatResponse> r = core_->Heartbeat(hb);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->revoked_size(), 0);
    EXPECT_EQ(core_->ReapExpiredLeases(clock_.Now()), 0);
  }
  EXPECT_EQ(TrialOf(sweep, lease.spec().trial_id()).state(), v1::LEASED);
}

// A worker leaving for good (docs/cluster.md) is refused while it holds a
// lease, then forgotten: gone from ListWorkers and the workers table, and its
// next call must register again.
TEST_F(CoreTest, LeavingWorkerIsForgottenOnceItHoldsNoLease) {
  Submit();
  Register("wk-a");
  Register("wk-b");
  const v1::LeaseTrialResponse lease = Lease();
  v1::HeartbeatRequest leaving;
  leaving.set_worker_id("wk-a");
  leaving.set_leaving(true);
  absl::StatusOr<v1::HeartbeatResponse> refused = core_->Heartbeat(leaving);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr(lease.spec().trial_id()));
  v1::HeartbeatRequest with_lease = leaving;
  *with_lease.add_leases() = Ref(lease);
  EXPECT_EQ(core_->Heartbeat(with_lease).status().code(),
            absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(Outcome(lease, v1::OUTCOME_RETRYABLE).ok());
  ASSERT_TRUE(core_->Heartbeat(leaving).ok());
  const v1::ListWorkersResponse workers = core_->ListWorkers();
  ASSERT_EQ(workers.workers_size(), 1);
  EXPECT_EQ(workers.workers(0).worker_id(), "wk-b");
  const std::vector<WorkerRecord> stored = store_.LoadWorkers().value();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].worker_id, "wk-b");
  v1::LeaseTrialRequest again;
  again.set_worker_id("wk-a");
  again.set_free_cpu_slots(1);
  EXPECT_EQ(core_->LeaseTrial(again).status().code(),
            absl::StatusCode::kNotFound);

  // A drained worker is kept, so that it is still drained when it returns.
  ASSERT_TRUE(core_->SetWorkerDraining("wk-b", true).ok());
  leaving.set_worker_id("wk-b");
  ASSERT_TRUE(core_->Heartbeat(leaving).ok());
  ASSERT_EQ(core_->ListWorkers().workers_size(), 1);
  EXPECT_TRUE(core_->ListWorkers().workers(0).draining());
}

TEST_F(CoreTest, StaleEpochIsAbortedAndRevoked) {
  Submit();
  Register();
  const v1::LeaseTrialResponse old = Lease();
  clock_.Advance(kTtl);
  core_->ReapExpiredLeases(clock_.Now());
  const v1::LeaseTrialResponse current = Lease();
  ASSERT_EQ(current.spec().trial_id(), old.spec().trial_id());

  absl::Status s = Outcome(old, v1::OUTCOME_SUCCEEDED, 3.0);
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(s.message()), HasSubstr("stale lease"));
  EXPECT_EQ(Metrics(old, {Point(1, "train_loss", 4.0)}).status().code(),
            absl::StatusCode::kAborted);
  v1::HeartbeatRequest hb;
  hb.set_worker_id("wk-a");
  *hb.add_leases() = Ref(old);
  *hb.add_leases() = Ref(current);
  absl::StatusOr<v1::HeartbeatResponse> r = core_->Heartbeat(hb);
  ASSERT_EQ(r->revoked_size(), 1);
  EXPECT_EQ(r->revoked(0).lease_epoch(), old.lease_epoch());
  EXPECT_TRUE(Outcome(current, v1::OUTCOME_SUCCEEDED, 3.0).ok());
}

TEST_F(CoreTest, OtherWorkersCannotReportOnALease) {
  Submit();
  Register();
  Register("wk-b");
  const v1::LeaseTrialResponse lease = Lease();
  EXPECT_EQ(Outcome(lease, v1::OUTCOME_SUCCEEDED, 3.0, "wk-b").code(),
            absl::StatusCode::kAborted);
}

TEST_F(CoreTest, TrialLogsAreServedFromAnOffsetUntilTheTrialEnds) {
  Submit();
  Register();
  const v1::LeaseTrialResponse lease = Lease();
  const std::string id = lease.spec().trial_id();
  auto report = [&](uint64_t offset, const std::string& data) {
    v1::ReportLogsRequest r;
    r.set_worker_id("wk-a");
    *r.mutable_lease() = Ref(lease);
    r.set_offset(offset);
    r.set_data(data);
    return core_->ReportLogs(r);
  };
  auto get = [&](uint64_t offset, uint32_t attempt = 0) {
    v1::GetTrialLogsRequest r;
    r.set_trial_id(id);
    r.set_offset(offset);
    r.set_attempt(attempt);
    return core_->GetTrialLogs(r);
  };
  EXPECT_EQ(report(0, "step 1\n")->next_offset(), 7u);
  EXPECT_EQ(report(7, "step 2\n")->next_offset(), 14u);
  absl::StatusOr<v1::GetTrialLogsResponse> all = get(0);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->data(), "step 1\nstep 2\n");
  EXPECT_EQ(all->next_offset(), 14u);
  EXPECT_EQ(all->attempt(), 1u);
  EXPECT_EQ(all->latest_attempt(), 1u);
  EXPECT_FALSE(all->finished());
  EXPECT_EQ(get(7)->data(), "step 2\n");
  ASSERT_TRUE(Outcome(lease, v1::OUTCOME_SUCCEEDED, 3.0).ok());
  absl::StatusOr<v1::GetTrialLogsResponse> done = get(14, 1);
  EXPECT_TRUE(done->finished());
  EXPECT_EQ(done->state(), v1::SUCCEEDED);
  EXPECT_EQ(done->data(), "");
  // The lease has ended: a late chunk is refused like a late metric.
  EXPECT_EQ(report(14, "late\n").status().code(), absl::StatusCode::kAborted);
}

TEST_F(CoreTest, TrialLogRequestsAreValidated) {
  Submit();
  Register();
  const v1::LeaseTrialResponse lease = Lease();
  v1::ReportLogsRequest r;
  r.set_worker_id("wk-a");
  *r.mutable_lease() = Ref(lease);
  EXPECT_THAT(core_->ReportLogs(r).status().message(),
              HasSubstr("data: 0 bytes: must be 1 to 65536"));
  r.set_data(std::string(kMaxLogChunkBytes + 1, 'x'));
  EXPECT_EQ(core_->ReportLogs(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r.set_data("x");
  r.set_offset(kMaxLogOffset);
  EXPECT_THAT(core_->ReportLogs(r).status().message(),
              HasSubstr("offset + size must be <= 2^48"));
  r.set_offset(0);
  r.mutable_lease()->set_lease_epoch(lease.lease_epoch() + 1);
  EXPECT_EQ(core_->ReportLogs(r).status().code(), absl::StatusCode::kAborted);

  v1::GetTrialLogsRequest g;
  g.set_trial_id("tr-bad id");
  EXPECT_THAT(core_->GetTrialLogs(g).status().message(),
              HasSubstr("trial_id = \"tr-bad id\": must be 1 to 128 of"));
  g.set_trial_id("tr-none");
  EXPECT_EQ(core_->GetTrialLogs(g).status().code(),
            absl::StatusCode::kNotFound);
  g.set_trial_id(lease.spec().trial_id());
  g.set_attempt(2);
  EXPECT_THAT(core_->GetTrialLogs(g).status().message(),
              HasSubstr("attempt = 2: trial"));
  g.set_attempt(0);
  g.set_offset(kMaxLogOffset);
  EXPECT_THAT(core_->GetTrialLogs(g).status().message(),
              HasSubstr("offset = 281474976710656: must be < 2^48"));
}

TEST_F(CoreTest, SameMetricBatchTwiceStoresOneRowEach) {
  const std::string sweep = Submit();
  Register();
  const v1::LeaseTrialResponse lease = Lease();
  const std::vector<v1::MetricPoint> batch = {Point(10, "train_loss", 5.5),
                                              Point(10, "lr", 1e-3),
                                              Point(20, "train_loss", 5.0)};
  EXPECT_EQ(Metrics(lease, batch).value().accepted(), 3u);
  EXPECT_EQ(Metrics(lease, batch).value().accepted(), 0u);
  EXPECT_EQ(store_.CountMetrics(lease.spec().trial_id(), 1).value(), 3);
  const v1::Trial t = TrialOf(sweep, lease.spec().trial_id());
  EXPECT_EQ(t.state(), v1::RUNNING);
  EXPECT_EQ(t.step(), 20u);
  EXPECT_EQ(t.train_loss(), 5.0);
}

TEST_F(CoreTest, BadMetricPointsRefuseTheWholeBatch) {
  Submit();
  Register();
  const v1::LeaseTrialResponse lease = Lease();
  struct Case {
    v1::MetricPoint point;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {Point(1, "train_loss", std::nan("")),
       "points[1].value = nan: must be finite"},
      {Point(1, "train_loss", INFINITY),
       "points[1].value = inf: must be finite"},
      {Point(1, "", 1.0),
       "points[1].name = \"\": must be 1 to 64 of [a-z0-9_]"},
      {Point(1, "Loss!", 1.0), "points[1].name = \"Loss!\""},
      {Point(lease.spec().steps() + 1, "train_loss", 1.0), "points[1].step = "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected);
    absl::StatusOr<v1::ReportMetricsResponse> r =
        Metrics(lease, {Point(1, "lr", 1e-3), c.point});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.expected));
  }
  EXPECT_EQ(store_.CountMetrics(lease.spec().trial_id(), 1).value(), 0);
}

TEST_F(CoreTest, CancelEndsPendingTrialsAndRevokesRunningOnes) {
  const std::string sweep = Submit();
  Register();
  const v1::LeaseTrialResponse running = Lease();
  absl::StatusOr<v1::Sweep> cancelled = core_->CancelSweep(sweep);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::SWEEP_CANCELLED);
  EXPECT_EQ(cancelled->trial_counts().at("CANCELLED"), 6u);
  EXPECT_FALSE(Lease().has_assignment());

  v1::HeartbeatRequest hb;
  hb.set_worker_id("wk-a");
  *hb.add_leases() = Ref(running);
  absl::StatusOr<v1::HeartbeatResponse> r = core_->Heartbeat(hb);
  ASSERT_EQ(r->revoked_size(), 1);
  EXPECT_EQ(r->revoked(0).trial_id(), running.spec().trial_id());
  EXPECT_EQ(Outcome(running, v1::OUTCOME_CANCELLED).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store_.LoadAll().value()[0].sweep.state(), v1::SWEEP_CANCELLED);
  EXPECT_EQ(core_->RunPendingFits(), 0);
}

TEST_F(CoreTest, RetryableOutcomeRequeuesWhileAttemptsRemain) {
  const std::string sweep = Submit();  // max_attempts 2
  Register();
  const v1::LeaseTrialResponse first = Lease();
  ASSERT_TRUE(Outcome(first, v1::OUTCOME_RETRYABLE).ok());
  EXPECT_EQ(TrialOf(sweep, first.spec().trial_id()).state(), v1::PENDING);
  const v1::LeaseTrialResponse second = Lease();
  ASSERT_EQ(second.spec().trial_id(), first.spec().trial_id());
  ASSERT_TRUE(Outcome(second, v1::OUTCOME_RETRYABLE).ok());
  const v1::Trial t = TrialOf(sweep, first.spec().trial_id());
  EXPECT_EQ(t.state(), v1::FAILED);
  EXPECT_THAT(t.error(), HasSubstr("exit 75"));
}

TEST_F(CoreTest, SuccessNeedsAFiniteValidationLoss) {
  Submit();
  Register();
  const v1::LeaseTrialResponse lease = Lease();
  absl::Status s = Outcome(lease, v1::OUTCOME_SUCCEEDED, std::nan(""));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("final_val_loss = nan"));
}

TEST_F(CoreTest, RefitsAfterTheFifthSuccessThenStoresTheFinalFit) {
  const std::string sweep = Submit();
  Register();
  for (int i = 0; i < 6; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    ASSERT_TRUE(lease.has_assignment());
    // 5 successes so far before the 6th lease: one refit, Approach 3 only.
    EXPECT_EQ(core_->RunPendingFits(), i == 5 ? 1 : 0) << "before trial " << i;
    if (i == 5) {
      const v1::Sweep running = core_->GetSweep(sweep).value();
      EXPECT_EQ(running.state(), v1::SWEEP_RUNNING);
      ASSERT_TRUE(running.has_fit());
      EXPECT_EQ(running.fit().n_points(), 5u);
      EXPECT_FALSE(running.fit().final());
      EXPECT_GT(running.fit().alpha(), 0);
      EXPECT_EQ(running.fit().approach3_samples_size(), 0);
    }
    ASSERT_TRUE(Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())).ok());
  }
  EXPECT_EQ(core_->GetSweep(sweep)->state(), v1::SWEEP_SUCCEEDED);
  // The 6th success queued a refit and the end the final fit: coalesced.
  EXPECT_EQ(core_->RunPendingFits(), 1);
  EXPECT_EQ(core_->RunPendingFits(), 0);

  const v1::Sweep view = core_->GetSweep(sweep).value();
  ASSERT_TRUE(view.has_fit());
  const v1::ScalingLawFit& fit = view.fit();
  EXPECT_EQ(fit.n_points(), 6u);
  EXPECT_TRUE(fit.final());
  EXPECT_TRUE(fit.has_approach2());
  EXPECT_EQ(fit.bootstrap_resamples(), 200u);
  EXPECT_GT(fit.approach3_samples_size(), 100);
  EXPECT_TRUE(fit.ci95().contains("alpha"));
  EXPECT_LE(fit.ci95().at("alpha").low(), fit.ci95().at("alpha").high());
  EXPECT_EQ(fit.n_convention(), "n_total");
  EXPECT_GT(fit.n_starts(), 0u);
  for (const v1::Trial& t :
       view.trials()) {  // the fitted law reproduces every point
    const double n = static_cast<double>(t.spec().n_total());
    const double d = static_cast<double>(t.spec().tokens());
    const double predicted = fit.e() + fit.a() / std::pow(n, fit.alpha()) +
                             fit.b() / std::pow(d, fit.beta());
    EXPECT_NEAR(predicted / t.val_loss(), 1.0, 1e-3);
  }
  EXPECT_TRUE(store_.LoadAll().value()[0].sweep.has_fit());

  v1::OptimalRequest request;
  request.set_flops(1e15);
  absl::StatusOr<v1::OptimalResponse> optimal =
      core_->Optimal(request);  // newest fitted sweep
  ASSERT_TRUE(optimal.ok()) << optimal.status();
  EXPECT_GT(optimal->n_opt(), 0);
  // Issue 20: the answer spends 1e15 under the trials' own FLOPs/token
  // (common/flops.h, interpolated log-log over their N), not 6 N D.
  EXPECT_EQ(optimal->flops_convention(), "exact");
  std::vector<std::pair<double, double>> table;
  for (const v1::Trial& t : view.trials()) {
    table.emplace_back(static_cast<double>(t.spec().n_total()),
                       t.spec().flops_per_token());
  }
  const auto model = analysis::FlopsModel::Interpolated(table);
  ASSERT_TRUE(model.ok());
  EXPECT_NEAR(analysis::ComputeFromParamsTokens(*model, optimal->n_opt(),
                                                optimal->d_opt()) /
                  1e15,
              1.0, 1e-9);
}

TEST_F(CoreTest, FitsReadEachTrialsStoredComputeAndStoreTheConvention) {
  const std::string sweep = Submit();
  Register();
  for (int i = 0; i < 6; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    // Sweep expansion stored the trial's actual C = tokens x FLOPs/token.
    EXPECT_EQ(lease.spec().flops(),
              TrialCompute(lease.spec().flops_per_token(),
                           static_cast<double>(lease.spec().tokens())));
    ASSERT_TRUE(Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())).ok());
  }
  ASSERT_EQ(core_->RunPendingFits(), 1);
  const v1::Sweep view = core_->GetSweep(sweep).value();
  const v1::ScalingLawFit& fit = view.fit();
  EXPECT_EQ(fit.flops().name(), "exact");
  EXPECT_THAT(fit.flops().description(), HasSubstr("FLOPs/token"));
  ASSERT_GT(fit.flops().n_size(), 1);
  for (int i = 0; i < fit.flops().n_size(); ++i) {  // a node per trial shape
    bool found = false;
    for (const v1::Trial& t : view.trials()) {
      found |=
          std::abs(static_cast<double>(t.spec().n_total()) / fit.flops().n(i) -
                   1) < 1e-12 &&
          std::abs(t.spec().flops_per_token() / fit.flops().flops_per_token(i) -
                   1) < 1e-12;
    }
    EXPECT_TRUE(found) << "node " << i;
  }
  // The final fit carries the sensitivity line: 4 rows, N total under
  // both conventions with a value.
  ASSERT_EQ(fit.sensitivity_size(), 4);
  EXPECT_EQ(fit.sensitivity(0).n_convention(), "n_total");
  EXPECT_EQ(fit.sensitivity(0).flops_convention(), "exact");
  EXPECT_TRUE(std::isfinite(fit.sensitivity(0).a()));
  EXPECT_TRUE(std::isfinite(fit.sensitivity(1).a()));
}

TEST_F(CoreTest, OptimalAnswersByParamsAndLossWithIntervals) {
  const std::string sweep = Submit();
  Register();
  for (int i = 0; i < 6; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    ASSERT_TRUE(Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())).ok());
  }
  ASSERT_EQ(core_->RunPendingFits(), 1);
  v1::OptimalRequest by_flops;
  by_flops.set_flops(1e15);
  by_flops.set_sweep_id(sweep);
  const v1::OptimalResponse forward = core_->Optimal(by_flops).value();
  EXPECT_EQ(forward.approach(), 3u);
  EXPECT_EQ(forward.fit().approach3_samples_size(), 0);  // ci95 instead

  v1::OptimalRequest by_params;
  by_params.set_params(forward.n_opt());
  v1::OptimalRequest by_loss;
  by_loss.set_loss(forward.predicted_loss());
  for (const v1::OptimalRequest& request : {by_params, by_loss}) {
    absl::StatusOr<v1::OptimalResponse> r = core_->Optimal(request);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->sweep_id(), sweep);
    EXPECT_NEAR(r->flops() / 1e15, 1.0, 1e-9);
    EXPECT_NEAR(r->d_opt() / forward.d_opt(), 1.0, 1e-9);
    // The asked-for quantity has no interval when it is flops or loss.
    for (const char* key : {"flops", "params", "tokens"}) {
      ASSERT_TRUE(r->ci95().contains(key)) << key;
      EXPECT_LE(r->ci95().at(key).low(), r->ci95().at(key).high()) << key;
    }
  }
  v1::OptimalRequest approach2 = by_params;
  approach2.set_approach(2);
  absl::StatusOr<v1::OptimalResponse> r2 = core_->Optimal(approach2);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->approach(), 2u);
  EXPECT_TRUE(std::isnan(r2->predicted_loss()));
  EXPECT_TRUE(r2->ci95().contains("params"));

  v1::OptimalRequest unreachable;
  unreachable.set_loss(1.5);  // below E = 2
  EXPECT_THAT(core_->Optimal(unreachable).status().message(),
              HasSubstr("unreachable"));
  v1::OptimalRequest two = by_params;
  two.set_flops(1e15);
  EXPECT_THAT(core_->Optimal(two).status().message(),
              HasSubstr("set exactly one"));
}

// Issue 22: the final fit fits Muennighoff's data-constrained form beside
// Chinchilla's; trials that repeat no data leave only the reason.
TEST_F(CoreTest, FinalFitSaysWhyThereIsNoDataConstrainedLaw) {
  const std::string id = Submit();
  Register();
  for (int i = 0; i < 6; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    ASSERT_TRUE(lease.has_assignment()) << i;
    ASSERT_TRUE(Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())).ok());
  }
  while (core_->RunPendingFits() > 0) {
  }
  const v1::ScalingLawFit fit = core_->GetSweep(id)->fit();
  ASSERT_TRUE(fit.final());
  EXPECT_FALSE(fit.has_muennighoff());
  EXPECT_THAT(fit.muennighoff_message(), HasSubstr("no point repeats data"));
  EXPECT_THAT(fit.muennighoff_message(), HasSubstr("R_D* is not identified"));
}

// Issue 20: the stored fit carries its verdict and backtest, and Optimal
// names the fitted sweeps instead of silently taking the newest.
TEST_F(CoreTest, StoredFitsHaveVerdictsAndOptimalNeedsASweepAmongSeveral) {
  v1::SweepConfig other = SmallConfig();
  other.set_name("other");
  const std::string first = Submit();
  const std::string second = Submit(other);
  ASSERT_NE(first, second);
  Register();
  for (int i = 0; i < 12; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    ASSERT_TRUE(lease.has_assignment()) << i;
    ASSERT_TRUE(Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())).ok());
  }
  while (core_->RunPendingFits() > 0) {
  }
  const v1::ScalingLawFit fit = core_->GetSweep(first)->fit();
  ASSERT_TRUE(fit.final());
  // 6 points for 5 parameters: never ok, and the reason says so.
  EXPECT_NE(fit.verdict().level(), "ok");
  EXPECT_NE(fit.verdict().level(), "");
  EXPECT_NE(fit.approach3_verdict().level(), "");
  EXPECT_THAT(absl::StrJoin(fit.approach3_verdict().reasons(), " | "),
              HasSubstr("6 points for 5 free parameters"));
  EXPECT_TRUE(fit.has_backtest() || !fit.backtest_message().empty());

  v1::OptimalRequest request;
  request.set_flops(1e15);
  const absl::Status s = core_->Optimal(request).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("2 sweeps have an Approach 3 fit ("));
  EXPECT_THAT(s.message(), HasSubstr(first));
  EXPECT_THAT(s.message(), HasSubstr(second));
  request.set_sweep_id(second);
  EXPECT_TRUE(core_->Optimal(request).ok());
}

TEST_F(CoreTest, FitThatCannotBeMadeIsRecordedAsAMessage) {
  const std::string sweep = Submit();
  Register();
  for (int i = 0; i < 6; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    ASSERT_TRUE(i == 0 ? Outcome(lease, v1::OUTCOME_SUCCEEDED, 4.0).ok()
                       : Outcome(lease, v1::OUTCOME_FAILED).ok());
  }
  EXPECT_EQ(core_->RunPendingFits(), 1);
  const v1::Sweep view = core_->GetSweep(sweep).value();
  EXPECT_EQ(view.state(), v1::SWEEP_SUCCEEDED);
  ASSERT_TRUE(view.has_fit());
  EXPECT_EQ(view.fit().n_points(), 1u);
  EXPECT_THAT(view.fit().message(), HasSubstr("not fitted"));
  v1::OptimalRequest request;
  request.set_flops(1e15);
  request.set_sweep_id(sweep);
  EXPECT_EQ(core_->Optimal(request).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CoreTest, OptimalRefusesANonPositiveBudget) {
  v1::OptimalRequest request;
  request.set_flops(-1);
  absl::StatusOr<v1::OptimalResponse> r = core_->Optimal(request);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("flops = -1: must be > 0"));
}

TEST_F(CoreTest, RetryRequeuesExactlyTheFailedTrialsWithFreshAttempts) {
  const std::string sweep = Submit();  // 6 trials, max_attempts 2
  Register();
  v1::RetrySweepRequest retry;
  retry.set_sweep_id(sweep);
  retry.set_failed(true);
  std::string failed_id;
  for (int i = 0; i < 6; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    if (i == 2) {
      failed_id = lease.spec().trial_id();
      ASSERT_TRUE(Outcome(lease, v1::OUTCOME_FAILED).ok());
      EXPECT_EQ(core_->RetrySweep(retry).status().code(),
                absl::StatusCode::kFailedPrecondition);  // still running
    } else {
      ASSERT_TRUE(
          Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())).ok());
    }
  }
  ASSERT_EQ(core_->GetSweep(sweep)->state(), v1::SWEEP_SUCCEEDED);
  retry.set_failed(false);
  EXPECT_EQ(core_->RetrySweep(retry).status().code(),
            absl::StatusCode::kInvalidArgument);
  retry.set_failed(true);
  absl::StatusOr<v1::Sweep> retried = core_->RetrySweep(retry);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->state(), v1::SWEEP_RUNNING);
  int pending = 0, succeeded = 0;
  for (const v1::Trial& t : retried->trials()) {
    pending += t.state() == v1::PENDING;
    succeeded += t.state() == v1::SUCCEEDED;
  }
  EXPECT_EQ(pending, 1);
  EXPECT_EQ(succeeded, 5);
  EXPECT_EQ(TrialOf(sweep, failed_id).retry_base(), 1u);

  // Two fresh attempts (max_attempts 2) after the retry, then FAILED again.
  v1::LeaseTrialResponse lease = Lease();
  ASSERT_EQ(lease.spec().trial_id(), failed_id);
  EXPECT_EQ(lease.attempt(), 2u);
  ASSERT_TRUE(Outcome(lease, v1::OUTCOME_RETRYABLE).ok());
  EXPECT_EQ(TrialOf(sweep, failed_id).state(), v1::PENDING);
  lease = Lease();
  EXPECT_EQ(lease.attempt(), 3u);
  ASSERT_TRUE(Outcome(lease, v1::OUTCOME_RETRYABLE).ok());
  EXPECT_EQ(TrialOf(sweep, failed_id).state(), v1::FAILED);
  EXPECT_THAT(TrialOf(sweep, failed_id).error(), HasSubstr("attempt 3 of 3"));
  EXPECT_EQ(core_->GetSweep(sweep)->state(), v1::SWEEP_SUCCEEDED);
  // The store kept the base: a restarted coordinator counts the same way.
  const std::vector<SweepRecord> stored = store_.LoadAll().value();
  for (const TrialRecord& t : stored[0].trials) {
    if (t.trial.spec().trial_id() == failed_id) {
      EXPECT_EQ(t.trial.retry_base(), 1u);
    }
  }
  retry.set_sweep_id("sw-nope");
  EXPECT_EQ(core_->RetrySweep(retry).status().code(),
            absl::StatusCode::kNotFound);
}

// Cancel and resume refuse a sweep that ended on its own, as pause does:
// "cancelled"/"resumed" would be false (cancelling a cancelled sweep stays
// idempotent).
TEST_F(CoreTest, CancelAndResumeRefuseASweepThatEnded) {
  const std::string sweep = Submit();
  Register();
  for (int i = 0; i < 6; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    ASSERT_TRUE(Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())).ok());
  }
  ASSERT_EQ(core_->GetSweep(sweep)->state(), v1::SWEEP_SUCCEEDED);
  for (const absl::Status& s : {core_->CancelSweep(sweep).status(),
                                core_->SetSweepPaused(sweep, false).status(),
                                core_->SetSweepPaused(sweep, true).status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(s.message()), HasSubstr("SWEEP_SUCCEEDED"));
  }
  EXPECT_EQ(core_->GetSweep(sweep)->state(), v1::SWEEP_SUCCEEDED);

  v1::SweepConfig other_config = SmallConfig();
  other_config.set_name("other");
  const std::string other = Submit(other_config);
  ASSERT_TRUE(core_->CancelSweep(other).ok());
  absl::StatusOr<v1::Sweep> again = core_->CancelSweep(other);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->state(), v1::SWEEP_CANCELLED);
}

// After RetrySweep the old final fit is kept only as provisional (in memory
// and in the store), so a waiter gets the fit made when the retry ends.
TEST_F(CoreTest, RetryDemotesTheFinalFitUntilTheRetriedSweepEnds) {
  const std::string sweep = Submit();
  Register();
  for (int i = 0; i < 6; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    ASSERT_TRUE((i == 0
                     ? Outcome(lease, v1::OUTCOME_FAILED)
                     : Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())))
                    .ok());
  }
  core_->RunPendingFits();
  ASSERT_TRUE(core_->GetSweep(sweep)->fit().final());
  ASSERT_EQ(core_->GetSweep(sweep)->fit().n_points(), 5u);
  v1::RetrySweepRequest retry;
  retry.set_sweep_id(sweep);
  retry.set_failed(true);
  absl::StatusOr<v1::Sweep> retried = core_->RetrySweep(retry);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_TRUE(retried->has_fit());
  EXPECT_FALSE(retried->fit().final());
  EXPECT_FALSE(store_.LoadAll().value()[0].sweep.fit().final());

  const v1::LeaseTrialResponse lease = Lease();
  ASSERT_TRUE(Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())).ok());
  core_->RunPendingFits();
  const v1::Sweep done = *core_->GetSweep(sweep);
  EXPECT_EQ(done.state(), v1::SWEEP_SUCCEEDED);
  EXPECT_TRUE(done.fit().final());
  EXPECT_EQ(done.fit().n_points(), 6u);
}

TEST_F(CoreTest, RefitsAtMostOncePerIntervalWhileTheSweepRuns) {
  v1::SweepConfig config = SmallConfig();
  config.mutable_grid()->add_flops_budgets(1e12);  // 9 trials
  const std::string sweep = Submit(config);
  Register();
  for (int i = 0; i < 5; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    ASSERT_TRUE(Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())).ok());
  }
  EXPECT_EQ(core_->RunPendingFits(), 1);  // 5 points: the first refit
  for (int i = 0; i < 2; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    ASSERT_TRUE(Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())).ok());
  }
  EXPECT_EQ(core_->RunPendingFits(), 0);  // within 30 s: still queued
  EXPECT_EQ(core_->GetSweep(sweep)->fit().n_points(), 5u);
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(core_->RunPendingFits(), 1);  // the two successes, coalesced
  EXPECT_EQ(core_->GetSweep(sweep)->fit().n_points(), 7u);
  EXPECT_FALSE(core_->GetSweep(sweep)->fit().final());
}

TEST_F(CoreTest, CancelledFitsStoreNothingAndTheNextCoreRunsTheFinalFit) {
  const std::string sweep = Submit();
  Register();
  for (int i = 0; i < 6; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    ASSERT_TRUE(Outcome(lease, v1::OUTCOME_SUCCEEDED, Law(lease.spec())).ok());
  }
  core_->CancelFits();  // shutting down with the final fit queued
  EXPECT_EQ(core_->RunPendingFits(), 0);
  EXPECT_TRUE(absl::IsCancelled(core_->FitSweep(sweep).status()));
  EXPECT_FALSE(store_.LoadAll().value()[0].sweep.has_fit());

  Core next(&store_, &clock_, Options());
  ASSERT_TRUE(next.Recover().ok());
  EXPECT_EQ(next.RunPendingFits(), 1);
  const v1::Sweep view = next.GetSweep(sweep).value();
  ASSERT_TRUE(view.has_fit());
  EXPECT_TRUE(view.fit().final());
  EXPECT_EQ(view.fit().n_points(), 6u);
}

// A lease request of worker "wk-a" for one free CPU slot.
v1::LeaseTrialRequest OneSlotLeaseRequest() {
  v1::LeaseTrialRequest req;
  req.set_worker_id("wk-a");
  req.set_free_cpu_slots(1);
  return req;
}

// Registers worker "wk-a" of one CPU slot with `core` (a fatal failure if
// refused), then sets `lease` to core's answer to OneSlotLeaseRequest(). Call
// under ASSERT_NO_FATAL_FAILURE.
void RegisterOneSlotWorkerAndLease(Core& core, v1::LeaseTrialResponse* lease) {
  v1::RegisterWorkerRequest reg;
  reg.set_worker_id("wk-a");
  reg.mutable_resources()->set_cpu_slots(1);
  ASSERT_TRUE(core.RegisterWorker(reg).ok());
  *lease = core.LeaseTrial(OneSlotLeaseRequest()).value();
}

TEST(CoreRecovery, RestartKeepsTrialsLeasesAndEpochs) {
  const std::string path = FreshDir() + "/isoflop.db";
  FakeClock clock;
  v1::LeaseTrialResponse lease;
  std::string sweep_id;
  {
    auto store = SqliteTrialStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    Core core(store->get(), &clock, {});
    v1::SubmitSweepRequest submit;
    *submit.mutable_config() = SmallConfig();
    sweep_id = core.Submit(submit).value().sweep_id();
    ASSERT_NO_FATAL_FAILURE(RegisterOneSlotWorkerAndLease(core, &lease));
  }
  auto store = SqliteTrialStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  Core core(store->get(), &clock, {});
  ASSERT_TRUE(core.Recover().ok());
  const v1::Sweep view = core.GetSweep(sweep_id).value();
  EXPECT_EQ(view.trials(0).state(), v1::LEASED);
  EXPECT_EQ(view.trials(0).attempt(), 1u);

  // The worker keeps heartbeating and reporting without registering again.
  v1::HeartbeatRequest hb;
  hb.set_worker_id("wk-a");
  hb.add_leases()->set_trial_id(lease.spec().trial_id());
  hb.mutable_leases(0)->set_attempt(lease.attempt());
  hb.mutable_leases(0)->set_lease_epoch(lease.lease_epoch());
  EXPECT_EQ(core.Heartbeat(hb).value().revoked_size(), 0);
  v1::ReportMetricsRequest metrics;
  metrics.set_worker_id("wk-a");
  *metrics.mutable_lease() = hb.leases(0);
  v1::MetricPoint* point = metrics.add_points();
  point->set_step(1), point->set_name("train_loss"), point->set_value(5.0);
  EXPECT_EQ(core.ReportMetrics(metrics).value().accepted(), 1u);
  EXPECT_GT(core.LeaseTrial(OneSlotLeaseRequest()).value().lease_epoch(),
            lease.lease_epoch());
}

// Issue 18 defect 2: a restarted coordinator used to end the leases of
// workers still reconnecting after 3 heartbeat intervals; each live lease
// now gets one TTL (docs/faults.md), then expires as usual.
TEST(CoreRecovery, RestartGivesEveryLeaseOneTtlBeforeItEnds) {
  const std::string path = FreshDir() + "/isoflop.db";
  FakeClock clock;
  const CoreOptions options{.lease_ttl = absl::Seconds(30),
                            .heartbeat_interval = absl::Seconds(2)};
  {
    auto store = SqliteTrialStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    Core core(store->get(), &clock, options);
    v1::SubmitSweepRequest submit;
    *submit.mutable_config() = SmallConfig();
    ASSERT_TRUE(core.Submit(submit).ok());
    v1::LeaseTrialResponse lease;
    ASSERT_NO_FATAL_FAILURE(RegisterOneSlotWorkerAndLease(core, &lease));
    ASSERT_TRUE(lease.has_assignment());
  }
  auto store = SqliteTrialStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  Core core(store->get(), &clock, options);
  ASSERT_TRUE(core.Recover().ok());
  clock.Advance(absl::Seconds(29));  // far past 3 heartbeat intervals
  EXPECT_EQ(core.ReapExpiredLeases(clock.Now()), 0);
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(core.ReapExpiredLeases(clock.Now()), 1);
}

// After a restart, a worker heard from again that then falls silent is shown
// lost after 3 heartbeat intervals, as without a restart; its trial moves
// only when the lease expires (its trainer has fenced itself by then:
// docs/faults.md "Split brain").
TEST(CoreRecovery, AWorkerSilentAfterReconnectingIsLostAndItsLeaseEndsAtTtl) {
  FakeClock clock;
  FakeTrialStore store;
  const CoreOptions options{.lease_ttl = absl::Seconds(30),
                            .heartbeat_interval = absl::Seconds(2)};
  Core core(&store, &clock, options);
  ASSERT_TRUE(core.Recover().ok());  // a fresh start is a restart too
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = SmallConfig();
  ASSERT_TRUE(core.Submit(submit).ok());
  clock.Advance(absl::Seconds(1));
  v1::LeaseTrialResponse lease;
  ASSERT_NO_FATAL_FAILURE(RegisterOneSlotWorkerAndLease(core, &lease));
  ASSERT_TRUE(lease.has_assignment());
  clock.Advance(absl::Seconds(6));  // 3 heartbeat intervals, within the TTL
  EXPECT_EQ(core.ReapExpiredLeases(clock.Now()), 0);
  EXPECT_EQ(core.ListWorkers().workers(0).state(), v1::WORKER_LOST);
  clock.Advance(absl::Seconds(24));  // the lease's TTL has passed
  EXPECT_EQ(core.ReapExpiredLeases(clock.Now()), 1);
}

TEST(CoreRecovery, RestartKeepsAWorkerDrainedWithItsResources) {
  const std::string path = FreshDir() + "/isoflop.db";
  FakeClock clock;
  {
    auto store = SqliteTrialStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    Core core(store->get(), &clock, {});
    v1::SubmitSweepRequest submit;
    *submit.mutable_config() = SmallConfig();
    ASSERT_TRUE(core.Submit(submit).ok());
    v1::RegisterWorkerRequest reg;
    reg.set_worker_id("wk-a");
    reg.mutable_resources()->set_hostname("host-a");
    reg.mutable_resources()->set_cpu_slots(3);
    ASSERT_TRUE(core.RegisterWorker(reg).ok());
    ASSERT_TRUE(core.SetWorkerDraining("wk-a", true).ok());
  }
  auto store = SqliteTrialStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  Core core(store->get(), &clock, {});
  ASSERT_TRUE(core.Recover().ok());
  const v1::ListWorkersResponse list = core.ListWorkers();
  ASSERT_EQ(list.workers_size(), 1);
  EXPECT_EQ(list.workers(0).state(), v1::WORKER_DRAINING);
  EXPECT_EQ(list.workers(0).resources().hostname(), "host-a");
  EXPECT_EQ(list.workers(0).resources().cpu_slots(), 3u);
  EXPECT_FALSE(core.LeaseTrial(OneSlotLeaseRequest()).value().has_assignment());
}

}  // namespace
}  // namespace isoflop::coordinator
