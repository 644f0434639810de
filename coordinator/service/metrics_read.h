// Full-resolution reads of a trial's metric points (SweepService
// GetTrialMetrics): the trial's state from the Core, its points from the
// store's TrialReader. The one rule for metric names lives here too, shared
// with the ingest path (core_workers.cc).
#ifndef ISOFLOP_COORDINATOR_SERVICE_METRICS_READ_H_
#define ISOFLOP_COORDINATOR_SERVICE_METRICS_READ_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/service/core.h"
#include "coordinator/store/trial_reader.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

// Most points one GetTrialMetrics answer carries (about 1.6 MB on the wire).
inline constexpr uint32_t kMaxMetricPointsPerRead = 100000;

// A metric name: 1 to 64 of [a-z0-9_].
bool MetricNameOk(std::string_view name);

// Validates `r` (trial id as LogBook::RequireTrialId, name, limit <=
// kMaxMetricPointsPerRead: INVALID_ARGUMENT naming the field), finds the
// trial (NOT_FOUND) and reads its points past after_step, at most limit.
absl::StatusOr<v1::GetTrialMetricsResponse> ReadTrialMetrics(
    Core& core, TrialReader& reader, const v1::GetTrialMetricsRequest& r);

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_METRICS_READ_H_
