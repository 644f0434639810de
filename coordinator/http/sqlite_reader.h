// Only generation.cc still reads SQLite in http/ (sampling moves to the
// workers, issue 19 item 4); every other query is coordinator/store/'s.
#ifndef ISOFLOP_COORDINATOR_HTTP_SQLITE_READER_H_
#define ISOFLOP_COORDINATOR_HTTP_SQLITE_READER_H_

#include "coordinator/store/sqlite.h"

namespace isoflop::coordinator::http {
using ::isoflop::coordinator::OpenReadOnly;
}  // namespace isoflop::coordinator::http

#endif  // ISOFLOP_COORDINATOR_HTTP_SQLITE_READER_H_
