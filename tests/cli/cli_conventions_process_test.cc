// Issue 24, point 5, against the real `isoflop` binary (and, in the last
// test, a real coordinator): --version, bash completion loaded by a real
// bash, did-you-mean for unknown commands and flags, every command's help
// with its own examples, JSON errors on stderr, the context file, `admin
// backup --format json`, `sweep list --state --limit`, `trial logs --format
// json` and the dashboard address learned from the coordinator.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "isoflop/v1/service.grpc.pb.h"
#include "tests/coordinator/test_configs.h"
#include "tests/integration/subprocess.h"

namespace isoflop {
namespace {

using ::isoflop::testing::ReadFile;
using ::isoflop::testing::RunToCompletion;
using ::isoflop::testing::Subprocess;
using ::isoflop::testing::WaitForText;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using json = nlohmann::json;
using namespace std::chrono_literals;

std::string Bin(const std::string& name) {
  return std::string(ISOFLOP_BIN_DIR) + "/" + name;
}

// A fresh directory for the running test.
std::string TestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      absl::StrCat("cli-conventions-", info->name(), "-", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

struct CliRun {
  int code = -1;
  std::string out, err;
};

// Runs bin/isoflop with `args`, stdout and stderr apart. The environment
// names no coordinator, token or context unless `env` does (the context file
// is dir/config.json).
CliRun Isoflop(const std::string& dir, std::vector<std::string> args,
               std::vector<std::string> env = {}) {
  static int runs = 0;
  const std::string base = absl::StrCat(dir, "/run-", ++runs);
  std::vector<std::string> argv = {
      "/bin/sh", "-c",
      absl::StrCat("exec \"$0\" \"$@\" >", base, ".out 2>", base, ".err"),
      Bin("isoflop")};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> full_env = {
      "ISOFLOP_TOKEN=",   "ISOFLOP_TOKEN_FILE=",
      "ISOFLOP_ADDRESS=", "ISOFLOP_HTTP=",
      "ISOFLOP_TLS_CA=",  "ISOFLOP_CONFIG=" + dir + "/config.json"};
  full_env.insert(full_env.end(), env.begin(), env.end());
  CliRun run;
  run.code = RunToCompletion(argv, base + ".log", full_env).code;
  run.out = ReadFile(base + ".out");
  run.err = ReadFile(base + ".err");
  return run;
}

TEST(CliConventions, VersionNamesTheGitCommit) {
  const CliRun run = Isoflop(TestDir(), {"--version"});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.out, StartsWith("isoflop 0.1.0 (git "));
  EXPECT_THAT(run.out, Not(HasSubstr("(git )")));
}

// The generated script, sourced by a real bash, completes commands at each
// level and the flags of the command typed so far.
TEST(CliConventions, BashCompletesCommandsAndFlagsFromTheGeneratedScript) {
  const std::string dir = TestDir();
  const CliRun script = Isoflop(dir, {"completion", "bash"});
  ASSERT_EQ(script.code, 0) << script.err;
  std::ofstream(dir + "/isoflop.bash") << script.out;
  std::ofstream(dir + "/complete.sh")
      << "source " << dir << "/isoflop.bash || exit 9\n"
      << "complete -p isoflop || exit 8\n"
      << "c() { COMP_WORDS=(\"$@\"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1));\n"
      << "  COMPREPLY=(); _isoflop_complete; echo \"$*: ${COMPREPLY[*]}\"; }\n"
      << "c isoflop sw\n"
      << "c isoflop sweep l\n"
      << "c isoflop --address h:1 sweep list --sta\n"
      << "c isoflop trial logs --fol\n"
      << "c isoflop con\n";
  const std::string log = dir + "/bash.log";
  ASSERT_EQ(
      RunToCompletion(
          {"/bin/bash", "--norc", "--noprofile", dir + "/complete.sh"}, log)
          .code,
      0)
      << ReadFile(log);
  const std::string out = ReadFile(log);
  EXPECT_THAT(out, HasSubstr("isoflop sw: sweep\n"));
  EXPECT_THAT(out, HasSubstr("isoflop sweep l: list\n"));
  EXPECT_THAT(out, HasSubstr("sweep list --sta: --state\n"));
  EXPECT_THAT(out, HasSubstr("trial logs --fol: --follow\n"));
  EXPECT_THAT(out, HasSubstr("isoflop con: context\n"));
  const CliRun zsh = Isoflop(dir, {"completion", "zsh"});
  EXPECT_EQ(zsh.code, 0);
  EXPECT_THAT(zsh.out, HasSubstr("bashcompinit"));
  EXPECT_THAT(zsh.out, HasSubstr("_isoflop_complete"));
}

TEST(CliConventions, UnknownCommandsAndFlagsNameTheNearestOnes) {
  const std::string dir = TestDir();
  CliRun run = Isoflop(dir, {"sweep", "frobnicate"});
  EXPECT_EQ(run.code, 2);
  EXPECT_EQ(run.err,
            "isoflop: INVALID_ARGUMENT: unknown command 'frobnicate' for "
            "'isoflop sweep' (isoflop sweep --help lists them)\n");
  run = Isoflop(dir, {"sweep", "lst"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("unknown command 'lst' for 'isoflop sweep'; "
                                 "did you mean 'list'?"));
  run = Isoflop(dir, {"sweep", "list", "--stat", "running"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("unknown flag '--stat' for 'isoflop sweep "
                                 "list'; did you mean '--state'?"));
  run = Isoflop(dir, {"wroker", "list"});
  EXPECT_THAT(run.err, HasSubstr("did you mean 'worker'?"));
}

// With --format json every failure is one JSON object on stderr, stdout
// empty: a usage error (exit 2) and a failed RPC (exit 1).
TEST(CliConventions, JsonErrorsAreOneObjectOnStderr) {
  const std::string dir = TestDir();
  CliRun run = Isoflop(dir, {"--format", "json", "sweep", "lst"});
  EXPECT_EQ(run.code, 2);
  EXPECT_EQ(run.out, "");
  json e = json::parse(run.err);
  EXPECT_EQ(e["error"]["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(e["error"]["exit_code"], 2);
  EXPECT_THAT(e["error"]["message"].get<std::string>(),
              HasSubstr("did you mean 'list'?"));
  run = Isoflop(dir,
                {"sweep", "list", "--format=json", "--address", "127.0.0.1:1",
                 "--rpc-timeout-s", "5"},
                {"ISOFLOP_TOKEN=tok-0123456789"});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.out, "");
  e = json::parse(run.err);
  EXPECT_EQ(e["error"]["code"], "UNAVAILABLE");
  EXPECT_THAT(e["error"]["message"].get<std::string>(),
              HasSubstr("127.0.0.1:1"));
  run = Isoflop(dir, {"sweep", "list", "--format", "json", "--token-file",
                      dir + "/missing"});
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_EQ(json::parse(run.err)["error"]["exit_code"], 2);
}

// Each command's help shows examples of that command, not the top-level
// ones: walks the tree through the SUBCOMMANDS sections of the helps.
TEST(CliConventions, EveryCommandsHelpShowsItsOwnExamples) {
  const std::string dir = TestDir();
  std::vector<std::vector<std::string>> todo = {{}};
  int seen = 0;
  while (!todo.empty()) {
    std::vector<std::string> path = todo.back();
    todo.pop_back();
    std::vector<std::string> args = path;
    args.push_back("--help");
    const CliRun run = Isoflop(dir, args);
    const std::string name = absl::StrJoin(path, " ");
    ++seen;
    ASSERT_EQ(run.code, 0) << name << ": " << run.err;
    EXPECT_THAT(run.out, HasSubstr(absl::StrCat("isoflop ", name)))
        << "no example of `isoflop " << name << "`";
    if (!path.empty()) {
      EXPECT_THAT(run.out, Not(HasSubstr("Auth: commands that reach")))
          << "`isoflop " << name << " --help` repeats the top-level footer";
    }
    const size_t at = run.out.find("Subcommands:\n");
    if (at == std::string::npos) continue;
    std::istringstream lines(run.out.substr(at + 13));
    for (std::string line; std::getline(lines, line);) {
      if (line.empty() || line[0] != ' ') break;
      std::vector<std::string> words = absl::StrSplit(
          absl::StripLeadingAsciiWhitespace(line), ' ', absl::SkipEmpty());
      if (words.empty()) continue;
      std::vector<std::string> sub = path;
      sub.push_back(words[0]);
      todo.push_back(sub);
    }
  }
  EXPECT_GE(seen, 30);  // every command of the tree was reached
}

// The context file supplies address and token file; an environment
// variable beats it and a flag beats both.
TEST(CliConventions, ContextSuppliesSettingsUnlessEnvOrFlagsOverride) {
  const std::string dir = TestDir();
  std::ofstream(dir + "/token") << "tok-0123456789\n";
  CliRun run = Isoflop(dir, {"context", "set", "lab", "--address",
                             "127.0.0.1:1", "--token-file", dir + "/token"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("created context lab"));
  run = Isoflop(dir, {"context", "show", "--format", "json"});
  ASSERT_EQ(run.code, 0) << run.err;
  json shown = json::parse(run.out);
  EXPECT_EQ(shown["context"], "lab");
  EXPECT_EQ(shown["settings"]["address"]["value"], "127.0.0.1:1");
  EXPECT_EQ(shown["settings"]["address"]["source"], "context lab");
  EXPECT_EQ(shown["settings"]["token_file"]["value"], dir + "/token");
  run = Isoflop(dir, {"context", "show", "--format", "json"},
                {"ISOFLOP_ADDRESS=127.0.0.1:2"});
  shown = json::parse(run.out);
  EXPECT_EQ(shown["settings"]["address"]["value"], "127.0.0.1:2");
  EXPECT_EQ(shown["settings"]["address"]["source"], "env ISOFLOP_ADDRESS");
  run =
      Isoflop(dir, {"context", "show", "--format", "json", "--address", "h:3"},
              {"ISOFLOP_ADDRESS=127.0.0.1:2"});
  EXPECT_EQ(json::parse(run.out)["settings"]["address"]["source"], "flag");
  // A real command uses them: its token from the context's file, the
  // coordinator at the context's address (nothing listens there).
  run = Isoflop(dir, {"sweep", "list", "--rpc-timeout-s", "5"});
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("coordinator at 127.0.0.1:1 unreachable"));
  run = Isoflop(dir, {"context", "use", "nope"});
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("context 'nope': not in"));
  std::ofstream(dir + "/config.json")
      << R"({"contexts": {"x": {"adress": ""}}})";
  run = Isoflop(dir, {"sweep", "list"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("contexts.x.adress: unknown key"));
}

TEST(CliConventions, AdminBackupPrintsJson) {
  const std::string dir = TestDir();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir + "/src.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  const CliRun run =
      Isoflop(dir, {"--format", "json", "admin", "backup", "--db",
                    dir + "/src.db", "--out", dir + "/copy.db"});
  ASSERT_EQ(run.code, 0) << run.err;
  const json j = json::parse(run.out);
  EXPECT_EQ(j["out"], dir + "/copy.db");
  EXPECT_GT(j["pages"].get<int>(), 0);
  EXPECT_EQ(j["integrity_check"], "ok");
}

// ---- against a real coordinator (no worker process: the test leases and
// relays a log itself with the worker token).

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + 20s);
  ctx->AddMetadata("authorization", "Bearer " + token);
  return ctx;
}

v1::SweepConfig Config(const std::string& name) {
  v1::SweepConfig c = coordinator::testing::SmallConfig();
  c.set_name(name);
  return c;
}

TEST(CliConventions, ListFiltersLogsAsJsonAndTheDashboardAddressIsLearned) {
  const std::string dir = TestDir();
  const std::string log = dir + "/coordinator.log";
  Subprocess coordinator(
      {Bin("isoflop-coordinator"), "--listen", "127.0.0.1:0", "--db",
       dir + "/isoflop.db", "--http-listen", "127.0.0.1:0"},
      log);
  constexpr char kListening[] = "isoflop-coordinator: listening on ";
  ASSERT_TRUE(WaitForText(log, kListening, 30s)) << ReadFile(log);
  ASSERT_TRUE(WaitForText(log, "dashboard on ", 30s)) << ReadFile(log);
  const std::string text = ReadFile(log);
  const size_t at = text.find(kListening) + sizeof(kListening) - 1;
  const std::string address = text.substr(at, text.find('\n', at) - at);
  const std::string user =
      std::string(absl::StripAsciiWhitespace(ReadFile(dir + "/token")));
  const std::string worker =
      std::string(absl::StripAsciiWhitespace(ReadFile(dir + "/worker_token")));
  auto channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto sweeps = v1::SweepService::NewStub(channel);
  auto workers = v1::WorkerService::NewStub(channel);

  // Everything below reaches the coordinator through the context.
  ASSERT_EQ(Isoflop(dir, {"context", "set", "here", "--address", address,
                          "--token-file", dir + "/token"})
                .code,
            0);
  std::vector<std::string> ids;
  for (const char* name : {"first", "second", "third"}) {
    v1::SubmitSweepRequest submit;
    *submit.mutable_config() = Config(name);
    v1::SubmitSweepResponse submitted;
    const grpc::Status s =
        sweeps->SubmitSweep(Ctx(user).get(), submit, &submitted);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ids.push_back(submitted.sweep_id());
    std::this_thread::sleep_for(5ms);  // distinct creation times
  }
  CliRun run = Isoflop(dir, {"sweep", "cancel", ids[1]});
  ASSERT_EQ(run.code, 0) << run.err;
  auto listed = [&dir](std::vector<std::string> flags) {
    std::vector<std::string> args = {"sweep", "list", "--format", "json"};
    args.insert(args.end(), flags.begin(), flags.end());
    const CliRun r = Isoflop(dir, args);
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<std::string> got;
    const json doc = json::parse(r.out);
    for (const json& s : doc["sweeps"]) got.push_back(s["id"]);
    std::sort(got.begin(), got.end());
    return got;
  };
  EXPECT_EQ(listed({"--state", "cancelled"}), std::vector<std::string>{ids[1]});
  EXPECT_EQ(listed({"--state", "running", "--limit", "1"}),
            std::vector<std::string>{ids[2]});
  EXPECT_EQ(listed({"--limit", "2"}).size(), 2u);
  EXPECT_EQ(listed({}).size(), 3u);
  run = Isoflop(dir, {"sweep", "list", "--state", "done"});
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("--state = 'done': must be running"));

  // A trial's log as JSON lines.
  v1::RegisterWorkerRequest reg;
  reg.set_worker_id("wk-test");
  reg.mutable_resources()->set_cpu_slots(1);
  reg.mutable_resources()->set_hostname("host-test");
  v1::RegisterWorkerResponse registered;
  ASSERT_TRUE(
      workers->RegisterWorker(Ctx(worker).get(), reg, &registered).ok());
  v1::LeaseTrialRequest lease;
  lease.set_worker_id("wk-test");
  lease.set_free_cpu_slots(1);
  v1::LeaseTrialResponse leased;
  ASSERT_TRUE(workers->LeaseTrial(Ctx(worker).get(), lease, &leased).ok());
  ASSERT_TRUE(leased.has_assignment());
  v1::ReportLogsRequest logs;
  logs.set_worker_id("wk-test");
  logs.mutable_lease()->set_trial_id(leased.spec().trial_id());
  logs.mutable_lease()->set_attempt(leased.attempt());
  logs.mutable_lease()->set_lease_epoch(leased.lease_epoch());
  logs.set_data("step 1 loss 6.2\nstep 2 loss \"5.9\"\n");
  v1::ReportLogsResponse logged;
  const grpc::Status s = workers->ReportLogs(Ctx(worker).get(), logs, &logged);
  ASSERT_TRUE(s.ok()) << s.error_message();
  run = Isoflop(
      dir, {"trial", "logs", leased.spec().trial_id(), "--format", "json"});
  ASSERT_EQ(run.code, 0) << run.err;
  std::vector<std::string> lines =
      absl::StrSplit(run.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << run.out;
  EXPECT_EQ(json::parse(lines[0])["line"], "step 1 loss 6.2");
  EXPECT_EQ(json::parse(lines[1])["line"], "step 2 loss \"5.9\"");
  EXPECT_EQ(json::parse(lines[1])["trial_id"], leased.spec().trial_id());

  // No --http, ISOFLOP_HTTP or context http: the dashboard the coordinator
  // reports answers (a trial it does not know: NOT_FOUND from its HTTP
  // API, not a refused connection to a guessed port).
  run = Isoflop(
      dir, {"--format", "json", "trial", "eval", "tr-none", "--data", "tiny"});
  EXPECT_EQ(run.code, 1);
  const json e = json::parse(run.err);
  EXPECT_NE(e["error"]["code"], "UNAVAILABLE") << run.err;
  EXPECT_THAT(e["error"]["code"].get<std::string>(),
              ::testing::AnyOf("NOT_FOUND", "FAILED_PRECONDITION"))
      << run.err;

  coordinator.Signal(SIGTERM);
  EXPECT_TRUE(coordinator.Wait(20s).has_value());
}

}  // namespace
}  // namespace isoflop
