// trial_fixture: puts a coordinator into the states the trial page's
// browser test (trial_browser_test.py) needs, with no trainer: a fake worker
// over gRPC. Subcommands (one JSON line on stdout each):
//   running ADDRESS   a sweep with one RUNNING trial: train_loss at steps
//                     1..20, val_loss at 10 and 20, tokens_per_s 12345 at
//                     20, 20 log lines; and a
//                     second worker that registers and then falls silent
//                     (lost after 3 heartbeat intervals)
//   more ADDRESS WORKER TRIAL ATTEMPT EPOCH STEP OFFSET
//                     train_loss and val_loss at STEP and one log line
//                     ("live line at step STEP") at log byte OFFSET
//   beat ADDRESS WORKER TRIAL ATTEMPT EPOCH SECONDS
//                     heartbeats for that lease every 0.2 s for SECONDS
//                     (the worker stays live); prints one line first
// Tokens: ISOFLOP_TOKEN and ISOFLOP_WORKER_TOKEN in the environment.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "isoflop/v1/service.grpc.pb.h"
#include "tests/dashboards/fixture_client.h"

namespace isoflop {
namespace {

using namespace std::chrono_literals;

using fixture::Check;
using fixture::Ctx;
using fixture::Die;

// The fixtures' client with the trial page's metrics and log lines.
struct Client : fixture::Client {
  using fixture::Client::Client;
  void Metrics(const std::string& worker, const v1::LeaseRef& lease,
               const std::vector<std::pair<uint64_t, double>>& train,
               const std::vector<std::pair<uint64_t, double>>& val,
               const std::vector<std::pair<uint64_t, double>>& rate = {}) {
    v1::ReportMetricsRequest req;
    req.set_worker_id(worker);
    *req.mutable_lease() = lease;
    for (const auto& [name, points] :
         {std::pair{"train_loss", &train}, std::pair{"val_loss", &val},
          std::pair{"tokens_per_s", &rate}}) {
      for (const auto& [step, value] : *points) {
        v1::MetricPoint* p = req.add_points();
        p->set_step(step);
        p->set_name(name);
        p->set_value(value);
      }
    }
    v1::ReportMetricsResponse res;
    Check(workers->ReportMetrics(Ctx("ISOFLOP_WORKER_TOKEN").get(), req, &res),
          "ReportMetrics");
  }
  uint64_t Logs(const std::string& worker, const v1::LeaseRef& lease,
                uint64_t offset, const std::string& data) {
    v1::ReportLogsRequest req;
    req.set_worker_id(worker);
    *req.mutable_lease() = lease;
    req.set_offset(offset);
    req.set_data(data);
    v1::ReportLogsResponse res;
    Check(workers->ReportLogs(Ctx("ISOFLOP_WORKER_TOKEN").get(), req, &res),
          "ReportLogs");
    return res.next_offset();
  }
};

double Loss(uint64_t step) { return 4.0 - 0.02 * static_cast<double>(step); }

int Running(const std::string& address) {
  Client c(address);
  v1::SubmitSweepRequest submit;
  v1::SweepConfig& config = *submit.mutable_config();
  config.set_name("trialpage");
  config.mutable_model()->set_vocab_size(512);
  config.mutable_model()->set_context(64);
  config.mutable_grid()->add_flops_budgets(3e11);
  v1::ModelShape* s = config.mutable_grid()->add_model_shapes();
  s->set_d_model(32);
  s->set_n_layers(2);
  s->set_n_heads(2);
  config.mutable_training()->set_batch_sequences(16);
  config.mutable_training()->set_lr(1e-2);
  config.mutable_training()->set_warmup_fraction(0.05);
  config.mutable_training()->set_min_lr_fraction(0.1);
  config.mutable_data()->set_dataset("kjv-bpe512");
  v1::SubmitSweepResponse submitted;
  Check(c.sweeps->SubmitSweep(Ctx("ISOFLOP_TOKEN").get(), submit, &submitted),
        "SubmitSweep");
  const std::string worker = "trial-worker";
  c.Register(worker);
  c.Register("gone-worker");  // never heard from again: lost
  v1::LeaseTrialRequest lease;
  lease.set_worker_id(worker);
  lease.set_free_cpu_slots(1);
  v1::LeaseTrialResponse l;
  Check(c.workers->LeaseTrial(Ctx("ISOFLOP_WORKER_TOKEN").get(), lease, &l),
        "LeaseTrial");
  if (!l.has_assignment()) Die("running: nothing to lease");
  v1::LeaseRef ref;
  ref.set_trial_id(l.spec().trial_id());
  ref.set_attempt(l.attempt());
  ref.set_lease_epoch(l.lease_epoch());
  std::vector<std::pair<uint64_t, double>> train;
  for (uint64_t step = 1; step <= 20; ++step)
    train.emplace_back(step, Loss(step));
  c.Metrics(worker, ref, train, {{10, Loss(10) + 0.1}, {20, Loss(20) + 0.1}},
            {{20, 12345.0}});
  std::string log;
  for (int step = 1; step <= 20; ++step) {
    absl::StrAppend(&log, "step ", step, " train_loss ", Loss(step), "\n");
  }
  const uint64_t offset = c.Logs(worker, ref, 0, log);
  std::printf(
      "{\"sweep\":\"%s\",\"worker\":\"%s\",\"trial\":\"%s\",\"attempt\":%u,"
      "\"epoch\":%llu,\"log_offset\":%llu}\n",
      submitted.sweep_id().c_str(), worker.c_str(), ref.trial_id().c_str(),
      ref.attempt(), static_cast<unsigned long long>(ref.lease_epoch()),
      static_cast<unsigned long long>(offset));
  return 0;
}

int More(char** argv) {
  Client c(argv[2]);
  v1::LeaseRef ref;
  ref.set_trial_id(argv[4]);
  uint32_t attempt = 0;
  uint64_t epoch = 0, step = 0, offset = 0;
  if (!absl::SimpleAtoi(argv[5], &attempt) ||
      !absl::SimpleAtoi(argv[6], &epoch) || !absl::SimpleAtoi(argv[7], &step) ||
      !absl::SimpleAtoi(argv[8], &offset)) {
    Die("more: ATTEMPT EPOCH STEP OFFSET must be integers");
  }
  ref.set_attempt(attempt);
  ref.set_lease_epoch(epoch);
  c.Metrics(argv[3], ref, {{step, Loss(step)}}, {{step, Loss(step) + 0.1}});
  const uint64_t next = c.Logs(argv[3], ref, offset,
                               absl::StrCat("live line at step ", step, "\n"));
  std::printf("{\"next_offset\":%llu}\n",
              static_cast<unsigned long long>(next));
  return 0;
}

int Beat(char** argv) {
  Client c(argv[2]);
  v1::HeartbeatRequest req;
  req.set_worker_id(argv[3]);
  v1::LeaseRef* ref = req.add_leases();
  ref->set_trial_id(argv[4]);
  uint32_t attempt = 0;
  uint64_t epoch = 0;
  int seconds = 0;
  if (!absl::SimpleAtoi(argv[5], &attempt) ||
      !absl::SimpleAtoi(argv[6], &epoch) ||
      !absl::SimpleAtoi(argv[7], &seconds)) {
    Die("beat: ATTEMPT EPOCH SECONDS must be integers");
  }
  ref->set_attempt(attempt);
  ref->set_lease_epoch(epoch);
  const auto end = std::chrono::steady_clock::now() + seconds * 1s;
  bool first = true;
  while (std::chrono::steady_clock::now() < end) {
    v1::HeartbeatResponse res;
    Check(c.workers->Heartbeat(Ctx("ISOFLOP_WORKER_TOKEN").get(), req, &res),
          "Heartbeat");
    if (first) {
      std::printf("{\"beating\":\"%s\"}\n", argv[3]);
      std::fflush(stdout);
      first = false;
    }
    std::this_thread::sleep_for(200ms);
  }
  return 0;
}

}  // namespace
}  // namespace isoflop

int main(int argc, char** argv) {
  isoflop::fixture::program = "trial_fixture";
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "running" && argc == 3) return isoflop::Running(argv[2]);
  if (cmd == "more" && argc == 9) return isoflop::More(argv);
  if (cmd == "beat" && argc == 8) return isoflop::Beat(argv);
  std::fprintf(stderr,
               "usage: trial_fixture running ADDRESS | more ADDRESS WORKER "
               "TRIAL ATTEMPT EPOCH STEP OFFSET | beat ADDRESS WORKER TRIAL "
               "ATTEMPT EPOCH SECONDS\n");
  return 2;
}
