// RPC latency by method, for Prometheus (GET /metrics): a histogram per
// isoflop.v1 method, recorded by a gRPC server interceptor from the moment
// the call's metadata arrives to the moment its status is sent, so it covers
// authorization, validation, the core and (for writes) the SQLite commit.
#ifndef ISOFLOP_COORDINATOR_SERVICE_RPC_LATENCY_H_
#define ISOFLOP_COORDINATOR_SERVICE_RPC_LATENCY_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_interceptor.h"

namespace isoflop::coordinator {

class RpcLatency {
 public:
  // Upper bounds (seconds) of the histogram's buckets; +Inf is implied.
  static constexpr std::array<double, 14> kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};

  // Adds one call of `method` (its short name, "ReportMetrics") that took
  // `seconds`. Thread-safe.
  void Record(const std::string& method, double seconds);

  // isoflop_rpc_duration_seconds in Prometheus' text format 0.0.4: for each
  // method seen, cumulative _bucket{method,le} lines, _sum and _count.
  // Empty families (HELP and TYPE only) before the first call. Thread-safe.
  std::string PrometheusText() const;

  // An interceptor factory for grpc::ServerBuilder that records every unary
  // isoflop.v1 call into `latency` (not owned; must outlive the server).
  // Health checks and reflection are not recorded.
  static std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  InterceptorFactory(RpcLatency* latency);

 private:
  struct Histogram {
    std::array<int64_t, kBuckets.size() + 1> counts{};  // last: +Inf
    double sum = 0;
    int64_t count = 0;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, Histogram> by_method_ ABSL_GUARDED_BY(mu_);
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_RPC_LATENCY_H_
