#include "coordinator/service/grpc_services.h"

#include <string>
#include <utility>

#include "coordinator/service/metrics_read.h"

namespace isoflop::coordinator {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

template <typename T>
grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx,
                                 absl::StatusOr<T> result, T* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const grpc::Status status = ToGrpc(result.status());
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx,
                                 const absl::Status& s) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpc(s));
  return reactor;
}

// Every handler starts here: a reactor already finished with the refusal
// when the call lacks `caller`'s token (grpc_auth.h), else null.
grpc::ServerUnaryReactor* Refused(grpc::CallbackServerContext* ctx,
                                  const ServiceTokens& tokens, Caller caller) {
  grpc::Status auth = Authorize(*ctx, tokens, caller);
  if (auth.ok()) return nullptr;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(auth);
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* SweepServiceImpl::SubmitSweep(
    grpc::CallbackServerContext* ctx, const v1::SubmitSweepRequest* req,
    v1::SubmitSweepResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(ctx, core_->Submit(*req), resp);
}
grpc::ServerUnaryReactor* SweepServiceImpl::GetSweep(
    grpc::CallbackServerContext* ctx, const v1::GetSweepRequest* req,
    v1::Sweep* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(ctx, core_->GetSweep(req->sweep_id()), resp);
}
grpc::ServerUnaryReactor* SweepServiceImpl::ListSweeps(
    grpc::CallbackServerContext* ctx, const v1::ListSweepsRequest*,
    v1::ListSweepsResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(
      ctx, absl::StatusOr<v1::ListSweepsResponse>(core_->ListSweeps()), resp);
}
grpc::ServerUnaryReactor* SweepServiceImpl::CancelSweep(
    grpc::CallbackServerContext* ctx, const v1::CancelSweepRequest* req,
    v1::Sweep* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(ctx, core_->CancelSweep(req->sweep_id()), resp);
}
grpc::ServerUnaryReactor* SweepServiceImpl::RetrySweep(
    grpc::CallbackServerContext* ctx, const v1::RetrySweepRequest* req,
    v1::Sweep* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(ctx, core_->RetrySweep(*req), resp);
}
grpc::ServerUnaryReactor* SweepServiceImpl::PauseSweep(
    grpc::CallbackServerContext* ctx, const v1::PauseSweepRequest* req,
    v1::Sweep* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(ctx, core_->SetSweepPaused(req->sweep_id(), true), resp);
}
grpc::ServerUnaryReactor* SweepServiceImpl::ResumeSweep(
    grpc::CallbackServerContext* ctx, const v1::ResumeSweepRequest* req,
    v1::Sweep* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(ctx, core_->SetSweepPaused(req->sweep_id(), false), resp);
}

grpc::ServerUnaryReactor* SweepServiceImpl::GetTrialLogs(
    grpc::CallbackServerContext* ctx, const v1::GetTrialLogsRequest* req,
    v1::GetTrialLogsResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(ctx, core_->GetTrialLogs(*req), resp);
}
grpc::ServerUnaryReactor* SweepServiceImpl::GetTrialMetrics(
    grpc::CallbackServerContext* ctx, const v1::GetTrialMetricsRequest* req,
    v1::GetTrialMetricsResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  if (reader_ == nullptr) {
    return Finish(ctx, absl::UnimplementedError(
                           "GetTrialMetrics: this server has no trial reader"));
  }
  return Finish(ctx, ReadTrialMetrics(*core_, *reader_, *req), resp);
}
grpc::ServerUnaryReactor* SweepServiceImpl::ImportSweep(
    grpc::CallbackServerContext* ctx, const v1::ImportSweepRequest* req,
    v1::ImportSweepResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(ctx, core_->ImportSweep(*req), resp);
}

grpc::ServerUnaryReactor* ClusterServiceImpl::GetCoordinatorInfo(
    grpc::CallbackServerContext* ctx, const v1::GetCoordinatorInfoRequest*,
    v1::CoordinatorInfo* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  v1::CoordinatorInfo info;
  info.set_dashboard_url(dashboard_url_);
  return Finish(ctx, absl::StatusOr<v1::CoordinatorInfo>(std::move(info)),
                resp);
}
grpc::ServerUnaryReactor* ClusterServiceImpl::ListWorkers(
    grpc::CallbackServerContext* ctx, const v1::ListWorkersRequest*,
    v1::ListWorkersResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(
      ctx, absl::StatusOr<v1::ListWorkersResponse>(core_->ListWorkers()), resp);
}
grpc::ServerUnaryReactor* ClusterServiceImpl::DrainWorker(
    grpc::CallbackServerContext* ctx, const v1::DrainWorkerRequest* req,
    v1::Worker* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(ctx, core_->SetWorkerDraining(req->worker_id(), true), resp);
}
grpc::ServerUnaryReactor* ClusterServiceImpl::UndrainWorker(
    grpc::CallbackServerContext* ctx, const v1::UndrainWorkerRequest* req,
    v1::Worker* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(ctx, core_->SetWorkerDraining(req->worker_id(), false), resp);
}

grpc::ServerUnaryReactor* WorkerServiceImpl::RegisterWorker(
    grpc::CallbackServerContext* ctx, const v1::RegisterWorkerRequest* req,
    v1::RegisterWorkerResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kWorker)) return r;
  return Finish(ctx, core_->RegisterWorker(*req), resp);
}
grpc::ServerUnaryReactor* WorkerServiceImpl::LeaseTrial(
    grpc::CallbackServerContext* ctx, const v1::LeaseTrialRequest* req,
    v1::LeaseTrialResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kWorker)) return r;
  return Finish(ctx, core_->LeaseTrial(*req), resp);
}
grpc::ServerUnaryReactor* WorkerServiceImpl::Heartbeat(
    grpc::CallbackServerContext* ctx, const v1::HeartbeatRequest* req,
    v1::HeartbeatResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kWorker)) return r;
  return Finish(ctx, core_->Heartbeat(*req), resp);
}
grpc::ServerUnaryReactor* WorkerServiceImpl::ReportMetrics(
    grpc::CallbackServerContext* ctx, const v1::ReportMetricsRequest* req,
    v1::ReportMetricsResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kWorker)) return r;
  return Finish(ctx, core_->ReportMetrics(*req), resp);
}
grpc::ServerUnaryReactor* WorkerServiceImpl::ReportOutcome(
    grpc::CallbackServerContext* ctx, const v1::ReportOutcomeRequest* req,
    v1::ReportOutcomeResponse*) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kWorker)) return r;
  return Finish(ctx, core_->ReportOutcome(*req));
}

grpc::ServerUnaryReactor* WorkerServiceImpl::ReportLogs(
    grpc::CallbackServerContext* ctx, const v1::ReportLogsRequest* req,
    v1::ReportLogsResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kWorker)) return r;
  return Finish(ctx, core_->ReportLogs(*req), resp);
}

grpc::ServerBidiReactor<v1::SampleUpdate, v1::SampleJob>*
WorkerServiceImpl::ServeSamples(grpc::CallbackServerContext* ctx) {
  grpc::Status refused = Authorize(*ctx, *tokens_, Caller::kWorker);
  if (refused.ok() && relay_ != nullptr) return relay_->Open();
  if (refused.ok()) {
    refused = grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                           "this coordinator relays no sampling jobs");
  }
  // A stream finished at once with the refusal.
  class Refusal final
      : public grpc::ServerBidiReactor<v1::SampleUpdate, v1::SampleJob> {
   public:
    explicit Refusal(const grpc::Status& s) { Finish(s); }
    void OnDone() override { delete this; }
  };
  return new Refusal(refused);
}

grpc::ServerUnaryReactor* AnalysisServiceImpl::FitSweep(
    grpc::CallbackServerContext* ctx, const v1::FitSweepRequest* req,
    v1::ScalingLawFit* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  // The fit runs on the core's fit thread (seconds); this callback thread
  // returns at once and the reactor is finished from there.
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  core_->FitSweepAsync(req->sweep_id(),
                       [reactor, resp](absl::StatusOr<v1::ScalingLawFit> fit) {
                         const grpc::Status status = ToGrpc(fit.status());
                         if (fit.ok()) *resp = *std::move(fit);
                         reactor->Finish(status);
                       });
  return reactor;
}
grpc::ServerUnaryReactor* AnalysisServiceImpl::Optimal(
    grpc::CallbackServerContext* ctx, const v1::OptimalRequest* req,
    v1::OptimalResponse* resp) {
  if (auto* r = Refused(ctx, *tokens_, Caller::kUser)) return r;
  return Finish(ctx, core_->Optimal(*req), resp);
}

}  // namespace isoflop::coordinator
