// Trunk and branches in the trainer (docs/architecture.md "Trunks and
// branches"): the LR of a branch equals a from-scratch WSD run's, and the
// real binary started from a trunk's kept checkpoint continues exactly as
// that run does.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/exit_codes.h"
#include "common/token_file.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "trainer/options.h"
#include "trainer/train.h"

namespace isoflop::trainer {
namespace {

namespace fs = std::filesystem;

TEST(LearningRate, ABranchOfAConstantTrunkIsTheWsdRunOfItsLength) {
  TrainOptions trunk;
  trunk.lr = 1e-2;
  trunk.min_lr_fraction = 0.1;
  trunk.warmup_steps = 7;
  trunk.schedule = "constant";
  trunk.steps = 800;
  for (int64_t steps : {60, 97, 250, 1000}) {
    TrainOptions wsd = trunk;
    wsd.schedule = "wsd";
    wsd.wsd_decay_fraction = 0.2;
    wsd.steps = steps;
    // The branch's start: coordinator/sweep/expand.cc BranchStart.
    const int64_t start = std::max<int64_t>(trunk.warmup_steps,
                                            steps - std::llround(0.2 * steps));
    for (int64_t step = 0; step < start; ++step) {
      ASSERT_EQ(LearningRate(trunk, step), LearningRate(wsd, step))
          << "steps " << steps << ", step " << step;
    }
    // The cool-down starts right at the branch's start step.
    EXPECT_EQ(LearningRate(wsd, start), trunk.lr) << steps;
    EXPECT_LT(LearningRate(wsd, start + 1), trunk.lr) << steps;
    EXPECT_NEAR(LearningRate(wsd, steps - 1), 1e-3, 1e-12) << steps;
  }
}

std::string Dataset() {
  const fs::path dir =
      fs::path(::testing::TempDir()) / absl::StrCat("branch_data_", getpid());
  fs::create_directories(dir);
  std::vector<uint16_t> t(20000);
  uint64_t x = 42;
  for (size_t i = 0; i < t.size(); ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    t[i] = (x >> 60) == 0 ? static_cast<uint16_t>((x >> 33) % 64)
                          : static_cast<uint16_t>((i % 16) * 3 % 64);
  }
  EXPECT_TRUE(WriteTokenFile((dir / "train.bin").string(), 64, t).ok());
  EXPECT_TRUE(
      WriteTokenFile((dir / "val.bin").string(), 64, std::span(t).first(4000))
          .ok());
  return dir.string();
}

std::string FreshDir(const std::string& name) {
  return (fs::path(::testing::TempDir()) /
          absl::StrCat(
              name, "_", getpid(), "_",
              std::chrono::steady_clock::now().time_since_epoch().count()))
      .string();
}

struct TrainerRun {
  int exit_code = -1;
  std::vector<nlohmann::json> lines;
  std::string stderr_text;
};

TrainerRun Trainer(const std::string& data, const std::string& flags) {
  const std::string err = FreshDir("stderr");
  const std::string cmd = absl::StrCat(
      ISOFLOP_TRAINER_BIN, " train --data-dir ", data,
      " --vocab-size 64 --context 16 --d-model 32 --n-layers 1 --n-heads 2 "
      "--d-ff 64 --batch-sequences 8 --lr 1e-2 --warmup-steps 5 "
      "--min-lr-fraction 0.1 --weight-decay 0.1 --beta2 0.95 --seed 3 "
      "--precision fp32 --threads 1 --eval-every 0 --eval-batches 2 "
      "--log-every 1 ",
      flags, " 2>", err);
  TrainerRun r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) {
    r.lines.push_back(nlohmann::json::parse(buf));
  }
  const int raw = pclose(p);
  r.exit_code = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  std::ifstream in(err);
  std::stringstream ss;
  ss << in.rdbuf();
  r.stderr_text = ss.str();
  return r;
}

std::map<int, double> Losses(const TrainerRun& r) {
  std::map<int, double> out;
  for (const auto& j : r.lines) {
    if (j.contains("train_loss")) out[j["step"]] = j["train_loss"];
  }
  return out;
}

// The value of `key` in the line of `step` (NaN if none).
double Value(const TrainerRun& r, int step, const std::string& key) {
  for (const auto& j : r.lines) {
    if (j["step"] == step && j.contains(key)) return j[key].get<double>();
  }
  return std::nan("");
}

TEST(TrainerBranch, BranchFromAKeptCheckpointIsTheWsdRunFromScratch) {
  const std::string data = Dataset();
  const std::string trunk_dir = FreshDir("trunk");
  // A trunk to step 32 keeping steps 24 and 32 (branches of 30 and 40).
  const TrainerRun trunk = Trainer(
      data, absl::StrCat("--schedule constant --steps 32 --save-at-steps "
                         "24,32 --checkpoint-dir ",
                         trunk_dir));
  ASSERT_EQ(trunk.exit_code, kExitOk) << trunk.stderr_text;
  EXPECT_EQ(Value(trunk, 24, "checkpoint_kept"), 24);
  EXPECT_EQ(Value(trunk, 32, "checkpoint_kept"), 32);
  EXPECT_TRUE(fs::exists(fs::path(trunk_dir) / "kept.24.bin"));
  EXPECT_TRUE(fs::exists(fs::path(trunk_dir) / "kept.32.bin"));

  const std::string wsd = "--schedule wsd --wsd-decay-fraction 0.2 --steps 30";
  const TrainerRun branch =
      Trainer(data, absl::StrCat(wsd, " --init-from ", trunk_dir,
                                 " --init-step 24 --resume --checkpoint-dir ",
                                 FreshDir("branch")));
  ASSERT_EQ(branch.exit_code, kExitOk) << branch.stderr_text;
  const TrainerRun scratch = Trainer(data, wsd);
  ASSERT_EQ(scratch.exit_code, kExitOk) << scratch.stderr_text;

  // The branch starts from exactly the trunk's state at step 24 ...
  const double kept_hash = Value(trunk, 24, "state_hash");
  ASSERT_FALSE(std::isnan(kept_hash));
  EXPECT_EQ(Value(branch, 24, "init_state_hash"), kept_hash);
  // ... and trains steps 25..30 bitwise as the from-scratch WSD run does.
  const std::map<int, double> b = Losses(branch), s = Losses(scratch);
  ASSERT_EQ(b.size(), 6u);
  EXPECT_EQ(b.begin()->first, 25);
  for (auto [step, loss] : b) EXPECT_EQ(loss, s.at(step)) << "step " << step;
  EXPECT_EQ(branch.lines.back()["val_loss"], scratch.lines.back()["val_loss"]);
}

TEST(TrainerBranch, MissingTrunkCheckpointIsRetryableNamingThePath) {
  const std::string data = Dataset();
  const std::string trunk_dir = FreshDir("absent_trunk");
  const TrainerRun r =
      Trainer(data, absl::StrCat("--schedule wsd --steps 30 --init-from ",
                                 trunk_dir, " --init-step 24"));
  EXPECT_EQ(r.exit_code, kExitRetryable);
  EXPECT_NE(r.stderr_text.find((fs::path(trunk_dir) / "kept.24.bin").string() +
                               " is not visible here"),
            std::string::npos)
      << r.stderr_text;
}

TEST(TrainerBranch, BadSaveAndInitStepsAreRefusedNamingTheFlag) {
  const std::string data = Dataset();
  const std::string dir = FreshDir("bad_steps");
  const TrainerRun unsorted = Trainer(
      data, absl::StrCat("--schedule constant --steps 32 --save-at-steps "
                         "24,8 --checkpoint-dir ",
                         dir));
  EXPECT_EQ(unsorted.exit_code, kExitInvalidConfig);
  EXPECT_NE(unsorted.stderr_text.find("--save-at-steps = 24,8: must be "
                                      "ascending, distinct steps in [1, "
                                      "--steps = 32]"),
            std::string::npos)
      << unsorted.stderr_text;
  const TrainerRun late =
      Trainer(data, absl::StrCat("--schedule wsd --steps 30 --init-step 30 "
                                 "--init-from ",
                                 dir));
  EXPECT_EQ(late.exit_code, kExitInvalidConfig);
  EXPECT_NE(
      late.stderr_text.find("--init-step = 30: must be in [1, --steps = 30)"),
      std::string::npos)
      << late.stderr_text;
}

}  // namespace
}  // namespace isoflop::trainer
