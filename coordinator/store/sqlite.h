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
  // (ALREADY_EXISTS for a primary-key or unique conflict, else INTERNAL).
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

absl::Status Exec(sqlite3* db, const std::string& sql);

// An owned connection. Declare it before the Statements that use it, so they
// are finalized first: sqlite3_close on a connection with live statements
// fails and leaks it (found by LeakSanitizer).
struct CloseSqlite {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
using Connection = std::unique_ptr<sqlite3, CloseSqlite>;

// Owns the only write connection. Operations queued from any thread run on
// one writer thread; all operations waiting at that moment commit in one
// transaction (each inside its own SAVEPOINT, so one failing op does not undo
// the others). Write() returns only after the commit, so an acknowledged
// write is durable (WAL, synchronous=FULL).
class SqliteWriter {
 public:
  using Op = std::function<absl::Status(sqlite3*)>;
  // Opens (creating) the database and applies `schema` migrations: the i-th
  // string moves user_version i to i+1. Holds an exclusive flock on
  // `path` + ".lock" until destroyed: FAILED_PRECONDITION if another writer
  // holds it or the file has a newer schema; UNAVAILABLE if it cannot open.
  // `fsync_commits`: PRAGMA synchronous=FULL, every commit survives a power
  // loss; otherwise NORMAL (WAL): a commit survives a crash of this process
  // (kill -9), the last ones may be lost with the machine.
  static absl::StatusOr<std::unique_ptr<SqliteWriter>> Open(
      const std::string& path, const std::vector<std::string>& schema,
      bool fsync_commits = false);
  ~SqliteWriter();  // drains the queue, then closes

  absl::Status Write(Op op);
  // A new read-only connection.
  absl::StatusOr<Connection> OpenReader() const;

 private:
  SqliteWriter(sqlite3* db, std::string path, int lock_fd);
  void Loop();

  sqlite3* db_;
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
