#include "tests/integration/cluster.h"

#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace isoflop::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = ISOFLOP_BIN_DIR;

// Steps `st` to its end, each row's columns as text.
Rows StepAll(sqlite3_stmt* st) {
  Rows rows;
  while (st != nullptr && sqlite3_step(st) == SQLITE_ROW) {
    std::vector<std::string> row;
    for (int i = 0; i < sqlite3_column_count(st); ++i) {
      const unsigned char* t = sqlite3_column_text(st, i);
      row.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

fs::path FreshTestDir(const std::string& prefix,
                      const std::vector<std::string>& subdirs) {
  const fs::path dir =
      fs::path(::testing::TempDir()) /
      absl::StrCat(
          prefix, "-", getpid(), "-",
          ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const std::string& sub : subdirs) fs::create_directories(dir / sub);
  return dir;
}

void PrepareTinyDataset(const fs::path& dir) {
  // Genesis and Exodus, a file per chapter: `data prepare` splits train and
  // validation by whole documents (docs/corpora.md).
  const std::string text = (dir / "text").string();
  const std::string dump_log = (dir / "dump.log").string();
  const std::string prepare_log = (dir / "prepare.log").string();
  ExitStatus dump = RunToCompletion(
      {"/bin/sh", "-c",
       absl::StrCat("mkdir -p ", text, " && for c in $(seq 1 50); do bible ",
                    "-l0 gen$c:1-$c:999 > ", text,
                    "/gen$c.txt || exit 1; done && for c in $(seq 1 40); do ",
                    "bible -l0 exo$c:1-$c:999 > ", text,
                    "/exo$c.txt || exit 1; done")},
      dump_log);
  ASSERT_EQ(dump.code, 0) << ReadFile(dump_log);
  ExitStatus prep = RunToCompletion(
      {kBin + "/isoflop", "data", "prepare", "--name", "tiny", "--data-dir",
       (dir / "data").string(), "--vocab-size", "256", "--input", text},
      prepare_log);
  ASSERT_EQ(prep.code, 0) << ReadFile(prepare_log);
}

std::unique_ptr<Subprocess> SpawnCoordinator(std::vector<std::string> flags,
                                             const std::string& log) {
  flags.insert(flags.begin(), kBin + "/isoflop-coordinator");
  return std::make_unique<Subprocess>(std::move(flags), log);
}

std::unique_ptr<Subprocess> SpawnWorker(const fs::path& dir,
                                        const std::string& address,
                                        std::vector<std::string> flags,
                                        const std::string& log) {
  flags.insert(flags.begin(), {kBin + "/isoflop-worker", "--token-file",
                               (dir / "worker_token").string(), "--coordinator",
                               address, "--data-dir", (dir / "data").string(),
                               "--trainer", kBin + "/isoflop-trainer"});
  return std::make_unique<Subprocess>(std::move(flags), log);
}

::testing::AssertionResult LogShows(const std::string& log,
                                    const std::string& text,
                                    std::chrono::milliseconds timeout) {
  if (WaitForText(log, text, timeout)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "no \"" << text << "\" in " << log << ":\n"
         << ReadFile(log);
}

std::vector<std::string> CliEnv(const fs::path& dir,
                                const std::string& address) {
  return {absl::StrCat("ISOFLOP_ADDRESS=", address),
          absl::StrCat("ISOFLOP_TOKEN_FILE=", (dir / "token").string())};
}

std::string ReadToken(const fs::path& dir) {
  return std::string(
      absl::StripAsciiWhitespace(ReadFile((dir / "token").string())));
}

void StopCleanly(Subprocess& p, std::chrono::seconds timeout) {
  p.Signal(SIGTERM);
  const std::optional<ExitStatus> s = p.Wait(timeout);
  ASSERT_TRUE(s.has_value()) << "no exit on SIGTERM: " << p.log_path();
  EXPECT_EQ(s->code, 0) << ReadFile(p.log_path());
}

bool WaitUntil(const std::function<bool()>& done,
               std::chrono::milliseconds timeout,
               std::chrono::milliseconds poll) {
  const int64_t polls = timeout / poll;
  for (int64_t i = 0;; ++i) {
    if (done()) return true;
    if (i >= polls) return false;
    std::this_thread::sleep_for(poll);
  }
}

Rows Query(const std::string& db_path, const std::string& sql,
           const QueryOptions& options) {
  sqlite3* db = nullptr;
  const int flags =
      options.read_write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
  if (sqlite3_open_v2(db_path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return {};
  }
  sqlite3_busy_timeout(db, static_cast<int>(options.busy_timeout.count()));
  sqlite3_stmt* st = nullptr;
  Rows rows;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
    rows = StepAll(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

Db::Db(const std::string& path) {
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_busy_timeout(db_, 5000);
}

Db::~Db() { sqlite3_close(db_); }

Rows Db::Query(const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr), SQLITE_OK)
      << sql << ": " << sqlite3_errmsg(db_);
  Rows rows = StepAll(st);
  sqlite3_finalize(st);
  return rows;
}

std::vector<TrainerProcess> LiveTrainersOf(const std::string& trial_id) {
  std::vector<TrainerProcess> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    std::ifstream cmd(entry.path() / "cmdline", std::ios::binary);
    std::stringstream raw;
    raw << cmd.rdbuf();
    // A zombie's cmdline is empty: an exited trainer is not counted.
    const std::vector<std::string> argv =
        absl::StrSplit(raw.str(), '\0', absl::SkipEmpty());
    if (argv.empty() || !absl::EndsWith(argv[0], "isoflop-trainer")) continue;
    bool names_trial = false;
    TrainerProcess p{pid, ""};
    for (size_t i = 0; i < argv.size(); ++i) {
      names_trial |= absl::StrContains(argv[i], trial_id);
      if (argv[i] == "--lease-epoch" && i + 1 < argv.size()) {
        p.epoch = argv[i + 1];
      }
    }
    if (names_trial && Alive(pid)) out.push_back(p);
  }
  return out;
}

bool Alive(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  const char state = paren != std::string::npos && paren + 2 < line.size()
                         ? line[paren + 2]
                         : '?';
  return state != 'Z' && state != 'X';
}

}  // namespace isoflop::testing
