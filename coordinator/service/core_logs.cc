// Core: the facade's log calls. The lease or the trial's state comes from
// the lease table and the sweep book; LogBook validates, commits and reads.
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/service/core.h"

namespace isoflop::coordinator {

absl::StatusOr<v1::GetTrialLogsResponse> Core::GetTrialLogs(
    const v1::GetTrialLogsRequest& r) {
  RETURN_IF_ERROR(LogBook::ValidateRead(r));
  v1::GetTrialLogsResponse out;
  {
    absl::MutexLock lock(&mu_);
    const TrialRecord* t = FindTrialLocked(r.trial_id());
    if (t == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("trial ", r.trial_id(), ": not found"));
    }
    if (r.attempt() > t->trial.attempt()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "attempt = ", r.attempt(), ": trial ", r.trial_id(), " has had ",
          t->trial.attempt(), " attempt(s); 0 means the latest"));
    }
    const v1::TrialState state = t->trial.state();
    out.set_state(state);
    out.set_finished(state == v1::SUCCEEDED || state == v1::FAILED ||
                     state == v1::CANCELLED);
    out.set_latest_attempt(t->trial.attempt());
    out.set_attempt(r.attempt() == 0 ? t->trial.attempt() : r.attempt());
  }
  if (out.attempt() == 0) return out;  // never leased: no log yet
  RETURN_IF_ERROR(logs_.Read(r, out));
  return out;
}

absl::StatusOr<v1::ReportLogsResponse> Core::ReportLogs(
    const v1::ReportLogsRequest& r) {
  RETURN_IF_ERROR(LogBook::ValidateChunk(r));
  RETURN_IF_ERROR(leases_.RequireWorker(r.worker_id()));
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(FindLeasedLocked(r.worker_id(), r.lease(), false).status());
  }
  return logs_.Append(r);
}

}  // namespace isoflop::coordinator
