#include "cli/fit_command.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analysis/flops.h"
#include "common/flops.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

using ::testing::HasSubstr;

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

struct Streams {
  std::ostringstream out, err;
  CommandContext Context(Format format) {
    return {.out = &out, .err = &err, .format = format};
  }
};

TEST(AnswerOptimal, ChinchillaUnroundedLawGives40BParamsAt5_76e23) {
  // Hoffmann et al. 2022's unrounded parameters, as Epoch AI's notebook
  // gives them (true_params: a, b = log A, log B, alpha, beta).
  const std::string fit =
      WriteFile("chinchilla_fit.json",
                R"({"n_points": 0, "approach1": null, "approach2": null,
          "approach3": {"E": 1.6933736809989528, "A": 406.4010175194737, "B": 410.7228269450398,
                        "alpha": 0.33917084, "beta": 0.2849083}})");
  // E = e^0.5267228, A = e^6.0073404, B = e^6.0179186 (to 17 digits).
  Streams run;
  OptimalCommandOptions options;
  options.flops = 5.76e23;
  options.fit_file = fit;
  ASSERT_TRUE(AnswerOptimal(run.Context(Format::kJson), options).ok());
  const nlohmann::json answer = nlohmann::json::parse(run.out.str());
  EXPECT_NEAR(answer["params"].get<double>(), 4.04e10, 0.01e10);
  EXPECT_DOUBLE_EQ(answer["flops"].get<double>(), 5.76e23);
  EXPECT_EQ(answer["approach"], 3);
  EXPECT_NEAR(
      6 * answer["params"].get<double>() * answer["tokens"].get<double>(),
      5.76e23, 1e10);
  std::printf("Chinchilla via optimal: %s", run.out.str().c_str());
}

// Issue 20's acceptance: points whose `flops` column is the project's
// convention (common/flops.h: 6 N_matmul + 12 L d T per token, tokens whole
// steps) of a known law; `optimal --flops C` at 10x and 1000x the largest
// budget answers N, D that spend C under that convention (FLOPs/token
// interpolated log-log from the points' C / D) within 1 %, where 6 N D
// misses it.
TEST(AnswerOptimal, ExactFlopsColumnAnswersSpendTheBudgetUnderIt) {
  const double E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28;
  std::string csv = "params,tokens,flops,loss\n";
  std::vector<std::pair<double, double>> table;  // (N, FLOPs/token)
  const double largest = 1e17;
  for (double budget : {1e15, 1e16, largest}) {
    for (int64_t d : {32, 64, 96, 128, 192, 256, 384}) {
      const ParamCounts c =
          CountParams({.vocab_size = 10000,
                       .context = 256,
                       .d_model = d,
                       .n_layers = std::max<int64_t>(1, d / 32),
                       .n_heads = 4,
                       .d_ff = 4 * d});
      const double n = static_cast<double>(c.n_total);
      const double tokens =
          256 * std::floor(budget / (c.flops_per_token * 256));
      const double flops = TrialCompute(c.flops_per_token, tokens);
      const double loss =
          E + A / std::pow(n, alpha) + B / std::pow(tokens, beta);
      absl::StrAppend(&csv, absl::StrFormat("%.17g,%.17g,%.17g,%.17g\n", n,
                                            tokens, flops, loss));
      table.emplace_back(n, c.flops_per_token);
    }
  }
  const std::string points = WriteFile("exact_flops.csv", csv);
  Streams fit_run;
  FitCommandOptions fit_options{.points = points,
                                .approach = "3",
                                .starts = "grid:2",
                                .bootstrap = 0,
                                .threads = 2};
  ASSERT_TRUE(FitPoints(fit_run.Context(Format::kJson), fit_options).ok());
  const nlohmann::json report = nlohmann::json::parse(fit_run.out.str());
  EXPECT_EQ(report["flops_convention"]["name"], "exact");
  const std::string fit = WriteFile("exact_flops_fit.json", fit_run.out.str());
  const auto convention = analysis::FlopsModel::Interpolated(table);
  ASSERT_TRUE(convention.ok());
  for (double multiple : {10.0, 1000.0}) {
    const double c = multiple * largest;
    Streams run;
    OptimalCommandOptions options{.flops = c, .fit_file = fit};
    ASSERT_TRUE(AnswerOptimal(run.Context(Format::kJson), options).ok());
    const nlohmann::json a = nlohmann::json::parse(run.out.str());
    EXPECT_EQ(a["flops_convention"], "exact");
    const double n = a["params"].get<double>();
    const double tokens = a["tokens"].get<double>();
    EXPECT_NEAR(analysis::ComputeFromParamsTokens(*convention, n, tokens) / c,
                1.0, 0.01)
        << multiple << "x: N " << n << ", D " << tokens;
    EXPECT_GT(std::abs(analysis::ComputeFromParamsTokens6N(n, tokens) / c - 1),
              0.01)
        << multiple << "x: the family's FLOPs/token is not 6N here";
  }
  Streams text;
  OptimalCommandOptions options{.flops = 10 * largest, .fit_file = fit};
  ASSERT_TRUE(AnswerOptimal(text.Context(Format::kTable), options).ok());
  EXPECT_THAT(text.out.str(),
              HasSubstr("FLOP convention: C = D x FLOPs/token(N)"));
}

TEST(AnswerOptimal, AFitFileWithoutConventionAnswersUnder6NDAndSaysSo) {
  const std::string fit = WriteFile(
      "law_fit_6nd.json",
      R"({"approach3": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34,
                        "beta": 0.28}, "approach2": null})");
  Streams run;
  OptimalCommandOptions options{.flops = 1e22, .fit_file = fit};
  ASSERT_TRUE(AnswerOptimal(run.Context(Format::kTable), options).ok());
  EXPECT_THAT(run.out.str(), HasSubstr("FLOP convention: C = 6 N D"));
}

TEST(AnswerOptimal, ParamsAndLossQueriesInvertTheFlopsQuery) {
  const std::string fit = WriteFile(
      "law_fit.json",
      R"({"approach3": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34,
                        "beta": 0.28}, "approach2": null})");
  Streams forward;
  OptimalCommandOptions options{.flops = 1e22, .fit_file = fit};
  ASSERT_TRUE(AnswerOptimal(forward.Context(Format::kJson), options).ok());
  const nlohmann::json at_c = nlohmann::json::parse(forward.out.str());
  for (const char* key : {"params", "loss"}) {
    Streams back;
    OptimalCommandOptions inverse{.fit_file = fit};
    if (std::string(key) == "params")
      inverse.params = at_c["params"].get<double>();
    if (std::string(key) == "loss") inverse.loss = at_c["loss"].get<double>();
    ASSERT_TRUE(AnswerOptimal(back.Context(Format::kJson), inverse).ok());
    const nlohmann::json a = nlohmann::json::parse(back.out.str());
    EXPECT_NEAR(a["flops"].get<double>() / 1e22, 1.0, 1e-9) << key;
  }
  Streams unreachable;
  OptimalCommandOptions low{.loss = 1.5, .fit_file = fit};
  absl::Status s = AnswerOptimal(unreachable.Context(Format::kJson), low);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("--loss = 1.5: unreachable"));
}

TEST(FitPoints, JsonReportHasEveryApproachKeyAndFeedsOptimal) {
  std::string csv = "params,flops,loss\n";
  for (double c : {1e18, 1e19, 1e20, 1e21}) {
    for (int j = -3; j <= 3; ++j) {
      const double n = std::sqrt(c / 120) * std::pow(2.0, j);
      const double d = c / (6 * n);
      absl::StrAppend(
          &csv, n, ",", c, ",",
          1.69 + 406.4 / std::pow(n, 0.34) + 410.7 / std::pow(d, 0.28), "\n");
    }
  }
  Streams run;
  FitCommandOptions options;
  options.points = WriteFile("points.csv", csv);
  options.bootstrap = 20;
  options.starts = "grid:4";
  options.flops = {1e22};
  options.plot = absl::StrCat(::testing::TempDir(), "/fit.svg");
  options.samples = true;  // for the intervals of `optimal --fit` below
  ASSERT_TRUE(FitPoints(run.Context(Format::kJson), options).ok())
      << run.err.str();
  const nlohmann::json report = nlohmann::json::parse(run.out.str());
  EXPECT_EQ(report["n_points"], 28);
  EXPECT_TRUE(report["approach1"].is_null());
  EXPECT_THAT(report["reasons"]["approach1"].get<std::string>(),
              HasSubstr("needs columns 'step' and 'run'"));
  for (const char* key :
       {"E", "A", "B", "alpha", "beta", "a", "b", "G", "objective",
        "huber_delta", "starts", "starts_at_best", "on_grid_edge",
        "condition_number", "ci95"}) {
    EXPECT_TRUE(report["approach3"].contains(key)) << key;
  }
  EXPECT_NEAR(report["approach3"]["alpha"].get<double>(), 0.34, 1e-6);
  EXPECT_EQ(report["approach3"]["ci95"]["alpha"].size(), 2u);
  EXPECT_EQ(report["approach2"]["budgets"].size(), 4u);
  for (const char* key :
       {"n_opt_coef", "n_opt_exponent", "d_opt_coef", "d_opt_exponent"}) {
    EXPECT_TRUE(report["approach2"].contains(key)) << key;
  }
  std::ifstream svg(options.plot);
  std::stringstream svg_text;
  svg_text << svg.rdbuf();
  EXPECT_THAT(svg_text.str(), HasSubstr("<svg"));
  EXPECT_THAT(svg_text.str(), HasSubstr("Compute-optimal frontier"));

  Streams query;
  OptimalCommandOptions q{.flops = 1e22,
                          .fit_file = WriteFile("fit.json", run.out.str())};
  ASSERT_TRUE(AnswerOptimal(query.Context(Format::kJson), q).ok());
  const nlohmann::json answer = nlohmann::json::parse(query.out.str());
  EXPECT_EQ(answer["ci95"]["params"].size(), 2u);
  q.approach = 2;
  Streams query2;
  ASSERT_TRUE(AnswerOptimal(query2.Context(Format::kJson), q).ok());
  EXPECT_TRUE(nlohmann::json::parse(query2.out.str())["loss"].is_null());
}

// Issue 18, defect 12: each once gave a misleading answer or exit 0.
TEST(AnswerOptimal, RefusesEachBadValueWithItsExactMessage) {
  const std::string fit = WriteFile(
      "bad_values_fit.json",
      R"({"approach3": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34,
                        "beta": 0.28}, "approach2": null})");
  const struct {
    OptimalCommandOptions options;
    absl::StatusCode code;
    std::string expected;
  } cases[] = {
      {{.flops = 0, .fit_file = fit},
       absl::StatusCode::kInvalidArgument,
       "--flops = 0: must be finite and > 0"},
      {{.flops = std::nan(""), .fit_file = fit},
       absl::StatusCode::kInvalidArgument,
       "--flops = nan: must be finite and > 0"},
      {{.flops = 5e-324, .fit_file = fit},
       absl::StatusCode::kInvalidArgument,
       "--flops = 4.94066e-324: must be >= 2.22507e-308 (a normal double; "
       "this one is subnormal)"},
      {{.params = -3, .fit_file = fit},
       absl::StatusCode::kInvalidArgument,
       "--params = -3: must be finite and > 0"},
      {{.loss = 0, .fit_file = fit},
       absl::StatusCode::kInvalidArgument,
       "--loss = 0: must be finite and > 0"},
      {{.fit_file = fit},
       absl::StatusCode::kInvalidArgument,
       "0 of --flops, --params, --loss given: give exactly one"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.expected);
    Streams run;
    absl::Status s = AnswerOptimal(run.Context(Format::kTable), c.options);
    EXPECT_EQ(s.code(), c.code);
    EXPECT_EQ(s.message(), c.expected);
    EXPECT_EQ(run.out.str(), "");
  }
}

TEST(AnswerOptimal, RefusesAnAnswerThatIsNotFiniteAndPositive) {
  const std::string fit = WriteFile(
      "overflow_fit.json",
      R"({"approach3": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34,
                        "beta": 0.28}, "approach2": null})");
  Streams run;
  absl::Status s = AnswerOptimal(run.Context(Format::kTable),
                                 {.params = 1e300, .fit_file = fit});
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(s.message()),
              ::testing::StartsWith("--params = 1e+300: outside what the "
                                    "Approach 3 law can answer (C = inf, "));
  EXPECT_EQ(run.out.str(), "");
}

// A loss that does not change with N or D: Approach 3 fits with warnings,
// and its answer at 1e21 was N_opt = -nan with exit 0.
TEST(FitPoints, RefusesAnAnswerThatIsNotFiniteNamingTheBudget) {
  Streams run;
  FitCommandOptions options;
  options.points = WriteFile("flat.csv",
                             "params,tokens,loss\n1e6,1e7,3\n2e6,1e7,3\n"
                             "1e6,4e7,3\n4e6,8e7,3\n8e6,3e8,3\n");
  options.approach = "3";
  options.bootstrap = 0;
  options.flops = {1e21};
  absl::Status s = FitPoints(run.Context(Format::kTable), options);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              ::testing::StartsWith("--flops[0] = 1e+21: the Approach 3 law "
                                    "(alpha "));
  EXPECT_THAT(std::string(s.message()), HasSubstr(": a degenerate fit ("));
  EXPECT_THAT(std::string(s.message()), HasSubstr("warning: "));
  // 5 points: the verdict says why (issue 20).
  EXPECT_THAT(std::string(s.message()), HasSubstr("; verdict unidentified: "));
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("5 points for 5 free parameters"));
  EXPECT_EQ(run.out.str(), "");
}

TEST(FitPoints, RefusesASubnormalQueryBudget) {
  Streams run;
  FitCommandOptions options;
  options.points =
      WriteFile("subnormal.csv", "params,tokens,loss\n1,2,3\n2,4,3\n");
  options.flops = {1e21, 5e-324};
  absl::Status s = FitPoints(run.Context(Format::kTable), options);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "--flops[1] = 4.94066e-324: must be >= 2.22507e-308 (a normal "
            "double; this one is subnormal)");
}

TEST(FitPoints, RefusesIdenticalRowsAsADegenerateFit) {
  std::string csv = "params,tokens,loss\n";
  for (int i = 0; i < 20; ++i) csv += "1000000,20000000,3.5\n";
  Streams run;
  FitCommandOptions options;
  options.points = WriteFile("identical.csv", csv);
  options.bootstrap = 0;
  options.flops = {1e21};
  absl::Status s = FitPoints(run.Context(Format::kTable), options);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            absl::StrCat("--points = '", options.points,
                         "': 20 points with 1 distinct N (params) and 1 "
                         "distinct D (tokens): a degenerate fit: a scaling law "
                         "needs >= 2 distinct values of each"));
  EXPECT_EQ(run.out.str(), "");
}

TEST(FitPoints, RefusesBadFlagsNamingThem) {
  Streams run;
  FitCommandOptions options;
  options.points = WriteFile("few.csv", "params,tokens,loss\n1,2,3\n");
  options.approach = "4";
  EXPECT_THAT(FitPoints(run.Context(Format::kTable), options).message(),
              HasSubstr("--approach = '4'"));
  options.approach = "all";
  options.starts = "grid:9";
  EXPECT_THAT(FitPoints(run.Context(Format::kTable), options).message(),
              HasSubstr("--starts = 'grid:9'"));
  options.starts = "grid";
  options.bootstrap = 1;
  EXPECT_THAT(FitPoints(run.Context(Format::kTable), options).message(),
              HasSubstr("--bootstrap = 1"));
}

// The coordinator's Optimal RPC, answering from a sweep's stored fit.
class FakeOptimalApi final : public CoordinatorApi {
 public:
  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const v1::SweepConfig&) override {
    return absl::UnimplementedError("unused");
  }
  absl::StatusOr<v1::Sweep> GetSweep(const std::string&) override {
    return absl::UnimplementedError("unused");
  }
  absl::StatusOr<v1::ListSweepsResponse> ListSweeps() override {
    return absl::UnimplementedError("unused");
  }
  absl::StatusOr<v1::Sweep> CancelSweep(const std::string&) override {
    return absl::UnimplementedError("unused");
  }
  absl::StatusOr<v1::Sweep> RetrySweep(const v1::RetrySweepRequest&) override {
    return absl::UnimplementedError("unused");
  }
  absl::StatusOr<v1::OptimalResponse> Optimal(
      const v1::OptimalRequest& request) override {
    requests.push_back(request);
    v1::OptimalResponse r;
    r.set_flops(6e20);
    r.set_n_opt(1e9);
    r.set_d_opt(1e11);
    r.set_approach(request.approach());
    r.set_predicted_loss(request.approach() == 2 ? std::nan("") : 2.5);
    v1::Interval& ci = (*r.mutable_ci95())["params"];
    ci.set_low(9e8);
    ci.set_high(1.1e9);
    if (!verdict.empty()) {
      r.set_sweep_id("sw-1");
      r.mutable_fit()->mutable_approach3_verdict()->set_level(verdict);
      r.mutable_fit()->mutable_approach3_verdict()->add_reasons("why");
    }
    return r;
  }
  std::vector<v1::OptimalRequest> requests;
  std::string verdict;  // of the fit's Approach 3; empty: none
};

TEST(AnswerOptimal, SweepAnswersComeFromTheRpcInTheFitFileShape) {
  FakeOptimalApi api;
  Streams run;
  CommandContext ctx = run.Context(Format::kJson);
  ctx.api = &api;
  ASSERT_TRUE(
      AnswerOptimal(ctx, {.params = 1e9, .sweep_id = "sw-1", .approach = 3})
          .ok());
  ASSERT_EQ(api.requests.size(), 1u);
  EXPECT_EQ(api.requests[0].params(), 1e9);
  EXPECT_EQ(api.requests[0].flops(), 0);
  EXPECT_EQ(api.requests[0].sweep_id(), "sw-1");
  EXPECT_EQ(api.requests[0].approach(), 3u);
  const nlohmann::json j = nlohmann::json::parse(run.out.str());
  for (const char* key :
       {"flops", "params", "tokens", "loss", "approach", "ci95"}) {
    EXPECT_TRUE(j.contains(key)) << key << " in " << run.out.str();
  }
  EXPECT_EQ(j["flops"].get<double>(), 6e20);
  EXPECT_EQ(j["params"].get<double>(), 1e9);
  EXPECT_EQ(j["tokens"].get<double>(), 1e11);
  EXPECT_EQ(j["loss"].get<double>(), 2.5);
  EXPECT_EQ(j["approach"].get<int>(), 3);
  EXPECT_EQ(j["ci95"]["params"][0].get<double>(), 9e8);

  Streams newest;  // no --sweep: the coordinator picks; Approach 2, no loss
  CommandContext ctx2 = newest.Context(Format::kJson);
  ctx2.api = &api;
  EXPECT_EQ(AnswerOptimal(ctx2, {.approach = 2}).code(),
            absl::StatusCode::kInvalidArgument);  // none of flops/params/loss
  ASSERT_TRUE(AnswerOptimal(ctx2, {.flops = 6e20, .approach = 2}).ok());
  EXPECT_EQ(api.requests.back().sweep_id(), "");
  EXPECT_EQ(api.requests.back().flops(), 6e20);
  const nlohmann::json j2 = nlohmann::json::parse(newest.out.str());
  EXPECT_EQ(j2["approach"].get<int>(), 2);
  EXPECT_TRUE(j2["loss"].is_null()) << newest.out.str();
}

TEST(AnswerOptimal, ASweepsUnidentifiedFitIsRefusedWithExitCode3UnlessForced) {
  FakeOptimalApi api;
  api.verdict = "unidentified";
  Streams run;
  CommandContext ctx = run.Context(Format::kTable);
  ctx.api = &api;
  const absl::Status refused =
      AnswerOptimal(ctx, {.flops = 6e20, .sweep_id = "sw-1"});
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ExitCodeOf(refused), 3);
  EXPECT_EQ(refused.message(),
            "sweep sw-1: the Approach 3 fit is unidentified: why. Its answers "
            "are not determined by the points; --force answers anyway");
  EXPECT_EQ(run.out.str(), "");

  Streams forced;
  CommandContext ctx2 = forced.Context(Format::kTable);
  ctx2.api = &api;
  const absl::Status ok =
      AnswerOptimal(ctx2, {.flops = 6e20, .sweep_id = "sw-1", .force = true});
  EXPECT_TRUE(ok.ok()) << ok;
  EXPECT_EQ(ExitCodeOf(ok), 0);
  EXPECT_THAT(forced.out.str(),
              HasSubstr("params N = 1B (95% \u00d7/\u00f7 1.11)"));
  EXPECT_THAT(forced.err.str(),
              HasSubstr("is unidentified (answered because of --force): why"));
}

TEST(AnswerOptimal, AWeakFitAnswersWithItsReasons) {
  FakeOptimalApi api;
  api.verdict = "weak";
  Streams run;
  CommandContext ctx = run.Context(Format::kJson);
  ctx.api = &api;
  ASSERT_TRUE(AnswerOptimal(ctx, {.flops = 6e20, .sweep_id = "sw-1"}).ok());
  const nlohmann::json j = nlohmann::json::parse(run.out.str());
  EXPECT_EQ(j["verdict"]["level"], "weak");
  EXPECT_EQ(j["verdict"]["reasons"][0], "why");
}

}  // namespace
}  // namespace isoflop::cli
