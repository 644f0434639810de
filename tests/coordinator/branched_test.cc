// Trunk and branches (schedule WSD_BRANCHED, docs/architecture.md "Trunks and
// branches"): the expansion, the FLOPs accounting and the core's dependency
// rules (lease, trunk failure, retry, cancel, pause).
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "common/fake_clock.h"
#include "coordinator/service/core.h"
#include "coordinator/store/fake_trial_store.h"
#include "coordinator/sweep/expand.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::SmallConfig;
using ::testing::HasSubstr;

// SmallConfig (2 budgets x 3 shapes) as a branched sweep.
v1::SweepConfig Branched() {
  v1::SweepConfig c = SmallConfig();
  c.mutable_training()->set_schedule(v1::WSD_BRANCHED);
  return c;
}

TEST(ExpandBranched, OneTrunkPerShapeFirstThenOneBranchPerCell) {
  const ExpandedSweep e = ExpandSweep(Branched()).value();
  const ExpandedSweep cosine = ExpandSweep(SmallConfig()).value();
  ASSERT_EQ(e.trials.size(), 3u + 6u);
  for (int s = 0; s < 3; ++s) {
    const v1::TrialSpec& trunk = e.trials[s];
    EXPECT_EQ(trunk.role(), v1::TRIAL_ROLE_TRUNK);
    uint64_t last_start = 0;
    for (int b = 0; b < 2; ++b) {
      const v1::TrialSpec& branch = e.trials[3 + b * 3 + s];
      const v1::TrialSpec& cell = cosine.trials[b * 3 + s];
      EXPECT_EQ(branch.role(), v1::TRIAL_ROLE_BRANCH);
      EXPECT_EQ(branch.trunk_trial_id(), trunk.trial_id());
      // The cell as before: its law point is a WSD run of the cell's length.
      EXPECT_NE(branch.trial_id(), trunk.trial_id());
      EXPECT_EQ(branch.steps(), cell.steps());
      EXPECT_EQ(branch.flops(), cell.flops());
      EXPECT_EQ(branch.flops_budget(), cell.flops_budget());
      // s = steps - round(0.2 steps), the first cool-down step.
      EXPECT_EQ(
          branch.start_step(),
          branch.steps() - static_cast<uint64_t>(std::llround(
                               0.2 * static_cast<double>(branch.steps()))));
      EXPECT_EQ(branch.warmup_steps(), trunk.warmup_steps());
      EXPECT_EQ(branch.cooldown_fraction(), 0.2);
      EXPECT_TRUE(branch.release_start_checkpoint());
      EXPECT_EQ(trunk.save_at_steps(b), branch.start_step());
      last_start = branch.start_step();
    }
    EXPECT_EQ(trunk.steps(), last_start);
    EXPECT_EQ(trunk.tokens(), trunk.steps() * 16 * 64);
  }
  // Shape 0: 331 and 993 steps (test_configs.h), warm-up round(0.05 x 331).
  EXPECT_EQ(e.trials[0].warmup_steps(), 17u);
  EXPECT_THAT(e.trials[0].save_at_steps(), ::testing::ElementsAre(265u, 794u));
}

TEST(ExpandBranched, TrunkCountsOnceInTheTotalCompute) {
  const ExpandedSweep e = ExpandSweep(Branched()).value();
  double total = 0, independent = 0, cells = 0;
  for (const v1::TrialSpec& t : e.trials) {
    total += TrainedFlops(t);
    independent += IndependentFlops(t);
    if (t.role() == v1::TRIAL_ROLE_BRANCH) cells += t.flops();
  }
  EXPECT_DOUBLE_EQ(independent, cells);
  // Per shape: the trunk to the largest start, then the cool-downs (20%).
  double expected = 0;
  for (int s = 0; s < 3; ++s) {
    const v1::TrialSpec& trunk = e.trials[s];
    expected += trunk.flops();
    for (int b = 0; b < 2; ++b) {
      const v1::TrialSpec& br = e.trials[3 + b * 3 + s];
      expected += br.flops() *
                  static_cast<double>(br.steps() - br.start_step()) /
                  static_cast<double>(br.steps());
    }
  }
  EXPECT_NEAR(total, expected, 1e-6 * expected);
  EXPECT_LT(total, independent);
}

TEST(ExpandBranched, GridOfNTargetsWithRulesOfNGetsOneTrunkPerShape) {
  v1::SweepConfig c = Branched();
  c.mutable_grid()->clear_model_shapes();
  for (const double n : {0.1e6, 0.2e6, 0.4e6})
    c.mutable_grid()->add_n_targets(n);
  auto* lr = c.mutable_training()->mutable_lr_rule()->mutable_power_law();
  lr->set_coefficient(4e-3);
  lr->set_exponent(-0.33);
  lr->set_of(v1::HPARAM_OF_N);
  lr->set_reference(1e6);
  c.mutable_training()->clear_lr();
  const ExpandedSweep e = ExpandSweep(c).value();
  ASSERT_EQ(e.trials.size(), 3u + 6u);
  for (int s = 0; s < 3; ++s) {
    const v1::TrialSpec& trunk = e.trials[s];
    EXPECT_EQ(trunk.role(), v1::TRIAL_ROLE_TRUNK);
    for (int b = 0; b < 2; ++b) {
      const v1::TrialSpec& branch = e.trials[3 + b * 3 + s];
      EXPECT_EQ(branch.trunk_trial_id(), trunk.trial_id());
      EXPECT_EQ(branch.training().lr(), trunk.training().lr());
    }
    EXPECT_EQ(trunk.tokens(),
              trunk.steps() * trunk.training().batch_sequences() * 64);
  }
  // The LR is a rule of N: three sizes, three learning rates.
  EXPECT_NE(e.trials[0].training().lr(), e.trials[2].training().lr());
}

TEST(ExpandBranched, HyperparameterOfTheBudgetIsRefusedNamingTheRule) {
  v1::SweepConfig c = Branched();
  c.mutable_training()->clear_batch_sequences();
  c.mutable_training()->mutable_batch_tokens_rule()->set_preset(
      v1::DEEPSEEK2024);
  const absl::Status s = ExpandSweep(c).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("training.batch_tokens_rule"));
  EXPECT_THAT(s.message(), HasSubstr("must not depend on the budget"));
}

TEST(ExpandBranched, CellWithoutRoomForACoolDownIsRefusedNamingTheBudget) {
  v1::SweepConfig c = Branched();
  // 1.3e9 FLOPs buy shape 1 (5.66e8 FLOPs/step) two steps: round(0.2 x 2)
  // = 0 cool-down steps.
  c.mutable_grid()->set_flops_budgets(0, 1.3e9);
  const absl::Status s = ExpandSweep(c).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("grid.flops_budgets[0] = 1.3e+09"));
  EXPECT_THAT(s.message(), HasSubstr("schedule WSD_BRANCHED"));
}

class BranchedCoreTest : public ::testing::Test {
 protected:
  BranchedCoreTest()
      : core_(std::make_unique<Core>(&store_, &clock_, CoreOptions{})) {
    v1::RegisterWorkerRequest w;
    w.set_worker_id("wk-a");
    w.mutable_resources()->set_cpu_slots(64);
    EXPECT_TRUE(core_->RegisterWorker(w).ok());
    v1::SubmitSweepRequest r;
    *r.mutable_config() = Branched();
    sweep_id_ = core_->Submit(r).value().sweep_id();
    const v1::Sweep sweep = core_->GetSweep(sweep_id_).value();
    for (const v1::Trial& t : sweep.trials()) specs_.push_back(t.spec());
  }

  v1::LeaseTrialResponse Lease() {
    v1::LeaseTrialRequest r;
    r.set_worker_id("wk-a");
    r.set_free_cpu_slots(1);
    return core_->LeaseTrial(r).value();
  }
  // Leases until nothing is runnable; the trial ids leased.
  std::vector<v1::LeaseTrialResponse> LeaseAll() {
    std::vector<v1::LeaseTrialResponse> out;
    for (v1::LeaseTrialResponse l = Lease(); l.has_assignment(); l = Lease()) {
      out.push_back(l);
    }
    return out;
  }
  static v1::LeaseRef Ref(const v1::LeaseTrialResponse& l) {
    v1::LeaseRef ref;
    ref.set_trial_id(l.spec().trial_id());
    ref.set_attempt(l.attempt());
    ref.set_lease_epoch(l.lease_epoch());
    return ref;
  }
  absl::Status Kept(const v1::LeaseTrialResponse& trunk, uint64_t step) {
    v1::ReportMetricsRequest r;
    r.set_worker_id("wk-a");
    *r.mutable_lease() = Ref(trunk);
    v1::MetricPoint* p = r.add_points();
    p->set_step(step);
    p->set_name(kCheckpointKeptMetric);
    p->set_value(static_cast<double>(step));
    return core_->ReportMetrics(r).status();
  }
  absl::Status End(const v1::LeaseTrialResponse& l, v1::Outcome outcome,
                   double val_loss = 3.0) {
    v1::ReportOutcomeRequest r;
    r.set_worker_id("wk-a");
    *r.mutable_lease() = Ref(l);
    r.set_outcome(outcome);
    r.set_final_val_loss(val_loss);
    r.set_exit_code(outcome == v1::OUTCOME_SUCCEEDED ? 0 : 1);
    return core_->ReportOutcome(r);
  }
  v1::Trial TrialOf(const std::string& id) {
    const v1::Sweep sweep = core_->GetSweep(sweep_id_).value();
    for (const v1::Trial& t : sweep.trials()) {
      if (t.spec().trial_id() == id) return t;
    }
    ADD_FAILURE() << id;
    return {};
  }
  // The branch of shape `s` at budget `b`.
  const v1::TrialSpec& BranchSpec(int b, int s) {
    return specs_[3 + b * 3 + s];
  }

  FakeClock clock_;
  FakeTrialStore store_;
  std::unique_ptr<Core> core_;
  std::string sweep_id_;
  std::vector<v1::TrialSpec> specs_;
};

TEST_F(BranchedCoreTest, OnlyTrunksRunUntilACheckpointIsKept) {
  const std::vector<v1::LeaseTrialResponse> leased = LeaseAll();
  ASSERT_EQ(leased.size(), 3u);
  for (const auto& l : leased) {
    EXPECT_EQ(l.spec().role(), v1::TRIAL_ROLE_TRUNK);
  }
}

TEST_F(BranchedCoreTest, BranchRunsOnceItsTrunkReportsItsCheckpoint) {
  const std::vector<v1::LeaseTrialResponse> trunks = LeaseAll();
  ASSERT_EQ(trunks.size(), 3u);
  // Shape 0's trunk kept its first branch's step: that branch only.
  ASSERT_TRUE(Kept(trunks[0], BranchSpec(0, 0).start_step()).ok());
  std::vector<v1::LeaseTrialResponse> next = LeaseAll();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].spec().trial_id(), BranchSpec(0, 0).trial_id());
  // Its trunk succeeds: the other branch of shape 0 runs too.
  ASSERT_TRUE(End(trunks[0], v1::OUTCOME_SUCCEEDED).ok());
  next = LeaseAll();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].spec().trial_id(), BranchSpec(1, 0).trial_id());
}

TEST_F(BranchedCoreTest, SucceededTrunkIsNoLawPoint) {
  const std::vector<v1::LeaseTrialResponse> trunks = LeaseAll();
  ASSERT_TRUE(End(trunks[0], v1::OUTCOME_SUCCEEDED, 4.0).ok());
  const v1::Trial trunk = TrialOf(trunks[0].spec().trial_id());
  EXPECT_EQ(trunk.state(), v1::SUCCEEDED);
  EXPECT_TRUE(std::isnan(trunk.val_loss()));
  const v1::LeaseTrialResponse branch = Lease();
  ASSERT_TRUE(branch.has_assignment());
  ASSERT_TRUE(End(branch, v1::OUTCOME_SUCCEEDED, 3.5).ok());
  EXPECT_EQ(TrialOf(branch.spec().trial_id()).val_loss(), 3.5);
}

TEST_F(BranchedCoreTest, RetryableTrunkFailureKeepsItsBranchesWaiting) {
  std::vector<v1::LeaseTrialResponse> trunks = LeaseAll();
  ASSERT_TRUE(End(trunks[0], v1::OUTCOME_RETRYABLE).ok());
  EXPECT_EQ(TrialOf(BranchSpec(0, 0).trial_id()).state(), v1::PENDING);
  // The trunk is retried before any of its branches.
  const std::vector<v1::LeaseTrialResponse> again = LeaseAll();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].spec().trial_id(), trunks[0].spec().trial_id());
}

TEST_F(BranchedCoreTest, TrunkOutOfAttemptsFailsItsBranchesAndRetryRequeues) {
  // max_attempts 2 (test_configs.h): two retryable failures end it.
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::vector<v1::LeaseTrialResponse> leased = LeaseAll();
    for (const auto& l : leased) {
      if (l.spec().trial_id() == specs_[0].trial_id()) {
        ASSERT_TRUE(End(l, v1::OUTCOME_RETRYABLE).ok());
      } else {
        ASSERT_TRUE(End(l, v1::OUTCOME_SUCCEEDED).ok());  // the other trunks
      }
    }
  }
  EXPECT_EQ(TrialOf(specs_[0].trial_id()).state(), v1::FAILED);
  for (int b = 0; b < 2; ++b) {
    const v1::Trial branch = TrialOf(BranchSpec(b, 0).trial_id());
    EXPECT_EQ(branch.state(), v1::FAILED);
    EXPECT_THAT(branch.error(),
                HasSubstr("trunk " + specs_[0].trial_id() + " failed: "));
  }
  // The other shapes' branches run; then the sweep ends and is retried.
  for (const auto& l : LeaseAll()) {
    ASSERT_TRUE(End(l, v1::OUTCOME_SUCCEEDED).ok());
  }
  ASSERT_EQ(core_->GetSweep(sweep_id_).value().state(), v1::SWEEP_SUCCEEDED);
  v1::RetrySweepRequest retry;
  retry.set_sweep_id(sweep_id_);
  retry.set_failed(true);
  ASSERT_TRUE(core_->RetrySweep(retry).ok());
  const std::vector<v1::LeaseTrialResponse> again = LeaseAll();
  ASSERT_EQ(again.size(), 1u);  // the trunk; its branches wait for it again
  EXPECT_EQ(again[0].spec().trial_id(), specs_[0].trial_id());
  EXPECT_EQ(TrialOf(BranchSpec(0, 0).trial_id()).state(), v1::PENDING);
}

TEST_F(BranchedCoreTest, ExpiredTrunkLeaseRequeuesItAndBranchesWait) {
  const std::vector<v1::LeaseTrialResponse> trunks = LeaseAll();
  ASSERT_TRUE(Kept(trunks[0], BranchSpec(0, 0).start_step()).ok());
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(core_->ReapExpiredLeases(clock_.Now()), 3);
  EXPECT_EQ(TrialOf(specs_[0].trial_id()).state(), v1::PENDING);
  // The kept checkpoint survives its trunk's lost attempt: that branch and
  // the three trunks run, nothing else.
  EXPECT_EQ(LeaseAll().size(), 4u);
}

TEST_F(BranchedCoreTest, CancelEndsTrunksAndWaitingBranches) {
  LeaseAll();
  ASSERT_TRUE(core_->CancelSweep(sweep_id_).ok());
  const v1::Sweep sweep = core_->GetSweep(sweep_id_).value();
  for (const v1::Trial& t : sweep.trials()) {
    EXPECT_EQ(t.state(), v1::CANCELLED) << t.spec().trial_id();
  }
}

TEST_F(BranchedCoreTest, PausedSweepLeasesNoBranchUntilResumed) {
  const std::vector<v1::LeaseTrialResponse> trunks = LeaseAll();
  ASSERT_TRUE(core_->SetSweepPaused(sweep_id_, true).ok());
  ASSERT_TRUE(End(trunks[0], v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_FALSE(Lease().has_assignment());
  ASSERT_TRUE(core_->SetSweepPaused(sweep_id_, false).ok());
  EXPECT_EQ(LeaseAll().size(), 2u);  // shape 0's two branches
}

TEST_F(BranchedCoreTest, TrunksAreNoPointsTowardsAFit) {
  for (const auto& trunk : LeaseAll()) {
    ASSERT_TRUE(End(trunk, v1::OUTCOME_SUCCEEDED).ok());
  }
  const std::vector<v1::LeaseTrialResponse> branches = LeaseAll();
  ASSERT_EQ(branches.size(), 6u);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(End(branches[i], v1::OUTCOME_SUCCEEDED).ok());
  }
  // 7 trials succeeded, 4 of them law points: below refit_min_points (5).
  const absl::Status s = core_->RequestFit(sweep_id_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr(": 4 succeeded trials"));
  ASSERT_TRUE(End(branches[4], v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_TRUE(core_->RequestFit(sweep_id_).ok());
}

TEST_F(BranchedCoreTest, SweepReportsItsComputeAndTheIndependentGrids) {
  const v1::Sweep sweep = core_->GetSweep(sweep_id_).value();
  double total = 0, independent = 0;
  for (const v1::TrialSpec& s : specs_) {
    total += TrainedFlops(s);
    independent += IndependentFlops(s);
  }
  EXPECT_DOUBLE_EQ(sweep.total_flops(), total);
  EXPECT_DOUBLE_EQ(sweep.independent_flops(), independent);
  EXPECT_LT(sweep.total_flops(), sweep.independent_flops());
  // A cosine sweep costs what its independent grid does.
  v1::SubmitSweepRequest r;
  *r.mutable_config() = SmallConfig();
  const std::string cosine = core_->Submit(r).value().sweep_id();
  const v1::Sweep c = core_->GetSweep(cosine).value();
  EXPECT_DOUBLE_EQ(c.total_flops(), c.independent_flops());
}

}  // namespace
}  // namespace isoflop::coordinator
