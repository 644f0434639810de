#include "coordinator/service/server.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace isoflop::coordinator {
namespace {

// "host:port" with the port replaced by the one actually bound.
std::string BoundAddress(const std::string& listen, int port) {
  const size_t colon = listen.rfind(':');
  return absl::StrCat(
      colon == std::string::npos ? listen : listen.substr(0, colon), ":", port);
}

}  // namespace

CoordinatorServer::CoordinatorServer(Core* core, const Clock* clock,
                                     const ServerOptions& options)
    : core_(core),
      clock_(clock),
      period_(options.background_period),
      tokens_(options.tokens),
      relay_(options.generation_relay),
      sweeps_(core, &tokens_, options.reader),
      workers_(core, &tokens_, options.generation_relay),
      cluster_(core, &tokens_, options.dashboard_url),
      analysis_(core, &tokens_) {}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    Core* core, const Clock* clock, const ServerOptions& options) {
  if (options.tokens.user.empty() || options.tokens.worker.empty()) {
    return absl::InvalidArgumentError(
        "tokens: the user token and the worker token must both be set");
  }
  if (options.tokens.user == options.tokens.worker) {
    return absl::InvalidArgumentError(
        "tokens: the user token and the worker token must differ (a worker "
        "token allows only WorkerService)");
  }
  std::unique_ptr<CoordinatorServer> s(
      new CoordinatorServer(core, clock, options));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second coordinator would then bind
  // the same port and split the workers between two databases.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::InsecureServerCredentials();
  if (!options.tls_cert_pem.empty() || !options.tls_key_pem.empty()) {
    grpc::SslServerCredentialsOptions tls;
    tls.pem_key_cert_pairs.push_back({.private_key = options.tls_key_pem,
                                      .cert_chain = options.tls_cert_pem});
    credentials = grpc::SslServerCredentials(tls);
  }
  int port = 0;
  builder.AddListeningPort(options.listen, credentials, &port);
  if (options.rpc_latency != nullptr) {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(RpcLatency::InterceptorFactory(options.rpc_latency));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  builder.RegisterService(&s->sweeps_);
  builder.RegisterService(&s->workers_);
  builder.RegisterService(&s->cluster_);
  builder.RegisterService(&s->analysis_);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("--listen = ", options.listen,
                     ": cannot bind (address in use or invalid)"));
  }
  s->address_ = BoundAddress(options.listen, port);
  core->StartFits();  // fits run on the core's fit thread, not on RPC threads
  s->background_ = std::thread([raw = s.get()] { raw->BackgroundLoop(); });
  return s;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

void CoordinatorServer::BackgroundLoop() {
  while (!stop_.WaitForNotificationWithTimeout(period_)) {
    core_->ReapExpiredLeases(clock_->Now());
  }
}

void CoordinatorServer::Shutdown(absl::Duration grace) {
  if (shut_down_.exchange(true)) return;
  // A fit under way (seconds) must not hold up the exit; FitSweep calls
  // waiting for one are answered CANCELLED, so the server's shutdown does
  // not wait for them.
  core_->CancelFits();
  // The workers' sampling streams stay open until finished: the server's
  // Shutdown would wait out its grace for them.
  if (relay_ != nullptr) relay_->CloseAll();
  if (server_ != nullptr)
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  stop_.Notify();
  if (background_.joinable()) background_.join();
  core_->StopFits();
}

}  // namespace isoflop::coordinator
