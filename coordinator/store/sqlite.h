// Thin RAII over the SQLite C API: statements with typed binds, and the
// store's single writer thread that commits queued operations in batches.
#ifndef ISOFLOP_COORDINATOR_STORE_SQLITE_H_
#define ISOFLOP_COORDINATOR_STORE_SQLITE_H_

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/store/store_faults.h"

namespace isoflop::coordinator {

// A prepared statement. Bind indices are 1-based as in SQLite.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  absl::Status status() const { return status_; }
  Statement& Bind(int i, int64_t v);
  Statement& Bind(int i, double v);
  Statement& Bind(int i, const std::string& v);  // bound as BLOB-safe text
  Statement& BindBlob(int i, const std::string& v);
  // Steps once: true while a row is available; errors end in status()
  // (ALREADY_EXISTS for a primary-key or unique conflict, UNAVAILABLE for a
  // storage fault (StorageFaultCode), else INTERNAL).
  bool Step();
  // Runs to completion and resets for reuse; returns the error, if any.
  absl::Status Run();
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  // NaN for SQL NULL (SQLite stores a bound NaN as NULL).
  double DoubleOrNaN(int col) const;
  std::string Text(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  absl::Status status_;
};

// Runs `sql` (one or more statements); errors as Statement::Step.
absl::Status Exec(sqlite3* db, const std::string& sql);

// The SQLite result code of a storage fault that a Statement or Exec turned
// into `status` (SQLITE_FULL, SQLITE_IOERR_*, SQLITE_BUSY, SQLITE_LOCKED,
// SQLITE_NOMEM, SQLITE_READONLY, SQLITE_CANTOPEN: the file or the disk, not
// the statement, is at fault, so the same write may succeed later), else 0.
int StorageFaultCode(const absl::Status& status);

// What SqliteWriter::Open checks of an existing file before serving it.
enum class DbCheck {
  kOff,    // nothing (a database too big to scan at every start)
  kQuick,  // PRAGMA quick_check: pages and b-trees, O(file size)
  kFull,   // PRAGMA integrity_check: also every index against its table
};

// "off", "quick" or "full"; INVALID_ARGUMENT naming --check-db otherwise.
absl::StatusOr<DbCheck> ParseDbCheck(const std::string& value);

struct SqliteWriterOptions {
  // PRAGMA synchronous=FULL, every commit survives a power loss; otherwise
  // NORMAL (WAL): a commit survives a crash of this process (kill -9), the
  // last ones may be lost with the machine.
  bool fsync_commits = false;
  DbCheck check = DbCheck::kQuick;
  // A batch whose try fails on a storage fault runs again after
  // first_backoff, doubling up to max_backoff, until retry_for has passed
  // since its first try; then each of its writes answers UNAVAILABLE. Within
  // `quiet` of the last fault, a batch gets one try, so that callers (some
  // under the core's lock) are not held for retry_for again and again while
  // the disk stays full (small writes may still fit meanwhile). Keep
  // retry_for well under the workers' heartbeat interval.
  absl::Duration retry_for = absl::Seconds(1);
  absl::Duration quiet = absl::Seconds(10);
  absl::Duration first_backoff = absl::Milliseconds(10);
  absl::Duration max_backoff = absl::Milliseconds(250);
  StoreFaults* faults = nullptr;  // not owned; null: not counted or logged
  const Clock* clock = nullptr;   // not owned; null: the real clock
  // Waits between tries; null: absl::SleepFor. Tests inject one that
  // advances their FakeClock (and may free space meanwhile).
  std::function<void(absl::Duration)> sleep;
  // Called on the writer thread with its connection before each try (tests
  // and --test-db-max-pages-file set PRAGMA max_page_count with it).
  std::function<void(sqlite3*)> before_try;
  // The tables by which a file without isoflop's application_id is still
  // recognised as isoflop's (made before the id was stamped); empty: none.
  std::vector<std::string> own_tables;
};

// The PRAGMA application_id of isoflop's databases ("ISOF").
inline constexpr int32_t kIsoflopApplicationId = 0x49534f46;

// An owned connection. Declare it before the Statements that use it, so they
// are finalized first: sqlite3_close on a connection with live statements
// fails and leaks it (found by LeakSanitizer).
struct CloseSqlite {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
using Connection = std::unique_ptr<sqlite3, CloseSqlite>;

// A new read-only connection to `path` (busy timeout 5 s). UNAVAILABLE if
// it cannot be opened.
absl::StatusOr<Connection> OpenReadOnly(const std::string& path);

// Owns the only write connection. Operations queued from any thread run on
// one writer thread; all operations waiting at that moment commit in one
// transaction (each inside its own SAVEPOINT, so one failing op does not undo
// the others). Write() returns only after the commit, so an acknowledged
// write is durable (WAL, synchronous=FULL). A storage fault is retried as
// SqliteWriterOptions says, so an op may run more than once: it must set
// (not add to) whatever it reports to its caller.
class SqliteWriter {
 public:
  using Op = std::function<absl::Status(sqlite3*)>;
  // Opens (creating) the database and applies `schema` migrations: the i-th
  // string moves user_version i to i+1. Holds an exclusive flock on
  // `path` + ".lock" until destroyed. FAILED_PRECONDITION, saying what to
  // do, if another writer holds it, the file has a newer schema, fails
  // options.check (corrupt), is not a SQLite file, or is another
  // application's database (an application_id not isoflop's, or tables but
  // not isoflop's); UNAVAILABLE if it cannot open. A new (empty) file and a
  // file of isoflop's schema from before application_id are accepted and
  // stamped with kIsoflopApplicationId.
  static absl::StatusOr<std::unique_ptr<SqliteWriter>> Open(
      const std::string& path, const std::vector<std::string>& schema,
      SqliteWriterOptions options = {});
  ~SqliteWriter();  // drains the queue, then closes

  // Runs `op` in the next batch and returns its status once the batch
  // committed (or was rolled back): UNAVAILABLE (the caller may retry) when
  // a storage fault outlasted the retries, naming it.
  absl::Status Write(Op op);
  // A new read-only connection.
  absl::StatusOr<Connection> OpenReader() const;

 private:
  using Batch = std::deque<std::pair<Op, std::promise<absl::Status>>>;
  SqliteWriter(sqlite3* db, std::string path, int lock_fd,
               SqliteWriterOptions options);
  void Loop();
  // One try of the batch in one transaction: each op's status into
  // `results`; returns the transaction's status (a storage fault anywhere
  // fails the whole try).
  absl::Status TryBatch(Batch& batch, std::vector<absl::Status>& results);
  absl::Time Now() const;

  sqlite3* db_;
  const SqliteWriterOptions options_;
  // Writer thread only: when the last storage fault was.
  absl::Time last_fault_ = absl::InfinitePast();
  std::string path_;
  int lock_fd_;  // flock on path_ + ".lock" while open
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Op, std::promise<absl::Status>>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_STORE_SQLITE_H_
