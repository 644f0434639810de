// StoreFaults: what the store's writer (coordinator/store/sqlite.h) tells
// operators about storage faults (disk full, I/O errors, a locked file):
// counters and a gauge for GET /metrics, and one log line when writes start
// failing and one when they succeed again (an episode), never one per write.
#ifndef ISOFLOP_COORDINATOR_STORE_STORE_FAULTS_H_
#define ISOFLOP_COORDINATOR_STORE_STORE_FAULTS_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/log.h"

namespace isoflop::coordinator {

// The Prometheus label of a SQLite primary result code: "full", "ioerr",
// "busy", "locked", "nomem", "readonly", "cantopen", else "other".
std::string StorageFaultLabel(int sqlite_code);

// Thread-safe: the writer thread records, HTTP threads read.
class StoreFaults {
 public:
  // `log` (not owned, may be null: nothing logged) gets the episode lines;
  // `db_path` names the database in them. An episode ends at the first
  // success `quiet` after its last fault: on a full disk small writes may
  // still fit while larger ones fail, and that is one episode, not many.
  explicit StoreFaults(const Logger* log = nullptr, std::string db_path = "",
                       absl::Duration quiet = absl::Seconds(10))
      : log_(log), db_path_(std::move(db_path)), quiet_(quiet) {}

  // One try of a batch of writes failed on a storage fault with SQLite code
  // `sqlite_code` (`error` says it). The first since the last success starts
  // an episode: one error line with what to do.
  void RecordFault(int sqlite_code, const absl::Status& error, absl::Time now);
  // `writes` writes were answered UNAVAILABLE after the retries ran out.
  void RecordRefused(int64_t writes);
  // A batch committed. Ends an episode whose last fault is `quiet` old (one
  // info line with its length).
  void RecordSuccess(absl::Time now);

  bool degraded() const;
  int64_t faults(const std::string& label) const;
  int64_t refused() const;

  // isoflop_store_write_errors_total{code}, isoflop_store_writes_refused_total
  // and isoflop_store_degraded in Prometheus' text format 0.0.4.
  std::string PrometheusText() const;

 private:
  const Logger* const log_;
  const std::string db_path_;
  const absl::Duration quiet_;
  mutable absl::Mutex mu_;
  std::map<std::string, int64_t> faults_ ABSL_GUARDED_BY(mu_);  // by label
  int64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
  bool degraded_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time episode_start_ ABSL_GUARDED_BY(mu_);
  absl::Time last_fault_ ABSL_GUARDED_BY(mu_);
  int64_t episode_faults_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_STORE_STORE_FAULTS_H_
