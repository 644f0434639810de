// Fuzzes the coordinator's RPC surface: a sequence of worker, sweep, cluster
// and trial-log requests, each decoded from fuzzer bytes as protobuf wire
// format, applied to a Core (the layer that validates every RPC field) over a
// FakeTrialStore. Half the requests get the real worker id and lease spliced in
// so the fuzzer reaches the deep paths (metrics, outcomes, stale epochs) and
// not only the "unknown worker" refusals. Any crash, sanitizer report or broken
// invariant is a bug; refusals are expected. fuzz/rpc_seeds.py writes a seed
// input per request type (and says how an input is laid out).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/fake_clock.h"
#include "coordinator/service/core.h"
#include "coordinator/store/fake_trial_store.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {
namespace {

v1::SweepConfig SmallSweep() {
  v1::SweepConfig c;
  c.set_name("fuzz");
  c.mutable_model()->set_vocab_size(64);
  c.mutable_model()->set_context(16);
  c.mutable_grid()->add_flops_budgets(1e9);
  c.mutable_grid()->add_flops_budgets(3e9);
  for (int d : {16, 32}) {
    v1::ModelShape* s = c.mutable_grid()->add_model_shapes();
    s->set_d_model(d);
    s->set_n_layers(1);
    s->set_n_heads(2);
  }
  c.mutable_training()->set_batch_sequences(4);
  c.mutable_training()->set_lr(1e-3);
  c.mutable_data()->set_dataset("fuzz");
  return c;
}

template <typename Message>
Message Decode(FuzzedDataProvider& in) {
  Message m;
  const std::string bytes = in.ConsumeRandomLengthString(256);
  (void)m.ParseFromString(bytes);  // a failed parse leaves a partial message
  return m;
}

}  // namespace
}  // namespace isoflop::coordinator

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace isoflop::coordinator;  // NOLINT(google-build-using-namespace)
  namespace v1 = isoflop::v1;
  FuzzedDataProvider in(data, size);
  isoflop::FakeClock clock;
  FakeTrialStore store;
  Core core(&store, &clock, CoreOptions{.fit_threads = 1});

  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = SmallSweep();
  const std::string sweep_id = core.Submit(submit).value().sweep_id();
  v1::RegisterWorkerRequest reg;
  reg.set_worker_id("wk-fuzz");
  reg.mutable_resources()->set_cpu_slots(4);
  (void)core.RegisterWorker(reg);
  v1::LeaseTrialRequest lease_request;
  lease_request.set_worker_id("wk-fuzz");
  lease_request.set_free_cpu_slots(4);
  v1::LeaseRef lease;
  if (auto r = core.LeaseTrial(lease_request); r.ok() && r->has_assignment()) {
    lease.set_trial_id(r->spec().trial_id());
    lease.set_attempt(r->attempt());
    lease.set_lease_epoch(r->lease_epoch());
  }

  while (in.remaining_bytes() > 0) {
    const bool splice = in.ConsumeBool();
    switch (in.ConsumeIntegralInRange<int>(0, 17)) {
      case 0: {
        auto r = Decode<v1::RegisterWorkerRequest>(in);
        (void)core.RegisterWorker(r);
        break;
      }
      case 1: {
        auto r = Decode<v1::LeaseTrialRequest>(in);
        if (splice) r.set_worker_id("wk-fuzz");
        (void)core.LeaseTrial(r);
        break;
      }
      case 2: {
        auto r = Decode<v1::HeartbeatRequest>(in);
        if (splice) {
          r.set_worker_id("wk-fuzz");
          *r.add_leases() = lease;
        }
        (void)core.Heartbeat(r);
        break;
      }
      case 3: {
        auto r = Decode<v1::ReportMetricsRequest>(in);
        if (splice) {
          r.set_worker_id("wk-fuzz");
          *r.mutable_lease() = lease;
        }
        (void)core.ReportMetrics(r);
        break;
      }
      case 4: {
        auto r = Decode<v1::ReportOutcomeRequest>(in);
        if (splice) {
          r.set_worker_id("wk-fuzz");
          *r.mutable_lease() = lease;
        }
        (void)core.ReportOutcome(r);
        break;
      }
      case 5: {
        auto r = Decode<v1::GetSweepRequest>(in);
        (void)core.GetSweep(splice ? sweep_id : r.sweep_id());
        break;
      }
      case 6: {
        auto r = Decode<v1::CancelSweepRequest>(in);
        (void)core.CancelSweep(splice ? sweep_id : r.sweep_id());
        break;
      }
      case 7: {
        auto r = Decode<v1::OptimalRequest>(in);
        (void)core.Optimal(r);
        break;
      }
      case 8: {
        auto r = Decode<v1::SubmitSweepRequest>(in);
        (void)core.Submit(r);
        break;
      }
      case 9:
        clock.Advance(absl::Seconds(in.ConsumeIntegralInRange<int>(0, 120)));
        core.ReapExpiredLeases(clock.Now());
        break;
      case 10: {
        (void)Decode<v1::ListWorkersRequest>(in);  // no fields yet
        (void)core.ListWorkers();
        break;
      }
      case 11:
      case 12: {
        // DrainWorker / UndrainWorker share one request shape.
        auto r = Decode<v1::DrainWorkerRequest>(in);
        (void)core.SetWorkerDraining(splice ? "wk-fuzz" : r.worker_id(),
                                     /*draining=*/in.ConsumeBool());
        break;
      }
      case 13: {
        auto r = Decode<v1::PauseSweepRequest>(in);
        (void)core.SetSweepPaused(splice ? sweep_id : r.sweep_id(), true);
        break;
      }
      case 14: {
        auto r = Decode<v1::ResumeSweepRequest>(in);
        (void)core.SetSweepPaused(splice ? sweep_id : r.sweep_id(), false);
        break;
      }
      case 15: {
        auto r = Decode<v1::RetrySweepRequest>(in);
        if (splice) r.set_sweep_id(sweep_id);
        (void)core.RetrySweep(r);
        break;
      }
      case 16: {
        auto r = Decode<v1::ReportLogsRequest>(in);
        if (splice) {
          r.set_worker_id("wk-fuzz");
          *r.mutable_lease() = lease;
        }
        (void)core.ReportLogs(r);
        break;
      }
      case 17: {
        auto r = Decode<v1::GetTrialLogsRequest>(in);
        if (splice) r.set_trial_id(lease.trial_id());
        (void)core.GetTrialLogs(r);
        break;
      }
    }
  }
  // Invariants: every sweep the core lists can be read back, and so can the
  // log of the leased trial (from any offset, never past what was kept).
  const v1::ListSweepsResponse sweeps = core.ListSweeps();
  for (const v1::Sweep& s : sweeps.sweeps()) {
    if (!core.GetSweep(s.id()).ok()) __builtin_trap();
  }
  if (!lease.trial_id().empty()) {
    v1::GetTrialLogsRequest logs;
    logs.set_trial_id(lease.trial_id());
    auto r = core.GetTrialLogs(logs);
    if (!r.ok() || r->data().size() > r->next_offset() - r->first_offset()) {
      __builtin_trap();
    }
  }
  return 0;
}
