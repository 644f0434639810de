// CoordinatorApi over one gRPC channel (TLS when given a CA, else plain TCP),
// every call carrying the user token as `authorization: Bearer TOKEN`.
#ifndef ISOFLOP_CLI_GRPC_COORDINATOR_API_H_
#define ISOFLOP_CLI_GRPC_COORDINATOR_API_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "cli/coordinator_api.h"
#include "isoflop/v1/service.grpc.pb.h"

namespace isoflop::cli {

class GrpcCoordinatorApi final : public CoordinatorApi {
 public:
  // Connects lazily to `address` (host:port); every call fails with
  // kDeadlineExceeded after `deadline`. `token` is the coordinator's user
  // token (empty: none sent; the coordinator then refuses with
  // kUnauthenticated). `tls_ca_pem`: the PEM CA certificates that verify the
  // coordinator's TLS certificate (empty: plain TCP). A call that fails for a
  // TLS mismatch says so (TlsMismatchHint).
  GrpcCoordinatorApi(const std::string& address, absl::Duration deadline,
                     std::string token, const std::string& tls_ca_pem = "");

  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const v1::SweepConfig& config) override;
  absl::StatusOr<v1::SubmitSweepResponse> Submit(
      const v1::SubmitSweepRequest& request) override;
  absl::StatusOr<v1::Sweep> GetSweep(const std::string& sweep_id) override;
  absl::StatusOr<v1::ListSweepsResponse> ListSweeps() override;
  absl::StatusOr<v1::Sweep> CancelSweep(const std::string& sweep_id) override;
  absl::StatusOr<v1::Sweep> RetrySweep(
      const v1::RetrySweepRequest& request) override;
  absl::StatusOr<v1::OptimalResponse> Optimal(
      const v1::OptimalRequest& request) override;
  absl::StatusOr<v1::Sweep> PauseSweep(const std::string& sweep_id) override;
  absl::StatusOr<v1::Sweep> ResumeSweep(const std::string& sweep_id) override;
  absl::StatusOr<v1::ListWorkersResponse> ListWorkers() override;
  absl::StatusOr<v1::CoordinatorInfo> GetCoordinatorInfo() override;
  absl::StatusOr<v1::Worker> DrainWorker(const std::string& worker_id) override;
  absl::StatusOr<v1::Worker> UndrainWorker(
      const std::string& worker_id) override;
  absl::StatusOr<v1::GetTrialLogsResponse> GetTrialLogs(
      const v1::GetTrialLogsRequest& request) override;
  absl::StatusOr<v1::GetTrialMetricsResponse> GetTrialMetrics(
      const v1::GetTrialMetricsRequest& request) override;
  absl::StatusOr<v1::ImportSweepResponse> ImportSweep(
      const v1::ImportSweepRequest& request) override;

 private:
  template <typename Response, typename Stub, typename Request, typename Method>
  absl::StatusOr<Response> Call(Stub* stub, Method method,
                                const Request& request);

  std::string address_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
  std::unique_ptr<v1::AnalysisService::Stub> analysis_;
  std::unique_ptr<v1::ClusterService::Stub> cluster_;
  absl::Duration deadline_;
  std::string token_;
  bool tls_;
};

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_GRPC_COORDINATOR_API_H_
