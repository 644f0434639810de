// The trial page's queries: DashboardApi::TrialLogs (GET
// /api/v1/trials/{id}/logs, the trainer's log as the gRPC GetTrialLogs
// serves it) and DashboardApi::Trial (GET /api/v1/trials/{id}: the resolved
// spec and the attempts, dashboards/API.md).
#include <google/protobuf/util/json_util.h>

#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
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

absl::StatusOr<nlohmann::json> DashboardApi::Trial(
    const std::string& trial_id) const {
  ASSIGN_OR_RETURN(const std::optional<TrialDetail> t,
                   reader_->ReadTrial(trial_id));
  if (!t.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("trial \"", trial_id.substr(0, 128), "\": not found"));
  }
  // The spec as the sweep expanded it (every default resolved,
  // docs/architecture.md §5.2), field names as in the proto.
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string spec_text;
  if (!google::protobuf::util::MessageToJsonString(t->row.spec, &spec_text,
                                                   options)
           .ok()) {
    return absl::InternalError(absl::StrCat(
        "trial ", trial_id, ": its spec cannot be written as JSON"));
  }
  nlohmann::json spec = nlohmann::json::parse(spec_text, nullptr, false);
  nlohmann::json attempts = nlohmann::json::array();
  for (const AttemptRow& a : t->attempts) {
    attempts.push_back(
        {{"attempt", a.attempt},
         {"worker", a.worker_id},
         {"lease_epoch", a.lease_epoch},
         {"started_unix_ms", a.started_unix_ms},
         {"ended_unix_ms", a.ended_unix_ms == 0
                               ? nlohmann::json(nullptr)
                               : nlohmann::json(a.ended_unix_ms)},
         {"outcome", a.outcome},
         {"exit_code", a.exit_code},
         {"message", a.message},
         {"tokens_per_s", Num(a.tokens_per_s)}});
  }
  const TrialRow& r = t->row;
  return nlohmann::json{
      {"id", r.id},
      {"sweep", t->sweep_id},
      {"ordinal", r.ordinal},
      {"state", r.state},
      {"attempt", r.attempt},
      {"worker", r.worker_id},
      {"step", r.step},
      {"steps", r.spec.steps()},
      {"train_loss", Num(r.train_loss)},
      {"val_loss", Num(r.val_loss)},
      {"tokens_per_s", Num(r.tokens_per_s)},
      {"updated_unix_ms", r.updated_unix_ms},
      {"error", r.error},
      {"spec", spec.is_discarded() ? nlohmann::json(nullptr) : std::move(spec)},
      {"attempts", std::move(attempts)}};
}

}  // namespace isoflop::coordinator::http
