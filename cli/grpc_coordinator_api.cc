#include "cli/grpc_coordinator_api.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/bearer_token.h"
#include "common/tls.h"

namespace isoflop::cli {

GrpcCoordinatorApi::GrpcCoordinatorApi(const std::string& address,
                                       absl::Duration deadline,
                                       std::string token,
                                       const std::string& tls_ca_pem)
    : address_(address),
      deadline_(deadline),
      token_(std::move(token)),
      tls_(!tls_ca_pem.empty()) {
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
      address, tls_ ? grpc::SslCredentials({.pem_root_certs = tls_ca_pem})
                    : grpc::InsecureChannelCredentials());
  sweeps_ = v1::SweepService::NewStub(channel);
  analysis_ = v1::AnalysisService::NewStub(channel);
  cluster_ = v1::ClusterService::NewStub(channel);
}

template <typename Response, typename Stub, typename Request, typename Method>
absl::StatusOr<Response> GrpcCoordinatorApi::Call(Stub* stub, Method method,
                                                  const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  if (!token_.empty()) {
    context.AddMetadata(kAuthorizationKey, absl::StrCat(kBearerPrefix, token_));
  }
  Response response;
  grpc::Status status = (stub->*method)(&context, request, &response);
  if (status.ok()) return response;
  std::string message = status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    const std::string hint = TlsMismatchHint(address_, tls_, message);
    message = absl::StrCat(
        "coordinator at ", address_, " unreachable (", message, "); ",
        hint.empty()
            ? "start isoflop-coordinator or set ISOFLOP_ADDRESS / --address"
            : hint);
  }
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
      token_.empty()) {
    message = absl::StrCat(message, " (isoflop sent no token)");
  }
  // grpc::StatusCode and absl::StatusCode share the canonical numbering.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      message);
}

absl::StatusOr<v1::SubmitSweepResponse> GrpcCoordinatorApi::SubmitSweep(
    const v1::SweepConfig& config) {
  v1::SubmitSweepRequest request;
  *request.mutable_config() = config;
  return Call<v1::SubmitSweepResponse>(
      sweeps_.get(), &v1::SweepService::Stub::SubmitSweep, request);
}

absl::StatusOr<v1::SubmitSweepResponse> GrpcCoordinatorApi::Submit(
    const v1::SubmitSweepRequest& request) {
  return Call<v1::SubmitSweepResponse>(
      sweeps_.get(), &v1::SweepService::Stub::SubmitSweep, request);
}

absl::StatusOr<v1::Sweep> GrpcCoordinatorApi::GetSweep(
    const std::string& sweep_id) {
  v1::GetSweepRequest request;
  request.set_sweep_id(sweep_id);
  return Call<v1::Sweep>(sweeps_.get(), &v1::SweepService::Stub::GetSweep,
                         request);
}

absl::StatusOr<v1::ListSweepsResponse> GrpcCoordinatorApi::ListSweeps() {
  return Call<v1::ListSweepsResponse>(sweeps_.get(),
                                      &v1::SweepService::Stub::ListSweeps,
                                      v1::ListSweepsRequest());
}

absl::StatusOr<v1::Sweep> GrpcCoordinatorApi::CancelSweep(
    const std::string& sweep_id) {
  v1::CancelSweepRequest request;
  request.set_sweep_id(sweep_id);
  return Call<v1::Sweep>(sweeps_.get(), &v1::SweepService::Stub::CancelSweep,
                         request);
}

absl::StatusOr<v1::Sweep> GrpcCoordinatorApi::RetrySweep(
    const v1::RetrySweepRequest& request) {
  return Call<v1::Sweep>(sweeps_.get(), &v1::SweepService::Stub::RetrySweep,
                         request);
}

absl::StatusOr<v1::OptimalResponse> GrpcCoordinatorApi::Optimal(
    const v1::OptimalRequest& request) {
  return Call<v1::OptimalResponse>(
      analysis_.get(), &v1::AnalysisService::Stub::Optimal, request);
}

absl::StatusOr<v1::Sweep> GrpcCoordinatorApi::PauseSweep(
    const std::string& sweep_id) {
  v1::PauseSweepRequest request;
  request.set_sweep_id(sweep_id);
  return Call<v1::Sweep>(sweeps_.get(), &v1::SweepService::Stub::PauseSweep,
                         request);
}

absl::StatusOr<v1::Sweep> GrpcCoordinatorApi::ResumeSweep(
    const std::string& sweep_id) {
  v1::ResumeSweepRequest request;
  request.set_sweep_id(sweep_id);
  return Call<v1::Sweep>(sweeps_.get(), &v1::SweepService::Stub::ResumeSweep,
                         request);
}

absl::StatusOr<v1::CoordinatorInfo> GrpcCoordinatorApi::GetCoordinatorInfo() {
  return Call<v1::CoordinatorInfo>(
      cluster_.get(), &v1::ClusterService::Stub::GetCoordinatorInfo,
      v1::GetCoordinatorInfoRequest());
}

absl::StatusOr<v1::ListWorkersResponse> GrpcCoordinatorApi::ListWorkers() {
  return Call<v1::ListWorkersResponse>(cluster_.get(),
                                       &v1::ClusterService::Stub::ListWorkers,
                                       v1::ListWorkersRequest());
}

absl::StatusOr<v1::Worker> GrpcCoordinatorApi::DrainWorker(
    const std::string& worker_id) {
  v1::DrainWorkerRequest request;
  request.set_worker_id(worker_id);
  return Call<v1::Worker>(cluster_.get(),
                          &v1::ClusterService::Stub::DrainWorker, request);
}

absl::StatusOr<v1::Worker> GrpcCoordinatorApi::UndrainWorker(
    const std::string& worker_id) {
  v1::UndrainWorkerRequest request;
  request.set_worker_id(worker_id);
  return Call<v1::Worker>(cluster_.get(),
                          &v1::ClusterService::Stub::UndrainWorker, request);
}

absl::StatusOr<v1::GetTrialLogsResponse> GrpcCoordinatorApi::GetTrialLogs(
    const v1::GetTrialLogsRequest& request) {
  return Call<v1::GetTrialLogsResponse>(
      sweeps_.get(), &v1::SweepService::Stub::GetTrialLogs, request);
}

absl::StatusOr<v1::GetTrialMetricsResponse> GrpcCoordinatorApi::GetTrialMetrics(
    const v1::GetTrialMetricsRequest& request) {
  return Call<v1::GetTrialMetricsResponse>(
      sweeps_.get(), &v1::SweepService::Stub::GetTrialMetrics, request);
}

absl::StatusOr<v1::ImportSweepResponse> GrpcCoordinatorApi::ImportSweep(
    const v1::ImportSweepRequest& request) {
  return Call<v1::ImportSweepResponse>(
      sweeps_.get(), &v1::SweepService::Stub::ImportSweep, request);
}

}  // namespace isoflop::cli
