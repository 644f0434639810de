// LogBook: the trainers' logs, relayed by workers (ReportLogs) and read by
// users (GetTrialLogs) (docs/architecture.md §1.1). No lock of its own and no
// state but the store: the facade (Core) checks the lease or reads the
// trial's state first, then the log book validates and commits or reads.
#ifndef ISOFLOP_COORDINATOR_SERVICE_LOG_BOOK_H_
#define ISOFLOP_COORDINATOR_SERVICE_LOG_BOOK_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/store/trial_store.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

// Largest chunk one ReportLogs may carry, and the largest log offset (2^48
// bytes: no trainer writes that much; keeps offset + size far from overflow).
inline constexpr size_t kMaxLogChunkBytes = size_t{64} * 1024;
inline constexpr uint64_t kMaxLogOffset = uint64_t{1} << 48;

class LogBook {
 public:
  explicit LogBook(TrialStore* store) : store_(store) {}

  // INVALID_ARGUMENT for empty data, more than kMaxLogChunkBytes, or
  // offset + size past kMaxLogOffset.
  static absl::Status ValidateChunk(const v1::ReportLogsRequest& r);
  // INVALID_ARGUMENT for a malformed trial_id or offset.
  static absl::Status ValidateRead(const v1::GetTrialLogsRequest& r);
  // Stores the chunk (TrialStore::AppendTrialLog); the lease was checked.
  absl::StatusOr<v1::ReportLogsResponse> Append(const v1::ReportLogsRequest& r);
  // Fills data and offsets of `out`, whose attempt (non-zero) and trial
  // state the caller set from the trial read before.
  absl::Status Read(const v1::GetTrialLogsRequest& r,
                    v1::GetTrialLogsResponse& out);

 private:
  TrialStore* const store_;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_LOG_BOOK_H_
