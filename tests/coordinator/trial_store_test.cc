// Conformance suite: every TrialStore implementation keeps one contract.
#include "coordinator/store/trial_store.h"

#include <cmath>
#include <functional>
#include <memory>

#include "absl/strings/str_cat.h"
#include "coordinator/store/fake_trial_store.h"
#include "coordinator/store/sqlite_trial_store.h"
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
