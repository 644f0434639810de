#include "coordinator/service/metrics_read.h"

#include <algorithm>
#include <cctype>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/service/log_book.h"

namespace isoflop::coordinator {

bool MetricNameOk(std::string_view name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](unsigned char c) {
           return std::islower(c) || std::isdigit(c) || c == '_';
         });
}

absl::StatusOr<v1::GetTrialMetricsResponse> ReadTrialMetrics(
    Core& core, TrialReader& reader, const v1::GetTrialMetricsRequest& r) {
  RETURN_IF_ERROR(LogBook::RequireTrialId(r.trial_id()));
  const std::string name = r.name().empty() ? "train_loss" : r.name();
  if (!MetricNameOk(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "name = \"", name.substr(0, 64), "\": must be 1 to 64 of [a-z0-9_]"));
  }
  if (r.limit() > kMaxMetricPointsPerRead) {
    return absl::InvalidArgumentError(absl::StrCat(
        "limit = ", r.limit(), ": must be <= ", kMaxMetricPointsPerRead,
        " (0 means ", kMaxMetricPointsPerRead, ")"));
  }
  if (r.has_after_step() && r.after_step() < -1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "after_step = ", r.after_step(), ": must be >= -1 (or unset)"));
  }
  ASSIGN_OR_RETURN(const v1::Trial trial, core.GetTrial(r.trial_id()));
  const TrialRef ref{.id = trial.spec().trial_id(),
                     .sweep_id = trial.spec().sweep_id(),
                     .state = v1::TrialState_Name(trial.state()),
                     .worker_id = trial.worker_id(),
                     .attempt = trial.attempt()};
  const int64_t after = r.has_after_step() ? r.after_step() : -1;
  v1::GetTrialMetricsResponse out;
  out.set_trial_id(ref.id);
  out.set_name(name);
  out.set_attempt(ref.attempt);
  out.set_next_after_step(after);
  if (ref.attempt == 0) return out;  // never leased: no points
  ASSIGN_OR_RETURN(const CurvePoints points,
                   reader.ReadCurve(ref, name, after));
  const size_t limit = r.limit() == 0 ? kMaxMetricPointsPerRead : r.limit();
  const size_t n = std::min(limit, points.size());
  out.mutable_steps()->Reserve(static_cast<int>(n));
  out.mutable_values()->Reserve(static_cast<int>(n));
  for (size_t i = 0; i < n; ++i) {
    out.add_steps(points[i].first);
    out.add_values(points[i].second);
  }
  out.set_more(points.size() > n);
  if (n > 0) out.set_next_after_step(points[n - 1].first);
  return out;
}

}  // namespace isoflop::coordinator
