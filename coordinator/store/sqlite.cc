#include "coordinator/store/sqlite.h"

#include <cmath>

#include "absl/strings/str_cat.h"

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

absl::StatusOr<std::unique_ptr<SqliteWriter>> SqliteWriter::Open(
    const std::string& path, const std::vector<std::string>& schema) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    absl::Status s =
        absl::UnavailableError(absl::StrCat(path, ": ", sqlite3_errmsg(db)));
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON"}) {
    if (absl::Status s = Exec(db, pragma); !s.ok()) {
      sqlite3_close(db);
      return s;
    }
  }
  Statement version(db, "PRAGMA user_version");
  version.Step();
  int64_t v = version.Int(0);
  if (v > static_cast<int64_t>(schema.size())) {
    sqlite3_close(db);
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": schema version ", v,
                     " is newer than this binary's ", schema.size()));
  }
  for (; v < static_cast<int64_t>(schema.size()); ++v) {
    absl::Status s =
        Exec(db, absl::StrCat("BEGIN; ", schema[v],
                              "; PRAGMA user_version = ", v + 1, "; COMMIT;"));
    if (!s.ok()) {
      sqlite3_close(db);
      return s;
    }
  }
  return std::unique_ptr<SqliteWriter>(new SqliteWriter(db, path));
}

SqliteWriter::SqliteWriter(sqlite3* db, std::string path)
    : db_(db), path_(std::move(path)), thread_([this] { Loop(); }) {}

SqliteWriter::~SqliteWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  sqlite3_close(db_);
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

absl::StatusOr<sqlite3*> SqliteWriter::OpenReader() const {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) !=
      SQLITE_OK) {
    sqlite3_close(db);
    return absl::UnavailableError(
        absl::StrCat(path_, ": cannot open for reading"));
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
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
