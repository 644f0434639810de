#include "cli/commands.h"

#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class FakeApi final : public CoordinatorApi {
 public:
  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const v1::SweepConfig& config) override {
    submitted.push_back(config);
    v1::SubmitSweepResponse r;
    r.set_sweep_id("sw-1");
    r.set_n_trials(2);
    return r;
  }
  absl::StatusOr<v1::Sweep> GetSweep(const std::string&) override {
    if (sweeps.size() > 1) {
      absl::StatusOr<v1::Sweep> s = sweeps.front();
      sweeps.pop_front();
      return s;
    }
    return sweeps.front();
  }
  absl::StatusOr<v1::ListSweepsResponse> ListSweeps() override { return list; }
  absl::StatusOr<v1::Sweep> CancelSweep(const std::string&) override {
    return sweeps.front();
  }
  absl::StatusOr<v1::Sweep> RetrySweep(
      const v1::RetrySweepRequest& request) override {
    retry_requests.push_back(request);
    return sweeps.front();
  }
  std::vector<v1::RetrySweepRequest> retry_requests;
  absl::StatusOr<v1::OptimalResponse> Optimal(
      const v1::OptimalRequest& request) override {
    optimal_requests.push_back(request);
    v1::OptimalResponse r;
    r.set_flops(request.flops());
    r.set_n_opt(1.25e6);
    r.set_d_opt(4e7);
    r.set_predicted_loss(3.5);
    return r;
  }

  absl::StatusOr<v1::GetTrialLogsResponse> GetTrialLogs(
      const v1::GetTrialLogsRequest& request) override {
    log_requests.push_back(request);
    v1::GetTrialLogsResponse r = logs.front();
    if (logs.size() > 1) logs.pop_front();
    return r;
  }
  std::deque<v1::GetTrialLogsResponse> logs;  // the last repeats
  std::vector<v1::GetTrialLogsRequest> log_requests;

  std::vector<v1::SweepConfig> submitted;
  std::deque<absl::StatusOr<v1::Sweep>>
      sweeps;  // GetSweep answers, the last repeats
  v1::ListSweepsResponse list;
  std::vector<v1::OptimalRequest> optimal_requests;
};

v1::Sweep Sweep(v1::SweepState state,
                const std::vector<std::pair<v1::TrialState, uint64_t>>& trials,
                bool with_fit) {
  v1::Sweep s;
  s.set_id("sw-1");
  s.set_state(state);
  s.mutable_config()->mutable_grid()->add_flops_budgets(1e12);
  s.mutable_config()->mutable_grid()->add_flops_budgets(3e12);
  int i = 0;
  for (auto [state_i, step] : trials) {
    v1::Trial* t = s.add_trials();
    t->mutable_spec()->set_trial_id("t-" + std::to_string(++i));
    t->set_state(state_i);
    t->set_step(step);
  }
  if (with_fit) {
    s.mutable_fit()->set_alpha(0.34);
    s.mutable_fit()->set_beta(0.28);
    s.mutable_fit()->set_final(true);
  }
  return s;
}

class CommandsTest : public ::testing::Test {
 protected:
  CommandContext Context(Format format = Format::kTable) {
    return {.api = &api_,
            .out = &out_,
            .err = &err_,
            .format = format,
            .clock = &clock_,
            .sleep = [this](absl::Duration d) {
              clock_.Advance(d);
              ++sleeps_;
            }};
  }
  FakeApi api_;
  std::ostringstream out_, err_;
  FakeClock clock_;
  int sleeps_ = 0;
};

TEST_F(CommandsTest, WaitPrintsProgressThenFitAndOptimumAt10xLargestBudget) {
  api_.sweeps = {
      Sweep(v1::SWEEP_RUNNING, {{v1::RUNNING, 10}, {v1::PENDING, 0}}, false),
      Sweep(v1::SWEEP_RUNNING, {{v1::SUCCEEDED, 100}, {v1::RUNNING, 5}}, false),
      Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}, {v1::SUCCEEDED, 100}},
            true)};
  ASSERT_TRUE(WaitForSweep(Context(), "sw-1", 0).ok());
  const std::string out = out_.str();
  EXPECT_THAT(out, HasSubstr("[0/2] t-1"));
  EXPECT_THAT(out, HasSubstr("[1/2] t-1"));
  EXPECT_THAT(out, HasSubstr("alpha = 0.34"));
  EXPECT_THAT(out, HasSubstr("N_opt"));
  ASSERT_EQ(api_.optimal_requests.size(), 1u);
  EXPECT_EQ(api_.optimal_requests[0].flops(), 3e13);
  EXPECT_EQ(api_.optimal_requests[0].sweep_id(), "sw-1");
  EXPECT_THAT(out,
              HasSubstr("extrapolation: 10x the sweep's largest budget\n"));
  EXPECT_EQ(sleeps_, 2);
}

TEST_F(CommandsTest, WaitWarnsPast100xTheLargestBudget) {
  api_.sweeps = {Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}}, true)};
  ASSERT_TRUE(WaitForSweep(Context(), "sw-1", 3e15).ok());
  EXPECT_THAT(out_.str(), HasSubstr("1000x the sweep's largest budget "
                                    "(warning: beyond 100x"));
}

TEST_F(CommandsTest, WaitGivesNoAnswerFromAnUnidentifiedLawAndSaysWhy) {
  v1::Sweep sweep = Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}}, true);
  v1::FitVerdict* v = sweep.mutable_fit()->mutable_approach3_verdict();
  v->set_level("unidentified");
  v->add_reasons("5 points for 5 parameters");
  *sweep.mutable_fit()->mutable_verdict() = *v;
  api_.sweeps = {sweep};
  ASSERT_TRUE(WaitForSweep(Context(), "sw-1", 0).ok());
  EXPECT_TRUE(api_.optimal_requests.empty());
  EXPECT_THAT(out_.str(), HasSubstr("5 points for 5 parameters"));
  EXPECT_THAT(out_.str(), HasSubstr("no compute-optimal answer: the Approach 3 "
                                    "law is unidentified"));
  EXPECT_THAT(out_.str(), HasSubstr("--force"));
}

TEST_F(CommandsTest, WaitWaitsForTheFitAfterTheLastTrial) {
  api_.sweeps = {Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}}, false),
                 Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}}, true)};
  ASSERT_TRUE(WaitForSweep(Context(), "sw-1", 5e20).ok());
  EXPECT_EQ(api_.optimal_requests[0].flops(), 5e20);
}

TEST_F(CommandsTest, WaitPrintsTheFinalFitNotTheLastRefit) {
  v1::Sweep refit = Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}}, true);
  refit.mutable_fit()->set_final(false);
  refit.mutable_fit()->set_alpha(0.99);
  api_.sweeps = {refit, refit,
                 Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}}, true)};
  ASSERT_TRUE(WaitForSweep(Context(), "sw-1", 0).ok());
  EXPECT_THAT(out_.str(), HasSubstr("alpha = 0.34"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("0.99")));
  EXPECT_THAT(out_.str(), HasSubstr("waiting for the final fit"));
}

TEST_F(CommandsTest, RetryNeedsFailedThenRequeuesAndReportsTheCount) {
  EXPECT_EQ(RetrySweep(Context(), "sw-1", false, false).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(api_.retry_requests.empty());
  api_.sweeps = {Sweep(v1::SWEEP_RUNNING,
                       {{v1::SUCCEEDED, 100}, {v1::PENDING, 0}}, false)};
  ASSERT_TRUE(RetrySweep(Context(), "sw-1", true, false).ok());
  ASSERT_EQ(api_.retry_requests.size(), 1u);
  EXPECT_TRUE(api_.retry_requests[0].failed());
  EXPECT_THAT(out_.str(),
              HasSubstr("re-queued 1 failed trial(s) of sweep sw-1"));
}

TEST_F(CommandsTest, WaitFailsWhenSweepFailsNamingTheFirstError) {
  v1::Sweep failed = Sweep(v1::SWEEP_FAILED, {{v1::FAILED, 3}}, false);
  failed.mutable_trials(0)->set_error(
      "trainer refused its flags or data (exit 2)");
  api_.sweeps = {failed};
  absl::Status s = WaitForSweep(Context(), "sw-1", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("SWEEP_FAILED"));
  EXPECT_THAT(s.message(), HasSubstr("exit 2"));
}

TEST_F(CommandsTest, WaitGivesUpWhenNoFitArrives) {
  api_.sweeps = {Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}}, false)};
  absl::Status s = WaitForSweep(Context(), "sw-1", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("no fit"));
}

TEST_F(CommandsTest, WaitRidesOutABriefOutage) {
  api_.sweeps = {absl::UnavailableError("restarting"),
                 Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}}, true)};
  EXPECT_TRUE(WaitForSweep(Context(), "sw-1", 0).ok());
}

TEST_F(CommandsTest, JsonWaitPrintsOneParsableObjectAndProgressOnStderr) {
  api_.sweeps = {Sweep(v1::SWEEP_RUNNING, {{v1::RUNNING, 10}}, false),
                 Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}}, true)};
  ASSERT_TRUE(WaitForSweep(Context(Format::kJson), "sw-1", 0).ok());
  nlohmann::json json = nlohmann::json::parse(out_.str());
  EXPECT_EQ(json["sweep"]["fit"]["alpha"], 0.34);
  EXPECT_EQ(json["optimal"]["n_opt"], 1.25e6);
  EXPECT_THAT(err_.str(), HasSubstr("t-1"));
}

TEST_F(CommandsTest, SubmitRefusesABadFileWithoutCallingTheCoordinator) {
  absl::Status s = SubmitSweep(Context(), "/nonexistent.textproto", false, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(api_.submitted.empty());
}

// Issue 18, defect 11: checked before sending, so a config over gRPC's
// message limit or one protobuf cannot serialize names its field.
TEST_F(CommandsTest,
       SubmitRefusesConfigsOverTheLimitsWithoutCallingTheCoordinator) {
  const std::string dir = ::testing::TempDir();
  std::string shapes;
  for (int i = 0; i < 201; ++i) {
    shapes += "model_shapes { d_model: 64 n_layers: 2 n_heads: 4 } ";
  }
  const struct {
    std::string file, text, expected;
  } cases[] = {
      {"shapes.textproto", "name: \"s\" grid { " + shapes + "}",
       "grid.model_shapes = 201 shapes: must list at most 200"},
      {"latin1.textproto", "name: \"caf\\351\"",
       "name = \"caf\\xE9\": byte 4 (0xE9) is not UTF-8: must be printable "
       "UTF-8 (no control characters, escape sequences or NUL)"},
      {"escape.textproto", "name: \"a\\033[31m\"",
       "name = \"a\\x1B[31m\": byte 2 is 0x1B, a control character: must be "
       "printable UTF-8 (no control characters, escape sequences or NUL)"},
      {"dataset.textproto", "name: \"s\" data { dataset: \"k\\000\" }",
       "data.dataset = \"k\\x00\": byte 2 is 0x00, a control character: must "
       "be printable UTF-8 (no control characters, escape sequences or NUL)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const std::string path = dir + "/" + c.file;
    std::ofstream(path) << c.text;
    absl::Status s = SubmitSweep(Context(), path, false, 0);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), path + ": " + c.expected);
  }
  EXPECT_TRUE(api_.submitted.empty());
}

TEST_F(CommandsTest, SubmitRefusesABadIdWithoutCallingTheCoordinator) {
  const std::string path = ::testing::TempDir() + "/id.textproto";
  std::ofstream(path) << "name: \"s\"";
  absl::Status s = SubmitSweep(Context(), path, false, 0, "a\nb");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "id = \"a\\x0Ab\": must be 1 to 64 of [A-Za-z0-9_.-], starting "
            "with a letter or digit");
  EXPECT_TRUE(api_.submitted.empty());
}

TEST_F(CommandsTest, SubmitSaysTheSweepsScheduling) {
  const std::string path = ::testing::TempDir() + "/scheduled.textproto";
  std::ofstream(path) << "name: \"s\" scheduling { priority: 5 "
                         "max_concurrent_trials: 2 }";
  ASSERT_TRUE(SubmitSweep(Context(), path, false, 0).ok());
  ASSERT_EQ(api_.submitted.size(), 1u);
  EXPECT_EQ(api_.submitted[0].scheduling().priority(), 5);
  EXPECT_EQ(out_.str(), "sw-1\n");
  EXPECT_EQ(err_.str(),
            "submitted sweep sw-1 (2 trials; priority 5, "
            "max_concurrent_trials 2)\n");
}

// `sweep submit` shows the plan first (cli/plan_command.h): the hook sees
// the loaded config, and its refusal (a "no" at the prompt) submits nothing.
TEST_F(CommandsTest, SubmitRunsBeforeSubmitFirstAndStopsOnItsRefusal) {
  const std::string path = ::testing::TempDir() + "/hooked.textproto";
  std::ofstream(path) << "name: \"hooked\"";
  CommandContext ctx = Context();
  std::vector<std::string> seen;
  ctx.before_submit = [&](const v1::SweepConfig& config) {
    seen.push_back(config.name());
    return absl::CancelledError("not submitted");
  };
  EXPECT_EQ(SubmitSweep(ctx, path, false, 0).code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(seen, std::vector<std::string>{"hooked"});
  EXPECT_TRUE(api_.submitted.empty());
  ctx.before_submit = [&](const v1::SweepConfig&) { return absl::OkStatus(); };
  ASSERT_TRUE(SubmitSweep(ctx, path, false, 0).ok());
  EXPECT_EQ(api_.submitted.size(), 1u);
}

TEST_F(CommandsTest, OptimalWithoutSweepUsesTheOnlySweepWithAFit) {
  for (auto [id, ms, fit] :
       {std::tuple{"old", 1, false}, {"new", 3, true}, {"nofit", 5, false}}) {
    v1::Sweep* s = api_.list.add_sweeps();
    s->set_id(id);
    s->set_created_unix_ms(ms);
    if (fit) s->mutable_fit()->set_alpha(0.3);
  }
  CommandContext ctx = Context();
  ctx.digits = 0;  // full precision
  ASSERT_TRUE(ShowOptimal(ctx, 1e21, "").ok());
  ASSERT_EQ(api_.optimal_requests.size(), 1u);
  EXPECT_EQ(api_.optimal_requests[0].sweep_id(), "new");
  EXPECT_THAT(out_.str(), HasSubstr("N_opt          = 1250000"));
}

TEST_F(CommandsTest, OptimalWithoutSweepRefusesToPickAmongFittedSweeps) {
  // Issue 20: no silent "newest" when more than one sweep has a fit.
  for (auto [id, ms, fit] :
       {std::tuple{"old", 1, true}, {"new", 3, true}, {"nofit", 5, false}}) {
    v1::Sweep* s = api_.list.add_sweeps();
    s->set_id(id);
    s->set_created_unix_ms(ms);
    if (fit) s->mutable_fit()->set_alpha(0.3);
  }
  const absl::Status s = ShowOptimal(Context(), 1e21, "");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "2 sweeps have a fit (old, new): name one with --sweep");
  EXPECT_TRUE(api_.optimal_requests.empty());
}

TEST_F(CommandsTest, OptimalRefusesNonPositiveFlops) {
  absl::Status s = ShowOptimal(Context(), 0, "sw-1");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--flops"));
}

TEST_F(CommandsTest, ListJsonParses) {
  api_.list.add_sweeps()->set_id("sw-9");
  ASSERT_TRUE(ListSweeps(Context(Format::kJson)).ok());
  nlohmann::json json = nlohmann::json::parse(out_.str());
  EXPECT_EQ(json["sweeps"][0]["id"], "sw-9");
}

TEST_F(CommandsTest, StatusTableNamesEveryTrial) {
  api_.sweeps = {
      Sweep(v1::SWEEP_RUNNING, {{v1::RUNNING, 10}, {v1::PENDING, 0}}, false)};
  ASSERT_TRUE(ShowSweep(Context(), "sw-1").ok());
  EXPECT_THAT(out_.str(), HasSubstr("t-1"));
  EXPECT_THAT(out_.str(), HasSubstr("t-2"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("fitted law")));
}

// Issue 24, point 5: `sweep list --state S --limit N`.
TEST_F(CommandsTest, ListKeepsTheNewestSweepsInTheStateAsked) {
  const struct {
    const char* id;
    v1::SweepState state;
    bool paused;
    int64_t created;
  } sweeps[] = {{"sw-a", v1::SWEEP_RUNNING, false, 1000},
                {"sw-b", v1::SWEEP_SUCCEEDED, false, 2000},
                {"sw-c", v1::SWEEP_RUNNING, true, 3000},
                {"sw-d", v1::SWEEP_RUNNING, false, 4000},
                {"sw-e", v1::SWEEP_RUNNING, false, 5000}};
  for (const auto& s : sweeps) {
    v1::Sweep* sweep = api_.list.add_sweeps();
    sweep->set_id(s.id);
    sweep->set_state(s.state);
    sweep->set_paused(s.paused);
    sweep->set_created_unix_ms(s.created);
  }
  ASSERT_TRUE(
      ListSweeps(Context(Format::kJson), {.state = "Running", .limit = 2})
          .ok());
  nlohmann::json json = nlohmann::json::parse(out_.str());
  ASSERT_EQ(json["sweeps"].size(), 2u);
  EXPECT_EQ(json["sweeps"][0]["id"], "sw-d");
  EXPECT_EQ(json["sweeps"][1]["id"], "sw-e");
  out_.str("");
  ASSERT_TRUE(ListSweeps(Context(), {.state = "paused"}).ok());
  EXPECT_THAT(out_.str(), HasSubstr("sw-c"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("sw-a")));
}

TEST_F(CommandsTest, ListRefusesAnUnknownStateNamingTheStates) {
  const absl::Status s = ListSweeps(Context(), {.state = "done"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "--state = 'done': must be running, paused, succeeded, failed or "
            "cancelled");
}

// `trial logs --format json`: one object per log line, a line split over
// two reads joined, the last partial line printed when the trial ends.
TEST_F(CommandsTest, JsonLogsAreOneObjectPerLine) {
  v1::GetTrialLogsResponse first;
  first.set_data("step 1 loss 5.0\nstep 2 lo");
  first.set_next_offset(24);
  first.set_attempt(1);
  first.set_latest_attempt(1);
  v1::GetTrialLogsResponse second = first;
  second.set_data("ss 4.0\ndone");
  second.set_next_offset(35);
  second.set_finished(true);
  api_.logs = {first, second};
  ASSERT_TRUE(TrialLogs(Context(Format::kJson), "tr-1", 0, true).ok());
  std::vector<nlohmann::json> lines;
  std::istringstream in(out_.str());
  for (std::string line; std::getline(in, line);) {
    lines.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_EQ(lines[0]["line"], "step 1 loss 5.0");
  EXPECT_EQ(lines[1]["line"], "step 2 loss 4.0");
  EXPECT_EQ(lines[2]["line"], "done");
  EXPECT_EQ(lines[2]["trial_id"], "tr-1");
  EXPECT_EQ(lines[2]["attempt"], 1);
}

// `--wait` off a terminal: plain lines with the whole sweep's progress.
TEST_F(CommandsTest, WaitPrintsOverallProgressWithElapsedAndEta) {
  api_.sweeps = {
      Sweep(v1::SWEEP_RUNNING, {{v1::PENDING, 0}, {v1::PENDING, 0}}, false),
      Sweep(v1::SWEEP_RUNNING, {{v1::SUCCEEDED, 100}, {v1::PENDING, 0}}, false),
      Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}, {v1::SUCCEEDED, 100}},
            true)};
  ASSERT_TRUE(WaitForSweep(Context(), "sw-1", 0).ok());
  const std::string out = out_.str();
  EXPECT_THAT(out, HasSubstr("progress [0/2] 0 succeeded, 0 failed, 0 "
                             "running, 2 pending; elapsed 0s, ETA -\n"));
  // One poll (1 s) for half the sweep's FLOPs: 1 s to go.
  EXPECT_THAT(out, HasSubstr("progress [1/2] 1 succeeded, 0 failed, 0 "
                             "running, 1 pending; elapsed 1s, ETA 1s\n"));
  EXPECT_THAT(out, Not(HasSubstr("\r")));
}

// `--wait` on a terminal: one line redrawn in place, no per-trial lines
// but for a failure.
TEST_F(CommandsTest, WaitOnATerminalRedrawsOneProgressLine) {
  api_.sweeps = {
      Sweep(v1::SWEEP_RUNNING, {{v1::RUNNING, 10}, {v1::PENDING, 0}}, false),
      Sweep(v1::SWEEP_RUNNING, {{v1::SUCCEEDED, 100}, {v1::FAILED, 5}}, false),
      Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}, {v1::FAILED, 5}},
            true)};
  CommandContext ctx = Context();
  ctx.progress_tty = true;
  ASSERT_TRUE(WaitForSweep(ctx, "sw-1", 0).ok());
  const std::string out = out_.str();
  EXPECT_THAT(out, HasSubstr("\r\033[K[0/2] 0 succeeded, 0 failed, 1 "
                             "running, 1 pending; elapsed 0s, ETA -"));
  EXPECT_THAT(out, HasSubstr("\r\033[K[2/2] 1 succeeded, 1 failed"));
  EXPECT_THAT(out, HasSubstr("\r\033[K[2/2] t-2"));  // the failure's line
  EXPECT_THAT(out, Not(HasSubstr("t-1")));
  EXPECT_THAT(out, Not(HasSubstr("progress [")));
}

// Issue 24, point 5: `sweep retry --failed --wait` printed the old final
// fit, still marked final while the retried trials ran; it waits for the
// refit made after them.
TEST_F(CommandsTest, RetryWaitPrintsTheFitMadeAfterTheRetry) {
  v1::Sweep before =
      Sweep(v1::SWEEP_SUCCEEDED, {{v1::SUCCEEDED, 100}, {v1::FAILED, 5}}, true);
  v1::Sweep after_retry = before;  // the old fit, as the coordinator shows it
  after_retry.mutable_trials(1)->set_state(v1::SUCCEEDED);
  v1::Sweep refitted = after_retry;
  refitted.mutable_fit()->set_alpha(0.5);
  refitted.mutable_fit()->set_n_points(2);
  api_.sweeps = {before, after_retry, after_retry, refitted};
  ASSERT_TRUE(RetrySweep(Context(), "sw-1", true, true).ok());
  EXPECT_THAT(out_.str(), HasSubstr("alpha = 0.5"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("alpha = 0.34")));
}

TEST(PrintError, JsonIsOneObjectWithCodeMessageAndExitCode) {
  std::ostringstream err;
  PrintError(err, true, absl::StatusCode::kNotFound, "sweep sw-x: not found",
             1);
  const std::string text = err.str();
  ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  nlohmann::json json = nlohmann::json::parse(text);
  EXPECT_EQ(json["error"]["code"], "NOT_FOUND");
  EXPECT_EQ(json["error"]["message"], "sweep sw-x: not found");
  EXPECT_EQ(json["error"]["exit_code"], 1);
  std::ostringstream plain;
  PrintError(plain, false, absl::StatusCode::kNotFound, "a\nb", 1);
  EXPECT_EQ(plain.str(), "isoflop: NOT_FOUND: a b\n");
}

TEST(ContextCommands, SetMakesTheFirstCurrentAndUseSwitches) {
  const std::string path = ::testing::TempDir() + "/ctx-cmd-" +
                           std::to_string(getpid()) + "/config.json";
  std::filesystem::remove(path);
  std::ostringstream out;
  ASSERT_TRUE(SetContext(path, "lab",
                         {.address = "gpu1:50051", .token_file = "state/token"},
                         out, false)
                  .ok());
  ASSERT_TRUE(
      SetContext(path, "home", {.address = "127.0.0.1:1"}, out, false).ok());
  ASSERT_TRUE(
      SetContext(path, "lab", {.http = "http://gpu1:8080"}, out, false).ok());
  absl::StatusOr<ContextFile> file = LoadContextFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->current, "lab");
  EXPECT_EQ(file->contexts.at("lab").address, "gpu1:50051");
  EXPECT_EQ(file->contexts.at("lab").http, "http://gpu1:8080");
  EXPECT_EQ(file->contexts.at("lab").token_file,
            (std::filesystem::current_path() / "state/token").string());
  ASSERT_TRUE(UseContext(path, "home", out, false).ok());
  EXPECT_EQ(LoadContextFile(path)->current, "home");
  const absl::Status missing = UseContext(path, "nope", out, false);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("(known: home, lab)"));
}

}  // namespace
}  // namespace isoflop::cli
