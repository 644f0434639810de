// isoflop admin backup on a real SQLite file in WAL mode, while another
// connection keeps committing.
#include "cli/admin_backup.h"

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

int64_t Count(sqlite3* db) {
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM metrics", -1, &st, nullptr);
  int64_t n = -1;
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

TEST(BackupDatabase, CopiesOneSnapshotWhileAWriterCommits) {
  const fs::path dir = fs::path(::testing::TempDir()) /
                       absl::StrCat("isoflop-backup-", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string db_path = (dir / "isoflop.db").string();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  ASSERT_EQ(sqlite3_exec(db,
                         "PRAGMA journal_mode=WAL; CREATE TABLE metrics(step "
                         "INTEGER PRIMARY KEY, value REAL)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  std::atomic<bool> stop{false};
  std::atomic<int> batches{0};
  std::thread writer([&] {
    for (int b = 0; !stop; ++b) {
      std::string sql = "BEGIN;";
      for (int i = 0; i < 500; ++i) {
        absl::StrAppend(&sql, "INSERT INTO metrics VALUES(", b * 500 + i,
                        ", 1.5);");
      }
      sql += "COMMIT;";
      if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) ==
          SQLITE_OK) {
        ++batches;
      }
    }
  });
  while (batches < 20) std::this_thread::yield();
  const std::string out = (dir / "copy.db").string();
  absl::StatusOr<BackupResult> r = BackupDatabase(db_path, out);
  stop = true;
  writer.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->pages, 0);
  EXPECT_EQ(r->bytes, static_cast<int64_t>(fs::file_size(out)));
  EXPECT_FALSE(fs::exists(out + ".partial"));

  sqlite3* copy = nullptr;
  ASSERT_EQ(sqlite3_open_v2(out.c_str(), &copy, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  const int64_t copied = Count(copy);
  EXPECT_GE(copied, 20 * 500);
  EXPECT_EQ(copied % 500, 0);  // whole transactions only: one snapshot
  EXPECT_LE(copied, Count(db));
  sqlite3_close(copy);
  sqlite3_close(db);

  // Refusals name the flag; an existing file is never overwritten.
  const auto size = fs::file_size(out);
  r = BackupDatabase(db_path, out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("--out"));
  EXPECT_EQ(fs::file_size(out), size);
  r = BackupDatabase((dir / "missing.db").string(),
                     (dir / "other.db").string());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("--db"));
}

}  // namespace
}  // namespace isoflop::cli
