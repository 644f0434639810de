#include "cli/plan_command.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/match.h"
#include "cli/config_file.h"
#include "common/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

// Tokens/s = 1e6 / d_model; a fixed overhead. Counts its calls.
class FakeMeasurer final : public ThroughputMeasurer {
 public:
  absl::StatusOr<double> TokensPerSecond(const ThroughputKey& key) override {
    keys.push_back(key);
    return 1e6 / static_cast<double>(key.d_model);
  }
  absl::StatusOr<double> OverheadSeconds(const std::string&, int) override {
    ++overheads;
    return 0.5;
  }
  std::vector<ThroughputKey> keys;
  int overheads = 0;
};

// A bench that cannot run here (no CUDA device): every call fails.
class FailingMeasurer final : public ThroughputMeasurer {
 public:
  absl::StatusOr<double> TokensPerSecond(const ThroughputKey&) override {
    ++calls;
    return absl::FailedPreconditionError("no CUDA device is visible");
  }
  absl::StatusOr<double> OverheadSeconds(const std::string&, int) override {
    ++calls;
    return overhead_ok ? absl::StatusOr<double>(0.5)
                       : absl::FailedPreconditionError("no CUDA device");
  }
  bool overhead_ok = false;
  int calls = 0;
};

// The demo's model and training with the given budgets and shapes.
std::string Config(const std::string& budgets, const std::string& shapes) {
  return "name: \"t\" model { vocab_size: 512 context: 64 } grid { "
         "flops_budgets: [" +
         budgets + "] " + shapes +
         "} training { batch_sequences: 16 lr: 1e-2 eval_batches: 16 } "
         "data { dataset: \"kjv\" } resources { threads_per_trial: 1 }";
}

std::string Shape(int d, int heads) {
  return "model_shapes { d_model: " + std::to_string(d) +
         " n_layers: 2 n_heads: " + std::to_string(heads) + " } ";
}

const std::string kDemoShapes =
    Shape(24, 2) + Shape(32, 2) + Shape(48, 4) + Shape(64, 4);

class PlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "data");
    options_.config_path = "t.textproto";
    options_.data_dir = (dir_ / "data").string();
    options_.host = "test-host";
    options_.cores = 2;
    options_.slots = 1;
    options_.now_unix_s = 1800000000;
    cache_path_ = (dir_ / "cache" / "throughput.json").string();
  }

  void WriteMeta(uint64_t train_tokens) {
    std::filesystem::create_directories(dir_ / "data" / "kjv");
    std::ofstream(dir_ / "data" / "kjv" / "meta.json")
        << "{\"vocab_size\": 512, \"train_tokens\": " << train_tokens
        << ", \"val_tokens\": 1000}";
  }

  Plan MakeOk(const std::string& text, ThroughputMeasurer* measurer) {
    absl::StatusOr<v1::SweepConfig> config = ParseSweepConfig(text, "t");
    EXPECT_TRUE(config.ok()) << config.status();
    absl::StatusOr<ThroughputCache> cache = ThroughputCache::Load(cache_path_);
    EXPECT_TRUE(cache.ok()) << cache.status();
    absl::StatusOr<Plan> plan =
        MakePlan(*config, options_, *cache, measurer, progress_);
    EXPECT_TRUE(plan.ok()) << plan.status();
    return *plan;
  }

  // `sweep plan` itself on a config file: text or JSON output.
  std::string Run(const std::string& text, Format format,
                  ThroughputMeasurer* measurer) {
    const std::string path = (dir_ / "t.textproto").string();
    std::ofstream(path) << text;
    PlanOptions options = options_;
    options.config_path = path;
    std::ostringstream out, err;
    FakeClock clock;
    CommandContext ctx{
        .out = &out, .err = &err, .format = format, .clock = &clock};
    absl::StatusOr<ThroughputCache> cache = ThroughputCache::Load(cache_path_);
    EXPECT_TRUE(cache.ok());
    absl::Status s = PlanSweep(ctx, options, *cache, measurer);
    EXPECT_TRUE(s.ok()) << s;
    return out.str();
  }

  std::vector<std::string> JsonWarnings(const std::string& text) {
    FakeMeasurer m;
    const nlohmann::json j =
        nlohmann::json::parse(Run(text, Format::kJson, &m));
    return j["warnings"].get<std::vector<std::string>>();
  }

  std::filesystem::path dir_;
  std::string cache_path_;
  PlanOptions options_;
  std::ostringstream progress_;
};

TEST_F(PlanTest, BenchThatCannotRunIsTriedOnceAndNotedOnce) {
  const std::string config = Config("1e11, 3e11", kDemoShapes);
  FailingMeasurer overhead_fails;
  const Plan a = MakeOk(config, &overhead_fails);
  EXPECT_EQ(overhead_fails.calls, 1);  // no throughput bench after it
  FailingMeasurer throughput_fails;
  throughput_fails.overhead_ok = true;
  const Plan b = MakeOk(config, &throughput_fails);
  EXPECT_EQ(throughput_fails.calls, 2);  // the overhead, then one shape
  for (const Plan* p : {&a, &b}) {
    int bench_notes = 0;
    for (const std::string& n : p->notes) {
      if (absl::StrContains(n, "not measured")) ++bench_notes;
    }
    EXPECT_EQ(bench_notes, 1);
    EXPECT_FALSE(p->est_seconds.has_value());
  }
}

TEST_F(PlanTest, BranchedSweepCountsTrunksOnceAndBranchesTheirCoolDown) {
  const std::string cosine = Config("1e11, 3e11", kDemoShapes);
  std::string branched = cosine;
  branched.replace(branched.find("training { "), 11,
                   "training { schedule: WSD_BRANCHED ");
  FakeMeasurer m;
  const Plan c = MakeOk(cosine, &m);
  const Plan b = MakeOk(branched, &m);
  ASSERT_EQ(b.trials.size(), c.trials.size() + 4);  // one trunk per shape
  EXPECT_TRUE(b.branched);
  EXPECT_FALSE(c.branched);
  EXPECT_DOUBLE_EQ(b.independent_flops, c.total_flops);
  EXPECT_LT(b.total_flops, 0.9 * c.total_flops);
  // Time follows the tokens trained: less than the independent runs'.
  ASSERT_TRUE(b.trial_seconds.has_value() && c.trial_seconds.has_value());
  EXPECT_LT(*b.trial_seconds, *c.trial_seconds);
  // Brackets and budgets count cells, not trunks.
  EXPECT_EQ(b.brackets.size(), 2u);
  const std::string text = PlanText(b);
  EXPECT_THAT(text, HasSubstr("trunk"));
  EXPECT_THAT(text, HasSubstr("over 2 budget(s)"));
  EXPECT_THAT(text, HasSubstr("as independent runs"));
  const nlohmann::json j = nlohmann::json::parse(PlanJson(b));
  EXPECT_EQ(j["trials"][0]["role"], "trunk");
  EXPECT_EQ(j["trials"][4]["role"], "branch");
  EXPECT_LT(j["trials"][4]["trained_flops"].get<double>(),
            j["trials"][4]["flops"].get<double>());
}

TEST_F(PlanTest, WarnsWhenTheGridCannotBracketThePrior) {
  // At 2e11 even d48 sees only 3.4 tokens per parameter: the prior N_opt
  // (D/N = 20) is below every shape.
  const std::string config =
      Config("2e11", Shape(48, 4) + Shape(64, 4) + Shape(96, 4));
  FakeMeasurer m;
  EXPECT_THAT(Run(config, Format::kTable, &m),
              HasSubstr("warning: budget 2e+11 cannot bracket the optimum: "
                        "the prior N_opt ~ "));
  EXPECT_THAT(JsonWarnings(config),
              Contains(AllOf(HasSubstr("budget 2e+11 cannot bracket"),
                             HasSubstr("below its smallest model d48/L2 "
                                       "(N = 108K); add smaller shapes"))));
}

TEST_F(PlanTest, WarnsWhenThePriorIsNearestAnEdgeShape) {
  // The demo's smallest budget: its best model was its smallest one.
  const Plan plan = MakeOk(Config("2e11", kDemoShapes), nullptr);
  ASSERT_EQ(plan.brackets.size(), 1u);
  EXPECT_EQ(plan.brackets[0].position, "low_edge");
  EXPECT_GT(plan.brackets[0].prior_n_opt, 40056);
  EXPECT_LT(plan.brackets[0].prior_n_opt, 59552);
  EXPECT_THAT(plan.warnings,
              Contains(HasSubstr("budget 2e+11 may not bracket the optimum")));
}

TEST_F(PlanTest, AGridAroundThePriorGetsNoBracketWarning) {
  const Plan plan = MakeOk(Config("6e11", kDemoShapes), nullptr);
  ASSERT_EQ(plan.brackets.size(), 1u);
  EXPECT_EQ(plan.brackets[0].position, "inside");
  EXPECT_THAT(plan.warnings, Not(Contains(HasSubstr("bracket"))));
}

TEST_F(PlanTest, WarnsAboutModelsWithFewerThan100Steps) {
  // At 2e10, d48 does 35 steps of 1024 tokens.
  const std::string config =
      Config("2e10", Shape(16, 2) + Shape(24, 2) + Shape(48, 4));
  const std::string expected =
      "budget 2e+10: 1 model(s) do fewer than 100 optimizer steps (d48/L2 35 "
      "steps)";
  FakeMeasurer m;
  EXPECT_THAT(Run(config, Format::kTable, &m),
              HasSubstr("warning: " + expected));
  EXPECT_THAT(JsonWarnings(config), Contains(HasSubstr(expected)));
}

TEST_F(PlanTest, WarnsDataConstrainedAtTenEpochs) {
  // d24 at 2e11 trains on 1,033,216 tokens: 10 epochs of 103,321.6.
  WriteMeta(103322);
  const std::string config = Config("2e11", kDemoShapes);
  FakeMeasurer m;
  EXPECT_THAT(Run(config, Format::kTable, &m),
              HasSubstr("warning: data-constrained: budget 2e+11: 2 model(s) "
                        "see more than 4 epochs of kjv (103K training "
                        "tokens): d24/L2 10 epochs, d32/L2 6.56 epochs;"));
  EXPECT_THAT(JsonWarnings(config),
              Contains(HasSubstr("data-constrained: budget 2e+11")));
}

TEST_F(PlanTest, WithoutTheDatasetEpochsAreUnknownAndTheCheckIsSkipped) {
  const Plan plan = MakeOk(Config("2e11", kDemoShapes), nullptr);
  EXPECT_FALSE(plan.train_tokens.has_value());
  for (const PlannedTrial& t : plan.trials) EXPECT_FALSE(t.epochs.has_value());
  EXPECT_THAT(plan.notes,
              Contains(AllOf(HasSubstr("epochs unknown: no kjv/meta.json"),
                             HasSubstr("data-constrained check"),
                             HasSubstr("skipped"))));
  EXPECT_THAT(plan.warnings, Not(Contains(HasSubstr("data-constrained"))));
}

TEST_F(PlanTest, WarnsAboutTokensPerParameterOutsideOneTo1000) {
  // At 1e13, d16 sees 3,800 tokens per parameter and d24 1,300; d32 570.
  const Plan plan = MakeOk(
      Config("1e13", Shape(16, 2) + Shape(24, 2) + Shape(32, 2)), nullptr);
  EXPECT_THAT(plan.warnings,
              Contains(AllOf(HasSubstr("budget 1e+13: 2 model(s) have tokens "
                                       "per parameter outside [1, 1000]"),
                             HasSubstr("d16/L2 D/N = 3.83e+03"),
                             Not(HasSubstr("d32")))));
}

TEST_F(PlanTest, JsonHasTheSchemaAndConsistentNumbers) {
  WriteMeta(1451042);
  options_.slots = 1;
  FakeMeasurer m;
  const nlohmann::json j = nlohmann::json::parse(
      Run(Config("2e11, 6e11", kDemoShapes), Format::kJson, &m));
  ASSERT_EQ(j["trials"].size(), 8u);
  double flops = 0, seconds = 0;
  for (const nlohmann::json& t : j["trials"]) {
    for (const char* key : {"flops", "n_params", "tokens", "tokens_per_param",
                            "epochs", "steps", "est_seconds"}) {
      ASSERT_TRUE(t.contains(key) && t[key].is_number()) << key << " " << t;
    }
    const double tokens = t["tokens"];
    EXPECT_EQ(t["tokens"].get<uint64_t>(),
              t["steps"].get<uint64_t>() * 16 * 64);
    EXPECT_DOUBLE_EQ(t["tokens_per_param"].get<double>(),
                     tokens / t["n_params"].get<double>());
    EXPECT_DOUBLE_EQ(t["epochs"].get<double>(), tokens / 1451042);
    EXPECT_DOUBLE_EQ(t["flops"].get<double>(),
                     tokens * t["flops_per_token"].get<double>());
    // Overhead 0.5 s + training + 16 evaluation batches at 3x the speed.
    const double tps = 1e6 / t["shape"]["d_model"].get<double>();
    EXPECT_NEAR(t["est_seconds"].get<double>(),
                0.5 + tokens / tps + 16.0 * 16 * 64 / (3 * tps), 1e-9);
    EXPECT_EQ(t["throughput"], "measured");
    flops += t["flops"].get<double>();
    seconds += t["est_seconds"].get<double>();
  }
  EXPECT_DOUBLE_EQ(j["total_flops"].get<double>(), flops);
  EXPECT_NEAR(j["est_seconds"].get<double>(), seconds, 1e-9);  // 1 slot
  EXPECT_NEAR(j["cpu_hours"].get<double>(), seconds / 3600, 1e-12);
  EXPECT_TRUE(j["warnings"].is_array());
  EXPECT_EQ(j["overhead_seconds"], 0.5);
  EXPECT_EQ(j["train_tokens"], 1451042);
}

TEST_F(PlanTest, WallTimeFillsTheSlotsInGridOrder) {
  options_.slots = 2;
  FakeMeasurer m;
  const Plan plan = MakeOk(Config("2e11", kDemoShapes), &m);
  ASSERT_EQ(plan.trials.size(), 4u);
  std::vector<double> s;
  for (const PlannedTrial& t : plan.trials) s.push_back(*t.est_seconds);
  // Slot A: trial 0 then whichever frees first takes trial 2, and so on.
  double a = s[0], b = s[1];
  (a <= b ? a : b) += s[2];
  (a <= b ? a : b) += s[3];
  EXPECT_DOUBLE_EQ(*plan.est_seconds, std::max(a, b));
  EXPECT_DOUBLE_EQ(*plan.trial_seconds, s[0] + s[1] + s[2] + s[3]);
  // Measured with 2 benches at once, as the 2 slots run them.
  ASSERT_FALSE(m.keys.empty());
  EXPECT_EQ(m.keys[0].concurrent, 2);
}

TEST_F(PlanTest, MeasuresEachShapeOnceThenReusesTheCache) {
  const std::string config = Config("2e11, 6e11", kDemoShapes);
  FakeMeasurer first;
  const Plan measured = MakeOk(config, &first);
  EXPECT_EQ(first.keys.size(), 4u);  // 4 shapes, 2 budgets each
  EXPECT_EQ(first.overheads, 1);
  EXPECT_THAT(progress_.str(), HasSubstr("measuring throughput 4/4: d64/L2"));
  ASSERT_TRUE(std::filesystem::exists(cache_path_));
  const nlohmann::json file = nlohmann::json::parse(std::ifstream(cache_path_));
  EXPECT_EQ(file["entries"].size(), 4u);
  EXPECT_EQ(file["entries"][0]["host"], "test-host");
  EXPECT_EQ(file["entries"][0]["tokens_per_s"], 1e6 / 24);
  EXPECT_EQ(file["overheads"][0]["seconds"], 0.5);

  FakeMeasurer second;
  const Plan cached = MakeOk(config, &second);
  EXPECT_TRUE(second.keys.empty());
  EXPECT_EQ(second.overheads, 0);
  EXPECT_EQ(cached.trials[0].throughput_source, "cached");
  EXPECT_EQ(*cached.est_seconds, *measured.est_seconds);
}

TEST_F(PlanTest, AnotherHostIsMeasuredAgain) {
  const std::string config = Config("2e11", kDemoShapes);
  FakeMeasurer first;
  MakeOk(config, &first);
  options_.host = "other-host";
  FakeMeasurer second;
  MakeOk(config, &second);
  EXPECT_EQ(second.keys.size(), 4u);
  EXPECT_EQ(second.overheads, 1);
}

TEST_F(PlanTest, NoMeasureScalesTheNearestCachedShapeByFlopsPerToken) {
  FakeMeasurer m;
  const Plan d24 = MakeOk(Config("2e11", Shape(24, 2)), &m);
  options_.measure = false;
  FakeMeasurer unused;
  const Plan d32 = MakeOk(Config("2e11", Shape(32, 2)), &unused);
  EXPECT_TRUE(unused.keys.empty());
  ASSERT_EQ(d32.trials.size(), 1u);
  EXPECT_EQ(d32.trials[0].throughput_source, "nearest");
  const double d24_flops_per_s =
      d24.trials[0].tokens_per_s * d24.trials[0].spec.flops_per_token();
  EXPECT_DOUBLE_EQ(
      d32.trials[0].tokens_per_s * d32.trials[0].spec.flops_per_token(),
      d24_flops_per_s);
  EXPECT_TRUE(d32.est_seconds.has_value());
}

TEST_F(PlanTest, NoMeasureWithAnEmptyCacheGivesNoEstimateAndSaysSo) {
  options_.measure = false;
  FakeMeasurer unused;
  const std::string out =
      Run(Config("2e11", kDemoShapes), Format::kJson, &unused);
  const nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_TRUE(j["est_seconds"].is_null());
  EXPECT_TRUE(j["trials"][0]["est_seconds"].is_null());
  EXPECT_THAT(j["notes"].dump(), HasSubstr("no time estimate for 4 trial(s)"));
  EXPECT_TRUE(unused.keys.empty());
}

TEST_F(PlanTest, AdaptiveGridPlansTheFirstBudgetAndCountsTheRest) {
  options_.adaptive = AdaptiveCounts{.shapes_per_budget = 5};
  FakeMeasurer m;
  const Plan plan = MakeOk(Config("2e11, 6e11, 2e12", kDemoShapes), &m);
  ASSERT_EQ(plan.trials.size(), 4u);
  for (const PlannedTrial& t : plan.trials) {
    EXPECT_EQ(t.spec.flops_budget(), 2e11);
  }
  EXPECT_EQ(plan.later_trials, 10);
  EXPECT_DOUBLE_EQ(plan.later_flops, 5 * 6e11 + 5 * 2e12);
  ASSERT_TRUE(plan.later_seconds.has_value());
  EXPECT_GT(*plan.later_seconds, 0);
  EXPECT_THAT(plan.notes, Contains(HasSubstr("placed as results arrive")));
  EXPECT_EQ(plan.brackets.size(), 1u);  // the first budget's only
}

TEST(ThroughputCacheTest, RefusesAMalformedFileNamingTheField) {
  const std::string path = ::testing::TempDir() + "/bad_throughput.json";
  std::ofstream(path) << R"({"version": 1, "entries": [{"host": "h"}]})";
  absl::StatusOr<ThroughputCache> cache = ThroughputCache::Load(path);
  EXPECT_EQ(cache.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cache.status().message(),
              HasSubstr(path + ": entries[0].device: must be a string"));
}

class SubmitPlanTest : public PlanTest {
 protected:
  absl::Status Show(bool yes, bool interactive, const std::string& answer) {
    absl::StatusOr<v1::SweepConfig> config =
        ParseSweepConfig(Config("2e11", kDemoShapes), "t");
    EXPECT_TRUE(config.ok());
    std::ostringstream out;
    FakeClock clock;
    CommandContext ctx{.out = &out, .err = &err_, .clock = &clock};
    ThroughputCache cache(cache_path_);
    std::istringstream in(answer);
    return ShowPlanBeforeSubmit(ctx, *config, options_, cache, yes, interactive,
                                in);
  }
  std::ostringstream err_;
};

TEST_F(SubmitPlanTest, ShowsTheSummaryAndProceedsOffATerminal) {
  EXPECT_TRUE(Show(false, false, "").ok());
  EXPECT_THAT(err_.str(), HasSubstr("plan: 4 trials over 1 budget(s)"));
  EXPECT_THAT(err_.str(), HasSubstr("warning: budget 2e+11 may not bracket"));
  EXPECT_THAT(err_.str(), Not(HasSubstr("submit? [y/N]")));
}

TEST_F(SubmitPlanTest, AsksOnATerminalAndStopsOnNo) {
  absl::Status s = Show(false, true, "n\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(err_.str(), HasSubstr("submit? [y/N] "));
}

TEST_F(SubmitPlanTest, AsksOnATerminalAndProceedsOnYes) {
  EXPECT_TRUE(Show(false, true, "y\n").ok());
}

TEST_F(SubmitPlanTest, YesSkipsTheQuestion) {
  EXPECT_TRUE(Show(true, true, "").ok());
  EXPECT_THAT(err_.str(), Not(HasSubstr("submit?")));
}

TEST_F(SubmitPlanTest, MeasuresNothing) {
  EXPECT_TRUE(Show(false, false, "").ok());
  EXPECT_FALSE(std::filesystem::exists(cache_path_));
  EXPECT_THAT(err_.str(), HasSubstr("no time estimate"));
}

}  // namespace
}  // namespace isoflop::cli
