// The core's parts apart (docs/architecture.md §1.1): a heartbeat and a read
// do not wait for a store commit, and fits run on the fit queue, not on the
// caller's thread.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/fake_clock.h"
#include "coordinator/service/core.h"
#include "coordinator/store/fake_trial_store.h"
#include "gtest/gtest.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::SmallConfig;

// A FakeTrialStore whose next UpdateTrials or InsertSweep, once armed, stops
// inside the "commit" until released: a commit that takes as long as the
// test wants.
class GatedStore : public TrialStore {
 public:
  void Arm() {
    absl::MutexLock lock(&mu_);
    armed_ = true;
  }
  void WaitUntilHeld() { held_.WaitForNotification(); }
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }

  absl::Status InsertSweep(const SweepRecord& sweep) override {
    Gate();
    return fake_.InsertSweep(sweep);
  }
  absl::Status AddTrials(const std::string& id,
                         const std::vector<TrialRecord>& trials) override {
    return fake_.AddTrials(id, trials);
  }
  absl::Status UpdateSweepState(const std::string& id,
                                v1::SweepState state) override {
    return fake_.UpdateSweepState(id, state);
  }
  absl::Status UpdateSweepPaused(const std::string& id, bool paused) override {
    return fake_.UpdateSweepPaused(id, paused);
  }
  absl::Status UpdateSweepConfig(const std::string& id,
                                 const v1::SweepConfig& config) override {
    return fake_.UpdateSweepConfig(id, config);
  }
  absl::Status UpdateTrials(const std::vector<TrialRecord>& trials) override {
    Gate();
    return fake_.UpdateTrials(trials);
  }
  absl::Status StartAttempt(const TrialRecord& trial, int64_t now_ms) override {
    return fake_.StartAttempt(trial, now_ms);
  }
  absl::Status EndAttempt(const std::string& trial_id, uint32_t attempt,
                          const std::string& outcome, int exit_code,
                          const std::string& message, int64_t now_ms) override {
    return fake_.EndAttempt(trial_id, attempt, outcome, exit_code, message,
                            now_ms);
  }
  absl::Status UpsertWorker(const std::string& id,
                            const v1::WorkerResources& resources,
                            int64_t now_ms) override {
    return fake_.UpsertWorker(id, resources, now_ms);
  }
  absl::Status UpdateWorkerDraining(const std::string& id,
                                    bool draining) override {
    return fake_.UpdateWorkerDraining(id, draining);
  }
  absl::Status TouchWorker(const std::string& id, int64_t now_ms) override {
    return fake_.TouchWorker(id, now_ms);
  }
  absl::StatusOr<int> InsertMetrics(
      const std::string& trial_id, uint32_t attempt,
      const std::vector<v1::MetricPoint>& points) override {
    return fake_.InsertMetrics(trial_id, attempt, points);
  }
  absl::Status StoreFit(const std::string& id, const v1::ScalingLawFit& fit,
                        int64_t now_ms) override {
    return fake_.StoreFit(id, fit, now_ms);
  }
  absl::StatusOr<std::vector<SweepRecord>> LoadAll() override {
    return fake_.LoadAll();
  }
  absl::StatusOr<std::vector<WorkerRecord>> LoadWorkers() override {
    return fake_.LoadWorkers();
  }
  absl::StatusOr<uint64_t> AppendTrialLog(const std::string& trial_id,
                                          uint32_t attempt, uint64_t offset,
                                          const std::string& data) override {
    return fake_.AppendTrialLog(trial_id, attempt, offset, data);
  }
  absl::StatusOr<TrialLogWindow> ReadTrialLog(const std::string& trial_id,
                                              uint32_t attempt,
                                              uint64_t offset) override {
    return fake_.ReadTrialLog(trial_id, attempt, offset);
  }
  absl::StatusOr<int64_t> CountMetrics(const std::string& trial_id,
                                       uint32_t attempt) override {
    return fake_.CountMetrics(trial_id, attempt);
  }

 private:
  void Gate() {
    {
      absl::MutexLock lock(&mu_);
      if (!armed_) return;
      armed_ = false;
    }
    held_.Notify();
    release_.WaitForNotification();
  }

  FakeTrialStore fake_;
  absl::Mutex mu_;
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Notification held_;
  absl::Notification release_;
};

class CoreSplitTest : public ::testing::Test {
 protected:
  CoreSplitTest() : core_(&store_, &clock_, CoreOptions{}) {
    v1::RegisterWorkerRequest reg;
    reg.set_worker_id("wk-a");
    reg.mutable_resources()->set_cpu_slots(8);
    EXPECT_TRUE(core_.RegisterWorker(reg).ok());
    sweep_ = Submit("first");
  }
  ~CoreSplitTest() override {
    store_.Release();  // a test that failed early must not hang its thread
    for (std::thread& t : threads_) t.join();
  }

  std::string Submit(const std::string& id) {
    v1::SubmitSweepRequest r;
    r.set_id(id);
    *r.mutable_config() = SmallConfig();
    return core_.Submit(r).value().sweep_id();
  }
  v1::LeaseRef Lease() {
    v1::LeaseTrialRequest r;
    r.set_worker_id("wk-a");
    r.set_free_cpu_slots(1);
    const v1::LeaseTrialResponse lease = core_.LeaseTrial(r).value();
    v1::LeaseRef ref;
    ref.set_trial_id(lease.spec().trial_id());
    ref.set_attempt(lease.attempt());
    ref.set_lease_epoch(lease.lease_epoch());
    return ref;
  }
  // Runs `f` on a thread; joined by the fixture.
  template <typename F>
  void Spawn(F f) {
    threads_.emplace_back(std::move(f));
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::LeaseRef& ref) {
    v1::HeartbeatRequest r;
    r.set_worker_id("wk-a");
    *r.add_leases() = ref;
    return core_.Heartbeat(r);
  }

  FakeClock clock_;
  GatedStore store_;
  Core core_;
  std::string sweep_;
  std::vector<std::thread> threads_;
};

TEST_F(CoreSplitTest, HeartbeatIsAnsweredWhileALeaseCommits) {
  const v1::LeaseRef held = Lease();
  store_.Arm();
  absl::Notification leased;
  Spawn([&] {
    Lease();
    leased.Notify();
  });
  store_.WaitUntilHeld();  // the second lease is inside its commit
  // On a thread, so that a heartbeat that waited for the commit fails the
  // test (bounded wait) instead of hanging it.
  absl::Notification beaten;
  absl::StatusOr<v1::HeartbeatResponse> beat;
  Spawn([&] {
    beat = Heartbeat(held);
    beaten.Notify();
  });
  EXPECT_TRUE(beaten.WaitForNotificationWithTimeout(absl::Seconds(60)));
  EXPECT_FALSE(leased.HasBeenNotified());
  store_.Release();
  leased.WaitForNotification();
  beaten.WaitForNotification();
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_EQ(beat->revoked_size(), 0);
}

TEST_F(CoreSplitTest, ReadsAreAnsweredWhileASweepIsInserted) {
  store_.Arm();
  Spawn([&] { Submit("second"); });
  store_.WaitUntilHeld();  // "second" is inside InsertSweep
  absl::Notification read;
  int sweeps = 0, workers = 0;
  bool got = false;
  Spawn([&] {
    got = core_.GetSweep(sweep_).ok();
    sweeps = core_.ListSweeps().sweeps_size();
    workers = core_.ListWorkers().workers_size();
    read.Notify();
  });
  EXPECT_TRUE(read.WaitForNotificationWithTimeout(absl::Seconds(60)));
  store_.Release();
  read.WaitForNotification();
  EXPECT_TRUE(got);
  EXPECT_EQ(sweeps, 1);  // "second" is not stored yet: not shown
  EXPECT_EQ(workers, 1);
}

TEST_F(CoreSplitTest, LeaseIsVisibleOnlyOnceCommitted) {
  store_.Arm();
  Spawn([&] { Lease(); });
  store_.WaitUntilHeld();
  const v1::Sweep during = core_.GetSweep(sweep_).value();
  EXPECT_EQ(during.trial_counts().at("PENDING"), 6);
  store_.Release();
  threads_.back().join();
  threads_.pop_back();
  const v1::Sweep after = core_.GetSweep(sweep_).value();
  EXPECT_EQ(after.trial_counts().at("LEASED"), 1);
}

TEST_F(CoreSplitTest, RequestFitRefusesASweepWithTooFewPoints) {
  // No succeeded trial: below refit_min_points nothing is queued.
  EXPECT_TRUE(absl::IsFailedPrecondition(core_.RequestFit(sweep_)));
  EXPECT_EQ(core_.RunPendingFits(), 0);
}

TEST_F(CoreSplitTest, FitSweepAsyncReturnsAtOnceAndTheQueueStoresTheFit) {
  core_.FitSweepAsync(sweep_, [](absl::StatusOr<v1::ScalingLawFit>) {});
  EXPECT_FALSE(core_.GetSweep(sweep_).value().has_fit());  // queued only
  EXPECT_EQ(core_.RunPendingFits(), 1);
  EXPECT_TRUE(core_.GetSweep(sweep_).value().has_fit());  // "not fitted: ..."
}

TEST_F(CoreSplitTest, RequestFitRefusesAnUnknownSweep) {
  EXPECT_TRUE(absl::IsNotFound(core_.RequestFit("no-such-sweep")));
  EXPECT_TRUE(absl::IsInvalidArgument(core_.RequestFit("")));
}

TEST_F(CoreSplitTest, FitSweepAsyncIsAnsweredByTheFitThread) {
  absl::Notification answered;
  absl::StatusOr<v1::ScalingLawFit> fit;
  std::thread::id answered_on;
  core_.FitSweepAsync(sweep_, [&](absl::StatusOr<v1::ScalingLawFit> f) {
    fit = std::move(f);
    answered_on = std::this_thread::get_id();
    answered.Notify();
  });
  core_.StartFits();
  answered.WaitForNotification();
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->n_points(), 0u);
  EXPECT_NE(answered_on, std::this_thread::get_id());
  EXPECT_EQ(core_.GetSweep(sweep_).value().fit().n_points(), 0u);
  core_.StopFits();
}

TEST_F(CoreSplitTest, FitSweepAsyncWaiterIsCancelledAtShutdown) {
  absl::StatusOr<v1::ScalingLawFit> fit;
  core_.FitSweepAsync(
      sweep_, [&](absl::StatusOr<v1::ScalingLawFit> f) { fit = std::move(f); });
  core_.CancelFits();  // no fit thread ran it
  EXPECT_TRUE(absl::IsCancelled(fit.status())) << fit.status();
  core_.FitSweepAsync(
      sweep_, [&](absl::StatusOr<v1::ScalingLawFit> f) { fit = std::move(f); });
  EXPECT_TRUE(absl::IsCancelled(fit.status())) << fit.status();
}

}  // namespace
}  // namespace isoflop::coordinator
