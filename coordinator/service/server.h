// CoordinatorServer: the gRPC server of isoflop-coordinator (SweepService,
// WorkerService, ClusterService, AnalysisService, grpc.health.v1, reflection)
// plus the background thread that drives the core's periodic work (lease
// reaping); Start also starts the core's fit thread (Core::StartFits).
#ifndef ISOFLOP_COORDINATOR_SERVICE_SERVER_H_
#define ISOFLOP_COORDINATOR_SERVICE_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/service/core.h"
#include "coordinator/service/grpc_services.h"
#include "coordinator/service/rpc_latency.h"
#include "grpcpp/grpcpp.h"

namespace isoflop::coordinator {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free one
  absl::Duration background_period = absl::Milliseconds(200);
  // Bearer tokens the RPCs require (grpc_auth.h); both must be set and
  // differ.
  ServiceTokens tokens;
  // TLS (grpc::SslServerCredentials, no client certificates) when both are
  // set: the PEM certificate chain and its private key. Empty: plain TCP.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  // Where each isoflop.v1 call's latency is recorded (GET /metrics); null:
  // not recorded. Not owned; must outlive the server.
  RpcLatency* rpc_latency = nullptr;
  // Serves the workers' ServeSamples streams (generation_relay.h); null:
  // refused. Not owned; must outlive the server.
  GenerationRelay* generation_relay = nullptr;
  // Answers GetTrialMetrics (metrics_read.h); null: refused. Not owned; must
  // outlive the server.
  TrialReader* reader = nullptr;
  // The dashboard's URL, answered by ClusterService.GetCoordinatorInfo
  // ("": no dashboard).
  std::string dashboard_url;
};

class CoordinatorServer {
 public:
  // Starts serving `core` (not owned; must outlive the server) and the
  // background thread. UNAVAILABLE if the address cannot be bound;
  // INVALID_ARGUMENT if a token is empty or both tokens are the same.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(
      Core* core, const Clock* clock, const ServerOptions& options);
  ~CoordinatorServer();  // Shutdown()

  // The bound address, with the port actually chosen ("127.0.0.1:41234").
  const std::string& address() const { return address_; }
  // Stops taking calls, lets running calls finish (up to `grace`), then
  // stops the background thread. Idempotent; call from any thread.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

 private:
  CoordinatorServer(Core* core, const Clock* clock,
                    const ServerOptions& options);
  void BackgroundLoop();

  Core* core_;
  const Clock* clock_;
  const absl::Duration period_;
  const ServiceTokens tokens_;
  GenerationRelay* relay_;
  SweepServiceImpl sweeps_;
  WorkerServiceImpl workers_;
  ClusterServiceImpl cluster_;
  AnalysisServiceImpl analysis_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  absl::Notification stop_;
  std::thread background_;
  std::atomic<bool> shut_down_{false};
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_SERVER_H_
