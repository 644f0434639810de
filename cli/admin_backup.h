// `isoflop admin backup`: a consistent copy of the coordinator's SQLite
// database while it runs, through SQLite's online backup API.
#ifndef ISOFLOP_CLI_ADMIN_BACKUP_H_
#define ISOFLOP_CLI_ADMIN_BACKUP_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace isoflop::cli {

struct BackupResult {
  int64_t pages = 0;
  int64_t bytes = 0;
  double seconds = 0;
};

// Copies the database at `db_path` to `out_path` (written as OUT.partial,
// checked with PRAGMA integrity_check, then renamed, so OUT is either absent
// or a complete copy). The coordinator may keep writing meanwhile: the copy
// is the database as of one moment. kInvalidArgument when `out_path` exists
// (so never `db_path`); kNotFound when `db_path` is no database.
absl::StatusOr<BackupResult> BackupDatabase(const std::string& db_path,
                                            const std::string& out_path);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_ADMIN_BACKUP_H_
