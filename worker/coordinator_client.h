// The worker's view of the coordinator's WorkerService. The real client
// (worker/grpc_coordinator_client.h) puts a deadline on every call; the fake
// (worker/fake_coordinator_client.h) serves scripted answers to tests.
#ifndef ISOFLOP_WORKER_COORDINATOR_CLIENT_H_
#define ISOFLOP_WORKER_COORDINATOR_CLIENT_H_

#include "absl/status/statusor.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::worker {

// Every method blocks until the coordinator answers or the deadline passes and
// returns the RPC's status with its canonical code: kUnavailable or
// kDeadlineExceeded when the coordinator cannot be reached (retry later),
// kAborted for a stale lease epoch, kNotFound for an unknown worker or trial.
// Implementations need not be thread-safe.
class CoordinatorClient {
 public:
  virtual ~CoordinatorClient() = default;
  virtual absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request) = 0;
  virtual absl::StatusOr<v1::LeaseTrialResponse> LeaseTrial(
      const v1::LeaseTrialRequest& request) = 0;
  virtual absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request) = 0;
  virtual absl::StatusOr<v1::ReportMetricsResponse> ReportMetrics(
      const v1::ReportMetricsRequest& request) = 0;
  virtual absl::StatusOr<v1::ReportOutcomeResponse> ReportOutcome(
      const v1::ReportOutcomeRequest& request) = 0;
  virtual absl::StatusOr<v1::ReportLogsResponse> ReportLogs(
      const v1::ReportLogsRequest& request) = 0;
};

// True for the codes after which the same call may succeed later.
inline bool IsTransient(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsResourceExhausted(status);
}

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_COORDINATOR_CLIENT_H_
