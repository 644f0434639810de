// Storage faults and the database check at start (issue 18, defects 4 and 5):
// the SQLite writer retries a full disk with backoff, then answers
// UNAVAILABLE (never INTERNAL) and counts and logs the episode once; the
// core keeps a lease whose outcome could not be stored and closes a reaped
// attempt once the store recovers; a corrupt, foreign or non-SQLite file is
// refused with what to do, an isoflop file from before application_id is
// accepted and stamped.
#include "coordinator/store/store_faults.h"

#include <sqlite3.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/fake_clock.h"
#include "common/log.h"
#include "coordinator/service/core.h"
#include "coordinator/store/fake_trial_store.h"
#include "coordinator/store/sqlite.h"
#include "coordinator/store/sqlite_trial_store.h"
#include "coordinator/sweep/expand.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::FreshDir;
using ::isoflop::coordinator::testing::SmallConfig;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

SweepRecord OneSweep() {
  SweepRecord r;
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(SmallConfig());
  r.sweep.set_id(e->sweep_id);
  *r.sweep.mutable_config() = e->resolved;
  r.sweep.set_state(v1::SWEEP_RUNNING);
  for (size_t i = 0; i < e->trials.size(); ++i) {
    TrialRecord t;
    t.ordinal = static_cast<int>(i);
    *t.trial.mutable_spec() = e->trials[i];
    t.trial.set_state(v1::PENDING);
    r.trials.push_back(t);
  }
  return r;
}

std::vector<v1::MetricPoint> Points(int n) {
  std::vector<v1::MetricPoint> points;
  for (int i = 0; i < n; ++i) {
    v1::MetricPoint p;
    p.set_step(static_cast<uint64_t>(i));
    p.set_name("train_loss_with_a_long_name_to_fill_pages");
    p.set_value(1.0 / (i + 1));
    p.set_unix_ms(1);
    points.push_back(p);
  }
  return points;
}

// Everything a Logger wrote to a temporary file.
class CapturedLog {
 public:
  CapturedLog()
      : file_(std::tmpfile()), log_("test", LogFormat::kText, file_) {}
  ~CapturedLog() { std::fclose(file_); }
  const Logger* logger() const { return &log_; }
  std::string Text() const {
    std::fflush(file_);
    std::rewind(file_);
    std::string out;
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) out.append(buf, n);
    std::fseek(file_, 0, SEEK_END);
    return out;
  }
  int Count(const std::string& needle) const {
    const std::string text = Text();
    int n = 0;
    for (size_t at = text.find(needle); at != std::string::npos;
         at = text.find(needle, at + 1)) {
      ++n;
    }
    return n;
  }

 private:
  std::FILE* file_;
  Logger log_;
};

// A SqliteTrialStore whose writer connection is capped at `max_pages`
// (PRAGMA max_page_count: SQLITE_FULL past it, as a full disk), on a fake
// clock that the writer's backoff advances.
class FullDisk : public ::testing::Test {
 protected:
  void Open(absl::Duration retry_for = absl::Seconds(1)) {
    path_ = FreshDir() + "/isoflop.db";
    auto store = SqliteTrialStore::Open(
        path_,
        SqliteWriterOptions{
            .retry_for = retry_for,
            .faults = &faults_,
            .clock = &clock_,
            .sleep =
                [this](absl::Duration d) {
                  sleeps_.push_back(d);
                  clock_.Advance(d);
                  if (on_sleep_) on_sleep_(sleeps_.size());
                },
            .before_try =
                [this](sqlite3* db) {
                  ++tries_;
                  Exec(db, absl::StrCat("PRAGMA max_page_count = ", max_pages_))
                      .IgnoreError();
                }});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(store).value();
    ASSERT_TRUE(store_->InsertSweep(sweep_).ok());
    trial_ = sweep_.trials[0].trial.spec().trial_id();
    max_pages_ = 1;  // the current size (SQLite never caps below it)
    tries_ = 0;
  }

  CapturedLog log_;
  StoreFaults faults_{log_.logger(), "isoflop.db", absl::Seconds(10)};
  FakeClock clock_;
  std::vector<absl::Duration> sleeps_;
  std::function<void(size_t)> on_sleep_;
  int64_t max_pages_ = 1'000'000;
  int tries_ = 0;
  std::string path_;
  SweepRecord sweep_ = OneSweep();
  std::string trial_;
  std::unique_ptr<SqliteTrialStore> store_;
};

TEST_F(FullDisk, WriteIsRetriedWithBackoffAndCommitsOnceSpaceReturns) {
  ASSERT_NO_FATAL_FAILURE(Open());
  on_sleep_ = [this](size_t n) {
    if (n == 2) max_pages_ = 1'000'000;  // space freed during the 2nd wait
  };
  absl::StatusOr<int> inserted = store_->InsertMetrics(trial_, 1, Points(2000));
  ASSERT_TRUE(inserted.ok()) << inserted.status();
  EXPECT_EQ(*inserted, 2000);  // counted once, although the op ran 3 times
  EXPECT_EQ(tries_, 3);
  EXPECT_THAT(sleeps_,
              ElementsAre(absl::Milliseconds(10), absl::Milliseconds(20)));
  EXPECT_EQ(*store_->CountMetrics(trial_, 1), 2000);
  EXPECT_EQ(faults_.faults("full"), 2);
  EXPECT_EQ(faults_.refused(), 0);
}

TEST_F(FullDisk, WriteAnswersUnavailableWithTheReasonWhenRetriesRunOut) {
  ASSERT_NO_FATAL_FAILURE(Open(absl::Seconds(1)));
  absl::StatusOr<int> inserted = store_->InsertMetrics(trial_, 1, Points(2000));
  EXPECT_EQ(inserted.status().code(), absl::StatusCode::kUnavailable)
      << inserted.status();
  EXPECT_THAT(std::string(inserted.status().message()),
              AllOf(HasSubstr("database or disk is full"),
                    HasSubstr("nothing of this write was stored")));
  EXPECT_EQ(StorageFaultCode(inserted.status()) & 0xff, SQLITE_FULL);
  absl::Duration waited;
  for (absl::Duration d : sleeps_) waited += d;
  EXPECT_LE(waited, absl::Seconds(1));
  EXPECT_GE(waited, absl::Milliseconds(500));
  EXPECT_EQ(*store_->CountMetrics(trial_, 1), 0);
  EXPECT_EQ(faults_.refused(), 1);
  EXPECT_TRUE(faults_.degraded());
}

TEST_F(FullDisk, WritesDuringAnEpisodeGetOneTryEach) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_FALSE(store_->InsertMetrics(trial_, 1, Points(2000)).ok());
  const size_t sleeps = sleeps_.size();
  const int tries = tries_;
  EXPECT_EQ(store_->InsertMetrics(trial_, 1, Points(2000)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(tries_, tries + 1);
  EXPECT_EQ(sleeps_.size(), sleeps);
}

TEST_F(FullDisk, EpisodeIsLoggedOnceWhenItStartsAndOnceWhenItEnds) {
  ASSERT_NO_FATAL_FAILURE(Open());
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(store_->InsertMetrics(trial_, 1, Points(2000)).ok());
  }
  EXPECT_EQ(log_.Count("fail: "), 1) << log_.Text();
  EXPECT_THAT(log_.Text(), AllOf(HasSubstr("database or disk is full"),
                                 HasSubstr("Free space on the filesystem")));
  // A small write that still fits does not end the episode.
  ASSERT_TRUE(store_->InsertMetrics(trial_, 2, Points(1)).ok());
  EXPECT_TRUE(faults_.degraded());
  ASSERT_FALSE(store_->InsertMetrics(trial_, 1, Points(2000)).ok());
  EXPECT_EQ(log_.Count("succeed again"), 0);
  max_pages_ = 1'000'000;
  ASSERT_TRUE(store_->InsertMetrics(trial_, 1, Points(2000)).ok());
  EXPECT_TRUE(faults_.degraded());  // until quiet for 10 s
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(store_->InsertMetrics(trial_, 1, Points(10)).ok());
  EXPECT_FALSE(faults_.degraded());
  EXPECT_EQ(log_.Count("succeed again"), 1) << log_.Text();
  EXPECT_EQ(log_.Count("fail: "), 1);
}

TEST_F(FullDisk, AfterAQuietPeriodAFaultIsRetriedAgain) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_FALSE(store_->InsertMetrics(trial_, 1, Points(2000)).ok());
  clock_.Advance(absl::Seconds(10));
  const size_t sleeps = sleeps_.size();
  ASSERT_FALSE(store_->InsertMetrics(trial_, 1, Points(2000)).ok());
  EXPECT_GT(sleeps_.size(), sleeps + 1);
}

TEST_F(FullDisk, FaultsAreCountedInPrometheusText) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_FALSE(store_->InsertMetrics(trial_, 1, Points(2000)).ok());
  const std::string text = faults_.PrometheusText();
  EXPECT_THAT(
      text,
      AllOf(HasSubstr("# TYPE isoflop_store_write_errors_total counter"),
            HasSubstr(
                absl::StrCat("isoflop_store_write_errors_total{code=\"full\"} ",
                             faults_.faults("full"), "\n")),
            HasSubstr("isoflop_store_write_errors_total{code=\"ioerr\"} 0"),
            HasSubstr("isoflop_store_writes_refused_total 1"),
            HasSubstr("isoflop_store_degraded 1")));
  EXPECT_GT(faults_.faults("full"), 1);
}

TEST_F(FullDisk, AConstraintErrorIsNotRetried) {
  ASSERT_NO_FATAL_FAILURE(Open());
  max_pages_ = 1'000'000;
  EXPECT_EQ(store_->InsertSweep(sweep_).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(tries_, 1);
  EXPECT_TRUE(sleeps_.empty());
  EXPECT_EQ(faults_.faults("full"), 0);
}

// ---- The core: nothing acknowledged or forgotten on a storage fault.

constexpr absl::Duration kTtl = absl::Seconds(30);

class CoreOnAFailingStore : public ::testing::Test {
 protected:
  CoreOnAFailingStore()
      : core_(&store_, &clock_,
              CoreOptions{.lease_ttl = kTtl, .heartbeat_interval = kTtl}) {}
  void SetUp() override {
    v1::SubmitSweepRequest submit;
    *submit.mutable_config() = SmallConfig();
    ASSERT_TRUE(core_.Submit(submit).ok());
    v1::RegisterWorkerRequest reg;
    reg.set_worker_id("wk-a");
    reg.mutable_resources()->set_cpu_slots(1);
    ASSERT_TRUE(core_.RegisterWorker(reg).ok());
    v1::LeaseTrialRequest lease;
    lease.set_worker_id("wk-a");
    lease.set_free_cpu_slots(1);
    absl::StatusOr<v1::LeaseTrialResponse> leased = core_.LeaseTrial(lease);
    ASSERT_TRUE(leased.ok() && leased->has_assignment());
    ref_.set_trial_id(leased->spec().trial_id());
    ref_.set_attempt(leased->attempt());
    ref_.set_lease_epoch(leased->lease_epoch());
  }
  absl::Status Succeed() {
    v1::ReportOutcomeRequest r;
    r.set_worker_id("wk-a");
    *r.mutable_lease() = ref_;
    r.set_outcome(v1::OUTCOME_SUCCEEDED);
    r.set_final_val_loss(3.5);
    return core_.ReportOutcome(r);
  }
  static absl::Status Full() {
    return absl::UnavailableError("store: database or disk is full");
  }

  FakeClock clock_;
  FakeTrialStore store_;
  Core core_;
  v1::LeaseRef ref_;
};

TEST_F(CoreOnAFailingStore, OutcomeTheStoreRefusedIsAcceptedWhenRetried) {
  store_.FailWrites(Full());
  EXPECT_EQ(Succeed().code(), absl::StatusCode::kUnavailable);
  store_.FailWrites(absl::OkStatus());
  EXPECT_TRUE(Succeed().ok());  // the lease is still current
  EXPECT_EQ(store_.AttemptOutcome(ref_.trial_id(), ref_.attempt()),
            "OUTCOME_SUCCEEDED");
  const std::vector<SweepRecord> stored = store_.LoadAll().value();
  for (const TrialRecord& t : stored.at(0).trials) {
    if (t.trial.spec().trial_id() == ref_.trial_id()) {
      EXPECT_EQ(t.trial.state(), v1::SUCCEEDED);
    }
  }
}

TEST_F(CoreOnAFailingStore, HeartbeatRenewsLeasesWhileTheStoreFails) {
  store_.FailWrites(Full());
  v1::HeartbeatRequest r;
  r.set_worker_id("wk-a");
  *r.add_leases() = ref_;
  absl::StatusOr<v1::HeartbeatResponse> beat = core_.Heartbeat(r);
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_EQ(beat->revoked_size(), 0);
}

TEST_F(CoreOnAFailingStore, ReapedAttemptIsClosedOnceTheStoreRecovers) {
  store_.FailWrites(Full());
  clock_.Advance(kTtl + absl::Seconds(1));
  EXPECT_EQ(core_.ReapExpiredLeases(clock_.Now()), 1);
  EXPECT_EQ(store_.AttemptOutcome(ref_.trial_id(), ref_.attempt()), "");
  store_.FailWrites(absl::OkStatus());
  core_.ReapExpiredLeases(clock_.Now());
  EXPECT_EQ(store_.AttemptOutcome(ref_.trial_id(), ref_.attempt()),
            "LEASE_EXPIRED");
  const std::vector<SweepRecord> stored = store_.LoadAll().value();
  for (const TrialRecord& t : stored.at(0).trials) {
    if (t.trial.spec().trial_id() == ref_.trial_id()) {
      EXPECT_EQ(t.trial.state(), v1::PENDING);  // re-queued, and stored so
    }
  }
}

// ---- The check at start (defect 5).

// Runs `sql` on a connection of its own.
void Sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "") << ": " << sql;
  sqlite3_free(err);
  sqlite3_close(db);
}

int64_t PragmaInt(const std::string& path, const std::string& pragma) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, pragma.c_str(), -1, &st, nullptr);
  const int64_t v =
      sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

// Overwrites `count` pages from page `first` (0-based, 4096 bytes) with
// pseudo-random bytes, as `dd if=/dev/urandom bs=4096 seek=first
// conv=notrunc` would.
void Scribble(const std::string& path, int first, int count) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good());
  f.seekp(static_cast<std::streamoff>(first) * 4096);
  uint32_t x = 12345;
  for (int i = 0; i < count * 4096; ++i) {
    x = x * 1103515245 + 12345;
    f.put(static_cast<char>(x >> 16));
  }
}

// A closed isoflop database of about `pages` pages (rows in every page).
std::string FilledDatabase(int points) {
  const std::string path = FreshDir() + "/isoflop.db";
  auto store = SqliteTrialStore::Open(path);
  EXPECT_TRUE(store.ok()) << store.status();
  const SweepRecord sweep = OneSweep();
  EXPECT_TRUE((*store)->InsertSweep(sweep).ok());
  EXPECT_TRUE((*store)
                  ->InsertMetrics(sweep.trials[0].trial.spec().trial_id(), 1,
                                  Points(points))
                  .ok());
  return path;  // closing checkpoints the WAL into the file
}

TEST(DatabaseCheck, NewDatabaseIsStampedWithIsoflopsApplicationId) {
  const std::string path = FreshDir() + "/isoflop.db";
  ASSERT_TRUE(SqliteTrialStore::Open(path).ok());
  EXPECT_EQ(PragmaInt(path, "PRAGMA application_id"), kIsoflopApplicationId);
  EXPECT_EQ(PragmaInt(path, "PRAGMA user_version"),
            SqliteTrialStore::SchemaVersion());
}

TEST(DatabaseCheck, CorruptPagesAreRefusedSayingHowToRecover) {
  const std::string path = FilledDatabase(3000);
  ASSERT_GT(PragmaInt(path, "PRAGMA page_count"), 30);
  Scribble(path, 20, 2);
  auto store = SqliteTrialStore::Open(path);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              AllOf(HasSubstr("the database is corrupt (quick_check"),
                    HasSubstr("isoflop admin backup"), HasSubstr(".recover")));
}

TEST(DatabaseCheck, CheckOffServesACorruptFile) {
  const std::string path = FilledDatabase(3000);
  Scribble(path, 20, 2);
  EXPECT_TRUE(
      SqliteTrialStore::Open(path, SqliteWriterOptions{.check = DbCheck::kOff})
          .ok());
}

TEST(DatabaseCheck, FullCheckFindsAnIndexThatDisagreesWithItsTable) {
  const std::string path = FilledDatabase(10);
  // An index entry gone behind SQLite's back: integrity_check compares
  // every index with its table; quick_check does not.
  Sql(path,
      "PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = "
      "'CREATE INDEX trials_by_sweep ON trials(sweep_id, ordinal) WHERE "
      "ordinal > 0' WHERE name = 'trials_by_sweep'; PRAGMA writable_schema = "
      "OFF;");
  EXPECT_TRUE(SqliteTrialStore::Open(
                  path, SqliteWriterOptions{.check = DbCheck::kQuick})
                  .ok());
  auto store = SqliteTrialStore::Open(
      path, SqliteWriterOptions{.check = DbCheck::kFull});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("the database is corrupt (integrity_check"));
}

TEST(DatabaseCheck, AnotherApplicationsDatabaseIsRefusedAndLeftAlone) {
  const std::string path = FreshDir() + "/other.db";
  Sql(path,
      "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
      "INSERT INTO notes(body) VALUES('mine')");
  auto store = SqliteTrialStore::Open(path);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              AllOf(HasSubstr("not an isoflop database (tables notes"),
                    HasSubstr("pass --db a new path")));
  EXPECT_EQ(PragmaInt(path, "SELECT count(*) FROM sqlite_master"), 1);
  EXPECT_EQ(PragmaInt(path, "PRAGMA application_id"), 0);
}

TEST(DatabaseCheck, ADatabaseWithAnotherApplicationIdIsRefused) {
  const std::string path = FreshDir() + "/other.db";
  Sql(path, "PRAGMA application_id = 1234");
  auto store = SqliteTrialStore::Open(path);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("another application's SQLite database "
                        "(application_id 0x000004d2"));
}

TEST(DatabaseCheck, AFileThatIsNotSqliteIsRefusedAndLeftAlone) {
  const std::string path = FreshDir() + "/notes.txt";
  std::ofstream(path) << std::string(8192, 'x');
  auto store = SqliteTrialStore::Open(path);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("not a SQLite database"));
  EXPECT_EQ(std::filesystem::file_size(path), 8192u);
}

TEST(DatabaseCheck, IsoflopDatabaseFromBeforeTheIdIsAcceptedAndStamped) {
  const std::string path = FilledDatabase(10);
  Sql(path, "PRAGMA application_id = 0");  // as every database before
  ASSERT_EQ(PragmaInt(path, "PRAGMA application_id"), 0);
  auto store = SqliteTrialStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->LoadAll()->size(), 1u);
  store->reset();
  EXPECT_EQ(PragmaInt(path, "PRAGMA application_id"), kIsoflopApplicationId);
}

TEST(DatabaseCheck, ParseDbCheckNamesTheFlag) {
  EXPECT_EQ(*ParseDbCheck("full"), DbCheck::kFull);
  EXPECT_THAT(std::string(ParseDbCheck("fast").status().message()),
              HasSubstr("--check-db = \"fast\": must be off, quick or full"));
}

}  // namespace
}  // namespace isoflop::coordinator
