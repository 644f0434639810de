// FitSweep over gRPC on a 2,000-trial sweep (the final fit: Approach 2 and 3
// with a bootstrap, seconds) does not delay heartbeats: the fit runs on the
// core's fit thread, the RPC waits asynchronously, and a heartbeat takes
// only the lease table's lock (docs/architecture.md §1.1). Real SQLite file,
// real gRPC on loopback; prints the heartbeat latency figures.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/service/core.h"
#include "coordinator/service/server.h"
#include "coordinator/store/sqlite_trial_store.h"
#include "coordinator/sweep/expand.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "isoflop/v1/service.grpc.pb.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::FreshDir;
using ::isoflop::coordinator::testing::SmallConfig;
using Steady = std::chrono::steady_clock;

constexpr char kUser[] = "fit-user-token";
constexpr char kWorker[] = "fit-worker-token";

// 20 budgets x 100 shapes = 2,000 CPU trials (as bench/coordinator_bench.cc).
v1::SweepConfig BigConfig() {
  v1::SweepConfig c = SmallConfig();
  c.set_name("fit-2000");
  c.mutable_grid()->clear_flops_budgets();
  c.mutable_grid()->clear_model_shapes();
  for (int b = 0; b < 20; ++b)
    c.mutable_grid()->add_flops_budgets(1e15 * (1 + b));
  for (int s = 0; s < 100; ++s) {
    v1::ModelShape* shape = c.mutable_grid()->add_model_shapes();
    shape->set_d_model(32 + 2 * s);
    shape->set_n_layers(2);
    shape->set_n_heads(2);
  }
  return c;
}

// Chinchilla's law (Hoffmann et al. 2022, Approach 3) with a deterministic
// ±1% wobble: points a fit has to work on.
double Loss(const v1::TrialSpec& s, int i) {
  const double n = static_cast<double>(s.n_total());
  const double d = static_cast<double>(s.tokens());
  const double law =
      1.69 + 406.4 / std::pow(n, 0.34) + 410.7 / std::pow(d, 0.28);
  return law * (1.0 + 0.01 * std::sin(1.7 * i));
}

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

TEST(FitHeartbeat, FitSweepOnTwoThousandTrialsDoesNotDelayHeartbeats) {
  const std::string dir = FreshDir();
  auto store = SqliteTrialStore::Open(dir + "/isoflop.db");
  ASSERT_TRUE(store.ok()) << store.status();
  // The ended sweep, stored as a coordinator would have left it (with a
  // placeholder final fit, so that Recover queues none of its own).
  {
    absl::StatusOr<ExpandedSweep> e = ExpandSweep(BigConfig(), "fit-2000");
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_EQ(e->trials.size(), 2000u);
    SweepRecord r;
    r.sweep.set_id(e->sweep_id);
    *r.sweep.mutable_config() = e->resolved;
    r.sweep.set_state(v1::SWEEP_SUCCEEDED);
    r.sweep.set_created_unix_ms(1);
    for (size_t i = 0; i < e->trials.size(); ++i) {
      TrialRecord t;
      t.ordinal = static_cast<int>(i);
      *t.trial.mutable_spec() = e->trials[i];
      t.trial.set_state(v1::SUCCEEDED);
      t.trial.set_attempt(1);
      t.trial.set_step(e->trials[i].steps());
      t.trial.set_train_loss(std::nan(""));
      t.trial.set_val_loss(Loss(e->trials[i], static_cast<int>(i)));
      t.trial.set_tokens_per_s(std::nan(""));
      t.trial.set_updated_unix_ms(1);
      t.lease_epoch = i + 1;
      r.trials.push_back(std::move(t));
    }
    ASSERT_TRUE((*store)->InsertSweep(r).ok());
    ASSERT_TRUE((*store)->UpdateTrials(r.trials).ok());  // states, losses
    v1::ScalingLawFit placeholder;
    placeholder.set_final(true);
    placeholder.set_message("placeholder");
    ASSERT_TRUE((*store)->StoreFit(r.sweep.id(), placeholder, 1).ok());
  }
  RealClock clock;
  Core core(store->get(), &clock,
            {.lease_ttl = absl::Seconds(60),
             .heartbeat_interval = absl::Seconds(2),
             .bootstrap_resamples = 20});
  ASSERT_TRUE(core.Recover().ok());
  auto server = CoordinatorServer::Start(
      &core, &clock,
      {.listen = "127.0.0.1:0", .tokens = {.user = kUser, .worker = kWorker}});
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(),
                                     grpc::InsecureChannelCredentials());
  auto workers = v1::WorkerService::NewStub(channel);
  auto analysis = v1::AnalysisService::NewStub(grpc::CreateChannel(
      (*server)->address(), grpc::InsecureChannelCredentials()));
  const auto call = [](grpc::ClientContext& ctx, const char* token) {
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(600));
  };

  // One worker holding one lease of a small running sweep.
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = SmallConfig();
  ASSERT_TRUE(core.Submit(submit).ok());
  v1::RegisterWorkerResponse registered;
  {
    grpc::ClientContext ctx;
    call(ctx, kWorker);
    v1::RegisterWorkerRequest r;
    r.mutable_resources()->set_cpu_slots(1);
    ASSERT_TRUE(workers->RegisterWorker(&ctx, r, &registered).ok());
  }
  v1::HeartbeatRequest beat;
  beat.set_worker_id(registered.worker_id());
  {
    grpc::ClientContext ctx;
    call(ctx, kWorker);
    v1::LeaseTrialRequest r;
    r.set_worker_id(registered.worker_id());
    r.set_free_cpu_slots(1);
    v1::LeaseTrialResponse lease;
    ASSERT_TRUE(workers->LeaseTrial(&ctx, r, &lease).ok());
    ASSERT_TRUE(lease.has_assignment());
    v1::LeaseRef* ref = beat.add_leases();
    ref->set_trial_id(lease.spec().trial_id());
    ref->set_attempt(lease.attempt());
    ref->set_lease_epoch(lease.lease_epoch());
  }
  // Heartbeats every 10 ms (a worker sends one per 2 s; this is 200 of
  // them) until `until` says stop; their latencies in ms.
  const auto heartbeats = [&](const std::function<bool()>& until) {
    std::vector<double> ms;
    while (!until()) {
      grpc::ClientContext ctx;
      call(ctx, kWorker);
      v1::HeartbeatResponse out;
      const auto t0 = Steady::now();
      const grpc::Status s = workers->Heartbeat(&ctx, beat, &out);
      ms.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0)
                       .count());
      EXPECT_TRUE(s.ok()) << s.error_message();
      EXPECT_EQ(out.revoked_size(), 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return ms;
  };

  const auto quiet_until = Steady::now() + std::chrono::seconds(2);
  const std::vector<double> quiet =
      heartbeats([&] { return Steady::now() >= quiet_until; });

  std::atomic<bool> fitted{false};
  grpc::Status fit_status;
  v1::ScalingLawFit fit;
  double fit_s = 0;
  std::thread fitter([&] {
    grpc::ClientContext ctx;
    call(ctx, kUser);
    v1::FitSweepRequest r;
    r.set_sweep_id("fit-2000");
    const auto t0 = Steady::now();
    fit_status = analysis->FitSweep(&ctx, r, &fit);
    fit_s = std::chrono::duration<double>(Steady::now() - t0).count();
    fitted.store(true);
  });
  const std::vector<double> during = heartbeats([&] { return fitted.load(); });
  fitter.join();

  ASSERT_TRUE(fit_status.ok()) << fit_status.error_message();
  EXPECT_EQ(fit.n_points(), 2000u);
  EXPECT_TRUE(fit.final());
  EXPECT_TRUE(fit.has_approach2());
  EXPECT_GT(fit.alpha(), 0);
  const double p50 = Percentile(during, 0.50);
  const double p99 = Percentile(during, 0.99);
  std::printf(
      "fit_heartbeat: FitSweep of 2000 trials (final, bootstrap 20) took "
      "%.2f s (fit %.2f s); %zu heartbeats during it: p50 %.2f ms, p99 "
      "%.2f ms, max %.2f ms; %zu before it: p50 %.2f ms, p99 %.2f ms\n",
      fit_s, fit.fit_seconds(), during.size(), p50, p99,
      *std::max_element(during.begin(), during.end()), quiet.size(),
      Percentile(quiet, 0.5), Percentile(quiet, 0.99));
  // The measurement means something only if the fit took a while.
  EXPECT_GT(fit_s, 1.0);
  ASSERT_GE(during.size(), 50u);
  // Generous for a loaded 2-core machine; a heartbeat that waited for the
  // fit would take its seconds.
  EXPECT_LT(p99, 500.0);
  (*server)->Shutdown();
}

}  // namespace
}  // namespace isoflop::coordinator
