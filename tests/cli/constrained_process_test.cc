// The real `isoflop fit --form` on points files of a known data-constrained
// law (analysis/constrained.h): `both` fits the two forms and names the one
// with the lower held-out error, in text and JSON; `muennighoff` refuses
// points that repeat no data; --r-star published keeps the constants.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

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
      (std::string("constrained-") + info->name() + "-" +
       std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// An IsoFLOP sweep on one corpus of `unique` tokens: 6 budgets 3x apart
// from 1e15 FLOPs, 6 sizes 2x apart around each budget's N_opt, losses on
// the published data-constrained law (datablations README.md, "Parametric
// Fit") with 0.5 % noise (seeded). The largest budgets train for up to ~40
// epochs. `unique` 0 writes no unique_tokens column.
std::string PointsCsv(const std::string& path, double unique) {
  const double a = std::exp(6.255414), b = std::exp(7.3049974),
               e = std::exp(0.6254804), alpha = 0.3526596, beta = 0.3526596,
               rd = 15.387756, rn = 5.309743;
  const double g = std::pow(alpha * a / (beta * b), 1 / (alpha + beta));
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0, 0.005);
  std::ofstream out(path);
  out.precision(17);
  out << "params,tokens,budget,loss" << (unique > 0 ? ",unique_tokens" : "")
      << "\n";
  for (int k = 0; k < 6; ++k) {
    const double c = 1e15 * std::pow(3.0, k);
    const double n_opt = g * std::pow(c / 6, beta / (alpha + beta));
    for (int j = -2; j <= 3; ++j) {
      const double n = n_opt * std::pow(2.0, j);
      const double d = c / (6 * n);
      const double u = unique > 0 ? std::min(unique, d) : d;
      const double u_n = std::min(n, std::pow(u * g, beta / alpha) * g);
      const double r_d = d / u - 1, r_n = n / u_n - 1;
      const double n_eff = u_n + u_n * rn * (1 - std::exp(-r_n / rn));
      const double d_eff = u + u * rd * (1 - std::exp(-r_d / rd));
      const double loss =
          e + a / std::pow(n_eff, alpha) + b / std::pow(d_eff, beta);
      out << n << "," << d << "," << c << "," << loss * (1 + noise(rng));
      if (unique > 0) out << "," << unique;
      out << "\n";
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

std::string FitCommand(const std::string& points, const std::string& flags) {
  return absl::StrCat("exec '", Bin(), "' fit --points '", points,
                      "' --starts grid:4 --threads 2 ", flags);
}

TEST(ConstrainedProcess, FormBothNamesTheBetterFormByHeldOutError) {
  const std::string dir = TestDir();
  const std::string points = PointsCsv(dir + "/p.csv", 1e8);
  const std::string json = dir + "/fit.json";
  const Outcome o =
      Shell(dir, FitCommand(points, absl::StrCat("--form both --bootstrap 20 "
                                                 "--format json > '",
                                                 json, "'")));
  ASSERT_EQ(o.status.code, 0) << o.output;
  const nlohmann::json doc = nlohmann::json::parse(ReadFile(json));
  EXPECT_EQ(doc["form"], "both");
  ASSERT_TRUE(doc["approach3"].is_object()) << doc.dump();
  ASSERT_TRUE(doc["muennighoff"].is_object()) << doc["reasons"].dump();
  EXPECT_EQ(doc["muennighoff"]["rd_star_fitted"], true);
  EXPECT_NEAR(doc["muennighoff"]["rd_star"].get<double>(), 15.39, 0.5 * 15.39);
  EXPECT_TRUE(doc["muennighoff"]["ci95"].contains("rd_star"));
  ASSERT_TRUE(doc["comparison"].is_object()) << doc["reasons"].dump();
  EXPECT_EQ(doc["comparison"]["method"], "leave-one-budget-out");
  EXPECT_EQ(doc["comparison"]["folds"], 6);
  EXPECT_EQ(doc["comparison"]["better"], "muennighoff");
  EXPECT_LT(doc["comparison"]["muennighoff_error"].get<double>(),
            doc["comparison"]["chinchilla_error"].get<double>());
  EXPECT_THAT(doc["approach3"]["verdict"].dump(),
              HasSubstr("epochs of their unique data"));

  const Outcome text =
      Shell(dir, FitCommand(points, "--form both --bootstrap 0"));
  ASSERT_EQ(text.status.code, 0) << text.output;
  EXPECT_THAT(text.output, HasSubstr("Muennighoff (data-constrained)"));
  EXPECT_THAT(text.output, HasSubstr("Held-out error (leave-one-budget-out, "
                                     "6 budgets, 36 points"));
  EXPECT_THAT(text.output, HasSubstr("muennighoff fits better"));
  EXPECT_THAT(text.output,
              HasSubstr("the Chinchilla form ignores repetition: fit --form "
                        "muennighoff"));
}

TEST(ConstrainedProcess, PublishedConstantsAreKeptExactly) {
  const std::string dir = TestDir();
  const std::string points = PointsCsv(dir + "/p.csv", 1e8);
  const std::string json = dir + "/fit.json";
  const Outcome o =
      Shell(dir, FitCommand(points, absl::StrCat("--form muennighoff --r-star "
                                                 "published --bootstrap 0 "
                                                 "--format json > '",
                                                 json, "'")));
  ASSERT_EQ(o.status.code, 0) << o.output;
  const nlohmann::json doc = nlohmann::json::parse(ReadFile(json));
  EXPECT_EQ(doc["form"], "muennighoff");
  EXPECT_EQ(doc["muennighoff"]["rd_star"].get<double>(), 15.387756);
  EXPECT_EQ(doc["muennighoff"]["rn_star"].get<double>(), 5.309743);
  EXPECT_EQ(doc["muennighoff"]["rd_star_fitted"], false);
}

TEST(ConstrainedProcess, MuennighoffRefusesPointsThatRepeatNoData) {
  const std::string dir = TestDir();
  const Outcome o = Shell(dir, FitCommand(PointsCsv(dir + "/p.csv", 0),
                                          "--form muennighoff --bootstrap 0"));
  EXPECT_EQ(o.status.signal, 0);
  EXPECT_NE(o.status.code, 0) << o.output;
  EXPECT_THAT(o.output, HasSubstr("--form muennighoff: no point repeats data"));
  EXPECT_THAT(o.output, HasSubstr("R_D* is not identified"));

  const Outcome bad =
      Shell(dir, FitCommand(dir + "/p.csv", "--form kaplan --bootstrap 0"));
  EXPECT_NE(bad.status.code, 0);
  EXPECT_THAT(bad.output, HasSubstr("--form = 'kaplan': must be chinchilla, "
                                    "muennighoff or both"));
}

}  // namespace
