// The real `isoflop sweep plan` with the real `isoflop-trainer bench` (issue
// 21 point 4): the first run measures the config's shape and the per-trial
// overhead and writes the throughput cache; the second reuses it and measures
// nothing. A tiny model, so the measurement takes seconds.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/subprocess.h"

namespace {

using ::isoflop::testing::ExitStatus;
using ::isoflop::testing::ReadFile;
using ::isoflop::testing::RunToCompletion;
using ::testing::HasSubstr;
using ::testing::Not;

// The JSON line of the output (stdout and stderr share the log).
nlohmann::json JsonLine(const std::string& log) {
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '{') return nlohmann::json::parse(line);
  }
  ADD_FAILURE() << "no JSON line in:\n" << log;
  return nlohmann::json::object();
}

TEST(PlanProcess, MeasuresWithTheTrainerOnceThenReusesTheCache) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      ("plan-process-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "data" / "tiny");
  std::ofstream(dir / "data" / "tiny" / "meta.json")
      << R"({"vocab_size": 256, "train_tokens": 20000, "val_tokens": 1000})";
  const std::string config = (dir / "tiny.textproto").string();
  std::ofstream(config)
      << "name: \"tiny\" model { vocab_size: 256 context: 16 } grid { "
         "flops_budgets: [2e9] model_shapes { d_model: 16 n_layers: 1 "
         "n_heads: 2 } } training { batch_sequences: 4 lr: 1e-2 "
         "eval_batches: 2 } data { dataset: \"tiny\" }\n";
  const std::string bin = ISOFLOP_BIN_DIR;
  const std::string cache = (dir / "cache" / "throughput.json").string();
  const std::vector<std::string> argv = {bin + "/isoflop",
                                         "--format",
                                         "json",
                                         "sweep",
                                         "plan",
                                         config,
                                         "--data-dir",
                                         (dir / "data").string(),
                                         "--throughput-cache",
                                         cache,
                                         "--trainer",
                                         bin + "/isoflop-trainer",
                                         "--slots",
                                         "1"};

  const std::string first_log = (dir / "first.log").string();
  ExitStatus first = RunToCompletion(argv, first_log);
  const std::string first_out = ReadFile(first_log);
  ASSERT_EQ(first.code, 0) << first_out;
  EXPECT_THAT(first_out, HasSubstr("measuring throughput 1/1: d16/L1"));
  const nlohmann::json plan = JsonLine(first_out);
  ASSERT_EQ(plan["trials"].size(), 1u);
  const nlohmann::json& trial = plan["trials"][0];
  EXPECT_EQ(trial["throughput"], "measured");
  EXPECT_GT(trial["tokens_per_s"].get<double>(), 0);
  EXPECT_GT(plan["overhead_seconds"].get<double>(), 0);
  // 2e9 FLOPs of a 46,080 FLOPs/token model: 678 steps of 64 tokens,
  // 43,392 tokens, 2.17 epochs of 20,000.
  EXPECT_EQ(trial["steps"], 678);
  EXPECT_EQ(trial["tokens"], 678 * 64);
  EXPECT_DOUBLE_EQ(trial["epochs"].get<double>(), 678.0 * 64 / 20000);
  EXPECT_GT(trial["est_seconds"].get<double>(),
            plan["overhead_seconds"].get<double>());

  const nlohmann::json file = nlohmann::json::parse(std::ifstream(cache));
  ASSERT_EQ(file["entries"].size(), 1u);
  EXPECT_EQ(file["entries"][0]["d_model"], 16);
  EXPECT_EQ(file["entries"][0]["tokens_per_s"], trial["tokens_per_s"]);
  ASSERT_EQ(file["overheads"].size(), 1u);

  const std::string second_log = (dir / "second.log").string();
  ExitStatus second = RunToCompletion(argv, second_log);
  const std::string second_out = ReadFile(second_log);
  ASSERT_EQ(second.code, 0) << second_out;
  EXPECT_THAT(second_out, Not(HasSubstr("measuring")));
  const nlohmann::json again = JsonLine(second_out);
  EXPECT_EQ(again["trials"][0]["throughput"], "cached");
  EXPECT_EQ(again["trials"][0]["tokens_per_s"], trial["tokens_per_s"]);
  EXPECT_EQ(again["est_seconds"], plan["est_seconds"]);
}

}  // namespace
