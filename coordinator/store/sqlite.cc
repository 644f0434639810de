#include "coordinator/store/sqlite.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace isoflop::coordinator {

Statement::Statement(sqlite3* db, const std::string& sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
    status_ = absl::InternalError(
        absl::StrCat("sqlite prepare: ", sqlite3_errmsg(db), ": ", sql));
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::Bind(int i, int64_t v) {
  if (stmt_) sqlite3_bind_int64(stmt_, i, v);
  return *this;
}
Statement& Statement::Bind(int i, double v) {
  if (stmt_) sqlite3_bind_double(stmt_, i, v);
  return *this;
}
Statement& Statement::Bind(int i, const std::string& v) {
  if (stmt_)
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::BindBlob(int i, const std::string& v) {
  if (stmt_)
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
  return *this;
}

bool Statement::Step() {
  if (!status_.ok()) return false;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const int extended = sqlite3_extended_errcode(db_);
  const std::string message =
      absl::StrCat("sqlite step: ", sqlite3_errmsg(db_));
  status_ = extended == SQLITE_CONSTRAINT_PRIMARYKEY ||
                    extended == SQLITE_CONSTRAINT_UNIQUE
                ? absl::AlreadyExistsError(message)
                : absl::InternalError(message);
  return false;
}

absl::Status Statement::Run() {
  while (Step()) {
  }
  if (stmt_) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  return status_;
}

double Statement::DoubleOrNaN(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL ? std::nan("")
                                                        : Double(col);
}

std::string Statement::Text(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  return p ? std::string(static_cast<const char*>(p),
                         sqlite3_column_bytes(stmt_, col))
           : "";
}

absl::Status Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = absl::InternalError(
        absl::StrCat("sqlite: ", err ? err : "?", ": ", sql));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

namespace {

// Takes an exclusive, non-blocking flock on `path` + ".lock": one
// coordinator per database. Returns the fd to keep open while writing.
absl::StatusOr<int> LockDatabase(const std::string& path) {
  const std::string lock_path = path + ".lock";
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat(lock_path, ": ", std::strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": in use by another isoflop-coordinator (",
                     lock_path, " is locked)"));
  }
  return fd;
}

// Applies the pending migrations: schema[i] moves user_version i to i + 1.
absl::Status Migrate(sqlite3* db, const std::string& path,
                     const std::vector<std::string>& schema) {
  int64_t version = 0;
  {
    Statement s(db, "PRAGMA user_version");
    if (s.Step()) version = s.Int(0);
    RETURN_IF_ERROR(s.status());
  }
  if (version > static_cast<int64_t>(schema.size())) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": schema version ", version,
                     " is newer than this binary's ", schema.size()));
  }
  for (; version < static_cast<int64_t>(schema.size()); ++version) {
    absl::Status s = Exec(
        db, absl::StrCat("BEGIN; ", schema[version],
                         "; PRAGMA user_version = ", version + 1, "; COMMIT;"));
    if (!s.ok()) {
      Exec(db, "ROLLBACK").IgnoreError();
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status Configure(sqlite3* db, bool fsync_commits) {
  sqlite3_busy_timeout(db, 5000);
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL",
        fsync_commits ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON"}) {
    RETURN_IF_ERROR(Exec(db, pragma));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteWriter>> SqliteWriter::Open(
    const std::string& path, const std::vector<std::string>& schema,
    bool fsync_commits) {
  ASSIGN_OR_RETURN(const int lock_fd, LockDatabase(path));
  sqlite3* db = nullptr;
  absl::Status s;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    s = absl::UnavailableError(absl::StrCat(path, ": ", sqlite3_errmsg(db)));
  }
  if (s.ok()) s = Configure(db, fsync_commits);
  if (s.ok()) s = Migrate(db, path, schema);
  if (!s.ok()) {
    sqlite3_close(db);
    close(lock_fd);
    return s;
  }
  return std::unique_ptr<SqliteWriter>(new SqliteWriter(db, path, lock_fd));
}

SqliteWriter::SqliteWriter(sqlite3* db, std::string path, int lock_fd)
    : db_(db),
      path_(std::move(path)),
      lock_fd_(lock_fd),
      thread_([this] { Loop(); }) {}

SqliteWriter::~SqliteWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  sqlite3_close(db_);
  close(lock_fd_);  // releases the flock
}

absl::Status SqliteWriter::Write(Op op) {
  std::future<absl::Status> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("store is shutting down");
    queue_.emplace_back(std::move(op), std::promise<absl::Status>());
    done = queue_.back().second.get_future();
  }
  cv_.notify_one();
  return done.get();
}

absl::StatusOr<Connection> SqliteWriter::OpenReader() const {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) !=
      SQLITE_OK) {
    sqlite3_close(db);
    return absl::UnavailableError(
        absl::StrCat(path_, ": cannot open for reading"));
  }
  sqlite3_busy_timeout(db, 5000);
  return Connection(db);
}

void SqliteWriter::Loop() {
  while (true) {
    std::deque<std::pair<Op, std::promise<absl::Status>>> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      batch.swap(queue_);
    }
    std::vector<absl::Status> results;
    absl::Status txn = Exec(db_, "BEGIN IMMEDIATE");
    for (auto& [op, promise] : batch) {
      absl::Status s = txn.ok() ? Exec(db_, "SAVEPOINT op") : txn;
      if (s.ok()) {
        s = op(db_);
        s.Update(
            Exec(db_, s.ok() ? "RELEASE op" : "ROLLBACK TO op; RELEASE op"));
      }
      results.push_back(s);
    }
    if (txn.ok()) txn = Exec(db_, "COMMIT");
    if (!txn.ok()) Exec(db_, "ROLLBACK").IgnoreError();
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].second.set_value(txn.ok() ? results[i] : txn);
    }
  }
}

}  // namespace isoflop::coordinator
