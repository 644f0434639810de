#include "cli/admin_backup.h"

#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace isoflop::cli {
namespace {

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
using Db = std::unique_ptr<sqlite3, CloseDb>;

absl::StatusOr<Db> Open(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) {
    return absl::InternalError(absl::StrCat(
        path, ": cannot open: ", raw ? sqlite3_errmsg(raw) : "out of memory"));
  }
  sqlite3_busy_timeout(raw, 5000);  // the coordinator's writer commits often
  return db;
}

absl::Status IntegrityOk(sqlite3* db, const std::string& path) {
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr);
  std::string result = "no answer";
  if (st != nullptr && sqlite3_step(st) == SQLITE_ROW) {
    result = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  if (result == "ok") return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat(path, ": PRAGMA integrity_check = ", result));
}

}  // namespace

absl::StatusOr<BackupResult> BackupDatabase(const std::string& db_path,
                                            const std::string& out_path) {
  namespace fs = std::filesystem;
  const auto started = std::chrono::steady_clock::now();
  std::error_code ec;
  if (out_path.empty() || fs::exists(out_path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--out = \"", out_path, "\": must be a new file (never overwritten)"));
  }
  if (db_path.empty()) {
    return absl::InvalidArgumentError(
        "--db = \"\": must name the coordinator's database file (its --db)");
  }
  if (!fs::is_regular_file(db_path, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "--db = \"", db_path, "\": no such file (the coordinator's --db)"));
  }
  auto src = Open(db_path, SQLITE_OPEN_READONLY);
  if (!src.ok()) return src.status();
  const std::string partial = out_path + ".partial";
  fs::remove(partial, ec);
  auto dst = Open(partial, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!dst.ok()) return dst.status();

  sqlite3_backup* backup =
      sqlite3_backup_init(dst->get(), "main", src->get(), "main");
  if (backup == nullptr) {
    return absl::InternalError(
        absl::StrCat("backup: ", sqlite3_errmsg(dst->get())));
  }
  // Everything in one step: one read transaction, so the copy is one
  // snapshot even while the coordinator writes (WAL readers never block it).
  int rc = SQLITE_OK;
  for (int tries = 0; tries < 100; ++tries) {
    rc = sqlite3_backup_step(backup, -1);
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
    sqlite3_sleep(50);
  }
  BackupResult result;
  result.pages = sqlite3_backup_pagecount(backup);
  sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    fs::remove(partial, ec);
    return absl::UnavailableError(
        absl::StrCat("backup of ", db_path, ": ", sqlite3_errstr(rc)));
  }
  if (absl::Status s = IntegrityOk(dst->get(), partial); !s.ok()) {
    fs::remove(partial, ec);
    return s;
  }
  dst->reset();  // closed before the rename
  fs::rename(partial, out_path, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("rename ", partial, " -> ", out_path, ": ", ec.message()));
  }
  result.bytes = static_cast<int64_t>(fs::file_size(out_path, ec));
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  return result;
}

}  // namespace isoflop::cli
