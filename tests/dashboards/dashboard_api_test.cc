// Unit tests of the dashboard's HTTP layer without HTTP: the JSON API over a
// real SQLite file fed through the core, the event feed, the publishing
// store and the token.
#include "coordinator/http/dashboard_api.h"

#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "analysis/approach3.h"
#include "analysis/power_law.h"
#include "common/fake_clock.h"
#include "coordinator/events/event_feed.h"
#include "coordinator/events/publishing_trial_store.h"
#include "coordinator/http/auth.h"
#include "coordinator/service/core.h"
#include "coordinator/store/fake_trial_store.h"
#include "coordinator/store/sqlite_trial_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator::http {
namespace {

using ::isoflop::analysis::FitParabola;
using ::isoflop::coordinator::events::EventFeed;
using ::isoflop::coordinator::events::FeedBatch;
using ::isoflop::coordinator::events::FeedEvent;
using ::isoflop::coordinator::events::PublishingTrialStore;
using ::isoflop::coordinator::testing::FreshDir;
using ::isoflop::coordinator::testing::SmallConfig;
using nlohmann::json;
using ::testing::HasSubstr;

TEST(FitParabola, RecoversCoefficients) {
  std::vector<std::pair<double, double>> xy;
  for (double x : {10.0, 11.0, 12.5, 13.0, 14.0})
    xy.emplace_back(x, 3.0 - 0.5 * x + 0.02 * x * x);
  double c[3];
  ASSERT_TRUE(FitParabola(xy, c));
  EXPECT_NEAR(c[0], 3.0, 1e-8);
  EXPECT_NEAR(c[1], -0.5, 1e-9);
  EXPECT_NEAR(c[2], 0.02, 1e-10);
}

TEST(FitParabola, NeedsThreeDistinctX) {
  double c[3];
  EXPECT_FALSE(FitParabola({{1, 2}, {1, 3}, {2, 4}}, c));
}

TEST(EventFeed, ReturnsEventsAfterSeqFilteredBySweep) {
  EventFeed feed;
  feed.Publish("metric", "a", "1");
  feed.Publish("metric", "b", "2");
  feed.Publish("worker", "", "3");
  FeedBatch batch = feed.Since(0, "a", absl::ZeroDuration());
  ASSERT_EQ(batch.events.size(), 2u);
  EXPECT_EQ(batch.events[0].data, "1");
  EXPECT_EQ(batch.events[1].data, "3");
  EXPECT_EQ(batch.last_seq, 3u);
  EXPECT_FALSE(batch.gap);
}

TEST(EventFeed, ReportsGapWhenReaderFellBehind) {
  EventFeed feed(/*capacity=*/2);
  for (int i = 0; i < 5; ++i) feed.Publish("metric", "a", "x");
  EXPECT_TRUE(feed.Since(1, "", absl::ZeroDuration()).gap);
  EXPECT_FALSE(feed.Since(3, "", absl::ZeroDuration()).gap);
}

TEST(EventFeed, CloseEndsWaiting) {
  EventFeed feed;
  feed.Close();
  EXPECT_TRUE(feed.Since(0, "", absl::Seconds(10)).closed);
}

TEST(Auth, CredentialsFromHeaderAndCookie) {
  EXPECT_EQ(RequestCredentials("Bearer abc", "").bearer, "abc");
  EXPECT_EQ(RequestCredentials("", "x=1; isoflop_session=def; y=2").session,
            "def");
  EXPECT_EQ(RequestCredentials("", "isoflop_token=def").session, "");
  EXPECT_EQ(RequestCredentials("Basic zzz", "").bearer, "");
  EXPECT_TRUE(SameToken("abc", "abc"));
  EXPECT_FALSE(SameToken("abc", "abd"));
  EXPECT_FALSE(SameToken("", ""));
}

TEST(Auth, CreatesTokenFileOnceWithMode0600) {
  const std::string path = FreshDir() + "/token";
  absl::StatusOr<Token> first = LoadOrCreateToken(path);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->value.size(), 64u);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  absl::StatusOr<Token> again = LoadOrCreateToken(path);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->value, first->value);
}

TEST(Auth, SafeNextKeepsOnlyPathsOfThisOrigin) {
  EXPECT_EQ(SafeNext("/sweep.html?id=s-1&x=%20"), "/sweep.html?id=s-1&x=%20");
  EXPECT_EQ(SafeNext("/"), "/");
  for (const std::string bad :
       {"", "//evil", "/\\evil", "/%09/evil", "/\t/evil", "/%5cevil",
        "/%2F/evil", "https://evil", "evil", "/a\r\nb", "/a%0d%0ab"}) {
    EXPECT_EQ(SafeNext(bad), "/") << bad;
  }
  EXPECT_EQ(SafeNext("/" + std::string(2048, 'a')), "/");
}

TEST(Auth, SessionsExpireAndAreRevoked) {
  FakeClock clock;
  SessionStore sessions(&clock, absl::Hours(12), /*max_sessions=*/2);
  const std::string a = sessions.Create();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_NE(sessions.Create(), a);
  EXPECT_TRUE(sessions.Valid(a));
  EXPECT_FALSE(sessions.Valid(""));
  clock.Advance(absl::Hours(12));
  EXPECT_FALSE(sessions.Valid(a));
  const std::string b = sessions.Create();
  sessions.Revoke(b);
  EXPECT_FALSE(sessions.Valid(b));
}

// Issue 24 point 4: a one-time login link opens once, within its life.
TEST(Auth, LoginCodesOpenOnceAndExpire) {
  FakeClock clock;
  SessionStore sessions(&clock, absl::Hours(12), /*max_sessions=*/2);
  const std::string code = sessions.CreateLoginCode(absl::Minutes(10));
  EXPECT_EQ(code.size(), 64u);
  EXPECT_FALSE(sessions.Valid(code));  // a code is not a session
  EXPECT_TRUE(sessions.RedeemLoginCode(code));
  EXPECT_FALSE(sessions.RedeemLoginCode(code));  // spent
  const std::string late = sessions.CreateLoginCode(absl::Minutes(10));
  clock.Advance(absl::Minutes(10));
  EXPECT_FALSE(sessions.RedeemLoginCode(late));  // expired
  EXPECT_FALSE(sessions.RedeemLoginCode(""));
  EXPECT_FALSE(sessions.RedeemLoginCode("not-a-code"));
}

// A core over SQLite (through the publishing store) with SmallConfig's 6
// trials, 3 of them run to the end with 60 metric points each.
class DashboardApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = FreshDir() + "/isoflop.db";
    auto store = SqliteTrialStore::Open(db_);
    ASSERT_TRUE(store.ok()) << store.status();
    sqlite_ = std::move(*store);
    published_ = std::make_unique<PublishingTrialStore>(sqlite_.get(), &feed_);
    core_ = std::make_unique<Core>(published_.get(), &clock_, CoreOptions{});
    ASSERT_TRUE(core_->Recover().ok());
    // Freshness bound zero: every answer is current (the cache's own tests
    // set a bound).
    api_ = std::make_unique<DashboardApi>(
        sqlite_.get(), core_.get(),
        DashboardApiOptions{.max_staleness = absl::ZeroDuration(),
                            .clock = &clock_});
    v1::SubmitSweepRequest submit;
    *submit.mutable_config() = SmallConfig();
    auto sweep = core_->Submit(submit);
    ASSERT_TRUE(sweep.ok()) << sweep.status();
    sweep_ = sweep->sweep_id();
    v1::RegisterWorkerRequest reg;
    reg.set_worker_id("w1");
    reg.mutable_resources()->set_cpu_slots(8);
    reg.mutable_resources()->set_hostname("host1");
    ASSERT_TRUE(core_->RegisterWorker(reg).ok());
    for (int i = 0; i < 3; ++i) {
      v1::LeaseTrialRequest lease;
      lease.set_worker_id("w1");
      lease.set_free_cpu_slots(1);
      auto l = core_->LeaseTrial(lease);
      ASSERT_TRUE(l.ok() && l->has_assignment());
      v1::ReportMetricsRequest m;
      m.set_worker_id("w1");
      m.mutable_lease()->set_trial_id(l->spec().trial_id());
      m.mutable_lease()->set_attempt(l->attempt());
      m.mutable_lease()->set_lease_epoch(l->lease_epoch());
      for (int s = 1; s <= 60; ++s) {
        v1::MetricPoint* p = m.add_points();
        p->set_step(s);
        p->set_name("train_loss");
        p->set_value(3.0 + 1.0 / s + i);
      }
      auto reported = core_->ReportMetrics(m);
      ASSERT_TRUE(reported.ok()) << reported.status();
      if (i < 2) {  // the third stays RUNNING
        v1::ReportOutcomeRequest out;
        out.set_worker_id("w1");
        *out.mutable_lease() = m.lease();
        out.set_outcome(v1::OUTCOME_SUCCEEDED);
        out.set_final_val_loss(3.5 + i);
        ASSERT_TRUE(core_->ReportOutcome(out).ok());
      }
    }
  }

  std::string db_, sweep_;
  FakeClock clock_;
  EventFeed feed_;
  std::unique_ptr<SqliteTrialStore> sqlite_;
  std::unique_ptr<PublishingTrialStore> published_;
  std::unique_ptr<Core> core_;
  std::unique_ptr<DashboardApi> api_;
};

TEST_F(DashboardApiTest, SweepsCountStatesAndBestLoss) {
  absl::StatusOr<json> sweeps = api_->Sweeps();
  ASSERT_TRUE(sweeps.ok()) << sweeps.status();
  ASSERT_EQ((*sweeps)["sweeps"].size(), 1u);
  const json& s = (*sweeps)["sweeps"][0];
  EXPECT_EQ(s["n_trials"], 6);
  EXPECT_EQ(s["ended"], 2);
  EXPECT_EQ(s["counts"]["SUCCEEDED"], 2);
  EXPECT_EQ(s["counts"]["RUNNING"], 1);
  EXPECT_DOUBLE_EQ(s["best_val_loss"].get<double>(), 3.5);
}

// Issue 21: a grid of parameter targets shows the shapes its rule gives.
TEST_F(DashboardApiTest, SweepOfNTargetsListsTheRulesShapes) {
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = SmallConfig();
  submit.mutable_config()->set_name("targets");
  submit.mutable_config()->mutable_grid()->clear_model_shapes();
  submit.mutable_config()->mutable_grid()->add_n_targets(30e3);
  submit.mutable_config()->mutable_grid()->add_n_targets(100e3);
  auto sweep = core_->Submit(submit);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  absl::StatusOr<json> one = api_->Sweep(sweep->sweep_id());
  ASSERT_TRUE(one.ok()) << one.status();
  // 30K -> d_model 22, 100K -> d_model 56 (docs/config.md, one layer each).
  EXPECT_EQ((*one)["shapes"], json::parse("[[22, 1, 1], [56, 1, 1]]"));
}

TEST_F(DashboardApiTest, TrialsSortFilterAndPage) {
  TrialQuery q;
  q.sort = "loss";
  q.limit = 2;
  absl::StatusOr<json> page = api_->Trials(sweep_, q);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ((*page)["total"], 6);
  ASSERT_EQ((*page)["trials"].size(), 2u);
  EXPECT_DOUBLE_EQ((*page)["trials"][0]["val_loss"].get<double>(), 3.5);
  q = TrialQuery{};
  q.state = "RUNNING";
  page = api_->Trials(sweep_, q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ((*page)["total"], 1);
  // The live step and loss come from the metrics table.
  EXPECT_EQ((*page)["trials"][0]["step"], 60);
  EXPECT_NEAR((*page)["trials"][0]["train_loss"].get<double>(), 5.0 + 1 / 60.0,
              1e-12);
}

// An adaptive grid's extension, committed to SQLite through the core,
// carries its reason into the trials API.
TEST_F(DashboardApiTest, TrialsSayWhyAnAdaptiveGridAddedThem) {
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = SmallConfig();
  submit.mutable_config()->set_name("adaptive");
  submit.mutable_config()->mutable_grid()->mutable_adaptive();
  auto sweep = core_->Submit(submit);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_EQ(sweep->n_trials(), 3u);  // the first budget only
  for (;;) {
    v1::LeaseTrialRequest lease;
    lease.set_worker_id("w1");
    lease.set_free_cpu_slots(1);
    auto l = core_->LeaseTrial(lease);
    ASSERT_TRUE(l.ok()) << l.status();
    if (!l->has_assignment()) break;
    if (l->spec().sweep_id() != sweep->sweep_id()) continue;
    v1::ReportOutcomeRequest out;
    out.set_worker_id("w1");
    out.mutable_lease()->set_trial_id(l->spec().trial_id());
    out.mutable_lease()->set_attempt(l->attempt());
    out.mutable_lease()->set_lease_epoch(l->lease_epoch());
    out.set_outcome(v1::OUTCOME_SUCCEEDED);
    // Lowest at the smallest N: the budget is extended below.
    out.set_final_val_loss(3.0 +
                           1e-5 * static_cast<double>(l->spec().n_total()));
    ASSERT_TRUE(core_->ReportOutcome(out).ok());
    if (core_->GetSweep(sweep->sweep_id())->trials_size() > 3) break;
  }
  absl::StatusOr<json> page = api_->Trials(sweep->sweep_id(), TrialQuery{});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_GT((*page)["trials"].size(), 3u);
  EXPECT_EQ((*page)["trials"][0]["reason"], "");
  EXPECT_EQ((*page)["trials"][3]["reason"], "extend below edge minimum");
}

TEST_F(DashboardApiTest, TrialsRejectUnknownSortNamingIt) {
  TrialQuery q;
  q.sort = "bogus";
  EXPECT_THAT(api_->Trials(sweep_, q).status().message(),
              HasSubstr("sort = \"bogus\""));
}

TEST_F(DashboardApiTest, CurvesAreDownsampledKeepingEnds) {
  CurveQuery q;
  q.max_points = 20;
  absl::StatusOr<json> curves = api_->Curves(sweep_, q);
  ASSERT_TRUE(curves.ok()) << curves.status();
  // select=auto: the running trial only.
  ASSERT_EQ((*curves)["curves"].size(), 1u);
  const json& c = (*curves)["curves"][0];
  EXPECT_EQ(c["n_raw"], 60);
  EXPECT_LE(c["points"].size(), 20u);
  EXPECT_EQ(c["points"].front()[0], 1);
  EXPECT_EQ(c["points"].back()[0], 60);
}

// The sweep page's buttons: pause and resume flip the flag the page shows,
// cancel ends the sweep, an unknown action is refused naming it.
TEST_F(DashboardApiTest, SweepActionsPauseResumeAndCancelThroughTheCore) {
  absl::StatusOr<json> paused = api_->SweepAction(sweep_, "pause");
  ASSERT_TRUE(paused.ok()) << paused.status();
  EXPECT_EQ((*paused)["paused"], true);
  EXPECT_EQ((*api_->Sweep(sweep_))["paused"], true);
  absl::StatusOr<json> resumed = api_->SweepAction(sweep_, "resume");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*api_->Sweep(sweep_))["paused"], false);
  absl::StatusOr<json> bad = api_->SweepAction(sweep_, "frobnicate");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("action = \"frobnicate\""));
  EXPECT_EQ(api_->SweepAction("sw-unknown", "pause").status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<json> cancelled = api_->SweepAction(sweep_, "cancel");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ((*cancelled)["state"], "SWEEP_CANCELLED");
  // Pausing an ended sweep: the core's refusal, unchanged.
  EXPECT_EQ(api_->SweepAction(sweep_, "pause").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// The compare page diffs two sweeps' configs: the sweep carries its
// resolved config with the config files' field names.
TEST_F(DashboardApiTest, SweepCarriesItsResolvedConfig) {
  absl::StatusOr<json> s = api_->Sweep(sweep_);
  ASSERT_TRUE(s.ok()) << s.status();
  const json& config = (*s)["config"];
  ASSERT_TRUE(config.is_object()) << s->dump();
  EXPECT_EQ(config["name"], SmallConfig().name());
  EXPECT_TRUE(config["grid"].contains("flops_budgets")) << config.dump();
}

// The sweep page plots curves against tokens and FLOPs and colours them by
// budget and size from these fields: they match the trial's own row.
TEST_F(DashboardApiTest, CurvesCarryEachTrialsSizeBudgetAndPerStepScales) {
  absl::StatusOr<json> curves = api_->Curves(sweep_, CurveQuery{});
  ASSERT_TRUE(curves.ok()) << curves.status();
  ASSERT_EQ((*curves)["curves"].size(), 1u);
  const json& c = (*curves)["curves"][0];
  TrialQuery q;
  q.search = c["trial"].get<std::string>();
  absl::StatusOr<json> rows = api_->Trials(sweep_, q);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ((*rows)["trials"].size(), 1u);
  const json& t = (*rows)["trials"][0];
  EXPECT_EQ(c["n"], t["n"]);
  EXPECT_EQ(c["flops_budget"], t["flops"]);
  EXPECT_EQ(c["steps"], t["steps"]);
  ASSERT_GT(c["steps"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(
      c["tokens_per_step"].get<double>() * c["steps"].get<double>(),
      t["d"].get<double>());
  // FLOPs per step: tokens per step x the trial's FLOPs/token, so the whole
  // run is within a step of its budget.
  const double total =
      c["flops_per_step"].get<double>() * c["steps"].get<double>();
  EXPECT_NEAR(total / t["flops"].get<double>(), 1.0, 0.05);
}

TEST_F(DashboardApiTest, EndedTrialsReadFromCacheAnswerTheSame) {
  TrialQuery q;
  q.state = "SUCCEEDED";
  absl::StatusOr<json> first = api_->Trials(sweep_, q);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ((*first)["trials"].size(), 2u);
  EXPECT_GE((*first)["trials"][0]["step"].get<int64_t>(), 60);
  absl::StatusOr<json> again = api_->Trials(sweep_, q);  // from the cache
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *first);
  CurveQuery c;
  c.max_points = 20;
  for (const json& t : (*first)["trials"])
    c.trials.push_back(t["id"].get<std::string>());
  absl::StatusOr<json> curves = api_->Curves(sweep_, c);
  ASSERT_TRUE(curves.ok()) << curves.status();
  ASSERT_EQ((*curves)["curves"].size(), 2u);
  EXPECT_EQ((*curves)["curves"][0]["n_raw"], 60);
  absl::StatusOr<json> cached = api_->Curves(sweep_, c);
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(*cached, *curves);
  // A different resolution is its own entry.
  c.max_points = 10;
  curves = api_->Curves(sweep_, c);
  ASSERT_TRUE(curves.ok());
  EXPECT_LE((*curves)["curves"][0]["points"].size(), 10u);
}

TEST_F(DashboardApiTest, LiveCurvesReadOnlyNewRowsAndAnswerAsAFullRead) {
  CurveQuery c;
  c.select = "running";
  c.max_points = 30;
  absl::StatusOr<json> first = api_->Curves(sweep_, c);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ((*first)["curves"].size(), 1u);
  EXPECT_EQ((*first)["curves"][0]["n_raw"], 60);
  const std::string trial = (*first)["curves"][0]["trial"];
  for (int round = 0; round < 2; ++round) {  // two appends to the cached curve
    std::vector<v1::MetricPoint> more;
    for (int step = 61 + 40 * round; step <= 100 + 40 * round; ++step) {
      v1::MetricPoint& p = more.emplace_back();
      p.set_step(step);
      p.set_name("train_loss");
      p.set_value(2.0 + 1.0 / step);
    }
    ASSERT_TRUE(sqlite_->InsertMetrics(trial, 1, more).ok());
    absl::StatusOr<json> cached = api_->Curves(sweep_, c);
    ASSERT_TRUE(cached.ok()) << cached.status();
    EXPECT_EQ((*cached)["curves"][0]["n_raw"], 100 + 40 * round);
    DashboardApi fresh(sqlite_.get(),
                       core_.get());  // no cache: reads every row
    absl::StatusOr<json> full = fresh.Curves(sweep_, c);
    ASSERT_TRUE(full.ok());
    EXPECT_EQ(*cached, *full);
  }
}

// Steps 61..`last` of train_loss for the running trial, as one batch.
std::vector<v1::MetricPoint> Steps(int last) {
  std::vector<v1::MetricPoint> points;
  for (int step = 61; step <= last; ++step) {
    v1::MetricPoint& p = points.emplace_back();
    p.set_step(step);
    p.set_name("train_loss");
    p.set_value(2.0 + 1.0 / step);
  }
  return points;
}

TEST_F(DashboardApiTest, CachedAnswersAreRefreshedPastTheFreshnessBound) {
  DashboardApi api(sqlite_.get(), core_.get(),
                   {.max_staleness = absl::Seconds(1), .clock = &clock_});
  TrialQuery running;
  running.state = "RUNNING";
  CurveQuery curves;
  curves.select = "running";
  absl::StatusOr<json> page = api.Trials(sweep_, running);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ((*page)["trials"].size(), 1u);
  EXPECT_EQ((*page)["trials"][0]["step"], 60);
  ASSERT_TRUE(api.Curves(sweep_, curves).ok());
  const std::string trial = (*page)["trials"][0]["id"];
  ASSERT_TRUE(sqlite_->InsertMetrics(trial, 1, Steps(70)).ok());
  // Within the bound the answers may be as old as the bound: from memory.
  clock_.Advance(absl::Milliseconds(999));
  page = api.Trials(sweep_, running);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ((*page)["trials"][0]["step"], 60);
  EXPECT_EQ(api.answer_stats().hits, 1);
  // Past it, a committed batch is seen.
  clock_.Advance(absl::Milliseconds(1));
  page = api.Trials(sweep_, running);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ((*page)["trials"][0]["step"], 70);
  absl::StatusOr<json> c = api.Curves(sweep_, curves);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)["curves"][0]["n_raw"], 70);
  EXPECT_EQ(api.answer_stats().misses, 4);
}

TEST_F(DashboardApiTest, UnchangedDatabaseIsServedFromMemoryAtAnyAge) {
  DashboardApi api(sqlite_.get(), core_.get(),
                   {.max_staleness = absl::Seconds(1), .clock = &clock_});
  TrialQuery q;
  q.sort = "loss";
  absl::StatusOr<json> first = api.Trials(sweep_, q);
  ASSERT_TRUE(first.ok()) << first.status();
  clock_.Advance(absl::Hours(1));
  absl::StatusOr<json> again = api.Trials(sweep_, q);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(api.answer_stats().hits, 1);
  // Another request is another answer; a commit past the bound, a new one.
  q.descending = true;
  ASSERT_TRUE(api.Trials(sweep_, q).ok());
  EXPECT_EQ(api.answer_stats().misses, 2);
  const std::string trial = (*first)["trials"][2]["id"];
  ASSERT_EQ((*first)["trials"][2]["state"], "RUNNING");
  ASSERT_TRUE(sqlite_->InsertMetrics(trial, 1, Steps(61)).ok());
  clock_.Advance(absl::Seconds(1));
  q.descending = false;
  again = api.Trials(sweep_, q);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)["trials"][2]["step"], 61);
  EXPECT_EQ(api.answer_stats().misses, 3);
}

TEST_F(DashboardApiTest, ZeroBoundSeesEachCommitAtOnce) {
  TrialQuery running;  // api_ has bound zero
  running.state = "RUNNING";
  absl::StatusOr<json> page = api_->Trials(sweep_, running);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_TRUE(
      sqlite_->InsertMetrics((*page)["trials"][0]["id"], 1, Steps(65)).ok());
  page = api_->Trials(sweep_, running);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ((*page)["trials"][0]["step"], 65);
  ASSERT_TRUE(api_->Trials(sweep_, running).ok());  // unchanged: from memory
  EXPECT_EQ(api_->answer_stats().hits, 1);
}

TEST_F(DashboardApiTest, CurvesSinceStepReturnOnlyTheNewPoints) {
  CurveQuery c;
  c.select = "running";
  c.since_step = 50;
  absl::StatusOr<json> curves = api_->Curves(sweep_, c);
  ASSERT_TRUE(curves.ok()) << curves.status();
  EXPECT_EQ((*curves)["since_step"], 50);
  ASSERT_EQ((*curves)["curves"].size(), 1u);
  const json curve = (*curves)["curves"][0];
  EXPECT_EQ(curve["n_raw"], 10);
  EXPECT_EQ(curve["points"].front()[0], 51);
  EXPECT_EQ(curve["points"].back()[0], 60);
  ASSERT_TRUE(sqlite_->InsertMetrics(curve["trial"], 1, Steps(70)).ok());
  c.since_step = 60;
  curves = api_->Curves(sweep_, c);
  ASSERT_TRUE(curves.ok()) << curves.status();
  ASSERT_EQ((*curves)["curves"][0]["n_raw"], 10);
  EXPECT_EQ((*curves)["curves"][0]["points"][0][0], 61);
  EXPECT_DOUBLE_EQ((*curves)["curves"][0]["points"][0][1].get<double>(),
                   2.0 + 1.0 / 61);
  c.since_step = 70;
  curves = api_->Curves(sweep_, c);
  ASSERT_TRUE(curves.ok());
  EXPECT_EQ((*curves)["curves"][0]["n_raw"], 0);
  EXPECT_TRUE((*curves)["curves"][0]["points"].empty());
  c.since_step = -1;
  curves = api_->Curves(sweep_, c);
  EXPECT_EQ(curves.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(curves.status().message(),
              HasSubstr("since_step = -1: must be >= 0"));
}

TEST_F(DashboardApiTest, CurvesSinceStepMergeAttemptsAsTheFullCurve) {
  // The running trial's worker falls silent; the trial runs again on w2
  // (attempt 2) and reports steps 55..65 again.
  CurveQuery c;
  c.select = "running";
  absl::StatusOr<json> first = api_->Curves(sweep_, c);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string trial = (*first)["curves"][0]["trial"];
  clock_.Advance(absl::Seconds(30));  // its lease expires
  ASSERT_EQ(core_->ReapExpiredLeases(clock_.Now()), 1);
  v1::RegisterWorkerRequest reg;
  reg.set_worker_id("w2");
  reg.mutable_resources()->set_cpu_slots(8);
  reg.mutable_resources()->set_hostname("host2");
  ASSERT_TRUE(core_->RegisterWorker(reg).ok());
  v1::LeaseTrialResponse lease;
  for (int i = 0; i < 4 && lease.spec().trial_id() != trial; ++i) {
    v1::LeaseTrialRequest r;
    r.set_worker_id("w2");
    r.set_free_cpu_slots(1);
    absl::StatusOr<v1::LeaseTrialResponse> l = core_->LeaseTrial(r);
    ASSERT_TRUE(l.ok() && l->has_assignment());
    lease = *l;
  }
  ASSERT_EQ(lease.spec().trial_id(), trial);
  ASSERT_EQ(lease.attempt(), 2u);
  std::vector<v1::MetricPoint> again;
  for (int step = 55; step <= 65; ++step) {
    v1::MetricPoint& p = again.emplace_back();
    p.set_step(step);
    p.set_name("train_loss");
    p.set_value(1.0 + step);
  }
  ASSERT_TRUE(sqlite_->InsertMetrics(trial, 2, again).ok());
  c.trials = {trial};
  absl::StatusOr<json> full = api_->Curves(sweep_, c);
  ASSERT_TRUE(full.ok()) << full.status();
  c.since_step = 50;
  absl::StatusOr<json> since = api_->Curves(sweep_, c);
  ASSERT_TRUE(since.ok()) << since.status();
  json tail = json::array();
  for (const json& p : (*full)["curves"][0]["points"])
    if (p[0].get<int64_t>() > 50) tail.push_back(p);
  EXPECT_EQ((*since)["curves"][0]["points"], tail);
  EXPECT_EQ((*since)["curves"][0]["n_raw"], 15);
  // Step 55 is attempt 2's.
  EXPECT_EQ((*since)["curves"][0]["points"][4][1].get<double>(), 56.0);
}

TEST_F(DashboardApiTest, MetricsArePublishedForTheLiveView) {
  FeedBatch batch = feed_.Since(0, sweep_, absl::ZeroDuration());
  int metric_events = 0;
  for (const FeedEvent& e : batch.events) metric_events += e.type == "metric";
  EXPECT_EQ(metric_events, 3);
}

TEST_F(DashboardApiTest, WorkersListCurrentTrials) {
  absl::StatusOr<json> workers = api_->Workers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ((*workers)["workers"].size(), 1u);
  EXPECT_EQ((*workers)["workers"][0]["hostname"], "host1");
  EXPECT_EQ((*workers)["workers"][0]["trials"].size(), 1u);
  EXPECT_EQ((*workers)["workers"][0]["draining"], false);
}

// Issue 21 point 5: the datasets a worker reports, and a sweep's reason to
// wait when no live worker holds its dataset.
TEST_F(DashboardApiTest, WorkersShowTheirDatasetsAndASweepWhyItWaits) {
  absl::StatusOr<json> workers = api_->Workers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  EXPECT_TRUE((*workers)["workers"][0]["datasets"].is_null());  // unreported
  absl::StatusOr<json> sweep = api_->Sweep(sweep_);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ((*sweep)["pending_reason"], "");  // w1 may hold it
  v1::HeartbeatRequest hb;
  hb.set_worker_id("w1");
  hb.set_reports_datasets(true);
  v1::WorkerDataset* d = hb.add_datasets();
  d->set_name("tiny");
  d->set_vocab_size(256);
  d->set_train_tokens(161949);
  d->set_val_tokens(7977);
  d->set_documents(2);
  ASSERT_TRUE(core_->Heartbeat(hb).ok());
  workers = api_->Workers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  const json& datasets = (*workers)["workers"][0]["datasets"];
  ASSERT_EQ(datasets.size(), 1u);
  EXPECT_EQ(datasets[0]["name"], "tiny");
  EXPECT_EQ(datasets[0]["vocab_size"], 256);
  EXPECT_EQ(datasets[0]["train_tokens"], 161949);
  EXPECT_EQ(datasets[0]["val_tokens"], 7977);
  EXPECT_EQ(datasets[0]["documents"], 2);
  EXPECT_EQ(datasets[0]["bytes"], 0);
  sweep = api_->Sweep(sweep_);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_THAT((*sweep)["pending_reason"].get<std::string>(),
              HasSubstr("waiting for a worker that holds dataset kjv-bpe512"));
}

TEST_F(DashboardApiTest, WorkersShowADrainedWorker) {
  const std::string id = core_->ListWorkers().workers(0).worker_id();
  ASSERT_TRUE(core_->SetWorkerDraining(id, true).ok());
  absl::StatusOr<json> workers = api_->Workers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  EXPECT_EQ((*workers)["workers"][0]["draining"], true);
  FeedBatch batch = feed_.Since(0, "", absl::ZeroDuration());
  bool published = false;
  for (const FeedEvent& e : batch.events) {
    published |= e.type == "worker" &&
                 e.data.find("\"draining\":true") != std::string::npos;
  }
  EXPECT_TRUE(published);
}

// Issue 24 point 2: a worker silent for 3 heartbeat intervals is "lost", the
// CLI's word (cli/output.cc WorkersTable); its trial keeps its lease.
TEST_F(DashboardApiTest, WorkersSayLostAsTheCliDoes) {
  absl::StatusOr<json> workers = api_->Workers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  EXPECT_EQ((*workers)["workers"][0]["state"], "live");
  clock_.Advance(absl::Seconds(7));  // > 3 x the 2 s heartbeat interval
  workers = api_->Workers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  EXPECT_EQ((*workers)["workers"][0]["state"], "lost");
  EXPECT_EQ((*workers)["workers"][0]["trials"].size(), 1u);
}

// Issue 24 point 2: the trial page's row, resolved spec and attempts.
TEST_F(DashboardApiTest, TrialShowsItsSpecProgressAndAttempts) {
  TrialQuery q;
  q.state = "RUNNING";
  absl::StatusOr<json> page = api_->Trials(sweep_, q);
  ASSERT_TRUE(page.ok()) << page.status();
  const std::string running = (*page)["trials"][0]["id"];
  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<json> t = api_->Trial(running);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)["sweep"], sweep_);
  EXPECT_EQ((*t)["state"], "RUNNING");
  EXPECT_EQ((*t)["worker"], "w1");
  EXPECT_EQ((*t)["step"], 60);  // from the metrics table
  EXPECT_EQ((*t)["spec"]["trial_id"], running);
  EXPECT_GT((*t)["spec"]["shape"]["d_model"].get<int>(), 0);
  ASSERT_EQ((*t)["attempts"].size(), 1u);
  EXPECT_EQ((*t)["attempts"][0]["worker"], "w1");
  EXPECT_GT((*t)["attempts"][0]["started_unix_ms"].get<int64_t>(), 0);
  EXPECT_TRUE((*t)["attempts"][0]["ended_unix_ms"].is_null());

  q.state = "SUCCEEDED";
  page = api_->Trials(sweep_, q);
  ASSERT_TRUE(page.ok()) << page.status();
  t = api_->Trial((*page)["trials"][0]["id"].get<std::string>());
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ((*t)["attempts"].size(), 1u);
  EXPECT_EQ((*t)["attempts"][0]["outcome"], "OUTCOME_SUCCEEDED");
  EXPECT_FALSE((*t)["attempts"][0]["ended_unix_ms"].is_null());
  EXPECT_DOUBLE_EQ((*t)["val_loss"].get<double>(), 3.5);

  absl::StatusOr<json> unknown = api_->Trial("tr-nope");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("tr-nope"));
}

TEST_F(DashboardApiTest, PrometheusTextCountsStatesPointsAndLostWorkers) {
  std::string text = api_->PrometheusText();
  EXPECT_THAT(text, HasSubstr("# TYPE isoflop_trials gauge\n"));
  EXPECT_THAT(text, HasSubstr("isoflop_trials{state=\"SUCCEEDED\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("isoflop_trials{state=\"RUNNING\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("isoflop_trials{state=\"FAILED\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("isoflop_queue_depth 3\n"));
  EXPECT_THAT(text, HasSubstr("isoflop_sweeps{state=\"SWEEP_RUNNING\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("isoflop_workers_live 1\n"));
  EXPECT_THAT(text, HasSubstr("isoflop_metric_points_ingested_total 180\n"));
  // The worker falls silent: its running trial's lease ends (at its TTL).
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(core_->ReapExpiredLeases(clock_.Now()), 1);
  text = api_->PrometheusText();
  EXPECT_THAT(text, HasSubstr("isoflop_workers_live 0\n"));
  EXPECT_THAT(
      text,
      HasSubstr("isoflop_lease_expiries_total{reason=\"worker_lost\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("isoflop_queue_depth 4\n"));
}

TEST_F(DashboardApiTest, UnknownSweepIsNotFound) {
  EXPECT_EQ(api_->Law("sw-nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(api_->Sweep("sw-nope").status().code(),
            absl::StatusCode::kNotFound);
}

// Fits come from the store only (issue 19): the law of a sweep without a
// stored fit queues one on the core and answers at once with "fit pending";
// once the queued fit ran, the law shows it. Over the fake store, whose
// reader the API reads as SQLite's.
TEST(DashboardLaw, WithoutAStoredFitAnswersFitPendingThenShowsTheQueuedFit) {
  FakeTrialStore store;
  FakeClock clock;
  // Fits from grid:2's 243 starts, not 4500: seconds under ASan.
  Core core(&store, &clock,
            CoreOptions{.fit_starts = *analysis::StartsFromSpec("grid:2")});
  ASSERT_TRUE(core.Recover().ok());
  DashboardApi api(&store, &core);
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = SmallConfig();
  absl::StatusOr<v1::SubmitSweepResponse> sweep = core.Submit(submit);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  v1::RegisterWorkerRequest reg;
  reg.set_worker_id("w1");
  reg.mutable_resources()->set_cpu_slots(8);
  ASSERT_TRUE(core.RegisterWorker(reg).ok());
  const auto succeed_next = [&core] {
    v1::LeaseTrialRequest lease;
    lease.set_worker_id("w1");
    lease.set_free_cpu_slots(1);
    absl::StatusOr<v1::LeaseTrialResponse> l = core.LeaseTrial(lease);
    ASSERT_TRUE(l.ok() && l->has_assignment());
    v1::ReportOutcomeRequest out;
    out.set_worker_id("w1");
    out.mutable_lease()->set_trial_id(l->spec().trial_id());
    out.mutable_lease()->set_attempt(l->attempt());
    out.mutable_lease()->set_lease_epoch(l->lease_epoch());
    out.set_outcome(v1::OUTCOME_SUCCEEDED);
    // A known law: L = 1.7 + 400 / N^0.34 + 410 / D^0.28.
    const double n = static_cast<double>(l->spec().n_total());
    const double d = static_cast<double>(l->spec().tokens());
    out.set_final_val_loss(1.7 + 400 / std::pow(n, 0.34) +
                           410 / std::pow(d, 0.28));
    ASSERT_TRUE(core.ReportOutcome(out).ok());
  };
  for (int i = 0; i < 2; ++i) succeed_next();
  // Two points: too few for a fit, none is queued.
  absl::StatusOr<json> law = api.Law(sweep->sweep_id());
  ASSERT_TRUE(law.ok()) << law.status();
  EXPECT_TRUE((*law)["fit"].is_null());
  EXPECT_EQ((*law)["fit_pending"], false);
  EXPECT_EQ(core.RunPendingFits(), 0);
  while ((*law)["points"].size() < 5) {  // of 6: the sweep still runs
    succeed_next();
    law = api.Law(sweep->sweep_id());
    ASSERT_TRUE(law.ok()) << law.status();
  }
  // Five points, no stored fit: pending, and nothing was fitted to answer.
  EXPECT_TRUE((*law)["fit"].is_null());
  EXPECT_EQ((*law)["fit_pending"], true);
  EXPECT_TRUE((*law)["frontier"].empty());
  EXPECT_EQ((*law)["budgets"].size(), 2u);
  EXPECT_EQ(core.GetStats().fits, 0);
  // The core's fit thread (CoordinatorServer's loop) runs the queued fit.
  EXPECT_EQ(core.RunPendingFits(), 1);
  law = api.Law(sweep->sweep_id());
  ASSERT_TRUE(law.ok()) << law.status();
  EXPECT_EQ((*law)["fit_pending"], false);
  ASSERT_FALSE((*law)["fit"].is_null());
  absl::StatusOr<std::optional<v1::ScalingLawFit>> stored =
      store.ReadFit(sweep->sweep_id());
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*law)["fit"]["alpha"].get<double>(), (*stored)->alpha());
  EXPECT_EQ((*law)["fit"]["n_points"], 5);
  EXPECT_EQ((*law)["fit"]["provisional"], true);  // the sweep still runs
  // The stored fit's verdict comes with it (a refit has no backtest).
  ASSERT_TRUE((*law)["verdict"].is_object()) << law->dump();
  EXPECT_EQ((*law)["verdict"]["level"], (*stored)->verdict().level());
  EXPECT_FALSE((*stored)->verdict().level().empty());
  EXPECT_TRUE((*law)["backtest"].is_null());
  EXPECT_EQ((*law)["frontier"].size(), 41u);
  EXPECT_EQ(core.GetStats().fits, 1);
}

}  // namespace
}  // namespace isoflop::coordinator::http
