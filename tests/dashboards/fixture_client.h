// The gRPC side of the browser tests' fixtures (dashboard_fixture.cc,
// trial_fixture.cc): a fake worker and a user talking to a real coordinator,
// with the tokens from ISOFLOP_TOKEN (SweepService) and ISOFLOP_WORKER_TOKEN
// (WorkerService). Any RPC error ends the fixture with exit status 1 and the
// error on stderr, which the Python test shows.
#ifndef ISOFLOP_TESTS_DASHBOARDS_FIXTURE_CLIENT_H_
#define ISOFLOP_TESTS_DASHBOARDS_FIXTURE_CLIENT_H_

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "isoflop/v1/service.grpc.pb.h"

namespace isoflop::fixture {

// The fixture's name in its error lines; each fixture's main sets it.
inline const char* program = "fixture";

// A context with a 30 s deadline carrying the bearer token in `env`.
inline std::unique_ptr<grpc::ClientContext> Ctx(const char* env) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
  if (const char* token = std::getenv(env); token != nullptr) {
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }
  return ctx;
}

[[noreturn]] inline void Die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program, what.c_str());
  std::exit(1);
}

inline void Check(const grpc::Status& s, const char* what) {
  if (!s.ok()) Die(absl::StrCat(what, ": ", s.error_message()));
}

inline v1::LeaseRef Ref(const v1::LeaseTrialResponse& l) {
  v1::LeaseRef r;
  r.set_trial_id(l.spec().trial_id());
  r.set_attempt(l.attempt());
  r.set_lease_epoch(l.lease_epoch());
  return r;
}

struct Client {
  explicit Client(const std::string& address)
      : channel(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        sweeps(v1::SweepService::NewStub(channel)),
        workers(v1::WorkerService::NewStub(channel)) {}
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::SweepService::Stub> sweeps;
  std::unique_ptr<v1::WorkerService::Stub> workers;

  std::string Submit(const v1::SweepConfig& config) {
    v1::SubmitSweepRequest req;
    *req.mutable_config() = config;
    v1::SubmitSweepResponse res;
    Check(sweeps->SubmitSweep(Ctx("ISOFLOP_TOKEN").get(), req, &res),
          "SubmitSweep");
    return res.sweep_id();
  }
  // A worker with 4 CPU slots on host "test-host-ID".
  std::string Register(const std::string& id) {
    v1::RegisterWorkerRequest req;
    req.set_worker_id(id);
    req.mutable_resources()->set_cpu_slots(4);
    req.mutable_resources()->set_hostname("test-host-" + id);
    v1::RegisterWorkerResponse res;
    Check(workers->RegisterWorker(Ctx("ISOFLOP_WORKER_TOKEN").get(), req, &res),
          "RegisterWorker");
    return res.worker_id();
  }
  v1::LeaseTrialResponse Lease(const std::string& worker) {
    v1::LeaseTrialRequest req;
    req.set_worker_id(worker);
    req.set_free_cpu_slots(1);
    v1::LeaseTrialResponse res;
    Check(workers->LeaseTrial(Ctx("ISOFLOP_WORKER_TOKEN").get(), req, &res),
          "LeaseTrial");
    return res;
  }
  void Report(const std::string& worker, const v1::LeaseRef& lease,
              const std::vector<v1::MetricPoint>& points) {
    v1::ReportMetricsRequest req;
    req.set_worker_id(worker);
    *req.mutable_lease() = lease;
    for (const auto& p : points) *req.add_points() = p;
    v1::ReportMetricsResponse res;
    Check(workers->ReportMetrics(Ctx("ISOFLOP_WORKER_TOKEN").get(), req, &res),
          "ReportMetrics");
  }
};

}  // namespace isoflop::fixture

#endif  // ISOFLOP_TESTS_DASHBOARDS_FIXTURE_CLIENT_H_
