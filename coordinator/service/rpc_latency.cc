#include "coordinator/service/rpc_latency.h"

#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace isoflop::coordinator {
namespace {

constexpr char kPrefix[] = "/isoflop.v1.";

// One per call: started when the server creates it (the call has arrived),
// recorded when the status goes out. A monotonic clock, read here rather than
// injected: a duration of real work is what is measured.
class LatencyInterceptor final : public grpc::experimental::Interceptor {
 public:
  LatencyInterceptor(RpcLatency* latency, std::string method)
      : latency_(latency),
        method_(std::move(method)),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      latency_->Record(method_, std::chrono::duration<double>(
                                    std::chrono::steady_clock::now() - start_)
                                    .count());
    }
    methods->Proceed();
  }

 private:
  RpcLatency* const latency_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
};

class LatencyInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit LatencyInterceptorFactory(RpcLatency* latency) : latency_(latency) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // "/isoflop.v1.WorkerService/ReportMetrics" -> "ReportMetrics".
    const char* method = info->method();
    if (method == nullptr ||
        std::strncmp(method, kPrefix, sizeof(kPrefix) - 1) != 0 ||
        info->type() != grpc::experimental::ServerRpcInfo::Type::UNARY) {
      return nullptr;
    }
    const char* slash = std::strrchr(method, '/');
    return new LatencyInterceptor(latency_, slash + 1);
  }

 private:
  RpcLatency* const latency_;
};

}  // namespace

void RpcLatency::Record(const std::string& method, double seconds) {
  size_t bucket = 0;
  while (bucket < kBuckets.size() && seconds > kBuckets[bucket]) ++bucket;
  absl::MutexLock lock(&mu_);
  Histogram& h = by_method_[method];
  ++h.counts[bucket];
  h.sum += seconds;
  ++h.count;
}

std::string RpcLatency::PrometheusText() const {
  std::string out =
      "# HELP isoflop_rpc_duration_seconds gRPC calls of isoflop.v1, by "
      "method: from arrival to status sent.\n"
      "# TYPE isoflop_rpc_duration_seconds histogram\n";
  absl::MutexLock lock(&mu_);
  for (const auto& [method, h] : by_method_) {
    int64_t cumulative = 0;
    for (size_t i = 0; i <= kBuckets.size(); ++i) {
      cumulative += h.counts[i];
      absl::StrAppend(
          &out, "isoflop_rpc_duration_seconds_bucket{method=\"", method,
          "\",le=\"",
          i < kBuckets.size() ? absl::StrFormat("%g", kBuckets[i]) : "+Inf",
          "\"} ", cumulative, "\n");
    }
    absl::StrAppend(&out, "isoflop_rpc_duration_seconds_sum{method=\"", method,
                    "\"} ", absl::StrFormat("%.9g", h.sum), "\n",
                    "isoflop_rpc_duration_seconds_count{method=\"", method,
                    "\"} ", h.count, "\n");
  }
  return out;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RpcLatency::InterceptorFactory(RpcLatency* latency) {
  return std::make_unique<LatencyInterceptorFactory>(latency);
}

}  // namespace isoflop::coordinator
