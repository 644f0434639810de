// What the integration tests share to run a small isoflop cluster of real
// processes in a scratch directory: the built binaries (ISOFLOP_BIN_DIR of
// the test target), the tiny dataset, coordinator and worker processes, the
// CLI's environment, a clean stop, and SQLite reads of the coordinator's
// database file.
#ifndef ISOFLOP_TESTS_INTEGRATION_CLUSTER_H_
#define ISOFLOP_TESTS_INTEGRATION_CLUSTER_H_

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"

struct sqlite3;

namespace isoflop::testing {

// Rows of a query, each column as text ("" for NULL).
using Rows = std::vector<std::vector<std::string>>;

// A fresh directory for the running test: TempDir()/PREFIX-PID-TESTNAME,
// emptied if it exists, with each of `subdirs` created inside it.
std::filesystem::path FreshTestDir(const std::string& prefix,
                                   const std::vector<std::string>& subdirs);

// Dumps Genesis 1:1 to Exodus 40:38 of the KJV (the `bible` command of
// Debian's bible-kjv) into dir/text.txt and prepares it with `isoflop data
// prepare` as the dataset "tiny" (vocabulary 256) under dir/data; the
// commands' output goes to dir/dump.log and dir/prepare.log. A fatal failure,
// with the failed command's log, if either fails: call under
// ASSERT_NO_FATAL_FAILURE.
void PrepareTinyDataset(const std::filesystem::path& dir);

// Starts bin/isoflop-coordinator with `flags` (--listen, --db, ...), its
// output appended to `log`. Does not wait: see LogShows.
std::unique_ptr<Subprocess> SpawnCoordinator(std::vector<std::string> flags,
                                             const std::string& log);

// Starts bin/isoflop-worker of the cluster in `dir` on the coordinator at
// `address`: --token-file dir/worker_token, --data-dir dir/data and --trainer
// bin/isoflop-trainer, then `flags`; its output appended to `log`.
std::unique_ptr<Subprocess> SpawnWorker(const std::filesystem::path& dir,
                                        const std::string& address,
                                        std::vector<std::string> flags,
                                        const std::string& log);

// Success once the file `log` contains `text` (polled as WaitForText), a
// failure carrying the whole log if `timeout` passes first.
::testing::AssertionResult LogShows(const std::string& log,
                                    const std::string& text,
                                    std::chrono::milliseconds timeout);

// The environment for the CLI (bin/isoflop) of the cluster in `dir`:
// ISOFLOP_ADDRESS=`address` and ISOFLOP_TOKEN_FILE=dir/token (the token the
// coordinator writes beside its --db).
std::vector<std::string> CliEnv(const std::filesystem::path& dir,
                                const std::string& address);

// The admin token the coordinator wrote to dir/token, white space stripped
// ("" if there is none).
std::string ReadToken(const std::filesystem::path& dir);

// SIGTERMs `p` and waits up to `timeout` for it to exit: a fatal failure if
// it does not, a non-fatal one (with its log) if its exit code is not 0. Call
// under ASSERT_NO_FATAL_FAILURE.
void StopCleanly(Subprocess& p, std::chrono::seconds timeout);

// Calls `done` until it returns true, sleeping `poll` between calls, at most
// timeout / poll + 1 times; returns whether it did. (The deadline is a count
// of polls: a slow `done` stretches it, never shortens it.)
bool WaitUntil(const std::function<bool()>& done,
               std::chrono::milliseconds timeout,
               std::chrono::milliseconds poll = std::chrono::milliseconds(50));

// How Query opens the database.
struct QueryOptions {
  // Read-write: a read-only connection cannot replay the WAL of a killed
  // coordinator. Read-only otherwise.
  bool read_write = false;
  // How long a statement waits for a lock held by another connection.
  std::chrono::milliseconds busy_timeout{5000};
};

// Every row of `sql` on a connection of its own to `db_path` (opened and
// closed here, so the file may be replaced by a new process between two
// calls). Empty if the file cannot be opened or `sql` not prepared; such
// failures are not reported (callers poll through them).
Rows Query(const std::string& db_path, const std::string& sql,
           const QueryOptions& options = {});

// A read-only connection to a database file, kept open across queries;
// statements wait up to 5 s for a lock. Failing to open the file or to
// prepare a statement is a non-fatal test failure.
class Db {
 public:
  explicit Db(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Every row of `sql` (none if it cannot be prepared).
  Rows Query(const std::string& sql);

 private:
  sqlite3* db_ = nullptr;
};

// A live isoflop-trainer process whose argv names a trial (LiveTrainersOf).
struct TrainerProcess {
  pid_t pid = 0;
  std::string epoch;  // its --lease-epoch, "" without one
};

// The live (not zombie) isoflop-trainer processes on this host whose argv
// names `trial_id`, read from /proc.
std::vector<TrainerProcess> LiveTrainersOf(const std::string& trial_id);

// Whether `pid` is a process that has not exited (a zombie has exited).
bool Alive(pid_t pid);

}  // namespace isoflop::testing

#endif  // ISOFLOP_TESTS_INTEGRATION_CLUSTER_H_
