// Core: the trainers' logs (ReportLogs from workers, GetTrialLogs for users).
#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/service/core.h"

namespace isoflop::coordinator {
namespace {

// Ids the coordinator makes are "tr-" + hex; this admits any id a store could
// hold while refusing what cannot be one (and bounding what is echoed back).
absl::Status RequireTrialId(const std::string& id) {
  const bool ok = !id.empty() && id.size() <= 128 &&
                  std::all_of(id.begin(), id.end(), [](unsigned char c) {
                    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "trial_id = \"", id.substr(0, 32),
      "\": must be 1 to 128 of [A-Za-z0-9_.-] (see `sweep status`)"));
}

}  // namespace

absl::StatusOr<v1::Trial> Core::GetTrial(const std::string& trial_id) {
  RETURN_IF_ERROR(RequireTrialId(trial_id));
  absl::MutexLock lock(&mu_);
  const TrialRecord* t = FindTrialLocked(trial_id);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat("trial ", trial_id, ": unknown"));
  }
  return t->trial;
}

absl::StatusOr<v1::GetTrialLogsResponse> Core::GetTrialLogs(
    const v1::GetTrialLogsRequest& r) {
  RETURN_IF_ERROR(RequireTrialId(r.trial_id()));
  if (r.offset() >= kMaxLogOffset) {
    return absl::InvalidArgumentError(absl::StrCat(
        "offset = ", r.offset(), ": must be < 2^48 (a log's largest size)"));
  }
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
  ASSIGN_OR_RETURN(
      TrialLogWindow w,
      store_->ReadTrialLog(r.trial_id(), out.attempt(), r.offset()));
  out.set_data(std::move(w.data));
  out.set_first_offset(w.first_offset);
  out.set_next_offset(w.next_offset);
  return out;
}

absl::StatusOr<v1::ReportLogsResponse> Core::ReportLogs(
    const v1::ReportLogsRequest& r) {
  if (r.data().empty() || r.data().size() > kMaxLogChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data: ", r.data().size(), " bytes: must be 1 to ", kMaxLogChunkBytes));
  }
  if (r.offset() > kMaxLogOffset - r.data().size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "offset = ", r.offset(), ": offset + size must be <= 2^48"));
  }
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(RequireWorkerLocked(r.worker_id()));
    RETURN_IF_ERROR(FindLeasedLocked(r.worker_id(), r.lease()).status());
  }
  // Idempotent and per attempt: commit outside the lock, as metrics do. The
  // worker waits for the answer before it reports the outcome, so the log is
  // complete when GetTrialLogs sees the trial ended.
  ASSIGN_OR_RETURN(uint64_t end, store_->AppendTrialLog(r.lease().trial_id(),
                                                        r.lease().attempt(),
                                                        r.offset(), r.data()));
  v1::ReportLogsResponse out;
  out.set_next_offset(end);
  return out;
}

}  // namespace isoflop::coordinator
