// `isoflop report` over a real coordinator core (fake store and clock): the
// trials' seconds are the wall time of their attempts as the core saw them.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "analysis/approach3.h"
#include "cli/fit_command.h"
#include "cli/report_command.h"
#include "common/fake_clock.h"
#include "coordinator/service/core.h"
#include "coordinator/store/fake_trial_store.h"
#include "gtest/gtest.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::cli {
namespace {

// GetSweep answered by the core; the report needs nothing else.
class CoreApi final : public CoordinatorApi {
 public:
  explicit CoreApi(coordinator::Core* core) : core_(core) {}
  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const v1::SweepConfig&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<v1::Sweep> GetSweep(const std::string& id) override {
    return core_->GetSweep(id);
  }
  absl::StatusOr<v1::ListSweepsResponse> ListSweeps() override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<v1::Sweep> CancelSweep(const std::string&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<v1::Sweep> RetrySweep(const v1::RetrySweepRequest&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<v1::OptimalResponse> Optimal(
      const v1::OptimalRequest&) override {
    return absl::UnimplementedError("");
  }

 private:
  coordinator::Core* core_;
};

class ReportCoreTest : public ::testing::Test {
 protected:
  ReportCoreTest() : core_(NewCore()) {
    v1::SubmitSweepRequest submit;
    *submit.mutable_config() = coordinator::testing::SmallConfig();
    sweep_id_ = core_->Submit(submit).value().sweep_id();
    v1::RegisterWorkerRequest reg;
    reg.set_worker_id("wk-a");
    reg.mutable_resources()->set_cpu_slots(1);
    EXPECT_TRUE(core_->RegisterWorker(reg).ok());
  }
  // Both fits (the core's and `fit --points`) start from grid:2's 243
  // points, not Chinchilla's 4500: the same starts give the same law, in
  // seconds under ASan.
  std::unique_ptr<coordinator::Core> NewCore() {
    return std::make_unique<coordinator::Core>(
        &store_, &clock_,
        coordinator::CoreOptions{
            .bootstrap_resamples = 0,
            .fit_starts = *analysis::StartsFromSpec(kStarts)});
  }
  static constexpr char kStarts[] = "grid:2";
  v1::LeaseTrialResponse Lease() {
    v1::LeaseTrialRequest r;
    r.set_worker_id("wk-a");
    r.set_free_cpu_slots(1);
    return core_->LeaseTrial(r).value();
  }
  absl::Status End(const v1::LeaseTrialResponse& lease, v1::Outcome outcome,
                   double loss = 3.0) {
    v1::ReportOutcomeRequest r;
    r.set_worker_id("wk-a");
    r.mutable_lease()->set_trial_id(lease.spec().trial_id());
    r.mutable_lease()->set_attempt(lease.attempt());
    r.mutable_lease()->set_lease_epoch(lease.lease_epoch());
    r.set_outcome(outcome);
    r.set_final_val_loss(loss);
    r.set_tokens_per_s(1000);
    return core_->ReportOutcome(r);
  }
  v1::Trial TrialOf(const std::string& id) {
    absl::StatusOr<v1::Sweep> sweep = core_->GetSweep(sweep_id_);
    if (!sweep.ok()) {
      ADD_FAILURE() << sweep.status();
      return {};
    }
    for (const v1::Trial& t : sweep->trials()) {
      if (t.spec().trial_id() == id) return t;
    }
    ADD_FAILURE() << "no trial " << id;
    return {};
  }

  coordinator::FakeTrialStore store_;
  FakeClock clock_;
  std::unique_ptr<coordinator::Core> core_;
  std::string sweep_id_;
};

TEST_F(ReportCoreTest, TrialSecondsSumTheWallTimeOfEveryAttempt) {
  const v1::LeaseTrialResponse first = Lease();
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(End(first, v1::OUTCOME_RETRYABLE).ok());
  clock_.Advance(absl::Seconds(100));  // pending: not counted
  const v1::LeaseTrialResponse second = Lease();
  ASSERT_EQ(second.spec().trial_id(), first.spec().trial_id());
  clock_.Advance(absl::Seconds(20));
  EXPECT_DOUBLE_EQ(TrialOf(first.spec().trial_id()).attempt_seconds(), 30);
  ASSERT_TRUE(End(second, v1::OUTCOME_SUCCEEDED).ok());
  clock_.Advance(absl::Seconds(7));
  const v1::Trial done = TrialOf(first.spec().trial_id());
  EXPECT_DOUBLE_EQ(done.attempt_seconds(), 30);
  EXPECT_FALSE(done.attempt_seconds_partial());

  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      absl::StrFormat("report_core_%d", ::getpid());
  CoreApi api(core_.get());
  std::ostringstream out, err;
  const CommandContext ctx{
      .api = &api, .out = &out, .err = &err, .clock = &clock_};
  ASSERT_TRUE(
      WriteSweepReport(ctx, {.sweep_id = sweep_id_, .out_dir = dir.string()})
          .ok());
  std::ifstream in(dir / "trials.csv");
  std::stringstream csv;
  csv << in.rdbuf();
  std::filesystem::remove_all(dir);
  const std::vector<std::string> lines =
      absl::StrSplit(csv.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u + 6u);
  const std::vector<std::string> row = absl::StrSplit(lines[1], ',');
  ASSERT_EQ(row.size(), 15u);
  EXPECT_EQ(row[0], first.spec().trial_id());
  EXPECT_EQ(row[9], "2");    // attempts
  EXPECT_EQ(row[10], "30");  // seconds
  EXPECT_EQ(row[11], "0");   // measured, not estimated
  EXPECT_EQ(row[13], "");    // CPU trial: no MFU
  // Never ran: no seconds (estimated 0), tokens/s or MFU.
  const std::vector<std::string> never = absl::StrSplit(lines[2], ',');
  ASSERT_EQ(never.size(), 15u);
  EXPECT_EQ(never[10], "");
  EXPECT_EQ(never[11], "0");
  EXPECT_EQ(never[12], "");
  EXPECT_EQ(never[13], "");
}

TEST_F(ReportCoreTest, AttemptsBeforeARestartMarkTheTrialPartial) {
  const v1::LeaseTrialResponse lease = Lease();
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(End(lease, v1::OUTCOME_SUCCEEDED).ok());
  core_ = NewCore();
  ASSERT_TRUE(core_->Recover().ok());
  const v1::Trial t = TrialOf(lease.spec().trial_id());
  EXPECT_TRUE(t.attempt_seconds_partial());
}

// Issue 24: the trials.csv of `isoflop report` is a points file that
// `isoflop fit --points` reads back to the law the coordinator fitted.
TEST_F(ReportCoreTest, TrialsCsvFitsBackToTheCoordinatorsLaw) {
  // Every trial succeeds with a loss from a known law.
  for (int i = 0; i < 6; ++i) {
    const v1::LeaseTrialResponse lease = Lease();
    const double n = static_cast<double>(lease.spec().n_total());
    const double d = static_cast<double>(lease.spec().tokens());
    const double loss =
        1.8 + 400 / std::pow(n, 0.34) + 1200 / std::pow(d, 0.28);
    ASSERT_TRUE(End(lease, v1::OUTCOME_SUCCEEDED, loss).ok());
  }
  core_->RunPendingFits();
  const v1::Sweep sweep = core_->GetSweep(sweep_id_).value();
  ASSERT_TRUE(sweep.has_fit());
  ASSERT_EQ(sweep.fit().n_points(), 6u);

  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      absl::StrFormat("report_round_trip_%d", ::getpid());
  CoreApi api(core_.get());
  std::ostringstream out, err;
  ASSERT_TRUE(WriteSweepReport(
                  {.api = &api, .out = &out, .err = &err, .clock = &clock_},
                  {.sweep_id = sweep_id_, .out_dir = dir.string()})
                  .ok());
  std::ostringstream fit_out, fit_err;
  const absl::Status fitted =
      FitPoints({.out = &fit_out,
                 .err = &fit_err,
                 .format = Format::kJson,
                 .clock = &clock_},
                {.points = (dir / "trials.csv").string(),
                 .approach = "3",
                 .starts = kStarts,
                 .bootstrap = 0});
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(fitted.ok()) << fitted << fit_err.str();
  const nlohmann::json law = nlohmann::json::parse(fit_out.str())["approach3"];
  ASSERT_EQ(law["n_points"].get<int>(), 6);
  const v1::ScalingLawFit& f = sweep.fit();
  EXPECT_NEAR(law["E"].get<double>() / f.e(), 1, 1e-9);
  EXPECT_NEAR(law["A"].get<double>() / f.a(), 1, 1e-9);
  EXPECT_NEAR(law["B"].get<double>() / f.b(), 1, 1e-9);
  EXPECT_NEAR(law["alpha"].get<double>() / f.alpha(), 1, 1e-9);
  EXPECT_NEAR(law["beta"].get<double>() / f.beta(), 1, 1e-9);
}

}  // namespace
}  // namespace isoflop::cli
