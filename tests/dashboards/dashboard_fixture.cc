// dashboard_fixture: puts a coordinator into the states the dashboard tests
// need, with no trainer. Subcommands (one JSON line on stdout each):
//   demo ADDRESS          a finished 3 x 4 sweep whose losses follow a known
//                         law (fake worker over gRPC); waits for its fit
//   live ADDRESS          a second sweep with one RUNNING trial and 20 steps
//   dense ADDRESS         a running trial with 12,000 train_loss points
//   degenerate ADDRESS    a finished 2 x 2 sweep: too few points for a law
//   branched ADDRESS      a finished 2 x 2 sweep of trunks and branches
//                         (schedule WSD_BRANCHED): each branch's curve
//                         starts past its trunk's checkpoint step
//   second ADDRESS        a finished 3 x 4 sweep like demo on another dataset
//                         whose losses follow another law, with val_loss
//                         points in its curves (the compare page's second
//                         sweep); waits for its final fit
//   paused ADDRESS        a running 1 x 2 sweep, paused (nothing leased)
//   report ADDRESS WORKER TRIAL ATTEMPT EPOCH STEP VALUE
//                         one train_loss point for that lease
//   bench DB TRIALS STEPS a database (coordinator stopped) with one sweep of
//                         TRIALS trials x STEPS train_loss points each
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "coordinator/store/sqlite_trial_store.h"
#include "coordinator/sweep/expand.h"
#include "grpcpp/grpcpp.h"
#include "isoflop/v1/service.grpc.pb.h"
#include "tests/dashboards/fixture_client.h"

namespace isoflop {
namespace {

using namespace std::chrono_literals;

// The known law the fake losses follow (N = n_total, D = tokens).
double Law(double n, double d) {
  return 1.5 + 60.0 / std::pow(n, 0.34) + 80.0 / std::pow(d, 0.28);
}

v1::SweepConfig Config(const std::string& name,
                       const std::vector<double>& budgets,
                       const std::vector<std::array<int, 3>>& shapes) {
  v1::SweepConfig c;
  c.set_name(name);
  c.mutable_model()->set_vocab_size(512);
  c.mutable_model()->set_context(64);
  for (double b : budgets) c.mutable_grid()->add_flops_budgets(b);
  for (const auto& [d, l, h] : shapes) {
    v1::ModelShape* s = c.mutable_grid()->add_model_shapes();
    s->set_d_model(d);
    s->set_n_layers(l);
    s->set_n_heads(h);
  }
  c.mutable_training()->set_batch_sequences(16);
  c.mutable_training()->set_lr(1e-2);
  c.mutable_training()->set_warmup_fraction(0.05);
  c.mutable_training()->set_min_lr_fraction(0.1);
  c.mutable_data()->set_dataset("kjv-bpe512");
  c.mutable_resources()->set_max_attempts(2);
  return c;
}

using fixture::Check;
using fixture::Client;
using fixture::Ctx;
using fixture::Die;
using fixture::Ref;

// The second sweep's law (the compare page's): other exponents, so its
// frontier differs from the demo's.
double OtherLaw(double n, double d) {
  return 1.6 + 30.0 / std::pow(n, 0.28) + 120.0 / std::pow(d, 0.32);
}

// A training curve that ends near `final_loss`: ~60 log-spaced steps.
// With `val`: a val_loss point (0.05 above train_loss) at every 10th of
// them and at the last.
std::vector<v1::MetricPoint> Curve(uint64_t steps, double final_loss,
                                   uint64_t last_step, bool val = false) {
  std::vector<v1::MetricPoint> out;
  uint64_t prev = 0;
  for (int i = 0; i <= 60; ++i) {
    const auto step = static_cast<uint64_t>(
        std::llround(std::pow(static_cast<double>(last_step), i / 60.0)));
    if (step <= prev || step > steps) continue;
    prev = step;
    v1::MetricPoint p;
    p.set_step(step);
    p.set_name("train_loss");
    p.set_value(final_loss + 3.0 / (1.0 + static_cast<double>(step) / 20.0));
    out.push_back(p);
    if (val && (i % 10 == 0 || i == 60)) {
      p.set_name("val_loss");
      p.set_value(p.value() + 0.05);
      out.push_back(p);
    }
    p.set_name("tokens_per_s");
    p.set_value(4000.0);
    out.push_back(p);
  }
  return out;
}

// Leases every pending trial to `worker` and reports it SUCCEEDED with the
// law's loss times (1 + noise * a fixed pseudo-random wiggle).
// `other`: OtherLaw's losses and val_loss points in the curves.
void SucceedAll(Client& c, const std::string& worker, double noise,
                bool other = false) {
  for (int i = 0;; ++i) {
    v1::LeaseTrialResponse l = c.Lease(worker);
    if (!l.has_assignment()) break;
    const v1::TrialSpec& s = l.spec();
    const auto n = static_cast<double>(s.n_total());
    const auto d = static_cast<double>(s.tokens());
    const double loss = (other ? OtherLaw(n, d) : Law(n, d)) *
                        (1 + noise * std::sin(i * 12.9898));
    std::vector<v1::MetricPoint> curve =
        Curve(s.steps(), loss, s.steps(), other);
    if (s.role() == v1::TRIAL_ROLE_BRANCH) {  // from its trunk's checkpoint on
      std::erase_if(curve, [&s](const v1::MetricPoint& p) {
        return p.step() <= s.start_step();
      });
    }
    c.Report(worker, Ref(l), curve);
    v1::ReportOutcomeRequest out;
    out.set_worker_id(worker);
    *out.mutable_lease() = Ref(l);
    out.set_outcome(v1::OUTCOME_SUCCEEDED);
    out.set_final_val_loss(loss);
    out.set_tokens_per_s(4000);
    v1::ReportOutcomeResponse res;
    Check(
        c.workers->ReportOutcome(Ctx("ISOFLOP_WORKER_TOKEN").get(), out, &res),
        "ReportOutcome");
  }
}

// `second`: the compare page's other sweep (another dataset, OtherLaw,
// val_loss points in its curves).
int Demo(const std::string& address, bool second = false) {
  Client c(address);
  v1::SweepConfig config =
      Config(second ? "demo-other-data" : "demo", {1e11, 3e11, 1e12},
             {{{32, 2, 2}}, {{48, 2, 4}}, {{64, 3, 4}}, {{96, 3, 4}}});
  if (second) config.mutable_data()->set_dataset("wiki-bpe512");
  const std::string sweep = c.Submit(config);
  const std::string worker =
      c.Register(second ? "second-worker" : "fake-worker");
  SucceedAll(c, worker, 0.002, second);
  // The coordinator stores its final fit (Approach 2 and the bootstrap)
  // when the sweep ends (seconds on 2 cores); refits come before it.
  for (int i = 0; i < 1200; ++i) {
    v1::GetSweepRequest req;
    req.set_sweep_id(sweep);
    v1::Sweep s;
    Check(c.sweeps->GetSweep(Ctx("ISOFLOP_TOKEN").get(), req, &s), "GetSweep");
    if (s.has_fit() && s.fit().final()) {
      std::printf("{\"sweep\":\"%s\",\"alpha\":%.17g,\"beta\":%.17g}\n",
                  sweep.c_str(), s.fit().alpha(), s.fit().beta());
      return 0;
    }
    std::this_thread::sleep_for(100ms);
  }
  Die("no final fit after 120 s");
}

// Polls until `sweep` has ended (120 s at most), then prints {"sweep": ID}.
int PrintWhenEnded(Client& c, const std::string& sweep, const char* what) {
  for (int i = 0; i < 1200; ++i) {
    v1::GetSweepRequest req;
    req.set_sweep_id(sweep);
    v1::Sweep s;
    Check(c.sweeps->GetSweep(Ctx("ISOFLOP_TOKEN").get(), req, &s), "GetSweep");
    if (s.state() != v1::SWEEP_RUNNING) {
      std::printf("{\"sweep\":\"%s\"}\n", sweep.c_str());
      return 0;
    }
    std::this_thread::sleep_for(100ms);
  }
  Die(absl::StrCat(what, ": sweep still running after 120 s"));
}

// A finished sweep that cannot identify a law: 2 budgets x 2 shapes (4
// points; Approach 3 needs 5). Prints {"sweep": ID} once the sweep ended.
int Degenerate(const std::string& address) {
  Client c(address);
  const std::string sweep = c.Submit(
      Config("degenerate", {1e11, 1e12}, {{{32, 2, 2}}, {{64, 3, 4}}}));
  const std::string worker = c.Register("degenerate-worker");
  SucceedAll(c, worker, 0);
  return PrintWhenEnded(c, sweep, "degenerate");
}

// Trunks and branches: a finished 2 budgets x 2 shapes branched sweep (the
// trunks succeed first, then their branches become runnable). Prints
// {"sweep": ID} once the sweep ended.
int Branched(const std::string& address) {
  Client c(address);
  v1::SweepConfig config =
      Config("branched", {1e11, 3e11}, {{{32, 2, 2}}, {{48, 2, 4}}});
  config.mutable_training()->set_schedule(v1::WSD_BRANCHED);
  const std::string sweep = c.Submit(config);
  const std::string worker = c.Register("branched-worker");
  SucceedAll(c, worker, 0);
  return PrintWhenEnded(c, sweep, "branched");
}

// A sweep paused before any trial was leased: running, paused.
int Paused(const std::string& address) {
  Client c(address);
  const std::string sweep =
      c.Submit(Config("paused", {1e11}, {{{32, 2, 2}}, {{48, 2, 4}}}));
  v1::PauseSweepRequest req;
  req.set_sweep_id(sweep);
  v1::Sweep res;
  Check(c.sweeps->PauseSweep(Ctx("ISOFLOP_TOKEN").get(), req, &res),
        "PauseSweep");
  std::printf("{\"sweep\":\"%s\"}\n", sweep.c_str());
  return 0;
}

int Live(const std::string& address) {
  Client c(address);
  const std::string sweep =
      c.Submit(Config("live", {3e11}, {{{32, 2, 2}}, {{48, 2, 4}}}));
  const std::string worker = c.Register("live-worker");
  v1::LeaseTrialResponse l = c.Lease(worker);
  if (!l.has_assignment()) Die("live: nothing to lease");
  c.Report(worker, Ref(l), Curve(l.spec().steps(), 4.0, 20));
  std::printf(
      "{\"sweep\":\"%s\",\"worker\":\"%s\",\"trial\":\"%s\",\"attempt\":%u,"
      "\"epoch\":%llu,\"steps\":%llu}\n",
      sweep.c_str(), worker.c_str(), l.spec().trial_id().c_str(), l.attempt(),
      static_cast<unsigned long long>(l.lease_epoch()),
      static_cast<unsigned long long>(l.spec().steps()));
  return 0;
}

// A running trial with one train_loss point at every step 1..min(steps,
// 12000) (value 5 - step / 10^4), more than the HTTP API serves undownsampled
// (5000): for full-resolution reads. Prints {"sweep", "trial", "points"}.
int Dense(const std::string& address) {
  Client c(address);
  const std::string sweep = c.Submit(Config("dense", {5e12}, {{{32, 2, 2}}}));
  const std::string worker = c.Register("dense-worker");
  v1::LeaseTrialResponse l = c.Lease(worker);
  if (!l.has_assignment()) Die("dense: nothing to lease");
  const uint64_t n = std::min<uint64_t>(l.spec().steps(), 12000);
  std::vector<v1::MetricPoint> batch;
  for (uint64_t step = 1; step <= n; ++step) {
    v1::MetricPoint p;
    p.set_step(step);
    p.set_name("train_loss");
    p.set_value(5.0 - static_cast<double>(step) / 1e4);
    batch.push_back(p);
    if (batch.size() == 5000 || step == n) {
      c.Report(worker, Ref(l), batch);
      batch.clear();
    }
  }
  std::printf("{\"sweep\":\"%s\",\"trial\":\"%s\",\"points\":%llu}\n",
              sweep.c_str(), l.spec().trial_id().c_str(),
              static_cast<unsigned long long>(n));
  return 0;
}

int ReportOne(char** argv) {
  Client c(argv[2]);
  v1::LeaseRef ref;
  ref.set_trial_id(argv[4]);
  uint32_t attempt = 0;
  uint64_t epoch = 0, step = 0;
  double value = 0;
  if (!absl::SimpleAtoi(argv[5], &attempt) ||
      !absl::SimpleAtoi(argv[6], &epoch) || !absl::SimpleAtoi(argv[7], &step) ||
      !absl::SimpleAtod(argv[8], &value)) {
    Die("report: ATTEMPT EPOCH STEP VALUE must be numbers");
  }
  ref.set_attempt(attempt);
  ref.set_lease_epoch(epoch);
  v1::MetricPoint p;
  p.set_step(step);
  p.set_name("train_loss");
  p.set_value(value);
  c.Report(argv[3], ref, {p});
  std::printf("{\"reported\":%llu}\n", static_cast<unsigned long long>(step));
  return 0;
}

// 10^4 trials: 50 budgets x 200 shapes, written through the real store, then
// STEPS metric rows each in one raw transaction (the coordinator is stopped).
int Bench(const std::string& db_path, int trials, int steps) {
  std::vector<double> budgets;
  std::vector<std::array<int, 3>> shapes;
  const int n_budgets = trials >= 200 ? trials / 200 : 1;
  for (int i = 0; i < n_budgets; ++i)
    budgets.push_back(1e12 * std::pow(1.1, i));
  for (int i = 0; i < trials / n_budgets; ++i)
    shapes.push_back({16 * (2 + i / 4), 2 + i % 4, 4});
  auto expanded =
      coordinator::ExpandSweep(Config("bench-10k", budgets, shapes));
  if (!expanded.ok()) Die(std::string(expanded.status().message()));
  {
    auto store = coordinator::SqliteTrialStore::Open(db_path);
    if (!store.ok()) Die(std::string(store.status().message()));
    coordinator::SweepRecord r;
    r.sweep.set_id(expanded->sweep_id);
    *r.sweep.mutable_config() = expanded->resolved;
    r.sweep.set_state(v1::SWEEP_RUNNING);
    r.sweep.set_created_unix_ms(1700000000000);
    int ordinal = 0;
    for (const v1::TrialSpec& spec : expanded->trials) {
      coordinator::TrialRecord t;
      *t.trial.mutable_spec() = spec;
      t.trial.set_state(v1::PENDING);
      t.ordinal = ordinal++;
      r.trials.push_back(t);
    }
    if (absl::Status s = (*store)->InsertSweep(r); !s.ok())
      Die(std::string(s.message()));
  }
  sqlite3* db = nullptr;
  if (sqlite3_open(db_path.c_str(), &db) != SQLITE_OK) Die("open");
  sqlite3_exec(db, "PRAGMA synchronous=OFF; BEGIN", nullptr, nullptr, nullptr);
  sqlite3_stmt* ins = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO metrics(trial_id, attempt, step, name, "
                     "value, unix_ms) VALUES(?, 1, ?, 'train_loss', ?, 0)",
                     -1, &ins, nullptr);
  sqlite3_stmt* upd = nullptr;
  sqlite3_prepare_v2(db,
                     "UPDATE trials SET state = ?, attempt = 1, worker_id = ?, "
                     "step = ?, val_loss = ?, tokens_per_s = 4000, "
                     "updated_unix_ms = ? WHERE id = ?",
                     -1, &upd, nullptr);
  int i = 0;
  for (const v1::TrialSpec& spec : expanded->trials) {
    const double final_loss = Law(static_cast<double>(spec.n_total()),
                                  static_cast<double>(spec.tokens()));
    const std::string& id = spec.trial_id();
    for (int s = 1; s <= steps; ++s) {
      sqlite3_bind_text(ins, 1, id.data(), static_cast<int>(id.size()),
                        SQLITE_STATIC);
      sqlite3_bind_int64(ins, 2, s);
      sqlite3_bind_double(ins, 3, final_loss + 3.0 / (1.0 + s / 20.0));
      sqlite3_step(ins);
      sqlite3_reset(ins);
    }
    const bool running = i % 625 == 0;  // 16 running trials of 10^4
    const std::string worker = absl::StrCat("bench-worker-", i % 8);
    sqlite3_bind_text(upd, 1, running ? "RUNNING" : "SUCCEEDED", -1,
                      SQLITE_STATIC);
    sqlite3_bind_text(upd, 2, worker.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(upd, 3, steps);
    if (running) {
      sqlite3_bind_null(upd, 4);
    } else {
      sqlite3_bind_double(upd, 4, final_loss);
    }
    sqlite3_bind_int64(upd, 5, 1700000000000 + i);
    sqlite3_bind_text(upd, 6, id.data(), static_cast<int>(id.size()),
                      SQLITE_STATIC);
    sqlite3_step(upd);
    sqlite3_reset(upd);
    ++i;
  }
  sqlite3_finalize(ins);
  sqlite3_finalize(upd);
  const int rc = sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  if (rc != SQLITE_OK) Die("commit failed");
  std::printf("{\"sweep\":\"%s\",\"trials\":%d,\"steps\":%d}\n",
              expanded->sweep_id.c_str(), i, steps);
  return 0;
}

}  // namespace
}  // namespace isoflop

int main(int argc, char** argv) {
  isoflop::fixture::program = "dashboard_fixture";
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "demo" && argc == 3) return isoflop::Demo(argv[2]);
  if (cmd == "second" && argc == 3) return isoflop::Demo(argv[2], true);
  if (cmd == "paused" && argc == 3) return isoflop::Paused(argv[2]);
  if (cmd == "live" && argc == 3) return isoflop::Live(argv[2]);
  if (cmd == "dense" && argc == 3) return isoflop::Dense(argv[2]);
  if (cmd == "degenerate" && argc == 3) return isoflop::Degenerate(argv[2]);
  if (cmd == "branched" && argc == 3) return isoflop::Branched(argv[2]);
  if (cmd == "report" && argc == 9) return isoflop::ReportOne(argv);
  int trials = 0, steps = 0;
  if (cmd == "bench" && argc == 5 && absl::SimpleAtoi(argv[3], &trials) &&
      absl::SimpleAtoi(argv[4], &steps)) {
    return isoflop::Bench(argv[2], trials, steps);
  }
  std::fprintf(
      stderr,
      "usage: dashboard_fixture demo ADDRESS | second ADDRESS | paused "
      "ADDRESS | live ADDRESS | dense ADDRESS | "
      "degenerate ADDRESS | report "
      "ADDRESS WORKER TRIAL ATTEMPT EPOCH STEP VALUE | bench DB "
      "TRIALS STEPS\n");
  return 2;
}
