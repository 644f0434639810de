// The CLI's view of the coordinator: SweepService, ClusterService and
// AnalysisService. The
// real implementation (cli/grpc_coordinator_api.h) puts a deadline on every
// call; tests use their own fake.
#ifndef ISOFLOP_CLI_COORDINATOR_API_H_
#define ISOFLOP_CLI_COORDINATOR_API_H_

#include <string>

#include "absl/status/statusor.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::cli {

// Each method returns the RPC's status with its canonical code (kUnavailable
// when the coordinator cannot be reached, kDeadlineExceeded after the
// deadline, kInvalidArgument/kNotFound as the coordinator says).
class CoordinatorApi {
 public:
  virtual ~CoordinatorApi() = default;
  virtual absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const v1::SweepConfig& config) = 0;
  // SubmitSweep with the request's other fields (a client-chosen id). The
  // default forwards a request without an id to SubmitSweep(config) and
  // answers kUnimplemented otherwise.
  virtual absl::StatusOr<v1::SubmitSweepResponse> Submit(
      const v1::SubmitSweepRequest& request);
  virtual absl::StatusOr<v1::Sweep> GetSweep(const std::string& sweep_id) = 0;
  virtual absl::StatusOr<v1::ListSweepsResponse> ListSweeps() = 0;
  virtual absl::StatusOr<v1::Sweep> CancelSweep(
      const std::string& sweep_id) = 0;
  virtual absl::StatusOr<v1::Sweep> RetrySweep(
      const v1::RetrySweepRequest& request) = 0;
  virtual absl::StatusOr<v1::OptimalResponse> Optimal(
      const v1::OptimalRequest& request) = 0;
  // Operator verbs; the defaults answer kUnimplemented so that a test fake
  // implements only what it uses.
  virtual absl::StatusOr<v1::Sweep> PauseSweep(const std::string& sweep_id);
  virtual absl::StatusOr<v1::Sweep> ResumeSweep(const std::string& sweep_id);
  virtual absl::StatusOr<v1::ListWorkersResponse> ListWorkers();
  virtual absl::StatusOr<v1::Worker> DrainWorker(const std::string& worker_id);
  virtual absl::StatusOr<v1::Worker> UndrainWorker(
      const std::string& worker_id);
  virtual absl::StatusOr<v1::GetTrialLogsResponse> GetTrialLogs(
      const v1::GetTrialLogsRequest& request);
  virtual absl::StatusOr<v1::CoordinatorInfo> GetCoordinatorInfo();
  // `sweep export` and `sweep import` (cli/sweep_io.h).
  virtual absl::StatusOr<v1::GetTrialMetricsResponse> GetTrialMetrics(
      const v1::GetTrialMetricsRequest& request);
  virtual absl::StatusOr<v1::ImportSweepResponse> ImportSweep(
      const v1::ImportSweepRequest& request);
};

inline absl::StatusOr<v1::GetTrialMetricsResponse>
CoordinatorApi::GetTrialMetrics(const v1::GetTrialMetricsRequest&) {
  return absl::UnimplementedError("GetTrialMetrics");
}
inline absl::StatusOr<v1::ImportSweepResponse> CoordinatorApi::ImportSweep(
    const v1::ImportSweepRequest&) {
  return absl::UnimplementedError("ImportSweep");
}

inline absl::StatusOr<v1::SubmitSweepResponse> CoordinatorApi::Submit(
    const v1::SubmitSweepRequest& request) {
  if (request.id().empty()) return SubmitSweep(request.config());
  return absl::UnimplementedError("SubmitSweep with an id");
}
inline absl::StatusOr<v1::Sweep> CoordinatorApi::PauseSweep(
    const std::string&) {
  return absl::UnimplementedError("PauseSweep");
}
inline absl::StatusOr<v1::Sweep> CoordinatorApi::ResumeSweep(
    const std::string&) {
  return absl::UnimplementedError("ResumeSweep");
}
inline absl::StatusOr<v1::ListWorkersResponse> CoordinatorApi::ListWorkers() {
  return absl::UnimplementedError("ListWorkers");
}
inline absl::StatusOr<v1::Worker> CoordinatorApi::DrainWorker(
    const std::string&) {
  return absl::UnimplementedError("DrainWorker");
}
inline absl::StatusOr<v1::Worker> CoordinatorApi::UndrainWorker(
    const std::string&) {
  return absl::UnimplementedError("UndrainWorker");
}

inline absl::StatusOr<v1::GetTrialLogsResponse> CoordinatorApi::GetTrialLogs(
    const v1::GetTrialLogsRequest&) {
  return absl::UnimplementedError("GetTrialLogs");
}

inline absl::StatusOr<v1::CoordinatorInfo>
CoordinatorApi::GetCoordinatorInfo() {
  return absl::UnimplementedError("GetCoordinatorInfo");
}

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_COORDINATOR_API_H_
