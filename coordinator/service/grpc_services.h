// gRPC adapters (callback API): check the caller's bearer token
// (grpc_auth.h), call the Core (which validates), map absl::Status to
// grpc::Status with the same canonical code.
#ifndef ISOFLOP_COORDINATOR_SERVICE_GRPC_SERVICES_H_
#define ISOFLOP_COORDINATOR_SERVICE_GRPC_SERVICES_H_

#include <string>
#include <utility>

#include "coordinator/service/core.h"
#include "coordinator/service/generation_relay.h"
#include "coordinator/service/grpc_auth.h"
#include "coordinator/store/trial_reader.h"
#include "isoflop/v1/service.grpc.pb.h"

namespace isoflop::coordinator {

class SweepServiceImpl final : public v1::SweepService::CallbackService {
 public:
  // `core`, `tokens` and `reader` are not owned and must outlive the
  // service. A null `reader` refuses GetTrialMetrics (UNIMPLEMENTED).
  SweepServiceImpl(Core* core, const ServiceTokens* tokens,
                   TrialReader* reader = nullptr)
      : core_(core), tokens_(tokens), reader_(reader) {}
  grpc::ServerUnaryReactor* SubmitSweep(grpc::CallbackServerContext* ctx,
                                        const v1::SubmitSweepRequest* req,
                                        v1::SubmitSweepResponse* resp) override;
  grpc::ServerUnaryReactor* GetSweep(grpc::CallbackServerContext* ctx,
                                     const v1::GetSweepRequest* req,
                                     v1::Sweep* resp) override;
  grpc::ServerUnaryReactor* ListSweeps(grpc::CallbackServerContext* ctx,
                                       const v1::ListSweepsRequest* req,
                                       v1::ListSweepsResponse* resp) override;
  grpc::ServerUnaryReactor* CancelSweep(grpc::CallbackServerContext* ctx,
                                        const v1::CancelSweepRequest* req,
                                        v1::Sweep* resp) override;
  grpc::ServerUnaryReactor* RetrySweep(grpc::CallbackServerContext* ctx,
                                       const v1::RetrySweepRequest* req,
                                       v1::Sweep* resp) override;
  grpc::ServerUnaryReactor* PauseSweep(grpc::CallbackServerContext* ctx,
                                       const v1::PauseSweepRequest* req,
                                       v1::Sweep* resp) override;
  grpc::ServerUnaryReactor* ResumeSweep(grpc::CallbackServerContext* ctx,
                                        const v1::ResumeSweepRequest* req,
                                        v1::Sweep* resp) override;
  grpc::ServerUnaryReactor* GetTrialLogs(
      grpc::CallbackServerContext* ctx, const v1::GetTrialLogsRequest* req,
      v1::GetTrialLogsResponse* resp) override;
  grpc::ServerUnaryReactor* GetTrialMetrics(
      grpc::CallbackServerContext* ctx, const v1::GetTrialMetricsRequest* req,
      v1::GetTrialMetricsResponse* resp) override;
  grpc::ServerUnaryReactor* ImportSweep(grpc::CallbackServerContext* ctx,
                                        const v1::ImportSweepRequest* req,
                                        v1::ImportSweepResponse* resp) override;

 private:
  Core* core_;
  const ServiceTokens* tokens_;
  TrialReader* reader_;
};

class WorkerServiceImpl final : public v1::WorkerService::CallbackService {
 public:
  // `core`, `tokens` and `relay` are not owned and must outlive the
  // service. A null `relay` refuses ServeSamples (UNIMPLEMENTED).
  WorkerServiceImpl(Core* core, const ServiceTokens* tokens,
                    GenerationRelay* relay = nullptr)
      : core_(core), tokens_(tokens), relay_(relay) {}
  grpc::ServerUnaryReactor* RegisterWorker(
      grpc::CallbackServerContext* ctx, const v1::RegisterWorkerRequest* req,
      v1::RegisterWorkerResponse* resp) override;
  grpc::ServerUnaryReactor* LeaseTrial(grpc::CallbackServerContext* ctx,
                                       const v1::LeaseTrialRequest* req,
                                       v1::LeaseTrialResponse* resp) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatResponse* resp) override;
  grpc::ServerUnaryReactor* ReportMetrics(
      grpc::CallbackServerContext* ctx, const v1::ReportMetricsRequest* req,
      v1::ReportMetricsResponse* resp) override;
  grpc::ServerUnaryReactor* ReportOutcome(
      grpc::CallbackServerContext* ctx, const v1::ReportOutcomeRequest* req,
      v1::ReportOutcomeResponse* resp) override;
  grpc::ServerUnaryReactor* ReportLogs(grpc::CallbackServerContext* ctx,
                                       const v1::ReportLogsRequest* req,
                                       v1::ReportLogsResponse* resp) override;
  // The worker's sampling stream (generation_relay.h).
  grpc::ServerBidiReactor<v1::SampleUpdate, v1::SampleJob>* ServeSamples(
      grpc::CallbackServerContext* ctx) override;

 private:
  Core* core_;
  const ServiceTokens* tokens_;
  GenerationRelay* relay_;
};

class ClusterServiceImpl final : public v1::ClusterService::CallbackService {
 public:
  // `core` and `tokens` are not owned and must outlive the service.
  // `dashboard_url`: what GetCoordinatorInfo answers ("" for none).
  ClusterServiceImpl(Core* core, const ServiceTokens* tokens,
                     std::string dashboard_url = "")
      : core_(core),
        tokens_(tokens),
        dashboard_url_(std::move(dashboard_url)) {}
  grpc::ServerUnaryReactor* GetCoordinatorInfo(
      grpc::CallbackServerContext* ctx,
      const v1::GetCoordinatorInfoRequest* req,
      v1::CoordinatorInfo* resp) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest* req,
                                        v1::ListWorkersResponse* resp) override;
  grpc::ServerUnaryReactor* DrainWorker(grpc::CallbackServerContext* ctx,
                                        const v1::DrainWorkerRequest* req,
                                        v1::Worker* resp) override;
  grpc::ServerUnaryReactor* UndrainWorker(grpc::CallbackServerContext* ctx,
                                          const v1::UndrainWorkerRequest* req,
                                          v1::Worker* resp) override;

 private:
  Core* core_;
  const ServiceTokens* tokens_;
  const std::string dashboard_url_;
};

class AnalysisServiceImpl final : public v1::AnalysisService::CallbackService {
 public:
  // `core` and `tokens` are not owned and must outlive the service.
  AnalysisServiceImpl(Core* core, const ServiceTokens* tokens)
      : core_(core), tokens_(tokens) {}
  grpc::ServerUnaryReactor* FitSweep(grpc::CallbackServerContext* ctx,
                                     const v1::FitSweepRequest* req,
                                     v1::ScalingLawFit* resp) override;
  grpc::ServerUnaryReactor* Optimal(grpc::CallbackServerContext* ctx,
                                    const v1::OptimalRequest* req,
                                    v1::OptimalResponse* resp) override;

 private:
  Core* core_;
  const ServiceTokens* tokens_;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_GRPC_SERVICES_H_
