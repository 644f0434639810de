// Issue 24, data in and out, through the real binaries: a W&B-style quoted
// CSV imported into a real coordinator becomes a sweep that is fitted and has
// a law page; its report's trials.csv fits back to the same law; `sweep
// export` writes full-resolution curves; trial_view reads with sqlite3.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/subprocess.h"

namespace isoflop::testing {
namespace {

using ::testing::HasSubstr;

std::string Bin(const std::string& name) {
  return std::string(ISOFLOP_BIN_DIR) + "/" + name;
}

constexpr double kE = 1.8, kA = 400, kB = 1200, kAlpha = 0.34, kBeta = 0.28;

double Law(double n, double d) {
  return kE + kA / std::pow(n, kAlpha) + kB / std::pow(d, kBeta);
}

class SweepIoProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("sweep-io-", getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    http_port_ = FreePort();
    coordinator_ = std::make_unique<Subprocess>(
        std::vector<std::string>{
            Bin("isoflop-coordinator"), "--listen", "127.0.0.1:0", "--db",
            (dir_ / "isoflop.db").string(), "--http-listen",
            absl::StrCat("127.0.0.1:", http_port_)},
        (dir_ / "coordinator.log").string(),
        std::vector<std::string>{"ISOFLOP_TOKEN="});
    ASSERT_TRUE(WaitForText((dir_ / "coordinator.log").string(), "dashboard on",
                            std::chrono::seconds(60)))
        << ReadFile((dir_ / "coordinator.log").string());
    std::smatch m;
    const std::string log = ReadFile((dir_ / "coordinator.log").string());
    ASSERT_TRUE(std::regex_search(log, m, std::regex("listening on (\\S+)")));
    address_ = m[1];
    token_ = std::string(
        absl::StripAsciiWhitespace(ReadFile((dir_ / "token").string())));
  }
  void TearDown() override {
    if (coordinator_ != nullptr) {
      coordinator_->Signal(SIGTERM);
      coordinator_->Wait(std::chrono::seconds(30));
    }
    std::filesystem::remove_all(dir_);
  }

  // Runs a command to its end; returns {exit code, stdout and stderr}.
  std::pair<int, std::string> Run(std::vector<std::string> argv) {
    const std::string log =
        (dir_ / absl::StrCat("run-", ++runs_, ".log")).string();
    const ExitStatus s = RunToCompletion(
        std::move(argv), log,
        {absl::StrCat("ISOFLOP_ADDRESS=", address_),
         absl::StrCat("ISOFLOP_TOKEN_FILE=", (dir_ / "token").string()),
         "ISOFLOP_TOKEN="});
    return {s.signal == 0 ? s.code : 128 + s.signal, ReadFile(log)};
  }
  // The last line of a command's output that parses as a JSON object.
  static nlohmann::json LastJson(const std::string& output) {
    nlohmann::json last;
    for (absl::string_view line : absl::StrSplit(output, '\n')) {
      if (!absl::StartsWith(line, "{")) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded()) last = j;
    }
    return last;
  }

  std::filesystem::path dir_;
  int http_port_ = 0;
  std::unique_ptr<Subprocess> coordinator_;
  std::string address_, token_;
  int runs_ = 0;
};

TEST_F(SweepIoProcessTest, ImportedRunsGetAFitALawPageAnExportAndSqlViews) {
  // As W&B's "Export CSV" writes it: every cell quoted, a BOM, CRLF, a run
  // name with a comma and extra columns.
  std::string csv =
      "\xEF\xBB\xBF\"Name\",\"State\",\"params\",\"tokens\",\"budget\","
      "\"loss\",\"Notes\"\r\n";
  int i = 0;
  for (double budget : {1e15, 3e15, 1e16}) {
    for (double n : {2e5, 5e5, 1e6, 2e6, 5e6}) {
      const double d = std::round(budget / (6 * n));
      absl::StrAppendFormat(
          &csv,
          "\"run %d, lr=3e-3\",\"finished\",\"%.17g\","
          "\"%.17g\",\"%.17g\",\"%.17g\",\"said \"\"ok\"\"\"\r\n",
          i++, n, d, budget, Law(n, d));
    }
  }
  std::ofstream(dir_ / "wandb.csv", std::ios::binary) << csv;

  // 1. Import, wait for the coordinator's fit: the law comes back.
  auto [rc, out] =
      Run({Bin("isoflop"), "--format", "json", "sweep", "import",
           (dir_ / "wandb.csv").string(), "--name", "replica", "--wait"});
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json imported = LastJson(out);
  const std::string id = imported["sweep_id"];
  EXPECT_THAT(id, ::testing::StartsWith("im-"));
  EXPECT_EQ(imported["n_trials"], 15);
  EXPECT_EQ(imported["existed"], false);
  ASSERT_TRUE(imported.contains("fit")) << out;
  EXPECT_NEAR(imported["fit"]["E"].get<double>(), kE, 1e-3 * kE);
  EXPECT_NEAR(imported["fit"]["alpha"].get<double>(), kAlpha, 1e-2 * kAlpha);
  // Again: the same sweep, nothing new.
  std::tie(rc, out) =
      Run({Bin("isoflop"), "--format", "json", "sweep", "import",
           (dir_ / "wandb.csv").string(), "--name", "replica"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(LastJson(out)["sweep_id"], id);
  EXPECT_EQ(LastJson(out)["existed"], true);

  // 2. The dashboard's law page has its points and the stored law.
  std::tie(rc, out) =
      Run({"/usr/bin/curl", "-sS", "--max-time", "60", "-H",
           absl::StrCat("Authorization: Bearer ", token_),
           absl::StrFormat("http://127.0.0.1:%d/api/v1/sweeps/%s/law",
                           http_port_, id)});
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json law = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(law.is_discarded()) << out;
  EXPECT_EQ(law["points"].size(), 15u);
  EXPECT_EQ(law["budgets"].size(), 3u);
  ASSERT_TRUE(law["fit"].is_object()) << out;
  EXPECT_NEAR(law["fit"]["e"].get<double>(), imported["fit"]["E"].get<double>(),
              1e-12);

  // 3. report -> trials.csv -> fit --points: the same law.
  std::tie(rc, out) = Run({Bin("isoflop"), "report", id, "--out",
                           (dir_ / "report").string(), "--html"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(std::filesystem::exists(dir_ / "report" / "report.html"));
  std::tie(rc, out) =
      Run({Bin("isoflop"), "--format", "json", "fit", "--points",
           (dir_ / "report" / "trials.csv").string(), "--approach", "3",
           "--bootstrap", "0"});
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json refit = LastJson(out)["approach3"];
  for (const char* p : {"E", "A", "B", "alpha", "beta"}) {
    EXPECT_NEAR(refit[p].get<double>() / imported["fit"][p].get<double>(), 1,
                1e-6)
        << p;
  }

  // 4. Curves in, full resolution out: 300 steps (more than the pages'
  // 200-point downsampling) of two runs.
  std::string curves = "run,step,params,tokens,loss\n";
  for (const char* run : {"a", "b"}) {
    for (int step = 1; step <= 300; ++step) {
      absl::StrAppendFormat(&curves, "%s,%d,%g,%g,%.6f\n", run, step,
                            run[0] == 'a' ? 1e6 : 2e6, 2e7, 6.0 - step * 0.01);
    }
  }
  std::ofstream(dir_ / "curves.csv") << curves;
  std::tie(rc, out) = Run({Bin("isoflop"), "--format", "json", "sweep",
                           "import", (dir_ / "curves.csv").string()});
  ASSERT_EQ(rc, 0) << out;
  const std::string curves_id = LastJson(out)["sweep_id"];
  std::tie(rc, out) = Run({Bin("isoflop"), "sweep", "export", curves_id,
                           "--out", (dir_ / "export.jsonl").string()});
  ASSERT_EQ(rc, 0) << out;
  const std::vector<std::string> lines = absl::StrSplit(
      ReadFile((dir_ / "export.jsonl").string()), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  const nlohmann::json head = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(head["sweep"]["id"], curves_id);
  EXPECT_EQ(head["sweep"]["imported"], true);
  const nlohmann::json trial = nlohmann::json::parse(lines[1])["trial"];
  EXPECT_EQ(trial["state"], "SUCCEEDED");
  EXPECT_EQ(trial["curves"]["train_loss"]["steps"].size(), 300u);
  EXPECT_NEAR(trial["val_loss"].get<double>(), 3.0, 1e-9);  // its last step
  EXPECT_EQ(trial["spec"]["n_total"], "1000000");  // proto JSON: a string
  std::tie(rc, out) = Run({Bin("isoflop"), "sweep", "export", curves_id,
                           "--out", (dir_ / "export.csv").string()});
  ASSERT_EQ(rc, 0) << out;
  const std::vector<std::string> rows = absl::StrSplit(
      ReadFile((dir_ / "export.csv").string()), '\n', absl::SkipEmpty());
  EXPECT_EQ(rows.size(), 1u + 600u);
  EXPECT_THAT(rows[0], ::testing::StartsWith("run,state,params,tokens"));

  // 5. SQL users read the imported trials' specs with sqlite3.
  std::tie(rc, out) =
      Run({"/usr/bin/sqlite3", "-readonly", (dir_ / "isoflop.db").string(),
           absl::StrCat("SELECT count(*), min(params), max(budget) FROM "
                        "trial_view WHERE sweep_id = '",
                        id, "' AND state = 'SUCCEEDED'")});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("15|200000|1.0e+16"));
}

}  // namespace
}  // namespace isoflop::testing
