// Read-only connections and JSON helpers shared by the dashboard's queries.
#ifndef ISOFLOP_COORDINATOR_HTTP_SQLITE_READER_H_
#define ISOFLOP_COORDINATOR_HTTP_SQLITE_READER_H_

#include <cmath>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/store/sqlite.h"
#include "nlohmann/json.hpp"

namespace isoflop::coordinator::http {

// A new read-only connection to `path` (busy timeout 2 s). UNAVAILABLE if it
// cannot be opened.
absl::StatusOr<Connection> OpenReadOnly(const std::string& path);

// JSON has no NaN or infinity: those become null.
inline nlohmann::json Num(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace isoflop::coordinator::http

#endif  // ISOFLOP_COORDINATOR_HTTP_SQLITE_READER_H_
