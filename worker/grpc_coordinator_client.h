// CoordinatorClient over a gRPC channel to isoflop.v1.WorkerService.
#ifndef ISOFLOP_WORKER_GRPC_COORDINATOR_CLIENT_H_
#define ISOFLOP_WORKER_GRPC_COORDINATOR_CLIENT_H_

#include <grpcpp/support/channel_arguments.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "isoflop/v1/service.grpc.pb.h"
#include "worker/coordinator_client.h"

namespace isoflop::worker {

// The longest wait between two connection attempts to a coordinator that is
// down: a restarted coordinator sees its workers back within this.
inline constexpr std::chrono::milliseconds kReconnectBackoff{1000};

// The channel arguments that cap gRPC's reconnect backoff at
// kReconnectBackoff, with a subchannel of the channel's own.
grpc::ChannelArguments ReconnectArgs();

class GrpcCoordinatorClient final : public CoordinatorClient {
 public:
  // Connects lazily to `address` (host:port): over TLS verified with the PEM
  // CA certificates `tls_ca_pem`, or plain TCP when it is empty. A call that
  // fails UNAVAILABLE on a channel older than kReconnectBackoff replaces the
  // channel, so the next call connects afresh (gRPC's own backoff left
  // workers refused for seconds after a coordinator restart). Every call
  // fails with kDeadlineExceeded after `deadline` and carries `token`, the
  // coordinator's worker token, as `authorization: Bearer`. A RegisterWorker
  // that fails for a TLS mismatch says so (TlsMismatchHint); the other calls
  // do not probe, so that a cut network costs them no extra time.
  GrpcCoordinatorClient(const std::string& address, absl::Duration deadline,
                        std::string token, const std::string& tls_ca_pem = "");

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request) override;
  absl::StatusOr<v1::LeaseTrialResponse> LeaseTrial(
      const v1::LeaseTrialRequest& request) override;
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request) override;
  absl::StatusOr<v1::ReportMetricsResponse> ReportMetrics(
      const v1::ReportMetricsRequest& request) override;
  absl::StatusOr<v1::ReportOutcomeResponse> ReportOutcome(
      const v1::ReportOutcomeRequest& request) override;
  absl::StatusOr<v1::ReportLogsResponse> ReportLogs(
      const v1::ReportLogsRequest& request) override;

 private:
  template <typename Response, typename Request, typename Method>
  absl::StatusOr<Response> Call(Method method, const Request& request);

  // A fresh channel (and its own subchannel: no shared backoff state).
  void NewChannel();

  std::string address_;
  bool tls_;
  std::string tls_ca_pem_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  absl::Time channel_made_;
  absl::Duration deadline_;
  std::string authorization_;  // "Bearer TOKEN"
};

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_GRPC_COORDINATOR_CLIENT_H_
