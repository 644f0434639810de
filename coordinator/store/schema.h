// The SQLite schema of the coordinator's store (docs/architecture.md §3):
// the only place that creates or alters a table.
#ifndef ISOFLOP_COORDINATOR_STORE_SCHEMA_H_
#define ISOFLOP_COORDINATOR_STORE_SCHEMA_H_

#include <string>
#include <vector>

namespace isoflop::coordinator {

// Schema migrations: entry i moves PRAGMA user_version from i to i + 1 in
// one transaction (SqliteWriter::Open). Never edit an entry that has
// shipped; append a new one (and update docs/architecture.md §3).
const std::vector<std::string>& Schema();

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_STORE_SCHEMA_H_
