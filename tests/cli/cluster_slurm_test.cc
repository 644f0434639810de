// `isoflop cluster slurm submit-workers` without Slurm: the script it writes,
// its refusals and how it reads sbatch's answer (a fake sbatch). The real
// Slurm run is tests/integration/slurm_e2e_test.cc.
#include "cli/cluster_slurm.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

SlurmWorkersOptions Good() {
  SlurmWorkersOptions o;
  o.nodes = 2;
  o.coordinator = "head01:50051";
  o.data_dir = "/shared/data";
  o.script_out = (fs::path(::testing::TempDir()) / "workers.sbatch").string();
  return o;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(SlurmWorkersScript, CarriesTheFlagsAsSbatchLinesAndSettings) {
  SlurmWorkersOptions o = Good();
  o.partition = "gpu";
  o.gpus_per_node = 4;
  o.time = "12:00:00";
  o.token_file = "/shared/state/worker_token";
  o.checkpoint_dir = "/shared/ckpt dir/it's";
  const std::string s = SlurmWorkersScript(o);
  EXPECT_EQ(s.rfind("#!/bin/bash\n", 0), 0u);
  for (const char* line :
       {"#SBATCH --nodes=2\n", "#SBATCH --ntasks-per-node=1\n",
        "#SBATCH --partition=gpu\n", "#SBATCH --gpus-per-node=4\n",
        "#SBATCH --time=12:00:00\n", "#SBATCH --signal=B:USR1@120\n",
        "export ISOFLOP_COORDINATOR='head01:50051'\n",
        "export ISOFLOP_DATA_DIR='/shared/data'\n",
        "export ISOFLOP_WORKER_TOKEN_FILE='/shared/state/worker_token'\n",
        // A quote inside a path survives bash's single quotes.
        "export ISOFLOP_CHECKPOINT_DIR='/shared/ckpt dir/it'\\''s'\n"}) {
    EXPECT_THAT(s, HasSubstr(line));
  }
  // The body of deploy/slurm/isoflop-workers.sbatch, without its own
  // #SBATCH lines (only the ones above, all before the first command).
  EXPECT_THAT(s, HasSubstr("srun --nodes="));
  EXPECT_THAT(s, HasSubstr("trap "));
  EXPECT_EQ(s.find("#SBATCH --job-name=isoflop-workers"),
            s.rfind("#SBATCH --job-name=isoflop-workers"));
  const size_t first_command = s.find("\nexport ");
  EXPECT_EQ(s.find("\n#SBATCH", first_command), std::string::npos);
  EXPECT_THAT(s, Not(HasSubstr("--partition=\n")));
}

TEST(SlurmWorkersOptions, RefusalsNameTheFlagValueAndRule) {
  const auto refusal = [](auto change) {
    SlurmWorkersOptions o = Good();
    change(o);
    return std::string(ValidateSlurmWorkersOptions(o).message());
  };
  EXPECT_EQ(refusal([](SlurmWorkersOptions&) {}), "");
  EXPECT_EQ(refusal([](SlurmWorkersOptions& o) { o.nodes = 0; }),
            "--nodes = 0: must be in [1, 10000]");
  EXPECT_THAT(refusal([](SlurmWorkersOptions& o) { o.partition = "gpu;rm"; }),
              HasSubstr("--partition = \"gpu;rm\": must be a partition name"));
  EXPECT_EQ(refusal([](SlurmWorkersOptions& o) { o.gpus_per_node = -1; }),
            "--gpus-per-node = -1: must be in [0, 64]");
  EXPECT_THAT(refusal([](SlurmWorkersOptions& o) { o.time = "4h"; }),
              HasSubstr("--time = \"4h\": must be a Slurm time limit"));
  EXPECT_THAT(refusal([](SlurmWorkersOptions& o) { o.coordinator = "head01"; }),
              HasSubstr("--coordinator = \"head01\": must be host:port"));
  EXPECT_THAT(refusal([](SlurmWorkersOptions& o) { o.data_dir = ""; }),
              HasSubstr("--data-dir = \"\": must name the dataset root"));
  EXPECT_THAT(refusal([](SlurmWorkersOptions& o) { o.logs_dir = "/a\nb"; }),
              HasSubstr("--logs-dir = \"/a\\nb\": must not contain control"));
}

TEST(SlurmTime, AcceptsSlurmsFormatsOnly) {
  for (const char* t :
       {"30", "30:00", "4:00:00", "2-0", "2-12:00", "2-12:00:00", "infinite"}) {
    EXPECT_TRUE(IsSlurmTime(t)) << t;
  }
  for (const char* t : {"", "4h", "1:2:3:4", "-1", "2-", "a:00", "1 0"}) {
    EXPECT_FALSE(IsSlurmTime(t)) << t;
  }
}

TEST(SubmitSlurmWorkers, WritesTheScriptAndReturnsSbatchsJobId) {
  SlurmWorkersOptions o = Good();
  std::vector<std::string> ran;
  std::ostringstream out;
  absl::StatusOr<std::string> job = SubmitSlurmWorkers(
      o,
      [&ran](const std::vector<std::string>& argv)
          -> absl::StatusOr<std::pair<int, std::string>> {
        ran = argv;
        return std::make_pair(0, std::string("4242;cluster-a\n"));
      },
      out);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(*job, "4242");
  EXPECT_EQ(ran,
            (std::vector<std::string>{"sbatch", "--parsable", o.script_out}));
  EXPECT_EQ(ReadAll(o.script_out), SlurmWorkersScript(o));
  EXPECT_THAT(out.str(), HasSubstr("submitted job 4242"));
}

TEST(SubmitSlurmWorkers, SbatchRefusalIsAnError) {
  std::ostringstream out;
  absl::StatusOr<std::string> job = SubmitSlurmWorkers(
      Good(),
      [](const std::vector<std::string>&)
          -> absl::StatusOr<std::pair<int, std::string>> {
        return std::make_pair(1, std::string());
      },
      out);
  EXPECT_THAT(job.status().message(), HasSubstr("sbatch refused"));
}

}  // namespace
}  // namespace isoflop::cli
