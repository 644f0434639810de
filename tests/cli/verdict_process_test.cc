// The real `isoflop` binary on point sets whose verdict is known (issue 20):
// `fit --format json` writes the verdicts, `optimal --fit` refuses an
// unidentified fit with exit code 3 and its reasons, and answers it with
// --force (exit 0).
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/subprocess.h"

namespace {

using ::isoflop::testing::ExitStatus;
using ::isoflop::testing::ReadFile;
using ::isoflop::testing::RunToCompletion;
using ::testing::HasSubstr;

std::string Bin() { return std::string(ISOFLOP_BIN_DIR) + "/isoflop"; }

std::string TestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      (std::string("verdict-") + info->name() + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// A CSV of `budgets` budgets from 1e18 (10x apart), `sizes` sizes each
// spanning [lo, hi] x Chinchilla's N_opt, losses on Chinchilla's law.
std::string PointsCsv(const std::string& path, int budgets, int sizes,
                      double lo, double hi) {
  const double e = 1.6934, a = 406.4, b = 410.7, alpha = 0.3392, beta = 0.2849;
  const double g = std::pow(alpha * a / (beta * b), 1 / (alpha + beta));
  std::ofstream out(path);
  out.precision(17);
  out << "params,tokens,budget,loss\n";
  for (int k = 0; k < budgets; ++k) {
    const double c = 1e18 * std::pow(10.0, k);
    const double n_opt = g * std::pow(c / 6, beta / (alpha + beta));
    for (int j = 0; j < sizes; ++j) {
      const double n =
          n_opt * lo * std::pow(hi / lo, static_cast<double>(j) / (sizes - 1));
      const double d = c / (6 * n);
      out << n << "," << d << "," << c << ","
          << e + a / std::pow(n, alpha) + b / std::pow(d, beta) << "\n";
    }
  }
  return path;
}

struct Outcome {
  ExitStatus status;
  std::string output;  // stdout and stderr
};

Outcome Shell(const std::string& dir, const std::string& command) {
  static int runs = 0;
  const std::string log = absl::StrCat(dir, "/run-", ++runs, ".log");
  Outcome o;
  o.status = RunToCompletion({"/bin/sh", "-c", command}, log,
                             {"ISOFLOP_TOKEN=", "ISOFLOP_ADDRESS=127.0.0.1:1"});
  o.output = ReadFile(log);
  return o;
}

// `isoflop fit` of `points` to DIR/fit.json (fast starts, small bootstrap).
std::string Fit(const std::string& dir, const std::string& points) {
  const std::string fit = dir + "/fit.json";
  const Outcome o =
      Shell(dir, absl::StrCat("exec '", Bin(), "' fit --points '", points,
                              "' --starts grid:2 --bootstrap 20 --threads 2 "
                              "--format json > '",
                              fit, "'"));
  EXPECT_EQ(o.status.code, 0) << o.output;
  return fit;
}

TEST(VerdictProcess, OptimalRefusesFivePointsWithExitCode3AndForceAnswers) {
  const std::string dir = TestDir();
  const std::string fit = Fit(dir, PointsCsv(dir + "/p.csv", 1, 5, 0.25, 4));
  const nlohmann::json doc = nlohmann::json::parse(ReadFile(fit));
  EXPECT_EQ(doc["verdict"]["level"], "unidentified");
  EXPECT_EQ(doc["approach3"]["verdict"]["level"], "unidentified");
  EXPECT_FALSE(doc["approach3"]["bootstrap"].contains("samples"));

  const Outcome refused =
      Shell(dir, absl::StrCat("exec '", Bin(), "' optimal --fit '", fit,
                              "' --flops 1e21"));
  EXPECT_EQ(refused.status.signal, 0);
  EXPECT_EQ(refused.status.code, 3) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr("isoflop: FAILED_PRECONDITION: "));
  EXPECT_THAT(refused.output,
              HasSubstr("the Approach 3 fit is unidentified: "));
  EXPECT_THAT(refused.output, HasSubstr("5 points for 5 free parameters"));
  EXPECT_THAT(refused.output, HasSubstr("--force answers anyway"));

  const Outcome forced =
      Shell(dir, absl::StrCat("exec '", Bin(), "' optimal --fit '", fit,
                              "' --flops 1e21 --force"));
  EXPECT_EQ(forced.status.code, 0) << forced.output;
  EXPECT_THAT(forced.output, HasSubstr("(answered because of --force)"));
  EXPECT_THAT(forced.output, HasSubstr("verdict: unidentified"));
  EXPECT_THAT(forced.output, HasSubstr("params N = "));
}

TEST(VerdictProcess, OptimalRefusesApproach2WithEveryMinimumAtAnEdge) {
  const std::string dir = TestDir();
  const std::string fit = Fit(dir, PointsCsv(dir + "/p.csv", 4, 5, 0.02, 0.3));
  const nlohmann::json doc = nlohmann::json::parse(ReadFile(fit));
  EXPECT_EQ(doc["approach2"]["verdict"]["level"], "unidentified");
  const Outcome refused =
      Shell(dir, absl::StrCat("exec '", Bin(), "' optimal --fit '", fit,
                              "' --flops 1e21 --approach 2"));
  EXPECT_EQ(refused.status.code, 3) << refused.output;
  EXPECT_THAT(refused.output,
              HasSubstr("every budget's parabola has its vertex outside"));
  const Outcome forced =
      Shell(dir, absl::StrCat("exec '", Bin(), "' optimal --fit '", fit,
                              "' --flops 1e21 --approach 2 --force"));
  EXPECT_EQ(forced.status.code, 0) << forced.output;
}

TEST(VerdictProcess, AnOkFitAnswersWithoutForce) {
  const std::string dir = TestDir();
  const std::string fit = Fit(dir, PointsCsv(dir + "/p.csv", 4, 7, 0.25, 4));
  const nlohmann::json doc = nlohmann::json::parse(ReadFile(fit));
  EXPECT_EQ(doc["verdict"]["level"], "ok") << doc["verdict"].dump();
  EXPECT_LT(std::abs(doc["backtest"]["relative_error"].get<double>()), 1e-6);
  const Outcome answered =
      Shell(dir, absl::StrCat("exec '", Bin(), "' optimal --fit '", fit,
                              "' --flops 1e21 --format json"));
  EXPECT_EQ(answered.status.code, 0) << answered.output;
  const nlohmann::json a = nlohmann::json::parse(answered.output);
  EXPECT_EQ(a["verdict"]["level"], "ok");
  EXPECT_GT(a["params"].get<double>(), 0);
}

TEST(VerdictProcess, FitTextShowsTheVerdictAndThreeSignificantFigures) {
  const std::string dir = TestDir();
  const std::string points = PointsCsv(dir + "/p.csv", 4, 7, 0.25, 4);
  const Outcome o = Shell(
      dir, absl::StrCat("exec '", Bin(), "' fit --points '", points,
                        "' --starts grid:2 --bootstrap 0 --flops 5.76e23"));
  EXPECT_EQ(o.status.code, 0) << o.output;
  EXPECT_THAT(o.output, HasSubstr("verdict: ok\n"));
  EXPECT_THAT(o.output, HasSubstr("  alpha = 0.339\n"));
  EXPECT_THAT(o.output, HasSubstr("Backtest: Approach 3 refitted on the 21 "
                                  "points of budgets <= 1e+20 FLOPs"));
  EXPECT_THAT(o.output, HasSubstr("B parameters\n"));  // N_opt in billions
}

}  // namespace
