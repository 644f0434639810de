#include "coordinator/service/log_book.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

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

absl::Status LogBook::ValidateChunk(const v1::ReportLogsRequest& r) {
  if (r.data().empty() || r.data().size() > kMaxLogChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data: ", r.data().size(), " bytes: must be 1 to ", kMaxLogChunkBytes));
  }
  if (r.offset() > kMaxLogOffset - r.data().size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "offset = ", r.offset(), ": offset + size must be <= 2^48"));
  }
  return absl::OkStatus();
}

absl::Status LogBook::ValidateRead(const v1::GetTrialLogsRequest& r) {
  RETURN_IF_ERROR(RequireTrialId(r.trial_id()));
  if (r.offset() >= kMaxLogOffset) {
    return absl::InvalidArgumentError(absl::StrCat(
        "offset = ", r.offset(), ": must be < 2^48 (a log's largest size)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ReportLogsResponse> LogBook::Append(
    const v1::ReportLogsRequest& r) {
  // Idempotent and per attempt: committed under no lock, as metrics are. The
  // worker waits for the answer before it reports the outcome, so the log is
  // complete when GetTrialLogs sees the trial ended.
  ASSIGN_OR_RETURN(uint64_t end, store_->AppendTrialLog(r.lease().trial_id(),
                                                        r.lease().attempt(),
                                                        r.offset(), r.data()));
  v1::ReportLogsResponse out;
  out.set_next_offset(end);
  return out;
}

absl::Status LogBook::Read(const v1::GetTrialLogsRequest& r,
                           v1::GetTrialLogsResponse& out) {
  ASSIGN_OR_RETURN(
      TrialLogWindow w,
      store_->ReadTrialLog(r.trial_id(), out.attempt(), r.offset()));
  out.set_data(std::move(w.data));
  out.set_first_offset(w.first_offset);
  out.set_next_offset(w.next_offset);
  return absl::OkStatus();
}

}  // namespace isoflop::coordinator
