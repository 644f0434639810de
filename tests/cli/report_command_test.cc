#include "cli/report_command.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "analysis/flops_proto.h"
#include "analysis/plot_svg.h"
#include "common/fake_clock.h"
#include "common/readable.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

using ::testing::HasSubstr;

// Serves one sweep by id; any other id is NOT_FOUND as the coordinator says.
class OneSweepApi final : public CoordinatorApi {
 public:
  explicit OneSweepApi(v1::Sweep sweep) : sweep_(std::move(sweep)) {}
  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const v1::SweepConfig&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<v1::Sweep> GetSweep(const std::string& id) override {
    if (id != sweep_.id()) {
      return absl::NotFoundError("sweep_id = '" + id + "': no such sweep");
    }
    return sweep_;
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
  v1::Sweep sweep_;
};

// The law the synthetic sweep's losses follow and its stored fit states.
constexpr double kE = 1.8, kA = 400, kB = 1200, kAlpha = 0.34, kBeta = 0.28;
constexpr double kBudgets[] = {1e15, 3e15, 1e16};
constexpr double kParams[] = {2e5, 5e5, 1e6, 2e6, 5e6};
constexpr double kFlopsPerToken = 7e6;
constexpr double kTokensPerS = 1e5;

double Law(double n, double d) {
  return kE + kA / std::pow(n, kAlpha) + kB / std::pow(d, kBeta);
}

// 3 budgets x 5 sizes, all succeeded on 1 GPU except one CPU trial; a final
// fit at the law with 3 bootstrap samples around it and Approach 2.
v1::Sweep SyntheticSweep(bool with_fit) {
  v1::Sweep s;
  s.set_id("sw-synth");
  s.set_state(v1::SWEEP_SUCCEEDED);
  s.set_created_unix_ms(1'000'000);
  v1::SweepConfig& c = *s.mutable_config();
  c.set_name("synthetic");
  c.mutable_data()->set_dataset("markov-v512");
  for (double b : kBudgets) c.mutable_grid()->add_flops_budgets(b);
  int i = 0;
  for (double b : kBudgets) {
    for (double n : kParams) {
      v1::Trial* t = s.add_trials();
      v1::TrialSpec* spec = t->mutable_spec();
      spec->set_trial_id(absl::StrFormat("t-%02d", i));
      spec->set_n_total(static_cast<uint64_t>(n));
      spec->set_tokens(static_cast<uint64_t>(b / (6 * n)));
      spec->set_flops_budget(b);
      spec->set_flops_per_token(kFlopsPerToken);
      spec->set_gpus(i == 0 ? 0 : 1);
      spec->mutable_shape()->set_d_model(64);
      spec->mutable_shape()->set_n_layers(2);
      spec->mutable_shape()->set_n_heads(4);
      t->set_state(v1::SUCCEEDED);
      t->set_attempt(1);
      t->set_val_loss(Law(n, static_cast<double>(spec->tokens())));
      t->set_tokens_per_s(kTokensPerS);
      t->set_updated_unix_ms(1'000'000 + 60'000 * (i + 1));
      if (i == 2) t->set_attempt_seconds(42);  // the others: estimated
      ++i;
    }
  }
  (*s.mutable_trial_counts())["SUCCEEDED"] = i;
  if (!with_fit) return s;
  v1::ScalingLawFit& f = *s.mutable_fit();
  f.set_e(kE);
  f.set_a(kA);
  f.set_b(kB);
  f.set_alpha(kAlpha);
  f.set_beta(kBeta);
  f.set_final(true);
  f.set_n_points(i);
  for (double scale : {0.98, 1.0, 1.02}) {
    v1::Approach3Law* l = f.add_approach3_samples();
    l->set_e(kE * scale);
    l->set_a(kA);
    l->set_b(kB);
    l->set_alpha(kAlpha * scale);
    l->set_beta(kBeta);
  }
  (*f.mutable_ci95())["E"].set_low(1.75);
  (*f.mutable_ci95())["E"].set_high(1.85);
  f.mutable_approach2()->set_n_opt_coef(0.1);
  f.mutable_approach2()->set_n_opt_exponent(0.45);
  f.mutable_approach2()->set_d_opt_coef(1.6);
  f.mutable_approach2()->set_d_opt_exponent(0.55);
  return s;
}

std::string Read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Tags balance (a stack of names; "/>" closes itself) and one root.
bool WellFormed(const std::string& xml) {
  std::vector<std::string> stack;
  int roots = 0;
  for (size_t i = xml.find('<'); i != std::string::npos;
       i = xml.find('<', i + 1)) {
    const size_t end = xml.find('>', i);
    if (end == std::string::npos) return false;
    const std::string tag = xml.substr(i + 1, end - i - 1);
    if (tag.empty()) return false;
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1)) return false;
      stack.pop_back();
      continue;
    }
    if (stack.empty()) ++roots;
    if (tag.back() == '/') continue;
    stack.push_back(tag.substr(0, tag.find_first_of(" \n")));
  }
  return stack.empty() && roots == 1;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t i = text.find(what); i != std::string::npos;
       i = text.find(what, i + 1)) {
    ++n;
  }
  return n;
}

// The backtests' refits start from 243 points (grid:2), not Chinchilla's
// 4500: the synthetic losses follow the law exactly, so both find it, and a
// report takes 2 s under ASan instead of 45. The default ("grid") is what
// the real `isoflop report` of sweep_io_process_test runs.
constexpr char kFewStarts[] = "grid:2";

class ReportTest : public ::testing::Test {
 protected:
  absl::Status Run(const v1::Sweep& sweep, ReportOptions options) {
    api_ = std::make_unique<OneSweepApi>(sweep);
    options.out_dir = dir_.string();
    CommandContext ctx{
        .api = api_.get(), .out = &out_, .err = &err_, .clock = &clock_};
    return WriteSweepReport(ctx, options);
  }
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrFormat("report_test_%d", ::getpid());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::unique_ptr<OneSweepApi> api_;
  std::ostringstream out_, err_;
  FakeClock clock_;
};

TEST_F(ReportTest, OptimaAt10x100x1000xLargestBudgetFollowTheLaw) {
  ASSERT_TRUE(
      Run(SyntheticSweep(true), {.sweep_id = "sw-synth", .starts = kFewStarts})
          .ok());
  const nlohmann::json doc = nlohmann::json::parse(Read(dir_ / "report.json"));
  EXPECT_DOUBLE_EQ(doc["fit"]["approach3"]["E"].get<double>(), kE);
  EXPECT_DOUBLE_EQ(doc["fit"]["approach3"]["alpha"].get<double>(), kAlpha);
  EXPECT_DOUBLE_EQ(doc["fit"]["ci95"]["E"][0].get<double>(), 1.75);
  ASSERT_EQ(doc["optimal"].size(), 3u);
  const double g = std::pow(kAlpha * kA / (kBeta * kB), 1 / (kAlpha + kBeta));
  const double multiples[] = {10, 100, 1000};
  for (int k = 0; k < 3; ++k) {
    const nlohmann::json& row = doc["optimal"][k];
    const double c = multiples[k] * 1e16;
    const double n = g * std::pow(c / 6, kBeta / (kAlpha + kBeta));
    const double d = std::pow(c / 6, kAlpha / (kAlpha + kBeta)) / g;
    EXPECT_DOUBLE_EQ(row["flops"].get<double>(), c);
    EXPECT_NEAR(row["n_opt"].get<double>() / n, 1, 1e-9);
    EXPECT_NEAR(row["d_opt"].get<double>() / d, 1, 1e-9);
    EXPECT_NEAR(row["loss"].get<double>(), Law(n, d), 1e-9);
    EXPECT_LE(row["ci95"]["n_opt"][0].get<double>(), n * (1 + 1e-9));
    EXPECT_GE(row["ci95"]["n_opt"][1].get<double>(), n * (1 - 1e-9));
    EXPECT_NEAR(row["approach2"]["n_opt"].get<double>(),
                0.1 * std::pow(c, 0.45), 1e-6 * n);
  }
  const std::string md = Read(dir_ / "report.md");
  const double n1000 = g * std::pow(1e19 / 6, kBeta / (kAlpha + kBeta));
  EXPECT_THAT(md,
              HasSubstr(absl::StrCat("| 1000× largest | 1e+19 | ",
                                     ::isoflop::Count(n1000), " (95% ×/÷ ")));
  EXPECT_THAT(md, HasSubstr("| E | 1.8 | 95% 1.75 .. 1.85 |"));
  EXPECT_THAT(md, HasSubstr("a = 0.4500"));
  EXPECT_THAT(md, HasSubstr("sw-synth"));
}

TEST_F(ReportTest, CsvHasOneRowPerTrialWithMfuOnlyForGpuTrials) {
  ASSERT_TRUE(
      Run(SyntheticSweep(true), {.sweep_id = "sw-synth", .starts = kFewStarts})
          .ok());
  const std::vector<std::string> lines =
      absl::StrSplit(Read(dir_ / "trials.csv"), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u + 15u);
  EXPECT_EQ(lines[0],
            "trial_id,state,shape,params,tokens,budget,flops_per_token,gpus,"
            "loss,attempts,seconds,seconds_estimated,tokens_per_s,mfu,flops");
  const std::vector<std::string> cpu = absl::StrSplit(lines[1], ',');
  const std::vector<std::string> gpu = absl::StrSplit(lines[2], ',');
  const std::vector<std::string> measured = absl::StrSplit(lines[3], ',');
  ASSERT_EQ(cpu.size(), 15u);
  ASSERT_EQ(gpu.size(), 15u);
  EXPECT_EQ(cpu[0], "t-00");
  EXPECT_EQ(cpu[13], "");  // no MFU on CPU
  EXPECT_EQ(gpu[2], "d64/L2/h4");
  EXPECT_DOUBLE_EQ(std::stod(gpu[3]), 5e5);
  EXPECT_NEAR(std::stod(gpu[13]), kTokensPerS * kFlopsPerToken / 989e12, 1e-15);
  EXPECT_NEAR(std::stod(gpu[10]), std::stod(gpu[4]) / kTokensPerS, 1e-9);
  EXPECT_EQ(gpu[11], "1");  // estimated: no attempt_seconds
  EXPECT_EQ(measured[10], "42");
  EXPECT_EQ(measured[11], "0");
  EXPECT_NEAR(std::stod(gpu[8]), Law(5e5, std::stod(gpu[4])), 1e-12);
}

// Issue 24 point 7: report.html is one file a colleague can open: the
// report's tables, the figures inline (ids kept apart), the config, and
// nothing loaded from elsewhere.
TEST_F(ReportTest, HtmlIsSelfContainedWithFiguresTablesAndConfig) {
  ASSERT_TRUE(Run(SyntheticSweep(true),
                  {.sweep_id = "sw-synth", .html = true, .starts = kFewStarts})
                  .ok());
  EXPECT_THAT(out_.str(), HasSubstr("report.html"));
  const std::string html = Read(dir_ / "report.html");
  EXPECT_THAT(html, HasSubstr("<!DOCTYPE html>"));
  EXPECT_THAT(html, HasSubstr("<title>IsoFLOP sweep report: synthetic"));
  EXPECT_THAT(html, HasSubstr("<td>E</td>"));  // the law's table, rendered
  EXPECT_THAT(html, HasSubstr("Compute-optimal models beyond the sweep"));
  EXPECT_THAT(html, HasSubstr("Backtest"));
  EXPECT_THAT(html, HasSubstr("&quot;dataset&quot;: &quot;markov-v512&quot;"));
  EXPECT_THAT(html, HasSubstr("&quot;flops_budgets&quot;"));  // the config
  EXPECT_EQ(Count(html, "<svg"), 5u);
  EXPECT_EQ(Count(html, "<img"), 0u);
  EXPECT_EQ(Count(html, "<script"), 0u);
  EXPECT_EQ(Count(html, "src=\""), 0u);
  EXPECT_EQ(Count(html, "http://www.w3.org/2000/svg"), 5u);  // no other URL
  EXPECT_EQ(Count(html, "https://"), 0u);
  // Ids are unique on the page, and every url(#id) names one of them.
  std::set<std::string> ids;
  const std::regex id_re("id=\"([^\"]+)\""), url_re("url\\(#([^)]+)\\)");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), id_re);
       it != std::sregex_iterator(); ++it) {
    EXPECT_TRUE(ids.insert((*it)[1]).second) << "id twice: " << (*it)[1];
  }
  EXPECT_GE(ids.size(), 5u);
  for (auto it = std::sregex_iterator(html.begin(), html.end(), url_re);
       it != std::sregex_iterator(); ++it) {
    EXPECT_TRUE(ids.count((*it)[1])) << "no id for url(#" << (*it)[1] << ")";
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ / "report.pdf"));
}

TEST_F(ReportTest, PdfWithoutChromiumIsRefusedAfterTheOtherFiles) {
  const absl::Status s =
      Run(SyntheticSweep(true), {.sweep_id = "sw-synth",
                                 .pdf = true,
                                 .chromium = "/nonexistent/x",
                                 .starts = kFewStarts});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr("/nonexistent/x"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "report.html"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "trials.csv"));
}

TEST_F(ReportTest, FiguresAreWellFormedWithOneSeriesPerBudget) {
  ASSERT_TRUE(
      Run(SyntheticSweep(true), {.sweep_id = "sw-synth", .starts = kFewStarts})
          .ok());
  const std::string profiles = Read(dir_ / "isoflop_profiles.svg");
  const std::string frontier = Read(dir_ / "frontier.svg");
  EXPECT_TRUE(WellFormed(profiles));
  EXPECT_TRUE(WellFormed(frontier));
  EXPECT_EQ(Count(profiles, "<g class=\"series\""), 3u);
  // A parabola per budget (5 points each follow a convex profile).
  EXPECT_GE(Count(profiles, "<path d=\"M"), 3u);
  EXPECT_EQ(Count(profiles, "<circle"), 15u);
  EXPECT_GE(Count(frontier, "<path d=\"M"), 4u);  // 2 lines + 2 bands
  EXPECT_THAT(frontier, HasSubstr("N_opt, Approach 3"));
}

TEST_F(ReportTest, SweepWithoutFitIsReportedAsItIs) {
  ASSERT_TRUE(
      Run(SyntheticSweep(false), {.sweep_id = "sw-synth", .starts = kFewStarts})
          .ok());
  EXPECT_THAT(Read(dir_ / "report.md"), HasSubstr("No fit yet"));
  const nlohmann::json doc = nlohmann::json::parse(Read(dir_ / "report.json"));
  EXPECT_TRUE(doc["fit"].is_null());
  EXPECT_TRUE(doc["optimal"].empty());
  EXPECT_TRUE(WellFormed(Read(dir_ / "frontier.svg")));
  EXPECT_THAT(err_.str(), HasSubstr("no fit yet"));
}

// Issue 21: shapes given as grid.n_targets and a batch from a rule are
// reported from the trials (the config lists neither).
TEST_F(ReportTest, RecipeSweepListsTheTrialsShapesAndItsBatchRule) {
  v1::Sweep sweep = SyntheticSweep(false);
  v1::SweepConfig& c = *sweep.mutable_config();
  for (double n : kParams) c.mutable_grid()->add_n_targets(n);
  c.mutable_training()->mutable_batch_tokens_rule()->set_preset(
      v1::DEEPSEEK2024);
  for (int i = 0; i < sweep.trials_size(); ++i) {
    sweep.mutable_trials(i)->mutable_spec()->mutable_shape()->set_d_model(
        64 + 16 * (i % 5));
  }
  ASSERT_TRUE(Run(sweep, {.sweep_id = "sw-synth", .starts = kFewStarts}).ok());
  const std::string md = Read(dir_ / "report.md");
  EXPECT_THAT(md, HasSubstr("batch per trial (training.batch_tokens_rule)"));
  const nlohmann::json doc = nlohmann::json::parse(Read(dir_ / "report.json"));
  EXPECT_EQ(doc["config"]["shapes"].size(), 5u);
}

// Issue 20: a fit stored with the trials' exact FLOPs/token converts the
// optima with it, names it, and prints the sensitivity line.
TEST_F(ReportTest, OptimaUseTheFitsFlopConventionAndShowTheSensitivity) {
  v1::Sweep sweep = SyntheticSweep(true);
  v1::ScalingLawFit& f = *sweep.mutable_fit();
  std::vector<std::pair<double, double>> table;
  for (double n : kParams) table.emplace_back(n, 9 * n + 2e6);  // not 6 N
  const auto model = analysis::FlopsModel::Interpolated(table);
  ASSERT_TRUE(model.ok());
  analysis::FlopsModelToProto(*model, f.mutable_flops());
  analysis::SensitivityToProto(
      {{"n_total", "exact", 0.52, ""},
       {"n_total", "6ND", kBeta / (kAlpha + kBeta), ""},
       {"n_non_embedding", "exact", std::nullopt,
        "not available (no 'n_non_embedding' column)"},
       {"n_non_embedding", "6ND", std::nullopt,
        "not available (no 'n_non_embedding' column)"}},
      f.mutable_sensitivity());
  ASSERT_TRUE(Run(sweep, {.sweep_id = "sw-synth", .starts = kFewStarts}).ok());
  const std::string md = Read(dir_ / "report.md");
  EXPECT_THAT(md, HasSubstr("Sensitivity of the N_opt exponent a: 0.52 (N "
                            "total, C exact); 0.452 (N total, C = 6ND)"));
  EXPECT_THAT(md, HasSubstr("under C = D x FLOPs/token(N)"));
  const nlohmann::json doc = nlohmann::json::parse(Read(dir_ / "report.json"));
  EXPECT_EQ(doc["flops_convention"]["name"], "exact");
  EXPECT_EQ(doc["sensitivity"].size(), 4u);
  for (const nlohmann::json& row : doc["optimal"]) {
    const double c = row["flops"].get<double>();
    EXPECT_NEAR(
        analysis::ComputeFromParamsTokens(*model, row["n_opt"].get<double>(),
                                          row["d_opt"].get<double>()) /
            c,
        1, 1e-9)
        << c;
  }
}

TEST_F(ReportTest, EntropyRateIsComparedWithFittedE) {
  ReportOptions options{
      .sweep_id = "sw-synth", .entropy_rate_nats = 2.0, .starts = kFewStarts};
  ASSERT_TRUE(Run(SyntheticSweep(true), options).ok());
  EXPECT_THAT(Read(dir_ / "report.md"),
              HasSubstr("fitted E = 1.8 (relative error -10.00%)"));
}

TEST_F(ReportTest, EntropyRateIsReadFromTheDatasetsMetaJson) {
  const std::filesystem::path data = dir_.string() + "-data";
  std::filesystem::create_directories(data / "markov-v512");
  std::ofstream(data / "markov-v512" / "meta.json")
      << R"({"vocab_size": 512, "entropy_rate_nats": 1.6})";
  ASSERT_TRUE(Run(SyntheticSweep(true), {.sweep_id = "sw-synth",
                                         .data_dir = data.string(),
                                         .starts = kFewStarts})
                  .ok());
  std::filesystem::remove_all(data);
  const nlohmann::json doc = nlohmann::json::parse(Read(dir_ / "report.json"));
  EXPECT_DOUBLE_EQ(doc["entropy"]["rate_nats"].get<double>(), 1.6);
  EXPECT_NEAR(doc["entropy"]["relative_error"].get<double>(), 0.125, 1e-12);
  EXPECT_THAT(Read(dir_ / "report.md"), HasSubstr("relative error +12.50%"));
}

TEST_F(ReportTest, SweepWithoutLawIsUnidentifiedWithTheReason) {
  ASSERT_TRUE(
      Run(SyntheticSweep(false), {.sweep_id = "sw-synth", .starts = kFewStarts})
          .ok());
  EXPECT_THAT(Read(dir_ / "report.md"), HasSubstr("## Verdict: unidentified"));
  const nlohmann::json doc = nlohmann::json::parse(Read(dir_ / "report.json"));
  EXPECT_EQ(doc["verdict"]["level"], "unidentified");
  ASSERT_EQ(doc["verdict"]["reasons"].size(), 1u);
  EXPECT_THAT(doc["verdict"]["reasons"][0].get<std::string>(),
              HasSubstr("no law"));
  EXPECT_THAT(err_.str(), HasSubstr("report: verdict unidentified"));
  // The profiles are drawn all the same, and say why there is no law.
  const std::string profiles = Read(dir_ / "isoflop_profiles.svg");
  EXPECT_EQ(Count(profiles, "<circle"), 15u);
  EXPECT_THAT(profiles, HasSubstr("no law"));
}

TEST_F(ReportTest, DiagnosticFiguresAndBacktestAreWritten) {
  ASSERT_TRUE(
      Run(SyntheticSweep(true), {.sweep_id = "sw-synth", .starts = kFewStarts})
          .ok());
  for (const char* name :
       {"residuals.svg", "predicted_vs_observed.svg", "backtest.svg"}) {
    EXPECT_TRUE(WellFormed(Read(dir_ / name))) << name;
  }
  EXPECT_EQ(Count(Read(dir_ / "residuals.svg"), "class=\"residual\""),
            3u * 15u);
  EXPECT_THAT(Read(dir_ / "frontier.svg"), HasSubstr("Epoch (Besiroglu 2024)"));
  const nlohmann::json doc = nlohmann::json::parse(Read(dir_ / "report.json"));
  const nlohmann::json& b = doc["backtest"];
  ASSERT_TRUE(b.is_object()) << doc.dump();
  EXPECT_EQ(b["points"], 5);
  const double predicted = b["predicted_loss"].get<double>();
  const double observed = b["observed_loss"].get<double>();
  EXPECT_NEAR(b["relative_error"].get<double>(),
              (predicted - observed) / observed, 1e-12);
  EXPECT_THAT(Read(dir_ / "report.md"), HasSubstr("## Backtest"));
  // The rollout ends with the same holdout as the backtest, predicted alike.
  const nlohmann::json& rollout = doc["rollout"];
  ASSERT_TRUE(rollout.is_array() && !rollout.empty()) << doc.dump();
  EXPECT_DOUBLE_EQ(rollout.back()["holdout_flops"].get<double>(),
                   b["holdout_flops"].get<double>());
  EXPECT_NEAR(rollout.back()["relative_error"].get<double>(),
              b["relative_error"].get<double>(), 1e-9);
  EXPECT_THAT(Read(dir_ / "report.md"), HasSubstr("Rollout: Approach 3"));
}

// A fit message with a `verdict` field, built at run time (the real
// ScalingLawFit gains one with analysis/verdict.h).
class StoredVerdictTest : public ::testing::Test {
 protected:
  void SetUp() override {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        R"pb(
          name: "verdict_test.proto"
          package: "t"
          syntax: "proto3"
          enum_type {
            name: "Level"
            value { name: "LEVEL_UNSPECIFIED" number: 0 }
            value { name: "LEVEL_OK" number: 1 }
            value { name: "LEVEL_WEAK" number: 2 }
          }
          message_type {
            name: "Verdict"
            field {
              name: "level"
              number: 1
              type: TYPE_STRING
              label: LABEL_OPTIONAL
            }
            field {
              name: "reasons"
              number: 2
              type: TYPE_STRING
              label: LABEL_REPEATED
            }
          }
          message_type {
            name: "EnumVerdict"
            field {
              name: "level"
              number: 1
              type: TYPE_ENUM
              type_name: ".t.Level"
              label: LABEL_OPTIONAL
            }
            field {
              name: "reasons"
              number: 2
              type: TYPE_STRING
              label: LABEL_REPEATED
            }
          }
          message_type {
            name: "Fit"
            field {
              name: "e"
              number: 1
              type: TYPE_DOUBLE
              label: LABEL_OPTIONAL
            }
            field {
              name: "verdict"
              number: 2
              type: TYPE_MESSAGE
              type_name: ".t.Verdict"
              label: LABEL_OPTIONAL
            }
          }
          message_type {
            name: "EnumFit"
            field {
              name: "verdict"
              number: 1
              type: TYPE_MESSAGE
              type_name: ".t.EnumVerdict"
              label: LABEL_OPTIONAL
            }
          }
        )pb",
        &file));
    ASSERT_NE(pool_.BuildFile(file), nullptr);
  }
  std::unique_ptr<google::protobuf::Message> New(const std::string& type) {
    return std::unique_ptr<google::protobuf::Message>(
        factory_.GetPrototype(pool_.FindMessageTypeByName(type))->New());
  }
  google::protobuf::DescriptorPool pool_;
  google::protobuf::DynamicMessageFactory factory_{&pool_};
};

TEST_F(StoredVerdictTest, ReadsLevelAndReasons) {
  std::unique_ptr<google::protobuf::Message> fit = New("t.Fit");
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(verdict { level: "weak" reasons: "N range 2x" reasons: "b" })pb",
      fit.get()));
  const std::optional<VerdictView> v = StoredVerdict(*fit);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->level, "weak");
  EXPECT_THAT(v->reasons, ::testing::ElementsAre("N range 2x", "b"));
}

TEST_F(StoredVerdictTest, ReadsAnEnumLevel) {
  std::unique_ptr<google::protobuf::Message> fit = New("t.EnumFit");
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(verdict { level: LEVEL_OK })pb", fit.get()));
  const std::optional<VerdictView> v = StoredVerdict(*fit);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->level, "ok");
  EXPECT_TRUE(v->reasons.empty());
}

TEST_F(StoredVerdictTest, NoneWhenUnsetOrAbsent) {
  EXPECT_FALSE(StoredVerdict(*New("t.Fit")).has_value());
  EXPECT_FALSE(StoredVerdict(v1::ScalingLawFit()).has_value());
}

TEST_F(ReportTest, StartsThatAreNoSpecAreRefusedBeforeReading) {
  const absl::Status s =
      Run(SyntheticSweep(true), {.sweep_id = "sw-synth", .starts = "grid:9"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("--starts = 'grid:9'"));
  EXPECT_THAT(err_.str(), ::testing::Not(HasSubstr("reading sweep")));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "report.md"));
}

TEST_F(ReportTest, UnknownSweepIsRefusedNamingIt) {
  const absl::Status s = Run(SyntheticSweep(true), {.sweep_id = "sw-nope"});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("sw-nope"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "report.md"));
}

// A bootstrap bound of 0 (or 1e-300) on a log axis once sent the tick loop
// from -inf: the figure must come out, finite, with the axis kept to the
// decades that matter.
TEST(FrontierSvg, BoundsAtZeroOrTinyDoNotStretchOrBreakTheLogAxis) {
  analysis::FrontierData data;
  data.flops = {1e15, 1e16, 1e17};
  data.n_opt = {1e6, 3e6, 1e7};
  data.d_opt = {1e8, 5e8, 2e9};
  data.n_low = {0, 1e-300, 5e6};
  data.n_high = {2e6, 6e6, 2e7};
  data.d_low = {0, 0, 0};
  data.d_high = {2e8, 1e9, 4e9};
  const std::string svg = analysis::FrontierSvg(data);
  EXPECT_THAT(svg, ::testing::EndsWith("</svg>\n"));
  EXPECT_THAT(svg, ::testing::Not(::testing::HasSubstr("inf")));
  EXPECT_THAT(svg, ::testing::Not(::testing::HasSubstr("nan")));
  EXPECT_THAT(svg, ::testing::Not(::testing::HasSubstr("1e-300")));
  EXPECT_LT(svg.size(), 64u * 1024);  // a few ticks, not hundreds
}

}  // namespace
}  // namespace isoflop::cli
