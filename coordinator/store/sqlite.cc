#include "coordinator/store/sqlite.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace isoflop::coordinator {
namespace {

// The payload that carries a storage fault's SQLite code (StorageFaultCode).
constexpr char kSqliteCodePayload[] = "isoflop.dev/sqlite-code";

bool IsStorageFault(int code) {
  switch (code & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
      return true;
    default:
      return false;
  }
}

// The status of the last failed call on `db`: `message` with the code's
// canonical meaning (see Statement::Step).
absl::Status SqliteError(sqlite3* db, const std::string& message) {
  const int extended = sqlite3_extended_errcode(db);
  if (extended == SQLITE_CONSTRAINT_PRIMARYKEY ||
      extended == SQLITE_CONSTRAINT_UNIQUE) {
    return absl::AlreadyExistsError(message);
  }
  if (IsStorageFault(extended)) {
    absl::Status s = absl::UnavailableError(message);
    s.SetPayload(kSqliteCodePayload, absl::Cord(absl::StrCat(extended)));
    return s;
  }
  return absl::InternalError(message);
}

}  // namespace

int StorageFaultCode(const absl::Status& status) {
  if (!absl::IsUnavailable(status)) return 0;
  const auto payload = status.GetPayload(kSqliteCodePayload);
  int code = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &code))
    return 0;
  return code;
}

absl::StatusOr<DbCheck> ParseDbCheck(const std::string& value) {
  if (value == "off") return DbCheck::kOff;
  if (value == "quick") return DbCheck::kQuick;
  if (value == "full") return DbCheck::kFull;
  return absl::InvalidArgumentError(
      absl::StrCat("--check-db = \"", value, "\": must be off, quick or full"));
}

Statement::Statement(sqlite3* db, const std::string& sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
    status_ = SqliteError(
        db, absl::StrCat("sqlite prepare: ", sqlite3_errmsg(db), ": ", sql));
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
  status_ =
      SqliteError(db_, absl::StrCat("sqlite step: ", sqlite3_errmsg(db_)));
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
    absl::Status s =
        SqliteError(db, absl::StrCat("sqlite: ", err ? err : "?", ": ", sql));
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

// What to do with a database that fails its check, for the refusal.
std::string RecoveryHint(const std::string& path) {
  return absl::StrCat(
      "Refusing to serve it. Restore the newest backup (made by `isoflop "
      "admin backup --db ",
      path, " --out FILE`): stop every coordinator of it, copy FILE over ",
      path, " and delete ", path, "-wal and ", path,
      "-shm; or salvage what is readable: `sqlite3 ", path,
      " .recover | sqlite3 RECOVERED.db`, then start with --db RECOVERED.db");
}

// The first rows of a check pragma ("ok" alone when the file is sound).
absl::StatusOr<std::vector<std::string>> CheckRows(sqlite3* db,
                                                   const std::string& pragma) {
  std::vector<std::string> rows;
  Statement s(db, pragma);
  while (s.Step()) {
    if (rows.size() < 5) rows.push_back(s.Text(0));
  }
  RETURN_IF_ERROR(s.status());
  return rows;
}

// Runs options.check over the file: FAILED_PRECONDITION saying what to do
// when it is corrupt.
absl::Status CheckIntegrity(sqlite3* db, const std::string& path,
                            DbCheck check) {
  if (check == DbCheck::kOff) return absl::OkStatus();
  const char* pragma = check == DbCheck::kFull ? "PRAGMA integrity_check(5)"
                                               : "PRAGMA quick_check(5)";
  absl::StatusOr<std::vector<std::string>> rows = CheckRows(db, pragma);
  if (rows.ok() && rows->size() == 1 && (*rows)[0] == "ok") {
    return absl::OkStatus();
  }
  if (!rows.ok() && StorageFaultCode(rows.status()) != 0) return rows.status();
  const std::string found = rows.ok() ? absl::StrJoin(*rows, "; ")
                                      : std::string(rows.status().message());
  return absl::FailedPreconditionError(
      absl::StrCat(path, ": the database is corrupt (",
                   check == DbCheck::kFull ? "integrity_check" : "quick_check",
                   ": ", found, "). ", RecoveryHint(path)));
}

// Refuses a file that is not isoflop's: not SQLite at all, another
// application's id, or tables without isoflop's `own_tables`. An empty file
// (new) or one with every own table but no id (isoflop before
// application_id) is accepted; Open stamps it.
absl::Status CheckIdentity(sqlite3* db, const std::string& path,
                           const std::vector<std::string>& own_tables) {
  int64_t app_id = 0;
  int64_t version = 0;
  std::vector<std::string> tables;
  absl::Status read;
  {
    Statement id(db, "PRAGMA application_id");
    if (id.Step()) app_id = id.Int(0);
    read = id.status();
  }
  if (read.ok()) {
    Statement v(db, "PRAGMA user_version");
    if (v.Step()) version = v.Int(0);
    read = v.status();
  }
  if (read.ok()) {
    Statement t(db,
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name "
                "NOT LIKE 'sqlite_%' ORDER BY name");
    while (t.Step()) tables.push_back(t.Text(0));
    read = t.status();
  }
  if (!read.ok()) {
    if (StorageFaultCode(read) != 0) return read;
    const int code = sqlite3_errcode(db);
    if (code == SQLITE_NOTADB) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": not a SQLite database (", read.message(),
          "); refusing to overwrite it: pass --db a new path or the "
          "coordinator's own database"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": the database is corrupt (", read.message(), "). ",
                     RecoveryHint(path)));
  }
  if (app_id == kIsoflopApplicationId) return absl::OkStatus();
  const std::string what =
      tables.empty() ? "no tables"
                     : absl::StrCat("tables ", absl::StrJoin(tables, ", "));
  if (app_id != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: another application's SQLite database (application_id "
        "0x%08x, isoflop's is 0x%08x; %s); refusing to add isoflop's tables "
        "to it: pass --db a new path or the coordinator's own database",
        path, static_cast<uint32_t>(app_id),
        static_cast<uint32_t>(kIsoflopApplicationId), what));
  }
  if (tables.empty() && version == 0) return absl::OkStatus();  // new
  const bool ours = !own_tables.empty() && version > 0 &&
                    std::all_of(own_tables.begin(), own_tables.end(),
                                [&](const std::string& name) {
                                  return std::find(tables.begin(), tables.end(),
                                                   name) != tables.end();
                                });
  if (ours) return absl::OkStatus();  // isoflop's, from before the id
  return absl::FailedPreconditionError(absl::StrCat(
      path, ": not an isoflop database (", what, ", user_version ", version,
      ", no isoflop application_id); refusing to add isoflop's tables to "
      "another application's file: pass --db a new path or the "
      "coordinator's own database"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteWriter>> SqliteWriter::Open(
    const std::string& path, const std::vector<std::string>& schema,
    SqliteWriterOptions options) {
  ASSIGN_OR_RETURN(const int lock_fd, LockDatabase(path));
  sqlite3* db = nullptr;
  absl::Status s;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    s = absl::UnavailableError(absl::StrCat(path, ": ", sqlite3_errmsg(db)));
  }
  // Nothing is written before the file is known to be isoflop's and sound.
  if (s.ok()) s = CheckIdentity(db, path, options.own_tables);
  if (s.ok()) s = CheckIntegrity(db, path, options.check);
  if (s.ok()) s = Configure(db, options.fsync_commits);
  if (s.ok()) s = Migrate(db, path, schema);
  if (s.ok()) {
    s = Exec(db,
             absl::StrCat("PRAGMA application_id = ", kIsoflopApplicationId));
  }
  if (!s.ok()) {
    sqlite3_close(db);
    close(lock_fd);
    return s;
  }
  return std::unique_ptr<SqliteWriter>(
      new SqliteWriter(db, path, lock_fd, std::move(options)));
}

SqliteWriter::SqliteWriter(sqlite3* db, std::string path, int lock_fd,
                           SqliteWriterOptions options)
    : db_(db),
      options_(std::move(options)),
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

absl::StatusOr<Connection> OpenReadOnly(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) !=
      SQLITE_OK) {
    sqlite3_close(db);
    return absl::UnavailableError(
        absl::StrCat(path, ": cannot open for reading"));
  }
  sqlite3_busy_timeout(db, 5000);
  return Connection(db);
}

absl::StatusOr<Connection> SqliteWriter::OpenReader() const {
  return OpenReadOnly(path_);
}

absl::Time SqliteWriter::Now() const {
  return options_.clock != nullptr ? options_.clock->Now() : absl::Now();
}

absl::Status SqliteWriter::TryBatch(Batch& batch,
                                    std::vector<absl::Status>& results) {
  results.clear();
  absl::Status txn = Exec(db_, "BEGIN IMMEDIATE");
  for (auto& [op, promise] : batch) {
    absl::Status s = txn.ok() ? Exec(db_, "SAVEPOINT op") : txn;
    if (s.ok()) {
      s = op(db_);
      // A storage fault may have rolled the whole transaction back: the
      // try is over.
      if (StorageFaultCode(s) == 0) {
        s.Update(
            Exec(db_, s.ok() ? "RELEASE op" : "ROLLBACK TO op; RELEASE op"));
      }
      if (StorageFaultCode(s) != 0) txn = s;
    }
    results.push_back(s);
  }
  if (txn.ok()) txn = Exec(db_, "COMMIT");
  if (!txn.ok() && sqlite3_get_autocommit(db_) == 0) {
    Exec(db_, "ROLLBACK").IgnoreError();
  }
  return txn;
}

void SqliteWriter::Loop() {
  while (true) {
    Batch batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      batch.swap(queue_);
    }
    std::vector<absl::Status> results;
    const absl::Time first = Now();
    absl::Duration backoff = options_.first_backoff;
    absl::Status txn;
    int fault = 0;
    // The disk was full a moment ago: one try.
    const bool one_try = first - last_fault_ < options_.quiet;
    while (true) {
      if (options_.before_try) options_.before_try(db_);
      txn = TryBatch(batch, results);
      fault = StorageFaultCode(txn);
      if (fault == 0) break;
      if (options_.faults != nullptr) {
        options_.faults->RecordFault(fault, txn, Now());
      }
      last_fault_ = Now();
      if (one_try || last_fault_ + backoff - first > options_.retry_for) break;
      if (options_.sleep) {
        options_.sleep(backoff);
      } else {
        absl::SleepFor(backoff);
      }
      backoff = std::min(2 * backoff, options_.max_backoff);
    }
    if (txn.ok() && options_.faults != nullptr) {
      options_.faults->RecordSuccess(Now());
    }
    if (fault != 0) {
      absl::Status refused = absl::UnavailableError(
          absl::StrCat("store: ", txn.message(), " (", path_, ", tried for ",
                       absl::FormatDuration(
                           absl::Trunc(Now() - first, absl::Milliseconds(1))),
                       "): nothing of this write was stored; try again later"));
      refused.SetPayload(kSqliteCodePayload, absl::Cord(absl::StrCat(fault)));
      txn = refused;
      if (options_.faults != nullptr) {
        options_.faults->RecordRefused(static_cast<int64_t>(batch.size()));
      }
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].second.set_value(txn.ok() ? results[i] : txn);
    }
  }
}

}  // namespace isoflop::coordinator
