// Conformance suite: every TrialStore implementation keeps one contract.
#include "coordinator/store/trial_store.h"

#include <cmath>
#include <functional>
#include <memory>

#include "absl/strings/str_cat.h"
#include "coordinator/store/fake_trial_store.h"
#include "coordinator/store/sqlite_trial_store.h"
#include "coordinator/store/trial_reader.h"
#include "coordinator/sweep/expand.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sqlite3.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::FreshDir;
using ::isoflop::coordinator::testing::SmallConfig;

class TrialStoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      path_ = FreshDir() + "/isoflop.db";
      store_ = Reopen();
    } else {
      store_ = std::make_unique<FakeTrialStore>();
    }
  }
  std::unique_ptr<TrialStore> Reopen() {
    store_.reset();
    auto s = SqliteTrialStore::Open(path_);
    EXPECT_TRUE(s.ok()) << s.status();
    return std::move(s).value();
  }

  static SweepRecord Sweep(int64_t created_ms) {
    SweepRecord r;
    absl::StatusOr<ExpandedSweep> e = ExpandSweep(SmallConfig());
    r.sweep.set_id(absl::StrCat(e->sweep_id, "-", created_ms));
    *r.sweep.mutable_config() = e->resolved;
    r.sweep.set_state(v1::SWEEP_RUNNING);
    r.sweep.set_created_unix_ms(created_ms);
    for (size_t i = 0; i < e->trials.size(); ++i) {
      TrialRecord t;
      t.ordinal = static_cast<int>(i);
      *t.trial.mutable_spec() = e->trials[i];
      t.trial.mutable_spec()->set_trial_id(
          absl::StrCat(e->trials[i].trial_id(), "-", created_ms));
      t.trial.set_state(v1::PENDING);
      t.trial.set_val_loss(std::nan(""));
      t.trial.set_train_loss(std::nan(""));
      r.trials.push_back(t);
    }
    return r;
  }

  // The store's read side (coordinator/store/trial_reader.h).
  TrialReader& reader() { return dynamic_cast<TrialReader&>(*store_); }

  // Trial `i` of `s` with its runtime fields set as `f` says, stored.
  void Update(const SweepRecord& s, size_t i,
              const std::function<void(v1::Trial&)>& f) {
    TrialRecord t = s.trials[i];
    f(t.trial);
    ASSERT_TRUE(store_->UpdateTrials({t}).ok());
  }
  static v1::MetricPoint Point(uint64_t step, const std::string& name,
                               double value) {
    v1::MetricPoint p;
    p.set_step(step);
    p.set_name(name);
    p.set_value(value);
    return p;
  }

  std::string path_;
  std::unique_ptr<TrialStore> store_;
};

TEST_P(TrialStoreConformance, LoadsWhatWasInserted) {
  ASSERT_TRUE(store_->InsertSweep(Sweep(1000)).ok());
  ASSERT_TRUE(store_->InsertSweep(Sweep(2000)).ok());
  absl::StatusOr<std::vector<SweepRecord>> all = store_->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].sweep.created_unix_ms(), 1000);
  EXPECT_EQ((*all)[0].sweep.config().name(), "unit");
  ASSERT_EQ((*all)[1].trials.size(), 6u);
  EXPECT_EQ((*all)[1].trials[4].ordinal, 4);
  EXPECT_EQ((*all)[1].trials[4].trial.spec().trial_id(),
            Sweep(2000).trials[4].trial.spec().trial_id());
  EXPECT_TRUE(std::isnan((*all)[1].trials[4].trial.val_loss()));
  EXPECT_FALSE((*all)[0].sweep.has_fit());
}

TEST_P(TrialStoreConformance, SecondInsertOfASweepIsAlreadyExists) {
  ASSERT_TRUE(store_->InsertSweep(Sweep(1000)).ok());
  EXPECT_EQ(store_->InsertSweep(Sweep(1000)).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->LoadAll()->size(), 1u);
}

// An adaptive grid's next budget (coordinator/sweep/adaptive.h).
TEST_P(TrialStoreConformance, AddsTrialsToAStoredSweep) {
  SweepRecord s = Sweep(1000);
  std::vector<TrialRecord> later(s.trials.begin() + 3, s.trials.end());
  s.trials.resize(3);
  later[0].trial.mutable_spec()->set_reason("centre on N_opt=60K");
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  ASSERT_TRUE(store_->AddTrials(s.sweep.id(), later).ok());
  if (GetParam() == "sqlite") store_ = Reopen();
  absl::StatusOr<std::vector<SweepRecord>> all = store_->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ((*all)[0].trials.size(), 6u);
  EXPECT_EQ((*all)[0].trials[3].ordinal, 3);
  EXPECT_EQ((*all)[0].trials[3].trial.spec().reason(), "centre on N_opt=60K");
  EXPECT_EQ((*all)[0].trials[5].trial.spec().trial_id(),
            later[2].trial.spec().trial_id());
}

TEST_P(TrialStoreConformance, AddingAStoredTrialAgainAddsNothing) {
  SweepRecord s = Sweep(1000);
  std::vector<TrialRecord> later(s.trials.begin() + 3, s.trials.end());
  s.trials.resize(3);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  // A new trial and one already stored: all or none.
  std::vector<TrialRecord> mixed = {later[0], s.trials[1]};
  mixed[1].ordinal = 4;
  EXPECT_EQ(store_->AddTrials(s.sweep.id(), mixed).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->AddTrials("sw-unknown", later).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ((*store_->LoadAll())[0].trials.size(), 3u);
}

TEST_P(TrialStoreConformance, UpdatesRuntimeFieldsOfTrials) {
  SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  TrialRecord t = s.trials[2];
  t.trial.set_state(v1::SUCCEEDED);
  t.trial.set_attempt(2);
  t.trial.set_worker_id("wk-1");
  t.trial.set_val_loss(3.25);
  t.trial.set_error("attempt 1: lease expired");
  t.trial.set_retry_base(1);
  t.lease_epoch = 7;
  ASSERT_TRUE(store_->UpdateTrials({t}).ok());
  ASSERT_TRUE(store_->UpdateSweepState(s.sweep.id(), v1::SWEEP_SUCCEEDED).ok());
  ASSERT_TRUE(store_->UpdateSweepPaused(s.sweep.id(), true).ok());
  absl::StatusOr<std::vector<SweepRecord>> all = store_->LoadAll();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE((*all)[0].sweep.paused());
  const TrialRecord& loaded = (*all)[0].trials[2];
  EXPECT_EQ(loaded.trial.state(), v1::SUCCEEDED);
  EXPECT_EQ(loaded.trial.attempt(), 2u);
  EXPECT_EQ(loaded.trial.worker_id(), "wk-1");
  EXPECT_EQ(loaded.trial.val_loss(), 3.25);
  EXPECT_EQ(loaded.trial.error(), "attempt 1: lease expired");
  EXPECT_EQ(loaded.lease_epoch, 7u);
  EXPECT_EQ(loaded.trial.retry_base(), 1u);
  EXPECT_EQ((*all)[0].sweep.state(), v1::SWEEP_SUCCEEDED);
  EXPECT_EQ((*all)[0].trials[1].trial.state(), v1::PENDING);
}

// The trial page's read (issue 24): one trial by id, its sweep, and its
// attempts as StartAttempt and EndAttempt recorded them.
TEST_P(TrialStoreConformance, ReadsOneTrialWithItsAttempts) {
  SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  TrialRecord t = s.trials[1];
  const std::string id = t.trial.spec().trial_id();
  t.trial.set_state(v1::RUNNING);
  t.trial.set_attempt(1);
  t.trial.set_worker_id("wk-1");
  t.lease_epoch = 3;
  ASSERT_TRUE(store_->UpdateTrials({t}).ok());
  ASSERT_TRUE(store_->StartAttempt(t, 5000).ok());
  ASSERT_TRUE(store_
                  ->InsertMetrics(id, 1,
                                  {Point(4, "tokens_per_s", 900.0),
                                   Point(8, "tokens_per_s", 1000.0)})
                  .ok());
  ASSERT_TRUE(
      store_->EndAttempt(id, 1, "LEASE_EXPIRED", 0, "silent", 9000).ok());
  t.trial.set_attempt(2);
  t.trial.set_worker_id("wk-2");
  t.lease_epoch = 4;
  ASSERT_TRUE(store_->UpdateTrials({t}).ok());
  ASSERT_TRUE(store_->StartAttempt(t, 10000).ok());

  absl::StatusOr<std::optional<TrialDetail>> d = reader().ReadTrial(id);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(d->has_value());
  const TrialDetail& detail = **d;
  EXPECT_EQ(detail.sweep_id, s.sweep.id());
  EXPECT_EQ(detail.row.id, id);
  EXPECT_EQ(detail.row.state, "RUNNING");
  EXPECT_EQ(detail.row.attempt, 2u);
  EXPECT_EQ(detail.row.spec.steps(), t.trial.spec().steps());
  ASSERT_EQ(detail.attempts.size(), 2u);
  EXPECT_EQ(detail.attempts[0].attempt, 1u);
  EXPECT_EQ(detail.attempts[0].worker_id, "wk-1");
  EXPECT_EQ(detail.attempts[0].lease_epoch, 3u);
  EXPECT_EQ(detail.attempts[0].started_unix_ms, 5000);
  EXPECT_EQ(detail.attempts[0].ended_unix_ms, 9000);
  EXPECT_EQ(detail.attempts[0].outcome, "LEASE_EXPIRED");
  EXPECT_EQ(detail.attempts[0].message, "silent");
  EXPECT_EQ(detail.attempts[0].tokens_per_s, 1000.0);  // its latest point
  EXPECT_EQ(detail.attempts[1].worker_id, "wk-2");
  EXPECT_EQ(detail.attempts[1].ended_unix_ms, 0);
  EXPECT_EQ(detail.attempts[1].outcome, "");
  EXPECT_TRUE(std::isnan(detail.attempts[1].tokens_per_s));  // none yet

  absl::StatusOr<std::optional<TrialDetail>> none = reader().ReadTrial("tr-x");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
}

// A spec's data repetition, filled when the trial is leased (docs/
// architecture.md §2 "Datasets"), is stored with the update and read back,
// also as law points.
TEST_P(TrialStoreConformance, UpdatesTheSpecsUniqueTokensAndEpochs) {
  SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  TrialRecord t = s.trials[2];
  t.trial.mutable_spec()->set_unique_tokens(5000);
  t.trial.mutable_spec()->set_epochs(2.5);
  t.trial.set_state(v1::SUCCEEDED);
  t.trial.set_val_loss(3.0);
  ASSERT_TRUE(store_->UpdateTrials({t}).ok());
  absl::StatusOr<std::vector<SweepRecord>> all = store_->LoadAll();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)[0].trials[2].trial.spec().unique_tokens(), 5000u);
  EXPECT_EQ((*all)[0].trials[2].trial.spec().epochs(), 2.5);
  EXPECT_EQ((*all)[0].trials[2].trial.spec().n_total(),
            s.trials[2].trial.spec().n_total());
  const std::vector<LawPoint> points =
      reader().ReadLawPoints(s.sweep.id()).value();
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].unique_tokens, 5000);
  EXPECT_EQ(points[0].epochs, 2.5);
}

TEST_P(TrialStoreConformance, UpdatesTheSweepConfig) {
  SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  v1::SweepConfig config = s.sweep.config();
  config.mutable_scheduling()->set_priority(-7);
  config.mutable_scheduling()->set_max_concurrent_trials(3);
  ASSERT_TRUE(store_->UpdateSweepConfig(s.sweep.id(), config).ok());
  absl::StatusOr<std::vector<SweepRecord>> all = store_->LoadAll();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)[0].sweep.config().scheduling().priority(), -7);
  EXPECT_EQ((*all)[0].sweep.config().scheduling().max_concurrent_trials(), 3u);
  EXPECT_EQ((*all)[0].sweep.config().name(), s.sweep.config().name());
}

TEST_P(TrialStoreConformance, ResentMetricPointsAreNoOps) {
  SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  const std::string id = s.trials[0].trial.spec().trial_id();
  std::vector<v1::MetricPoint> batch(3);
  batch[0].set_step(10), batch[0].set_name("train_loss"),
      batch[0].set_value(4.0);
  batch[1].set_step(10), batch[1].set_name("lr"), batch[1].set_value(1e-3);
  batch[2].set_step(20), batch[2].set_name("train_loss"),
      batch[2].set_value(3.5);
  EXPECT_EQ(store_->InsertMetrics(id, 1, batch).value(), 3);
  EXPECT_EQ(store_->InsertMetrics(id, 1, batch).value(), 0);
  EXPECT_EQ(store_->CountMetrics(id, 1).value(), 3);
}

// docs/faults.md "Metric points": (trial, step, name) is unique across
// attempts; a resumed attempt's point replaces the earlier attempt's.
TEST_P(TrialStoreConformance, ALaterAttemptsPointReplacesTheEarlierOne) {
  SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  const std::string id = s.trials[0].trial.spec().trial_id();
  std::vector<v1::MetricPoint> batch(2);
  batch[0].set_step(10), batch[0].set_name("train_loss"),
      batch[0].set_value(4.0);
  batch[1].set_step(20), batch[1].set_name("train_loss"),
      batch[1].set_value(3.5);
  ASSERT_EQ(store_->InsertMetrics(id, 1, batch).value(), 2);
  v1::MetricPoint again = batch[0];
  again.set_value(4.25);
  EXPECT_EQ(store_->InsertMetrics(id, 2, {again}).value(), 1);
  EXPECT_EQ(store_->CountMetrics(id, 1).value(), 1);  // step 20
  EXPECT_EQ(store_->CountMetrics(id, 2).value(), 1);  // step 10, replaced
  // A late point of the older attempt does not undo the newer one.
  EXPECT_EQ(store_->InsertMetrics(id, 1, {batch[0]}).value(), 0);
  EXPECT_EQ(store_->CountMetrics(id, 2).value(), 1);
}

TEST_P(TrialStoreConformance, StoresAndReplacesTheFit) {
  SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  v1::ScalingLawFit fit;
  fit.set_alpha(0.34);
  fit.set_message("first");
  ASSERT_TRUE(store_->StoreFit(s.sweep.id(), fit, 5).ok());
  fit.set_message("second");
  ASSERT_TRUE(store_->StoreFit(s.sweep.id(), fit, 6).ok());
  absl::StatusOr<std::vector<SweepRecord>> all = store_->LoadAll();
  ASSERT_TRUE((*all)[0].sweep.has_fit());
  EXPECT_EQ((*all)[0].sweep.fit().alpha(), 0.34);
  EXPECT_EQ((*all)[0].sweep.fit().message(), "second");
}

TEST_P(TrialStoreConformance, AttemptsAndWorkersAreAccepted) {
  SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  v1::WorkerResources res;
  res.set_cpu_slots(2);
  EXPECT_TRUE(store_->UpsertWorker("wk-1", res, 1).ok());
  EXPECT_TRUE(store_->UpsertWorker("wk-1", res, 2).ok());
  EXPECT_TRUE(store_->TouchWorker("wk-1", 3).ok());
  EXPECT_TRUE(store_->UpsertWorker("wk-0", res, 3).ok());
  const std::vector<WorkerRecord> workers = store_->LoadWorkers().value();
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].worker_id, "wk-0");
  EXPECT_EQ(workers[1].worker_id, "wk-1");
  TrialRecord t = s.trials[0];
  t.trial.set_attempt(1);
  t.trial.set_worker_id("wk-1");
  EXPECT_TRUE(store_->StartAttempt(t, 4).ok());
  EXPECT_TRUE(store_
                  ->EndAttempt(t.trial.spec().trial_id(), 1,
                               "OUTCOME_SUCCEEDED", 0, "", 5)
                  .ok());
}

// A worker that left (HeartbeatRequest.leaving) loses its row; its
// attempts keep its id; an unknown id is no error.
TEST_P(TrialStoreConformance, RemovedWorkerIsGoneAfterAReopen) {
  SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  v1::WorkerResources res;
  res.set_cpu_slots(1);
  ASSERT_TRUE(store_->UpsertWorker("wk-a", res, 10).ok());
  ASSERT_TRUE(store_->UpsertWorker("wk-b", res, 10).ok());
  TrialRecord t = s.trials[0];
  t.trial.set_attempt(1);
  t.trial.set_worker_id("wk-a");
  ASSERT_TRUE(store_->StartAttempt(t, 11).ok());
  ASSERT_TRUE(store_->RemoveWorker("wk-a").ok());
  EXPECT_TRUE(store_->RemoveWorker("wk-nope").ok());
  if (GetParam() == "sqlite") store_ = Reopen();
  const std::vector<WorkerRecord> workers = store_->LoadWorkers().value();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].worker_id, "wk-b");
}

TEST_P(TrialStoreConformance, WorkerDrainingIsStoredAndSurvivesReRegistering) {
  v1::WorkerResources res;
  res.set_hostname("host-a");
  res.set_gpus(2);
  res.set_cpu_slots(4);
  ASSERT_TRUE(store_->UpsertWorker("wk-a", res, 10).ok());
  ASSERT_TRUE(store_->UpsertWorker("wk-b", res, 10).ok());
  ASSERT_TRUE(store_->UpdateWorkerDraining("wk-a", true).ok());
  ASSERT_TRUE(store_->UpsertWorker("wk-a", res, 20).ok());  // registers again
  ASSERT_TRUE(store_->TouchWorker("wk-a", 30).ok());
  EXPECT_TRUE(store_->UpdateWorkerDraining("wk-nope", true).ok());  // ignored
  if (GetParam() == "sqlite") store_ = Reopen();
  std::vector<WorkerRecord> workers = store_->LoadWorkers().value();
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].worker_id, "wk-a");
  EXPECT_TRUE(workers[0].draining);
  EXPECT_EQ(workers[0].resources.hostname(), "host-a");
  EXPECT_EQ(workers[0].resources.gpus(), 2u);
  EXPECT_EQ(workers[0].resources.cpu_slots(), 4u);
  EXPECT_EQ(workers[0].last_heartbeat_unix_ms, 30);
  EXPECT_FALSE(workers[1].draining);

  ASSERT_TRUE(store_->UpdateWorkerDraining("wk-a", false).ok());
  EXPECT_FALSE(store_->LoadWorkers().value()[0].draining);
}

TEST_P(TrialStoreConformance, LogChunksAppendAndResentBytesAreNoOps) {
  SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  const std::string id = s.trials[0].trial.spec().trial_id();
  EXPECT_EQ(store_->ReadTrialLog(id, 1, 0)->next_offset, 0u);
  EXPECT_EQ(store_->AppendTrialLog(id, 1, 0, "step 1\n").value(), 7u);
  EXPECT_EQ(store_->AppendTrialLog(id, 1, 7, "step 2\n").value(), 14u);
  // A re-sent chunk, and one overlapping the end: only new bytes are kept.
  EXPECT_EQ(store_->AppendTrialLog(id, 1, 0, "step 1\n").value(), 14u);
  EXPECT_EQ(store_->AppendTrialLog(id, 1, 7, "step 2\nstep 3\n").value(), 21u);
  EXPECT_EQ(store_->AppendTrialLog(id, 2, 0, "other attempt").value(), 13u);
  absl::StatusOr<TrialLogWindow> all = store_->ReadTrialLog(id, 1, 0);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->data, "step 1\nstep 2\nstep 3\n");
  EXPECT_EQ(all->first_offset, 0u);
  EXPECT_EQ(all->next_offset, 21u);
  // From the middle of a chunk, and from the end.
  EXPECT_EQ(store_->ReadTrialLog(id, 1, 10)->data, "p 2\nstep 3\n");
  EXPECT_EQ(store_->ReadTrialLog(id, 1, 21)->data, "");
  EXPECT_EQ(store_->ReadTrialLog(id, 1, 21)->next_offset, 21u);
  EXPECT_EQ(store_->ReadTrialLog(id, 2, 0)->data, "other attempt");
}

TEST_P(TrialStoreConformance, LogKeepsTheTailOfTheLatestAttempts) {
  SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  const std::string id = s.trials[0].trial.spec().trial_id();
  const std::string chunk(64 * 1024, 'x');
  const uint64_t n = kMaxLogBytes / chunk.size() + 4;  // 4 chunks too many
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(store_->AppendTrialLog(id, 1, i * chunk.size(), chunk).ok());
  }
  absl::StatusOr<TrialLogWindow> w = store_->ReadTrialLog(id, 1, 0);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->next_offset, n * chunk.size());
  EXPECT_EQ(w->first_offset, 4 * chunk.size());
  EXPECT_EQ(w->data.size(), kMaxLogBytes);
  // A gap (the worker skipped to the tail) is kept as one.
  ASSERT_TRUE(store_->AppendTrialLog(id, 1, (n + 1) * chunk.size(), "z").ok());
  w = store_->ReadTrialLog(id, 1, n * chunk.size() - 1);
  EXPECT_EQ(w->data, "xz");
  EXPECT_EQ(w->next_offset, (n + 1) * chunk.size() + 1);
  // Only the kLogAttemptsKept latest attempts keep a log.
  for (uint32_t a = 2; a <= 1 + kLogAttemptsKept; ++a) {
    ASSERT_TRUE(store_->AppendTrialLog(id, a, 0, "a").ok());
  }
  EXPECT_EQ(store_->ReadTrialLog(id, 1, 0)->data, "");
  EXPECT_EQ(store_->ReadTrialLog(id, 2, 0)->data, "a");
}

TEST_P(TrialStoreConformance, ReadSweepsCountsTrialsPerStateWithTheBestLoss) {
  const SweepRecord a = Sweep(2000), b = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(a).ok());
  ASSERT_TRUE(store_->InsertSweep(b).ok());
  for (size_t i : {0, 1}) {
    Update(a, i, [i](v1::Trial& t) {
      t.set_state(v1::SUCCEEDED);
      t.set_val_loss(3.5 - static_cast<double>(i));
    });
  }
  Update(a, 2, [](v1::Trial& t) { t.set_state(v1::RUNNING); });
  ASSERT_TRUE(store_->UpdateSweepPaused(a.sweep.id(), true).ok());
  ASSERT_TRUE(store_->StoreFit(a.sweep.id(), v1::ScalingLawFit(), 5).ok());
  absl::StatusOr<std::vector<SweepSummary>> all = reader().ReadSweeps("");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, b.sweep.id());  // created first
  EXPECT_FALSE((*all)[0].has_fit);
  EXPECT_TRUE(std::isnan((*all)[0].best_val_loss));
  const SweepSummary& s = (*all)[1];
  EXPECT_EQ(s.name, "unit");
  EXPECT_EQ(s.state, "SWEEP_RUNNING");
  EXPECT_EQ(s.created_unix_ms, 2000);
  EXPECT_TRUE(s.paused);
  EXPECT_TRUE(s.has_fit);
  EXPECT_EQ(s.config.grid().flops_budgets_size(), 2);
  EXPECT_EQ(s.counts, (std::map<std::string, int64_t>{
                          {"PENDING", 3}, {"RUNNING", 1}, {"SUCCEEDED", 2}}));
  EXPECT_EQ(s.best_val_loss, 2.5);
  absl::StatusOr<std::vector<SweepSummary>> one =
      reader().ReadSweeps(a.sweep.id());
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].id, a.sweep.id());
  EXPECT_TRUE(reader().ReadSweeps("sw-nope")->empty());
}

TEST_P(TrialStoreConformance, ReadTrialPageFiltersSortsAndPages) {
  const SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  // val_loss 3.0 (trial 4), 2.0 (trial 1); trial 3 failed without a loss.
  Update(s, 1, [](v1::Trial& t) {
    t.set_state(v1::SUCCEEDED);
    t.set_val_loss(2.0);
    t.set_worker_id("wk-7");
  });
  Update(s, 4, [](v1::Trial& t) {
    t.set_state(v1::SUCCEEDED);
    t.set_val_loss(3.0);
  });
  Update(s, 3, [](v1::Trial& t) { t.set_state(v1::FAILED); });
  TrialPageQuery q{.limit = 2, .sort = "loss"};
  absl::StatusOr<TrialPage> page = reader().ReadTrialPage(s.sweep.id(), q);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->total, 6);
  ASSERT_EQ(page->rows.size(), 2u);
  EXPECT_EQ(page->rows[0].ordinal, 1);
  EXPECT_EQ(page->rows[0].val_loss, 2.0);
  EXPECT_EQ(page->rows[0].worker_id, "wk-7");
  EXPECT_EQ(page->rows[0].spec.trial_id(), page->rows[0].id);
  EXPECT_EQ(page->rows[1].ordinal, 4);
  // Descending: unknown losses still last, ties by ordinal descending.
  q = {.offset = 1, .limit = 3, .sort = "loss", .descending = true};
  page = reader().ReadTrialPage(s.sweep.id(), q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->rows.size(), 3u);
  EXPECT_EQ(page->rows[0].ordinal, 1);
  EXPECT_EQ(page->rows[1].ordinal, 5);
  EXPECT_EQ(page->rows[2].ordinal, 3);
  q = {.state = "SUCCEEDED"};
  page = reader().ReadTrialPage(s.sweep.id(), q);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->total, 2);
  q = {.search = "wk-7"};
  page = reader().ReadTrialPage(s.sweep.id(), q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->total, 1);
  EXPECT_EQ(page->rows[0].ordinal, 1);
  q = {.search = s.trials[5].trial.spec().trial_id()};
  EXPECT_EQ(reader().ReadTrialPage(s.sweep.id(), q)->rows[0].ordinal, 5);
  q = {.sort = "bogus"};
  EXPECT_THAT(reader().ReadTrialPage(s.sweep.id(), q).status().message(),
              ::testing::HasSubstr("sort = \"bogus\""));
}

// The core stores a running trial's progress only as metric points: a row
// shows its current attempt's latest ones.
TEST_P(TrialStoreConformance, ReadTrialPageShowsTheAttemptsLatestProgress) {
  const SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  const std::string id = s.trials[0].trial.spec().trial_id();
  Update(s, 0, [](v1::Trial& t) {
    t.set_state(v1::RUNNING);
    t.set_attempt(2);
    t.set_step(5);
  });
  ASSERT_TRUE(store_
                  ->InsertMetrics(id, 1,
                                  {Point(40, "train_loss", 9.0),
                                   Point(40, "tokens_per_s", 900)})
                  .ok());
  ASSERT_TRUE(store_
                  ->InsertMetrics(id, 2,
                                  {Point(10, "train_loss", 4.0),
                                   Point(20, "train_loss", 3.5),
                                   Point(20, "tokens_per_s", 1000)})
                  .ok());
  absl::StatusOr<TrialPage> page =
      reader().ReadTrialPage(s.sweep.id(), {.limit = 1});
  ASSERT_TRUE(page.ok()) << page.status();
  const TrialRow& row = page->rows[0];
  EXPECT_EQ(row.attempt, 2u);
  EXPECT_EQ(row.step, 20);
  EXPECT_EQ(row.train_loss, 3.5);
  EXPECT_EQ(row.tokens_per_s, 1000);
  EXPECT_EQ(row.state, "RUNNING");
}

TEST_P(TrialStoreConformance, ReadsRunningNewestAndNamedTrials) {
  const SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  Update(s, 4, [](v1::Trial& t) {
    t.set_state(v1::RUNNING);
    t.set_attempt(1);
    t.set_worker_id("wk-1");
    t.set_updated_unix_ms(50);
  });
  Update(s, 2, [](v1::Trial& t) {
    t.set_state(v1::LEASED);
    t.set_attempt(2);
    t.set_updated_unix_ms(10);
  });
  Update(s, 0, [](v1::Trial& t) {
    t.set_state(v1::SUCCEEDED);
    t.set_attempt(1);
    t.set_updated_unix_ms(90);
  });
  const std::string& sweep = s.sweep.id();
  std::vector<TrialRef> running = reader().ReadRunningTrials(sweep, 0).value();
  ASSERT_EQ(running.size(), 2u);
  EXPECT_EQ(running[0].id, s.trials[2].trial.spec().trial_id());
  EXPECT_EQ(running[0].state, "LEASED");
  EXPECT_EQ(running[0].attempt, 2u);
  EXPECT_EQ(running[1].worker_id, "wk-1");
  EXPECT_EQ(running[1].sweep_id, sweep);
  // The spec's sizes, for the dashboard's curves (x in tokens or FLOPs).
  const v1::TrialSpec& spec2 = s.trials[2].trial.spec();
  EXPECT_EQ(running[0].n_total, static_cast<int64_t>(spec2.n_total()));
  EXPECT_EQ(running[0].tokens, static_cast<int64_t>(spec2.tokens()));
  EXPECT_EQ(running[0].steps, static_cast<int64_t>(spec2.steps()));
  EXPECT_EQ(running[0].flops_budget, spec2.flops_budget());
  EXPECT_EQ(running[0].flops_per_token, spec2.flops_per_token());
  EXPECT_EQ(reader().ReadRunningTrials(sweep, 1)->size(), 1u);
  EXPECT_EQ(reader().ReadRunningTrials("", 0)->size(), 2u);
  std::vector<TrialRef> newest = reader().ReadNewestTrials(sweep, 2).value();
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].id, s.trials[0].trial.spec().trial_id());
  EXPECT_EQ(newest[1].id, s.trials[4].trial.spec().trial_id());
  std::vector<TrialRef> named =
      reader()
          .ReadTrialsById(sweep, {s.trials[5].trial.spec().trial_id(), "nope",
                                  s.trials[0].trial.spec().trial_id()})
          .value();
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0].id, s.trials[5].trial.spec().trial_id());
  EXPECT_EQ(named[1].state, "SUCCEEDED");
  EXPECT_TRUE(
      reader()
          .ReadTrialsById("sw-other", {s.trials[5].trial.spec().trial_id()})
          ->empty());
}

TEST_P(TrialStoreConformance, ReadCurveMergesAttemptsAndReadsPastAStep) {
  const SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  const std::string id = s.trials[0].trial.spec().trial_id();
  ASSERT_TRUE(
      store_
          ->InsertMetrics(
              id, 1,
              {Point(30, "train_loss", 3.0), Point(10, "train_loss", 5.0),
               Point(20, "train_loss", 4.0), Point(20, "lr", 1e-3)})
          .ok());
  ASSERT_TRUE(store_->InsertMetrics(id, 2, {Point(20, "train_loss", 4.5)})
                  .ok());  // a resumed attempt's point replaces it
  TrialRef t{.id = id, .state = "RUNNING", .attempt = 2};
  // Twice: a live curve may come from what the first call read.
  for (int round = 0; round < 2; ++round) {
    absl::StatusOr<CurvePoints> all = reader().ReadCurve(t, "train_loss", -1);
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_EQ(*all, (CurvePoints{{10, 5.0}, {20, 4.5}, {30, 3.0}}));
  }
  ASSERT_TRUE(
      store_->InsertMetrics(id, 2, {Point(40, "train_loss", 2.5)}).ok());
  EXPECT_EQ(reader().ReadCurve(t, "train_loss", -1)->size(), 4u);
  EXPECT_EQ(reader().ReadCurve(t, "train_loss", 20).value(),
            (CurvePoints{{30, 3.0}, {40, 2.5}}));
  // Attempt 1's view has none of attempt 2's points.
  t.attempt = 1;
  t.state = "FAILED";
  EXPECT_EQ(reader().ReadCurve(t, "train_loss", -1).value(),
            (CurvePoints{{10, 5.0}, {30, 3.0}}));
  EXPECT_TRUE(reader().ReadCurve(t, "val_loss", -1)->empty());
}

TEST_P(TrialStoreConformance, ReadWorkersListsThemById) {
  v1::WorkerResources res;
  res.set_hostname("host-b");
  res.set_gpus(1);
  res.set_cpu_slots(8);
  ASSERT_TRUE(store_->UpsertWorker("wk-b", res, 10).ok());
  ASSERT_TRUE(store_->UpsertWorker("wk-a", res, 12).ok());
  ASSERT_TRUE(store_->UpsertWorker("wk-b", res, 15).ok());  // again
  ASSERT_TRUE(store_->TouchWorker("wk-b", 20).ok());
  ASSERT_TRUE(store_->UpdateWorkerDraining("wk-b", true).ok());
  std::vector<WorkerRow> workers = reader().ReadWorkers().value();
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].id, "wk-a");
  const WorkerRow& b = workers[1];
  EXPECT_EQ(b.hostname, "host-b");
  EXPECT_EQ(b.gpus, 1u);
  EXPECT_EQ(b.cpu_slots, 8u);
  EXPECT_EQ(b.registered_unix_ms, 10);
  EXPECT_EQ(b.last_heartbeat_unix_ms, 20);
  EXPECT_TRUE(b.draining);
}

TEST_P(TrialStoreConformance, ReadLawPointsAndTheStoredFit) {
  const SweepRecord s = Sweep(1000);
  ASSERT_TRUE(store_->InsertSweep(s).ok());
  for (size_t i : {5, 0}) {
    Update(s, i, [](v1::Trial& t) {
      t.set_state(v1::SUCCEEDED);
      t.set_val_loss(3.25);
    });
  }
  Update(s, 1, [](v1::Trial& t) { t.set_state(v1::SUCCEEDED); });  // no loss
  Update(s, 2, [](v1::Trial& t) {
    t.set_state(v1::FAILED);
    t.set_val_loss(9);
  });
  std::vector<LawPoint> points = reader().ReadLawPoints(s.sweep.id()).value();
  ASSERT_EQ(points.size(), 2u);
  const v1::TrialSpec& first = s.trials[0].trial.spec();
  EXPECT_EQ(points[0].trial, first.trial_id());  // the smaller budget
  EXPECT_EQ(points[0].n, static_cast<double>(first.n_total()));
  EXPECT_EQ(points[0].d, static_cast<double>(first.tokens()));
  EXPECT_EQ(points[0].flops, first.flops_budget());
  EXPECT_EQ(points[0].loss, 3.25);
  EXPECT_LT(points[0].flops, points[1].flops);
  EXPECT_FALSE(reader().ReadFit(s.sweep.id())->has_value());
  v1::ScalingLawFit fit;
  fit.set_alpha(0.34);
  fit.add_approach3_samples()->set_beta(0.28);
  ASSERT_TRUE(store_->StoreFit(s.sweep.id(), fit, 5).ok());
  absl::StatusOr<std::optional<v1::ScalingLawFit>> stored =
      reader().ReadFit(s.sweep.id());
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->alpha(), 0.34);
  EXPECT_EQ((*stored)->approach3_samples(0).beta(), 0.28);
}

// The answer cache keys on it: equal only while nothing was committed.
TEST_P(TrialStoreConformance, DataVersionChangesWithEachCommit) {
  const int64_t before = reader().DataVersion();
  EXPECT_EQ(reader().DataVersion(), before);
  ASSERT_TRUE(store_->InsertSweep(Sweep(1000)).ok());
  const int64_t after = reader().DataVersion();
  EXPECT_GE(after, 0);
  EXPECT_NE(after, before);
  EXPECT_EQ(reader().DataVersion(), after);
}

INSTANTIATE_TEST_SUITE_P(AllStores, TrialStoreConformance,
                         ::testing::Values("sqlite", "fake"));

TEST(SqliteTrialStore, SurvivesReopenWithSchemaVersion) {
  const std::string path = FreshDir() + "/isoflop.db";
  {
    auto store = SqliteTrialStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    SweepRecord r;
    r.sweep.set_id("sw-1");
    r.sweep.mutable_config()->set_name("x");
    ASSERT_TRUE((*store)->InsertSweep(r).ok());
  }
  auto store = SqliteTrialStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->LoadAll()->size(), 1u);
  EXPECT_GE(SqliteTrialStore::SchemaVersion(), 1);
}

TEST(SqliteTrialStore, MigrationKeepsTheLatestAttemptsPointPerStepAndName) {
  const std::string path = FreshDir() + "/isoflop.db";
  {
    auto store = SqliteTrialStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    SweepRecord r;
    r.sweep.set_id("sw-1");
    r.sweep.mutable_config()->set_name("x");
    r.trials.emplace_back().trial.mutable_spec()->set_trial_id("t");
    ASSERT_TRUE((*store)->InsertSweep(r).ok());
  }
  // A schema-6 database holding one key stored by two attempts.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, R"sql(
PRAGMA foreign_keys = OFF;
DROP TABLE metrics;
CREATE TABLE metrics(
  trial_id TEXT NOT NULL REFERENCES trials(id), attempt INTEGER NOT NULL,
  step INTEGER NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
  unix_ms INTEGER NOT NULL,
  PRIMARY KEY(trial_id, attempt, step, name)) WITHOUT ROWID;
INSERT INTO metrics VALUES('t', 1, 5, 'train_loss', 4.0, 1),
  ('t', 2, 5, 'train_loss', 4.5, 2), ('t', 1, 6, 'train_loss', 3.0, 3);
DROP VIEW trial_view;
DROP VIEW sweep_view;
ALTER TABLE trials DROP COLUMN spec_json;
PRAGMA user_version = 6;)sql",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  {
    auto store = SqliteTrialStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
  }
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::vector<std::string> rows;
  sqlite3_exec(
      db, "SELECT step, attempt, value FROM metrics ORDER BY step",
      [](void* out, int, char** cols, char**) {
        static_cast<std::vector<std::string>*>(out)->push_back(
            absl::StrCat(cols[0], "/", cols[1], "/", cols[2]));
        return 0;
      },
      &rows, nullptr);
  sqlite3_close(db);
  EXPECT_THAT(rows, ::testing::ElementsAre("5/2/4.5", "6/1/3.0"));
}

// Issue 24: SQL users read trial specs from trial_view (docs/import-export.md)
// with plain sqlite3, not protobuf blobs; rows stored before spec_json existed
// are filled in when the store opens.
TEST(SqliteTrialStore, TrialViewShowsTheSpecAsColumnsAndBackfillsOldRows) {
  const std::string path = FreshDir() + "/isoflop.db";
  const auto query = [&path](const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    std::vector<std::string> rows;
    char* error = nullptr;
    sqlite3_exec(
        db, sql.c_str(),
        [](void* out, int n, char** cols, char**) {
          std::string row;
          for (int i = 0; i < n; ++i) {
            absl::StrAppend(&row, i ? "|" : "", cols[i] ? cols[i] : "NULL");
          }
          static_cast<std::vector<std::string>*>(out)->push_back(row);
          return 0;
        },
        &rows, &error);
    EXPECT_EQ(error, nullptr) << error;
    sqlite3_free(error);
    sqlite3_close(db);
    return rows;
  };
  {
    auto store = SqliteTrialStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    SweepRecord r;
    r.sweep.set_id("sw-1");
    r.sweep.mutable_config()->set_name("views");
    r.sweep.set_state(v1::SWEEP_RUNNING);
    for (int i = 0; i < 2; ++i) {
      TrialRecord& t = r.trials.emplace_back();
      t.ordinal = i;
      v1::TrialSpec& spec = *t.trial.mutable_spec();
      spec.set_trial_id(absl::StrCat("t", i));
      spec.set_n_total(1'000'000 * (i + 1));
      spec.set_tokens(20'000'000);
      spec.set_flops_budget(1e14);
      spec.set_dataset("kjv-bpe512");
      spec.mutable_shape()->set_d_model(64 * (i + 1));
      spec.mutable_shape()->set_n_layers(2);
      spec.mutable_shape()->set_n_heads(4);
      spec.mutable_training()->set_lr(3e-3);
      t.trial.set_state(v1::PENDING);
    }
    ASSERT_TRUE((*store)->InsertSweep(r).ok());
    r.trials[1].trial.set_state(v1::SUCCEEDED);
    r.trials[1].trial.set_val_loss(3.25);
    ASSERT_TRUE((*store)->UpdateTrials({r.trials[1]}).ok());
  }
  EXPECT_THAT(
      query("SELECT trial_id, state, params, budget, d_model, "
            "n_layers, n_heads, lr, dataset, val_loss FROM trial_view "
            "ORDER BY trial_id"),
      ::testing::ElementsAre(
          "t0|PENDING|1000000|100000000000000.0|64|2|4|0.003|kjv-bpe512|NULL",
          "t1|SUCCEEDED|2000000|100000000000000.0|128|2|4|0.003|kjv-bpe512|3."
          "25"));
  EXPECT_THAT(query("SELECT sweep_id, name, trials, succeeded, best_val_loss "
                    "FROM sweep_view"),
              ::testing::ElementsAre("sw-1|views|2|1|3.25"));
  // A row as stored before the column existed: filled in at the next open.
  query("UPDATE trials SET spec_json = NULL");
  EXPECT_THAT(query("SELECT count(*) FROM trial_view WHERE d_model IS NULL"),
              ::testing::ElementsAre("2"));
  {
    auto store = SqliteTrialStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
  }
  EXPECT_THAT(query("SELECT trial_id, d_model FROM trial_view ORDER BY 1"),
              ::testing::ElementsAre("t0|64", "t1|128"));
}

TEST(SqliteTrialStore, RefusesADatabaseFromANewerSchema) {
  const std::string path = FreshDir() + "/isoflop.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(
                db,
                absl::StrCat("PRAGMA application_id = ", kIsoflopApplicationId,
                             "; PRAGMA user_version = 99")
                    .c_str(),
                nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = SqliteTrialStore::Open(path);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              ::testing::HasSubstr("schema version 99"));
}

TEST(SqliteTrialStore, SecondWriterOfTheSameDatabaseIsRefused) {
  const std::string path = FreshDir() + "/isoflop.db";
  auto first = SqliteTrialStore::Open(path);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = SqliteTrialStore::Open(path);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              ::testing::HasSubstr("in use by another isoflop-coordinator"));
  first->reset();
  EXPECT_TRUE(SqliteTrialStore::Open(path).ok());
}

TEST(SqliteTrialStore, RefusesAnUnopenablePath) {
  auto store = SqliteTrialStore::Open(FreshDir() + "/no/such/dir/isoflop.db");
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace isoflop::coordinator
