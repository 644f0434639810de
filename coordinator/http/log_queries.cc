// DashboardApi::TrialLogs: GET /api/v1/trials/{id}/logs, the trainer's log
// as the gRPC GetTrialLogs serves it.
#include <limits>

#include "absl/strings/str_cat.h"
#include "coordinator/http/dashboard_api.h"
#include "coordinator/service/core.h"

namespace isoflop::coordinator::http {

absl::StatusOr<nlohmann::json> DashboardApi::TrialLogs(
    const std::string& trial_id, int64_t attempt, int64_t offset) const {
  if (offset < 0 || static_cast<uint64_t>(offset) >= kMaxLogOffset) {
    return absl::InvalidArgumentError(
        absl::StrCat("offset = ", offset, ": must be >= 0 and < 2^48 (",
                     kMaxLogOffset, ")"));
  }
  if (attempt < 0 || attempt > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attempt = ", attempt, ": must be >= 0 (0: the latest attempt)"));
  }
  v1::GetTrialLogsRequest r;
  r.set_trial_id(trial_id);
  r.set_attempt(static_cast<uint32_t>(attempt));
  r.set_offset(static_cast<uint64_t>(offset));
  absl::StatusOr<v1::GetTrialLogsResponse> logs = core_->GetTrialLogs(r);
  if (!logs.ok()) return logs.status();
  return nlohmann::json{{"trial", trial_id},
                        {"attempt", logs->attempt()},
                        {"latest_attempt", logs->latest_attempt()},
                        {"state", v1::TrialState_Name(logs->state())},
                        {"finished", logs->finished()},
                        {"first_offset", logs->first_offset()},
                        {"next_offset", logs->next_offset()},
                        {"data", logs->data()}};
}

}  // namespace isoflop::coordinator::http
