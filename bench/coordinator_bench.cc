// Coordinator load benchmark (ctest label bench): one in-process coordinator
// (gRPC on loopback, SQLite in a temporary directory) and simulated workers,
// threads with their own gRPC channels that lease trials and report metric
// batches as fast as the coordinator acknowledges them (no training).
//
// Prints, in one run:
//   baseline  the store's own InsertMetrics, no gRPC (the ceiling of durable
//             ingest on this machine's SQLite)
//   lease     trials assigned per second (LeaseTrial round trips); then each
//             worker keeps 8 trials running and reports the rest succeeded
//             (the core does no provisional refits here)
//   ingest    points acknowledged per second (committed before the ack), p50
//             and p99 RPC latency, and the ratio to the baseline
//   +dash     the same with a dashboard loop: an HTTP client of the
//             coordinator's dashboard port (gzip, bearer token) requesting
//             what the sweep page requests, Q requests/s: the summary, the
//             trials page sorted by loss and the live curves, in turn; against
//             the mean of an ingest phase before and one after it, R times
//             in turn (the median ratio), and the dashboard's share of this
//             process's CPU (CPU per point against the phases around it);
//             its "database is locked" count
//
// Usage: coordinator_bench [--seconds S] [--workers W] [--batch P]
//                          [--dash-qps Q]   (dashboard requests/s; 0: flat out)
//                          [--dash-rounds R]  (dashboard phases; default 3)
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/events/event_feed.h"
#include "coordinator/http/dashboard_api.h"
#include "coordinator/http/dashboard_server.h"
#include "coordinator/service/core.h"
#include "coordinator/service/server.h"
#include "coordinator/store/sqlite_trial_store.h"
#include "grpcpp/grpcpp.h"
#include "httplib.h"
#include "isoflop/v1/service.grpc.pb.h"

namespace isoflop::coordinator {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// 20 budgets x 100 shapes = 2000 CPU trials, each with >= 1000 steps.
v1::SweepConfig BenchConfig() {
  v1::SweepConfig c;
  c.set_name("bench");
  c.mutable_model()->set_vocab_size(512);
  c.mutable_model()->set_context(64);
  for (int b = 0; b < 20; ++b)
    c.mutable_grid()->add_flops_budgets(1e15 * (1 + b));
  for (int s = 0; s < 100; ++s) {
    v1::ModelShape* shape = c.mutable_grid()->add_model_shapes();
    shape->set_d_model(32 + 2 * s);
    shape->set_n_layers(2);
    shape->set_n_heads(2);
  }
  c.mutable_training()->set_batch_sequences(16);
  c.mutable_training()->set_lr(1e-2);
  c.mutable_data()->set_dataset("bench");
  c.mutable_resources()->set_max_attempts(2);
  return c;
}

// The simulated workers carry the worker token, as isoflop-worker does.
constexpr char kWorkerBearer[] = "Bearer bench-worker-token";
constexpr size_t kRunningPerWorker = 8;
constexpr const char* kNames[] = {"train_loss", "lr", "grad_norm",
                                  "tokens_per_s"};

struct Leased {
  v1::LeaseRef ref;
  uint64_t steps = 0;
  int64_t next_key = 0;  // of the next point: the curve goes on across phases
};

// CPU seconds (user + system) this process has used so far.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct IngestResult {
  double points_per_s = 0, p50_ms = 0, p99_ms = 0;
  // This process's CPU per point: coordinator, simulated workers and, in a
  // dashboard phase, the dashboard. Less sensitive than points_per_s to
  // other processes on the machine.
  double cpu_us_per_point = 0;
  int64_t errors = 0;
};

// Each worker reports batches of `batch` new points round-robin over its
// trials until `seconds` pass: a trainer's log, train_loss, lr, grad_norm and
// tokens_per_s at each step, steps in order and going on from one phase to
// the next, so the dashboard's curves and rows change while it polls (past a
// trial's last step, suffixed names keep every point a new row).
IngestResult Ingest(const std::string& address,
                    const std::vector<std::string>& worker_ids,
                    std::vector<std::vector<Leased>>& leases, int batch,
                    double seconds) {
  std::atomic<int64_t> accepted{0}, errors{0};
  std::vector<std::vector<double>> latencies(worker_ids.size());
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  const double cpu_start = ProcessCpuSeconds();
  for (size_t w = 0; w < worker_ids.size(); ++w) {
    threads.emplace_back([&, w] {
      auto stub = v1::WorkerService::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      for (int64_t k = 0; Seconds(start) < seconds; ++k) {
        Leased& l = leases[w][k % leases[w].size()];
        v1::ReportMetricsRequest r;
        r.set_worker_id(worker_ids[w]);
        *r.mutable_lease() = l.ref;
        for (int i = 0; i < batch; ++i) {
          const int64_t key = l.next_key + i;
          v1::MetricPoint* p = r.add_points();
          const int64_t step = key / 4;
          p->set_step(static_cast<uint64_t>(step % l.steps) + 1);
          const int64_t pass = step / static_cast<int64_t>(l.steps);
          p->set_name(pass == 0 ? std::string(kNames[key % 4])
                                : absl::StrCat(kNames[key % 4], "_", pass));
          p->set_value(3.0 + 1.0 / static_cast<double>(step + 1));
        }
        l.next_key += batch;
        grpc::ClientContext ctx;
        ctx.AddMetadata("authorization", kWorkerBearer);
        v1::ReportMetricsResponse out;
        const auto t0 = Clock::now();
        const grpc::Status s = stub->ReportMetrics(&ctx, r, &out);
        latencies[w].push_back(Seconds(t0) * 1e3);
        if (s.ok()) {
          accepted += out.accepted();
        } else {
          ++errors;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double elapsed = Seconds(start);
  const double cpu_s = ProcessCpuSeconds() - cpu_start;
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  IngestResult out;
  out.points_per_s = static_cast<double>(accepted) / elapsed;
  out.p50_ms = all.empty() ? 0 : all[all.size() / 2];
  out.p99_ms = all.empty() ? 0 : all[all.size() * 99 / 100];
  out.cpu_us_per_point =
      1e6 * cpu_s / std::max<double>(1, static_cast<double>(accepted));
  out.errors = errors;
  return out;
}

int Run(double seconds, int n_workers, int batch, double dash_qps,
        int dash_rounds) {
  const fs::path dir =
      fs::temp_directory_path() / absl::StrCat("isoflop-bench-", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string db = (dir / "isoflop.db").string();
  std::printf(
      "coordinator_bench: %d workers, %d points per batch, %.0f s per "
      "phase, %u cores, database %s\n",
      n_workers, batch, seconds, std::thread::hardware_concurrency(),
      db.c_str());

  // Baseline: the store alone (its own SQLite file, no gRPC).
  double baseline = 0;
  {
    auto store = SqliteTrialStore::Open((dir / "baseline.db").string());
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      return 1;
    }
    RealClock clock;
    Core core(store->get(), &clock, {});
    v1::SubmitSweepRequest submit;
    *submit.mutable_config() = BenchConfig();
    const std::string baseline_sweep = core.Submit(submit).value().sweep_id();
    const v1::Sweep sweep = core.GetSweep(baseline_sweep).value();
    const std::string trial_id = sweep.trials(0).spec().trial_id();
    int64_t rows = 0;
    const auto start = Clock::now();
    for (int64_t k = 0; Seconds(start) < seconds; ++k) {
      std::vector<v1::MetricPoint> points(static_cast<size_t>(batch));
      for (int i = 0; i < batch; ++i) {
        // A trainer's pattern: one curve, steps in order.
        points[static_cast<size_t>(i)].set_step(
            static_cast<uint64_t>(k * batch + i + 1));
        points[static_cast<size_t>(i)].set_name("train_loss");
        points[static_cast<size_t>(i)].set_value(1.0);
      }
      rows += (*store)->InsertMetrics(trial_id, 1, points).value_or(0);
    }
    baseline = static_cast<double>(rows) / Seconds(start);
    std::printf("baseline  store.InsertMetrics, 1 thread: %.0f points/s\n",
                baseline);
  }

  auto store = SqliteTrialStore::Open(db);
  if (!store.ok()) return 1;
  RealClock clock;
  // No provisional refits: one is ~10 s of a core (analysis_bench measures
  // it) that would land in whichever phase follows the 1968 successes, and
  // skew the dashboard's ratio either way.
  Core core(store->get(), &clock,
            {.lease_ttl = absl::Seconds(3600),
             .heartbeat_interval = absl::Seconds(600),
             .refit_min_points = std::numeric_limits<int>::max()});
  auto server = CoordinatorServer::Start(
      &core, &clock,
      {.listen = "127.0.0.1:0",
       .tokens = {.user = "bench-user-token", .worker = "bench-worker-token"}});
  if (!server.ok()) return 1;
  const std::string address = (*server)->address();
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = BenchConfig();
  const std::string sweep_id = core.Submit(submit).value().sweep_id();

  // Lease every trial over gRPC, the workers in parallel.
  std::vector<std::string> worker_ids(static_cast<size_t>(n_workers));
  std::vector<std::vector<Leased>> leases(static_cast<size_t>(n_workers));
  std::vector<std::vector<double>> lease_ms(static_cast<size_t>(n_workers));
  std::vector<std::thread> threads;
  const auto lease_start = Clock::now();
  for (int w = 0; w < n_workers; ++w) {
    threads.emplace_back([&, w] {
      auto stub = v1::WorkerService::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      grpc::ClientContext rctx;
      rctx.AddMetadata("authorization", kWorkerBearer);
      v1::RegisterWorkerRequest reg;
      reg.mutable_resources()->set_cpu_slots(4096);
      reg.mutable_resources()->set_hostname(absl::StrCat("sim", w));
      v1::RegisterWorkerResponse registered;
      if (grpc::Status s = stub->RegisterWorker(&rctx, reg, &registered);
          !s.ok()) {
        std::fprintf(stderr, "register: %s\n", s.error_message().c_str());
        return;
      }
      worker_ids[static_cast<size_t>(w)] = registered.worker_id();
      while (true) {
        grpc::ClientContext ctx;
        ctx.AddMetadata("authorization", kWorkerBearer);
        v1::LeaseTrialRequest req;
        req.set_worker_id(registered.worker_id());
        req.set_free_cpu_slots(1);
        v1::LeaseTrialResponse lease;
        const auto t0 = Clock::now();
        if (grpc::Status s = stub->LeaseTrial(&ctx, req, &lease); !s.ok()) {
          std::fprintf(stderr, "lease: %s\n", s.error_message().c_str());
          break;
        }
        if (!lease.has_assignment()) break;
        lease_ms[static_cast<size_t>(w)].push_back(Seconds(t0) * 1e3);
        Leased l;
        l.ref.set_trial_id(lease.spec().trial_id());
        l.ref.set_attempt(lease.attempt());
        l.ref.set_lease_epoch(lease.lease_epoch());
        l.steps = lease.spec().steps();
        leases[static_cast<size_t>(w)].push_back(l);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double lease_s = Seconds(lease_start);
  size_t leased = 0;
  std::vector<double> all_lease_ms;
  for (int w = 0; w < n_workers; ++w) {
    leased += leases[static_cast<size_t>(w)].size();
    all_lease_ms.insert(all_lease_ms.end(),
                        lease_ms[static_cast<size_t>(w)].begin(),
                        lease_ms[static_cast<size_t>(w)].end());
  }
  std::sort(all_lease_ms.begin(), all_lease_ms.end());
  std::printf(
      "lease     %zu trials in %.2f s: %.0f trials/s assigned, p99 %.2f ms\n",
      leased, lease_s, static_cast<double>(leased) / lease_s,
      all_lease_ms.empty() ? 0.0
                           : all_lease_ms[all_lease_ms.size() * 99 / 100]);
  for (const auto& l : leases) {
    if (l.size() <= kRunningPerWorker) {
      std::fprintf(stderr, "a worker leased too few trials\n");
      return 1;
    }
  }
  // A sweep as the dashboard sees it mid-way: each worker keeps 8 trials
  // running (8 GPUs) and reports the rest succeeded.
  const auto end_start = Clock::now();
  std::atomic<size_t> ended{0};
  threads.clear();
  for (int w = 0; w < n_workers; ++w) {
    threads.emplace_back([&, w] {
      auto stub = v1::WorkerService::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      auto& mine = leases[static_cast<size_t>(w)];
      for (size_t i = kRunningPerWorker; i < mine.size(); ++i) {
        grpc::ClientContext ctx;
        ctx.AddMetadata("authorization", kWorkerBearer);
        v1::ReportOutcomeRequest r;
        r.set_worker_id(worker_ids[static_cast<size_t>(w)]);
        *r.mutable_lease() = mine[i].ref;
        r.set_outcome(v1::OUTCOME_SUCCEEDED);
        r.set_final_val_loss(3.0 + 1.0 / static_cast<double>(i));
        v1::ReportOutcomeResponse ignored;
        if (!stub->ReportOutcome(&ctx, r, &ignored).ok()) return;
        ++ended;
      }
      mine.resize(kRunningPerWorker);
    });
  }
  for (std::thread& t : threads) t.join();
  std::printf("outcome   %zu trials ended in %.2f s: %.0f outcomes/s\n",
              ended.load(), Seconds(end_start),
              static_cast<double>(ended.load()) / Seconds(end_start));

  const IngestResult alone =
      Ingest(address, worker_ids, leases, batch, seconds);
  std::printf(
      "ingest    %.0f points/s acknowledged (durable), p50 %.2f ms, p99 "
      "%.2f ms per %d-point batch, %lld errors; %.2fx the baseline\n",
      alone.points_per_s, alone.p50_ms, alone.p99_ms, batch,
      static_cast<long long>(alone.errors), alone.points_per_s / baseline);

  // The same with a dashboard polling over HTTP: the sweep page's requests
  // (sweep.js), the trials page sorted by loss (the costliest sort).
  std::ofstream(dir / "index.html") << "<!doctype html>";
  events::EventFeed feed;
  http::DashboardApi api(store->get(), &core);
  auto dashboard = http::DashboardServer::Start(
      &api, &feed,
      {.static_dir = dir.string(), .token = "bench-dashboard-token"});
  if (!dashboard.ok()) {
    std::fprintf(stderr, "%s\n", dashboard.status().ToString().c_str());
    return 1;
  }
  const std::string base = "/api/v1/sweeps/" + sweep_id;
  const std::string kPaths[] = {
      base, base + "/trials?offset=0&limit=100&sort=loss&order=asc",
      base + "/curves?select=auto&points=200&max_trials=24"};
  std::atomic<int64_t> queries{0}, locked{0}, failed{0};
  double path_ms[3] = {0, 0, 0};  // the dashboard threads' alone
  int64_t path_n[3] = {0, 0, 0};
  // Ingest while one client (a tab: its own keep-alive connection) polls.
  auto ingest_with_dashboard = [&] {
    std::atomic<bool> stop{false};
    std::thread dash([&] {
      httplib::Client client((*dashboard)->url());
      client.set_default_headers(
          {{"Authorization", "Bearer bench-dashboard-token"},
           {"Accept-Encoding", "gzip"}});
      client.set_keep_alive(true);
      const auto dash_start = Clock::now();
      for (int64_t k = 0; !stop; ++k) {
        if (dash_qps > 0 &&
            static_cast<double>(k) >= dash_qps * Seconds(dash_start)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          --k;
          continue;
        }
        const auto t0 = Clock::now();
        httplib::Result r = client.Get(kPaths[k % 3]);
        path_ms[k % 3] += Seconds(t0) * 1e3;
        ++path_n[k % 3];
        ++queries;
        if (!r || r->status != 200) {
          ++failed;
          if (r && r->body.find("locked") != std::string::npos) ++locked;
        }
      }
    });
    IngestResult out = Ingest(address, worker_ids, leases, batch, seconds);
    stop = true;
    dash.join();
    return out;
  };
  // Ingest slows as the database grows: each dashboard phase is measured
  // against the mean of the ingest phases before and after it, `rounds`
  // times in turn; the median ratio is the figure.
  std::vector<double> ratios, cpu_shares;
  IngestResult before = alone;
  int64_t errors = alone.errors;
  for (int round = 0; round < dash_rounds; ++round) {
    const int64_t queries_before = queries;
    const IngestResult with_dash = ingest_with_dashboard();
    const int64_t n = queries - queries_before;
    const IngestResult after =
        Ingest(address, worker_ids, leases, batch, seconds);
    const double reference = (before.points_per_s + after.points_per_s) / 2;
    ratios.push_back(with_dash.points_per_s / reference);
    // The dashboard's share of the phase's CPU: what it used beyond the
    // CPU per point of the ingest phases around it.
    const double cpu_reference =
        (before.cpu_us_per_point + after.cpu_us_per_point) / 2;
    cpu_shares.push_back(1 - cpu_reference / with_dash.cpu_us_per_point);
    std::printf(
        "+dash     %.0f points/s with %lld dashboard requests (%.1f/s) "
        "running, p99 %.2f ms; %.1f CPU us/point\n",
        with_dash.points_per_s, static_cast<long long>(n),
        static_cast<double>(n) / seconds, with_dash.p99_ms,
        with_dash.cpu_us_per_point);
    std::printf(
        "ingest    %.0f points/s again, %.1f CPU us/point: the dashboard "
        "phase ran at %.1f%% of the ingest phases around it; the dashboard "
        "took %.1f%% of its CPU\n",
        after.points_per_s, after.cpu_us_per_point, 100 * ratios.back(),
        100 * cpu_shares.back());
    errors += with_dash.errors + after.errors;
    before = after;
  }
  std::sort(ratios.begin(), ratios.end());
  std::sort(cpu_shares.begin(), cpu_shares.end());
  std::printf(
      "dash      median of %d rounds: %.1f%% of ingest alone (min %.1f%%, "
      "max %.1f%%), dashboard %.1f%% of the CPU (min %.1f%%, max %.1f%%); "
      "%lld request errors, %lld \"database is locked\"\n",
      dash_rounds, 100 * ratios[ratios.size() / 2], 100 * ratios.front(),
      100 * ratios.back(), 100 * cpu_shares[cpu_shares.size() / 2],
      100 * cpu_shares.front(), 100 * cpu_shares.back(),
      static_cast<long long>(failed.load()),
      static_cast<long long>(locked.load()));
  std::printf(
      "          dashboard request time (mean, HTTP with gzip): summary %.1f "
      "ms, trials page %.1f ms, curves %.1f ms\n",
      path_ms[0] / std::max<double>(1, path_n[0]),
      path_ms[1] / std::max<double>(1, path_n[1]),
      path_ms[2] / std::max<double>(1, path_n[2]));
  const http::AnswerCache::Stats answers = api.answer_stats();
  std::printf("          answers: %lld computed, %lld from memory\n",
              static_cast<long long>(answers.misses),
              static_cast<long long>(answers.hits));
  (*dashboard)->Shutdown();
  (*server)->Shutdown();
  fs::remove_all(dir);
  return errors + failed > 0 ? 1 : 0;
}

}  // namespace
}  // namespace isoflop::coordinator

int main(int argc, char** argv) {
  double seconds = 5, dash_qps = 15;
  int workers = 4, batch = 1000, dash_rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--seconds") {
      seconds = std::atof(argv[i + 1]);
    } else if (flag == "--workers") {
      workers = std::atoi(argv[i + 1]);
    } else if (flag == "--dash-qps") {
      dash_qps = std::atof(argv[i + 1]);
    } else if (flag == "--dash-rounds") {
      dash_rounds = std::atoi(argv[i + 1]);
    } else if (flag == "--batch") {
      batch = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(
          stderr,
          "usage: %s [--seconds S] [--workers W] [--batch P] [--dash-qps Q] "
          "[--dash-rounds R]\n",
          argv[0]);
      return 2;
    }
  }
  if (!(seconds > 0) || workers < 1 || batch < 1 || batch > 10000 ||
      dash_rounds < 1) {
    std::fprintf(stderr,
                 "--seconds > 0, --workers >= 1, --batch 1..10000, "
                 "--dash-rounds >= 1\n");
    return 2;
  }
  return isoflop::coordinator::Run(seconds, workers, batch, dash_qps,
                                   dash_rounds);
}
