// SampleRunner (worker/sample_server.h) over a fake launcher: which child it
// starts for a job, and which events the children's output becomes.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "worker/fake_process_launcher.h"
#include "worker/sample_server.h"

namespace isoflop::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::HasSubstr;

class SampleRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat(
               "sample-runner-", getpid(), "-",
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "ckpt/tr-1");
    std::ofstream(dir_ / "ckpt/tr-1/model.bin") << "weights";
    fs::create_directories(dir_ / "data/tiny");
    std::ofstream(dir_ / "data/tiny/tokenizer.vocab")
        << "<unk>\t0\n<s>\t0\n</s>\t0\n\u2581In\t-1\n\u2581the\t-2\n";
    runner_ = std::make_unique<SampleRunner>(
        SampleOptions{
            .trainer_path = "/bin/isoflop-trainer",
            .data_bin = "/bin/isoflop-data",
            .data_root = dir_ / "data",
            .checkpoint_root = dir_ / "ckpt",
            .scratch_dir = dir_ / "scratch",
            .log = [this](const std::string& l) { log_.push_back(l); }},
        &launcher_, &clock_);
  }

  static v1::SampleJob Generate(const std::string& body,
                                const std::string& trial = "tr-1") {
    v1::SampleJob job;
    job.set_job_id("j1");
    job.set_trial_id(trial);
    job.set_dataset("tiny");
    job.mutable_generate()->set_request_json(body);
    return job;
  }
  static std::vector<std::string> Names(
      const std::vector<v1::SampleEvent>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.event());
    return out;
  }

  fs::path dir_;
  FakeClock clock_;
  FakeProcessLauncher launcher_;
  std::vector<std::string> log_;
  std::unique_ptr<SampleRunner> runner_;
};

TEST_F(SampleRunnerTest, RefusesATrialWithoutModelBinHereAsNotFound) {
  runner_->Take(Generate(R"({"prompt_ids": [5]})", "tr-2"));
  const std::vector<v1::SampleEvent> events = runner_->Poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event(), "refused");
  EXPECT_EQ(events[0].code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_THAT(events[0].data(), HasSubstr("trial tr-2: no model.bin"));
  EXPECT_TRUE(launcher_.launches().empty());
}

TEST_F(SampleRunnerTest, HandsTheRequestToTheTrainerAndRelaysItsTokens) {
  runner_->Take(Generate(R"({"prompt_ids": [3, 4], "top_k": 5})"));
  ASSERT_EQ(launcher_.launches().size(), 1u);
  const LaunchSpec& spec = launcher_.launches()[0];
  EXPECT_TRUE(spec.stdout_to_lines);
  EXPECT_EQ(spec.argv[1], "generate");
  EXPECT_THAT(spec.argv, Contains((dir_ / "ckpt/tr-1/model.bin").string()));
  // The trainer's line: the body's fields unchanged, with the job's id.
  std::ifstream in(dir_ / "scratch/sample-j1.jsonl");
  std::string line;
  std::getline(in, line);
  const nlohmann::json request = nlohmann::json::parse(line);
  EXPECT_EQ(request["id"], "j1");
  EXPECT_EQ(request["prompt_ids"], nlohmann::json::array({3, 4}));
  EXPECT_EQ(request["top_k"], 5);
  EXPECT_TRUE(runner_->Poll().empty());  // nothing printed yet

  const ProcessId p = launcher_.last_id();
  launcher_.Write(p, R"({"id":"j1","i":0,"token":3})");
  std::vector<v1::SampleEvent> events = runner_->Poll();
  EXPECT_EQ(Names(events), (std::vector<std::string>{"start", "token"}));
  EXPECT_EQ(nlohmann::json::parse(events[1].data())["text"], " In");
  launcher_.Write(p, R"({"id":"j1","done":true,"n":1,"reason":"eos"})");
  launcher_.Exit(p, ExitStatus::Code(0));
  events = runner_->Poll();
  ASSERT_EQ(Names(events), std::vector<std::string>{"done"});
  const nlohmann::json done = nlohmann::json::parse(events[0].data());
  EXPECT_EQ(done["text"], " In");
  EXPECT_EQ(done["reason"], "eos");
  EXPECT_FALSE(runner_->busy());
}

TEST_F(SampleRunnerTest, TheTrainersRefusalIsInvalidArgument) {
  runner_->Take(Generate(R"({"prompt_ids": [3], "top_p": 0})"));
  const ProcessId p = launcher_.last_id();
  launcher_.Write(p, R"({"id":"j1","error":"top_p = 0: must be in (0, 1]"})");
  launcher_.Exit(p, ExitStatus::Code(0));
  const std::vector<v1::SampleEvent> events = runner_->Poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event(), "refused");
  EXPECT_EQ(events[0].code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(events[0].data(), "top_p = 0: must be in (0, 1]");
}

TEST_F(SampleRunnerTest, ATextPromptIsEncodedBeforeTheTrainerStarts) {
  runner_->Take(Generate(R"({"prompt": "In the", "ignore_eos": true})"));
  ASSERT_EQ(launcher_.launches().size(), 1u);
  EXPECT_EQ(launcher_.launches()[0].argv[1], "encode");
  EXPECT_THAT(launcher_.launches()[0].argv, Contains("In the"));
  launcher_.Write(launcher_.last_id(), "3,4");
  launcher_.Exit(launcher_.last_id(), ExitStatus::Code(0));
  EXPECT_TRUE(runner_->Poll().empty());
  ASSERT_EQ(launcher_.launches().size(), 2u);
  const std::vector<std::string>& argv = launcher_.launches()[1].argv;
  EXPECT_EQ(argv[1], "generate");
  // ignore_eos: no end-of-sentence id.
  EXPECT_EQ(argv.back(), "-1");
  std::ifstream in(dir_ / "scratch/sample-j1.jsonl");
  std::string line;
  std::getline(in, line);
  const nlohmann::json request = nlohmann::json::parse(line);
  EXPECT_EQ(request["prompt_ids"], nlohmann::json::array({3, 4}));
  EXPECT_FALSE(request.contains("prompt"));
  EXPECT_FALSE(request.contains("ignore_eos"));
}

TEST_F(SampleRunnerTest, ACancelKillsTheTrainerAndEndsWithEnded) {
  runner_->Take(Generate(R"({"prompt_ids": [3]})"));
  const ProcessId p = launcher_.last_id();
  launcher_.Write(p, R"({"id":"j1","i":0,"token":3})");
  EXPECT_EQ(Names(runner_->Poll()),
            (std::vector<std::string>{"start", "token"}));
  v1::SampleJob cancel;
  cancel.set_job_id("j1");
  cancel.set_cancel(true);
  runner_->Take(cancel);
  ASSERT_TRUE(launcher_.process(p).terminated_with_grace.has_value());
  EXPECT_EQ(*launcher_.process(p).terminated_with_grace, absl::ZeroDuration());
  EXPECT_TRUE(runner_->Poll().empty());  // still exiting
  launcher_.Exit(p, ExitStatus::Signal(9));
  EXPECT_EQ(Names(runner_->Poll()), std::vector<std::string>{"ended"});
  EXPECT_THAT(log_, Contains(HasSubstr("client gone) after 1 tokens")));
}

TEST_F(SampleRunnerTest, EvalOfAMissingDatasetIsNotFound) {
  v1::SampleJob job;
  job.set_job_id("j2");
  job.set_trial_id("tr-1");
  job.set_dataset("tiny");
  job.mutable_eval()->set_data("other");
  runner_->Take(job);
  const std::vector<v1::SampleEvent> events = runner_->Poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_THAT(events[0].data(), HasSubstr("no other/val.bin"));
}

}  // namespace
}  // namespace isoflop::worker
