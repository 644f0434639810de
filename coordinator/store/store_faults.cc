#include "coordinator/store/store_faults.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"

namespace isoflop::coordinator {

std::string StorageFaultLabel(int sqlite_code) {
  switch (sqlite_code & 0xff) {
    case SQLITE_FULL:
      return "full";
    case SQLITE_IOERR:
      return "ioerr";
    case SQLITE_BUSY:
      return "busy";
    case SQLITE_LOCKED:
      return "locked";
    case SQLITE_NOMEM:
      return "nomem";
    case SQLITE_READONLY:
      return "readonly";
    case SQLITE_CANTOPEN:
      return "cantopen";
    default:
      return "other";
  }
}

void StoreFaults::RecordFault(int sqlite_code, const absl::Status& error,
                              absl::Time now) {
  bool starts = false;
  {
    absl::MutexLock lock(&mu_);
    ++faults_[StorageFaultLabel(sqlite_code)];
    ++episode_faults_;
    last_fault_ = now;
    if (!degraded_) {
      degraded_ = true;
      starts = true;
      episode_start_ = now;
    }
  }
  if (!starts || log_ == nullptr) return;
  const bool full = (sqlite_code & 0xff) == SQLITE_FULL;
  log_->Error(
      absl::StrCat("store: writes to ", db_path_, " fail: ", error.message(),
                   "; retrying with backoff, and answering UNAVAILABLE "
                   "(workers keep their points and retry) until a write "
                   "succeeds. ",
                   full ? "Free space on the filesystem of the database"
                        : "Check the filesystem and the disk of the database",
                   " (isoflop_store_write_errors_total in /metrics counts "
                   "the failed tries)"),
      {{"db", db_path_},
       {"code", StorageFaultLabel(sqlite_code)},
       {"error", std::string(error.message())}});
}

void StoreFaults::RecordRefused(int64_t writes) {
  absl::MutexLock lock(&mu_);
  refused_ += writes;
}

void StoreFaults::RecordSuccess(absl::Time now) {
  absl::Duration length;
  int64_t n = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!degraded_ || now - last_fault_ < quiet_) return;
    degraded_ = false;
    length = last_fault_ - episode_start_;
    n = episode_faults_;
    episode_faults_ = 0;
  }
  if (log_ == nullptr) return;
  log_->Info(
      absl::StrCat("store: writes to ", db_path_,
                   " succeed again; the faults lasted ",
                   absl::FormatDuration(absl::Trunc(length, absl::Seconds(1))),
                   " (", n, " failed tries)"),
      {{"db", db_path_}});
}

bool StoreFaults::degraded() const {
  absl::MutexLock lock(&mu_);
  return degraded_;
}

int64_t StoreFaults::faults(const std::string& label) const {
  absl::MutexLock lock(&mu_);
  auto it = faults_.find(label);
  return it == faults_.end() ? 0 : it->second;
}

int64_t StoreFaults::refused() const {
  absl::MutexLock lock(&mu_);
  return refused_;
}

std::string StoreFaults::PrometheusText() const {
  absl::MutexLock lock(&mu_);
  std::string out =
      "# HELP isoflop_store_write_errors_total Tries of a batch of store "
      "writes that failed on a storage fault (disk full, I/O error, locked), "
      "by SQLite code.\n"
      "# TYPE isoflop_store_write_errors_total counter\n";
  // Both usual codes always present, so that an alert can rate() them.
  std::map<std::string, int64_t> shown = faults_;
  shown.emplace("full", 0);
  shown.emplace("ioerr", 0);
  for (const auto& [label, n] : shown) {
    absl::StrAppend(&out, "isoflop_store_write_errors_total{code=\"", label,
                    "\"} ", n, "\n");
  }
  absl::StrAppend(
      &out,
      "# HELP isoflop_store_writes_refused_total Writes answered UNAVAILABLE "
      "after the store's retries ran out (the caller retries).\n"
      "# TYPE isoflop_store_writes_refused_total counter\n"
      "isoflop_store_writes_refused_total ",
      refused_, "\n",
      "# HELP isoflop_store_degraded 1 while the store's writes fail on a "
      "storage fault.\n"
      "# TYPE isoflop_store_degraded gauge\n"
      "isoflop_store_degraded ",
      degraded_ ? 1 : 0, "\n");
  return out;
}

}  // namespace isoflop::coordinator
