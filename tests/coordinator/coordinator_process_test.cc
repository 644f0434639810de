// Integration: the real isoflop-coordinator binary on a loopback port with a
// temporary SQLite file, driven by a gRPC client acting as CLI and worker.
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "isoflop/v1/service.grpc.pb.h"
#include "tests/coordinator/test_configs.h"
#include "tests/integration/subprocess.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::FreshDir;
using ::isoflop::coordinator::testing::SmallConfig;
using ::isoflop::testing::ExitStatus;
using ::isoflop::testing::ReadFile;
using ::isoflop::testing::RunToCompletion;
using ::isoflop::testing::Subprocess;
using ::isoflop::testing::WaitForText;
using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr char kListening[] = "isoflop-coordinator: listening on ";

double Law(const v1::TrialSpec& s) {
  return 2.0 + 300.0 / std::pow(static_cast<double>(s.n_total()), 0.4) +
         500.0 / std::pow(static_cast<double>(s.tokens()), 0.3);
}

// Every call has a deadline and, unless `token` is empty, the
// bearer token.
std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = "") {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + 10s);
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  return ctx;
}

// One coordinator process; SIGKILLed at destruction if still running.
class Coordinator {
 public:
  // Short leases (1.5 s, heartbeats 0.5 s) unless `long_leases` (60 s, 10 s).
  explicit Coordinator(const std::string& dir, bool long_leases = false)
      : log_(absl::StrCat(dir, "/coordinator-", ++starts_, ".log")),
        process_(
            {ISOFLOP_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db",
             dir + "/isoflop.db", "--lease-ttl-s", long_leases ? "60" : "1.5",
             "--heartbeat-interval-s", long_leases ? "10" : "0.5"},
            log_) {
    EXPECT_TRUE(WaitForText(log_, kListening, 20s)) << ReadFile(log_);
    const std::string text = ReadFile(log_);
    const size_t at = text.find(kListening) + sizeof(kListening) - 1;
    address_ = text.substr(at, text.find('\n', at) - at);
    // Written (0600) before the server listens.
    user_token_ =
        std::string(absl::StripAsciiWhitespace(ReadFile(dir + "/token")));
    worker_token_ = std::string(
        absl::StripAsciiWhitespace(ReadFile(dir + "/worker_token")));
    channel_ =
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    sweeps_ = v1::SweepService::NewStub(channel_);
    workers_ = v1::WorkerService::NewStub(channel_);
    analysis_ = v1::AnalysisService::NewStub(channel_);
    cluster_ = v1::ClusterService::NewStub(channel_);
  }
  ExitStatus Stop() {
    process_.Signal(SIGTERM);
    std::optional<ExitStatus> status = process_.Wait(20s);
    EXPECT_TRUE(status.has_value()) << "no exit after SIGTERM";
    return status.value_or(ExitStatus{});
  }

  void Kill() {
    process_.Signal(SIGKILL);
    EXPECT_TRUE(process_.Wait(10s).has_value());
  }

  const std::string& address() const { return address_; }
  const std::string& log() const { return log_; }
  const std::string& user_token() const { return user_token_; }
  const std::string& worker_token() const { return worker_token_; }
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<v1::AnalysisService::Stub> analysis_;
  std::unique_ptr<v1::ClusterService::Stub> cluster_;

 private:
  static inline int starts_ = 0;
  std::string log_;
  Subprocess process_;
  std::string address_;
  std::string user_token_;
  std::string worker_token_;
};

v1::Sweep GetSweep(Coordinator& c, const std::string& id) {
  v1::GetSweepRequest request;
  request.set_sweep_id(id);
  v1::Sweep sweep;
  grpc::Status s =
      c.sweeps_->GetSweep(Ctx(c.user_token()).get(), request, &sweep);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return sweep;
}

// Submits SmallConfig() with the user token; its sweep id ("" after a failed
// expectation).
std::string SubmitSmall(Coordinator& c) {
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = SmallConfig();
  v1::SubmitSweepResponse submitted;
  const grpc::Status s =
      c.sweeps_->SubmitSweep(Ctx(c.user_token()).get(), submit, &submitted);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return submitted.sweep_id();
}

// Polls until `done(sweep)` or 60 s pass (a real process: no other way).
v1::Sweep WaitFor(Coordinator& c, const std::string& id,
                  bool (*done)(const v1::Sweep&)) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  v1::Sweep sweep = GetSweep(c, id);
  while (!done(sweep) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    sweep = GetSweep(c, id);
  }
  return sweep;
}

v1::LeaseTrialResponse Lease(Coordinator& c, const std::string& worker) {
  v1::LeaseTrialRequest request;
  request.set_worker_id(worker);
  request.set_free_cpu_slots(1);
  v1::LeaseTrialResponse lease;
  grpc::Status s =
      c.workers_->LeaseTrial(Ctx(c.worker_token()).get(), request, &lease);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return lease;
}

v1::LeaseRef Ref(const v1::LeaseTrialResponse& lease) {
  v1::LeaseRef ref;
  ref.set_trial_id(lease.spec().trial_id());
  ref.set_attempt(lease.attempt());
  ref.set_lease_epoch(lease.lease_epoch());
  return ref;
}

// Reports steps 1..3 (train_loss, lr) and the final val_loss, twice (a
// re-sent batch), then success. Returns the points in one batch.
int RunTrial(Coordinator& c, const std::string& worker,
             const v1::LeaseTrialResponse& lease) {
  v1::ReportMetricsRequest metrics;
  metrics.set_worker_id(worker);
  *metrics.mutable_lease() = Ref(lease);
  for (uint64_t step = 1; step <= 3; ++step) {
    for (auto [name, value] :
         {std::pair{"train_loss", 6.0 - step}, std::pair{"lr", 1e-3}}) {
      v1::MetricPoint* p = metrics.add_points();
      p->set_step(step), p->set_name(name), p->set_value(value),
          p->set_unix_ms(1);
    }
  }
  v1::MetricPoint* final_point = metrics.add_points();
  final_point->set_step(lease.spec().steps());
  final_point->set_name("val_loss");
  final_point->set_value(Law(lease.spec()));
  v1::ReportMetricsResponse accepted;
  EXPECT_TRUE(
      c.workers_->ReportMetrics(Ctx(c.worker_token()).get(), metrics, &accepted)
          .ok());
  EXPECT_EQ(accepted.accepted(), static_cast<uint32_t>(metrics.points_size()));
  EXPECT_TRUE(
      c.workers_->ReportMetrics(Ctx(c.worker_token()).get(), metrics, &accepted)
          .ok());
  EXPECT_EQ(accepted.accepted(), 0u);
  v1::ReportOutcomeRequest outcome;
  outcome.set_worker_id(worker);
  *outcome.mutable_lease() = Ref(lease);
  outcome.set_outcome(v1::OUTCOME_SUCCEEDED);
  outcome.set_final_val_loss(Law(lease.spec()));
  outcome.set_tokens_per_s(1000);
  v1::ReportOutcomeResponse ignored;
  grpc::Status s =
      c.workers_->ReportOutcome(Ctx(c.worker_token()).get(), outcome, &ignored);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return metrics.points_size();
}

std::string QueryText(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* stmt = nullptr;
  std::string out = "<error>";
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

// grpc.health.v1.Health/Check through a generic stub: an empty request
// (service ""), and SERVING is the response bytes 08 01.
std::string HealthCheckBytes(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::ByteBuffer request(nullptr, 0), response;
  std::promise<grpc::Status> done;
  auto ctx = Ctx();
  stub.UnaryCall(ctx.get(), "/grpc.health.v1.Health/Check", {}, &request,
                 &response,
                 [&done](const grpc::Status& s) { done.set_value(s); });
  if (!done.get_future().get().ok()) return "<failed>";
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes;
}

// Issue 18, defect 11, over real gRPC: the server's own rules, whatever the
// client, each refusal naming its field; nothing is stored.
TEST(CoordinatorProcess, RefusesHostileConfigsOverGrpcNamingTheField) {
  Coordinator c(FreshDir());
  const auto with = [](const std::function<void(v1::SweepConfig&)>& mutate) {
    v1::SubmitSweepRequest r;
    *r.mutable_config() = SmallConfig();
    mutate(*r.mutable_config());
    return r;
  };
  const struct {
    v1::SubmitSweepRequest request;
    std::string expected;
  } cases[] = {
      {with([](auto& c) { c.mutable_grid()->add_flops_budgets(3e11); }),
       "grid.flops_budgets[2] = 3e+11: duplicates grid.flops_budgets[1]: each "
       "budget must be listed once"},
      {with([](auto& c) {
         c.mutable_model()->set_family(static_cast<v1::ModelFamily>(99));
       }),
       "model.family = 99: unknown value: must be GPT_RMSNORM (1), or unset"},
      {with([](auto& c) { c.set_name("x\x1b[2J\x1b[Hy"); }),
       "name = \"x\\x1B[2J\\x1B[Hy\": byte 2 is 0x1B, a control character: "
       "must be printable UTF-8 (no control characters, escape sequences or "
       "NUL)"},
      {with([](auto& c) {
         for (int i = 0; i < 98; ++i)
           c.mutable_grid()->add_flops_budgets(1e12 + i);
         for (int i = 0; i < 98; ++i) {
           *c.mutable_grid()->add_model_shapes() = c.grid().model_shapes(0);
         }
       }),
       "grid = 100 budgets x 101 shapes = 10100 trials: a sweep must have at "
       "most 10000 trials"},
  };
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.expected);
    v1::SubmitSweepResponse submitted;
    const grpc::Status refused = c.sweeps_->SubmitSweep(
        Ctx(c.user_token()).get(), bad.request, &submitted);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(refused.error_message(), bad.expected);
  }
  v1::ListSweepsResponse list;
  ASSERT_TRUE(c.sweeps_
                  ->ListSweeps(Ctx(c.user_token()).get(),
                               v1::ListSweepsRequest(), &list)
                  .ok());
  EXPECT_EQ(list.sweeps_size(), 0);
}

TEST(CoordinatorProcess, RunsASweepToAStoredFitOverGrpc) {
  const std::string dir = FreshDir();
  Coordinator c(dir);
  EXPECT_EQ(HealthCheckBytes(c.channel_), std::string("\x08\x01", 2));

  v1::SubmitSweepRequest bad;
  *bad.mutable_config() = SmallConfig();
  bad.mutable_config()->mutable_grid()->mutable_model_shapes(0)->set_n_heads(5);
  v1::SubmitSweepResponse submitted;
  grpc::Status refused =
      c.sweeps_->SubmitSweep(Ctx(c.user_token()).get(), bad, &submitted);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(),
              HasSubstr("grid.model_shapes[0].n_heads = 5"));

  v1::SubmitSweepRequest good;
  *good.mutable_config() = SmallConfig();
  ASSERT_TRUE(
      c.sweeps_->SubmitSweep(Ctx(c.user_token()).get(), good, &submitted).ok());
  ASSERT_EQ(submitted.n_trials(), 6u);
  const std::string sweep_id = submitted.sweep_id();
  ASSERT_TRUE(
      c.sweeps_->SubmitSweep(Ctx(c.user_token()).get(), good, &submitted).ok());
  EXPECT_EQ(submitted.sweep_id(), sweep_id);

  v1::RegisterWorkerRequest reg;
  reg.mutable_resources()->set_cpu_slots(1);
  reg.mutable_resources()->set_hostname("test");
  v1::RegisterWorkerResponse registered;
  ASSERT_TRUE(
      c.workers_->RegisterWorker(Ctx(c.worker_token()).get(), reg, &registered)
          .ok());
  const std::string worker = registered.worker_id();
  EXPECT_EQ(registered.lease_ttl_ms(), 1500);

  // A lease nobody renews expires (the reaper thread) and is re-queued.
  const v1::LeaseTrialResponse abandoned = Lease(c, worker);
  ASSERT_TRUE(abandoned.has_assignment());
  const v1::Sweep requeued = WaitFor(c, sweep_id, [](const v1::Sweep& s) {
    return s.trials(0).state() == v1::PENDING;
  });
  // Under load the reaper may first see the worker as lost (3 silent
  // heartbeat intervals, just past the 1.5 s TTL): both requeue the trial.
  EXPECT_THAT(requeued.trials(0).error(),
              AnyOf(HasSubstr("lease expired"), HasSubstr("lost: silent")));

  int points = 0;
  for (int i = 0; i < 6; ++i) {
    const v1::LeaseTrialResponse lease = Lease(c, worker);
    ASSERT_TRUE(lease.has_assignment());
    if (i == 0) {
      EXPECT_EQ(lease.attempt(), 2u);
    }
    points += RunTrial(c, worker, lease);
  }
  EXPECT_FALSE(Lease(c, worker).has_assignment());
  const v1::Sweep fitted =
      WaitFor(c, sweep_id, [](const v1::Sweep& s) { return s.has_fit(); });
  EXPECT_EQ(fitted.state(), v1::SWEEP_SUCCEEDED);
  ASSERT_TRUE(fitted.has_fit());
  EXPECT_EQ(fitted.fit().n_points(), 6u);
  EXPECT_GT(fitted.fit().alpha(), 0);

  v1::OptimalRequest optimal_request;
  optimal_request.set_flops(1e15);
  optimal_request.set_sweep_id(sweep_id);
  v1::OptimalResponse optimal;
  ASSERT_TRUE(
      c.analysis_->Optimal(Ctx(c.user_token()).get(), optimal_request, &optimal)
          .ok());
  EXPECT_GT(optimal.n_opt(), 0);

  const ExitStatus exit = c.Stop();
  EXPECT_EQ(exit.code, 0) << ReadFile(c.log());
  EXPECT_EQ(exit.signal, 0);

  const std::string db = dir + "/isoflop.db";
  EXPECT_EQ(QueryText(db, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(QueryText(db, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(QueryText(db, "SELECT count(*) FROM metrics"),
            std::to_string(points));
  EXPECT_EQ(
      QueryText(db, "SELECT count(*) FROM trials WHERE state = 'SUCCEEDED'"),
      "6");
  EXPECT_EQ(QueryText(db, "SELECT count(*) FROM attempts"), "7");
  EXPECT_EQ(QueryText(db, "SELECT count(*) FROM fits"), "1");

  Coordinator restarted(dir);  // state survives a restart
  const v1::Sweep recovered = GetSweep(restarted, sweep_id);
  EXPECT_EQ(recovered.state(), v1::SWEEP_SUCCEEDED);
  EXPECT_EQ(recovered.fit().alpha(), fitted.fit().alpha());
  EXPECT_EQ(restarted.Stop().code, 0);
}

// Kill -9 of the coordinator at 10 random moments while 4 workers report
// metrics as fast as they are acknowledged: every acknowledged point is in
// the database afterwards, the file passes integrity_check, and the sweep
// still completes. Workers keep an unacknowledged batch and resend it.
TEST(CoordinatorProcess, KillNineNeverLosesAnAcknowledgedPoint) {
  const std::string dir = FreshDir();
  auto c = std::make_unique<Coordinator>(dir, /*long_leases=*/true);
  const std::string sweep_id = SubmitSmall(*c);
  ASSERT_FALSE(sweep_id.empty());

  struct Sim {
    std::string id;
    v1::LeaseTrialResponse lease;
    std::vector<std::string> acked;  // "step name" of acknowledged points
    int batches = 0, failures = 0;
  };
  std::vector<Sim> sims(4);
  for (int w = 0; w < 4; ++w) {
    v1::RegisterWorkerRequest reg;
    reg.mutable_resources()->set_cpu_slots(1);
    v1::RegisterWorkerResponse registered;
    ASSERT_TRUE(
        c->workers_
            ->RegisterWorker(Ctx(c->worker_token()).get(), reg, &registered)
            .ok());
    sims[w].id = registered.worker_id();
    sims[w].lease = Lease(*c, sims[w].id);
    ASSERT_TRUE(sims[w].lease.has_assignment());
  }

  std::mutex mu;  // guards address
  std::string address = c->address();
  const std::string worker_token = c->worker_token();  // kept across restarts
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (Sim& sim : sims) {
    threads.emplace_back([&] {
      std::string connected;
      std::unique_ptr<v1::WorkerService::Stub> stub;
      const uint64_t steps = std::min<uint64_t>(sim.lease.spec().steps(), 50);
      for (int round = 0; !stop; ++round) {
        v1::ReportMetricsRequest r;  // a new batch; resent until acknowledged
        r.set_worker_id(sim.id);
        *r.mutable_lease() = Ref(sim.lease);
        for (uint64_t step = 1; step <= steps; ++step) {
          v1::MetricPoint* p = r.add_points();
          p->set_step(step);
          p->set_name(absl::StrCat("m", round));
          p->set_value(1.0 / static_cast<double>(step));
        }
        while (!stop) {
          {
            std::lock_guard<std::mutex> lock(mu);
            if (address != connected) {
              connected = address;
              stub = v1::WorkerService::NewStub(grpc::CreateChannel(
                  connected, grpc::InsecureChannelCredentials()));
            }
          }
          v1::ReportMetricsResponse ack;
          auto ctx = Ctx(worker_token);
          ctx->set_deadline(std::chrono::system_clock::now() + 2s);
          if (stub->ReportMetrics(ctx.get(), r, &ack).ok()) {
            for (const v1::MetricPoint& p : r.points()) {
              sim.acked.push_back(absl::StrCat(p.step(), " ", p.name()));
            }
            ++sim.batches;
            break;
          }
          ++sim.failures;
          std::this_thread::sleep_for(20ms);
        }
      }
    });
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> pause_ms(100, 700);
  for (int kill = 0; kill < 10; ++kill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    c->Kill();
    c = std::make_unique<Coordinator>(dir, /*long_leases=*/true);
    std::lock_guard<std::mutex> lock(mu);
    address = c->address();
  }
  std::this_thread::sleep_for(300ms);
  stop = true;
  for (std::thread& t : threads) t.join();

  const std::string db = dir + "/isoflop.db";
  EXPECT_EQ(QueryText(db, "PRAGMA integrity_check"), "ok");
  size_t acked = 0;
  for (const Sim& sim : sims) {
    EXPECT_GT(sim.batches, 10) << sim.id;
    EXPECT_GT(sim.failures, 0) << sim.id << ": never saw a dead coordinator";
    acked += sim.acked.size();
    // Every acknowledged point of this worker's trial is stored.
    const std::string stored = QueryText(
        db, absl::StrCat("SELECT count(*) FROM metrics WHERE trial_id = '",
                         sim.lease.spec().trial_id(), "'"));
    EXPECT_GE(std::stoul(stored), sim.acked.size()) << sim.id;
    for (size_t i = 0; i < sim.acked.size(); i += 97) {  // spot-check keys
      const size_t space = sim.acked[i].find(' ');
      EXPECT_EQ(
          QueryText(db,
                    absl::StrCat("SELECT count(*) FROM metrics WHERE "
                                 "trial_id = '",
                                 sim.lease.spec().trial_id(), "' AND step = ",
                                 sim.acked[i].substr(0, space), " AND name = '",
                                 sim.acked[i].substr(space + 1), "'")),
          "1")
          << sim.acked[i];
    }
  }
  std::printf(
      "%zu points acknowledged across 10 kill -9 restarts; all stored\n",
      acked);
  // The sweep completes: the 4 leases survived the restarts.
  for (Sim& sim : sims) RunTrial(*c, sim.id, sim.lease);
  for (int i = 0; i < 2; ++i) {
    const v1::LeaseTrialResponse lease = Lease(*c, sims[0].id);
    ASSERT_TRUE(lease.has_assignment());
    RunTrial(*c, sims[0].id, lease);
  }
  EXPECT_EQ(GetSweep(*c, sweep_id).state(), v1::SWEEP_SUCCEEDED);
  EXPECT_EQ(c->Stop().code, 0);
}

// docs/architecture.md §5.3: SweepService and AnalysisService need the user
// token, WorkerService the worker token; health checks need none.
TEST(CoordinatorProcess, EveryServiceRefusesCallsWithoutItsToken) {
  const std::string dir = FreshDir();
  Coordinator c(dir);
  ASSERT_FALSE(c.user_token().empty());
  ASSERT_FALSE(c.worker_token().empty());
  EXPECT_NE(c.user_token(), c.worker_token());
  for (const char* file : {"/token", "/worker_token"}) {
    struct stat st {};
    ASSERT_EQ(stat((dir + file).c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << file;
  }

  const auto list = [&](const std::string& token) {
    v1::ListSweepsResponse out;
    return c.sweeps_->ListSweeps(Ctx(token).get(), {}, &out);
  };
  grpc::Status none = list("");
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(none.error_message(),
              AllOf(HasSubstr("ISOFLOP_TOKEN"), HasSubstr("token")));
  EXPECT_EQ(list("not-the-token").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list(c.user_token() + "x").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status worker_on_user = list(c.worker_token());
  EXPECT_EQ(worker_on_user.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(worker_on_user.error_message(), HasSubstr("worker token"));
  EXPECT_TRUE(list(c.user_token()).ok());

  // A refused mutation writes nothing.
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = SmallConfig();
  v1::SubmitSweepResponse submitted;
  EXPECT_EQ(c.sweeps_->SubmitSweep(Ctx("wrong").get(), submit, &submitted)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::ListSweepsResponse sweeps;
  ASSERT_TRUE(
      c.sweeps_->ListSweeps(Ctx(c.user_token()).get(), {}, &sweeps).ok());
  EXPECT_EQ(sweeps.sweeps_size(), 0);
  v1::OptimalRequest optimal;
  optimal.set_flops(1e21);
  v1::OptimalResponse answer;
  EXPECT_EQ(c.analysis_->Optimal(Ctx().get(), optimal, &answer).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  const auto reg = [&](const std::string& token) {
    v1::RegisterWorkerRequest r;
    r.mutable_resources()->set_cpu_slots(1);
    v1::RegisterWorkerResponse out;
    return c.workers_->RegisterWorker(Ctx(token).get(), r, &out);
  };
  grpc::Status no_worker_token = reg("");
  EXPECT_EQ(no_worker_token.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(no_worker_token.error_message(),
              AllOf(HasSubstr("ISOFLOP_WORKER_TOKEN"),
                    HasSubstr("--worker-token-file")));
  EXPECT_EQ(reg("not-the-token").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(reg(c.user_token()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(reg(c.worker_token()).ok());

  EXPECT_EQ(HealthCheckBytes(c.channel_), std::string("\x08\x01", 2));
  EXPECT_EQ(c.Stop().code, 0);
}

// ISOFLOP_TOKEN and ISOFLOP_WORKER_TOKEN replace the files (none written).
TEST(CoordinatorProcess, TokensFromTheEnvironmentReplaceTheFiles) {
  const std::string dir = FreshDir();
  const std::string log = dir + "/coordinator.log";
  Subprocess process(
      {ISOFLOP_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db",
       dir + "/isoflop.db"},
      log,
      {"ISOFLOP_TOKEN=user-secret-1", "ISOFLOP_WORKER_TOKEN=worker-secret-2"});
  ASSERT_TRUE(WaitForText(log, kListening, 20s)) << ReadFile(log);
  const std::string text = ReadFile(log);
  const size_t at = text.find(kListening) + sizeof(kListening) - 1;
  auto channel = grpc::CreateChannel(text.substr(at, text.find('\n', at) - at),
                                     grpc::InsecureChannelCredentials());
  v1::ListSweepsResponse sweeps;
  EXPECT_TRUE(v1::SweepService::NewStub(channel)
                  ->ListSweeps(Ctx("user-secret-1").get(), {}, &sweeps)
                  .ok());
  v1::RegisterWorkerRequest r;
  r.mutable_resources()->set_cpu_slots(1);
  v1::RegisterWorkerResponse registered;
  EXPECT_TRUE(v1::WorkerService::NewStub(channel)
                  ->RegisterWorker(Ctx("worker-secret-2").get(), r, &registered)
                  .ok());
  EXPECT_EQ(ReadFile(dir + "/token"), "");
  EXPECT_EQ(ReadFile(dir + "/worker_token"), "");
  process.Signal(SIGTERM);
  EXPECT_TRUE(process.Wait(20s).has_value());
}

// A paused sweep's running trial finishes; its pending trials are not leased
// (even after a restart: the pause is stored) until it is resumed.
TEST(CoordinatorProcess, PausedSweepLeasesNothingUntilResumed) {
  const std::string dir = FreshDir();
  auto c = std::make_unique<Coordinator>(dir, /*long_leases=*/true);
  const std::string sweep_id = SubmitSmall(*c);
  ASSERT_FALSE(sweep_id.empty());
  v1::RegisterWorkerRequest reg;
  reg.set_worker_id("wk-pause");
  reg.mutable_resources()->set_cpu_slots(2);
  v1::RegisterWorkerResponse registered;
  ASSERT_TRUE(
      c->workers_
          ->RegisterWorker(Ctx(c->worker_token()).get(), reg, &registered)
          .ok());
  const v1::LeaseTrialResponse running = Lease(*c, "wk-pause");
  ASSERT_TRUE(running.has_assignment());

  v1::PauseSweepRequest pause;
  pause.set_sweep_id(sweep_id);
  v1::Sweep paused;
  ASSERT_TRUE(
      c->sweeps_->PauseSweep(Ctx(c->user_token()).get(), pause, &paused).ok());
  EXPECT_TRUE(paused.paused());
  EXPECT_EQ(paused.state(), v1::SWEEP_RUNNING);
  EXPECT_EQ(paused.trial_counts().at("LEASED"), 1u);
  EXPECT_FALSE(Lease(*c, "wk-pause").has_assignment());
  RunTrial(*c, "wk-pause", running);  // the running trial still finishes
  EXPECT_EQ(GetSweep(*c, sweep_id).trial_counts().at("SUCCEEDED"), 1u);
  EXPECT_FALSE(Lease(*c, "wk-pause").has_assignment());

  // Stored: a restarted coordinator keeps the sweep paused.
  EXPECT_EQ(c->Stop().code, 0);
  c = std::make_unique<Coordinator>(dir, /*long_leases=*/true);
  EXPECT_TRUE(GetSweep(*c, sweep_id).paused());
  EXPECT_FALSE(Lease(*c, "wk-pause").has_assignment());
  EXPECT_EQ(QueryText(dir + "/isoflop.db", "SELECT paused FROM sweeps"), "1");

  v1::ResumeSweepRequest resume;
  resume.set_sweep_id(sweep_id);
  v1::Sweep resumed;
  ASSERT_TRUE(
      c->sweeps_->ResumeSweep(Ctx(c->user_token()).get(), resume, &resumed)
          .ok());
  EXPECT_FALSE(resumed.paused());
  EXPECT_TRUE(Lease(*c, "wk-pause").has_assignment());

  // Bad ids name the field; the worker token may not pause.
  v1::PauseSweepRequest bad;
  v1::Sweep ignored;
  grpc::Status empty =
      c->sweeps_->PauseSweep(Ctx(c->user_token()).get(), bad, &ignored);
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(empty.error_message(), HasSubstr("sweep_id"));
  bad.set_sweep_id("sw-nope");
  EXPECT_EQ(c->sweeps_->PauseSweep(Ctx(c->user_token()).get(), bad, &ignored)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(
      c->sweeps_->PauseSweep(Ctx(c->worker_token()).get(), pause, &ignored)
          .error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(c->Stop().code, 0);
}

// `isoflop ARGS...` against `c` with the user token file of `dir`; returns
// its exit code and appends its stdout and stderr to *output.
int RunCli(const Coordinator& c, const std::string& dir,
           std::vector<std::string> args, std::string* output) {
  static int runs = 0;
  const std::string log = absl::StrCat(dir, "/isoflop-", ++runs, ".log");
  std::vector<std::string> argv = {ISOFLOP_CLI_BIN, "--address", c.address(),
                                   "--token-file", dir + "/token"};
  argv.insert(argv.end(), args.begin(), args.end());
  const ExitStatus status = RunToCompletion(argv, log, {"ISOFLOP_TOKEN="});
  *output = ReadFile(log);
  return status.code;
}

// `isoflop sweep submit --id`: the id is used, submitting again is a no-op,
// and another config under it is refused naming the id.
TEST(CoordinatorProcess, SubmitWithAClientIdIsIdempotentAndGuardsTheId) {
  const std::string dir = FreshDir();
  Coordinator c(dir, /*long_leases=*/true);
  auto write = [&dir](const std::string& name, const v1::SweepConfig& config) {
    std::string text;
    google::protobuf::TextFormat::PrintToString(config, &text);
    std::ofstream(dir + "/" + name) << text;
    return dir + "/" + name;
  };
  const std::string small = write("small.textproto", SmallConfig());
  v1::SweepConfig changed = SmallConfig();
  changed.mutable_training()->set_lr(3e-3);
  const std::string other = write("other.textproto", changed);
  std::string out;
  ASSERT_EQ(
      RunCli(c, dir, {"sweep", "submit", small, "--id", "nightly-1"}, &out), 0)
      << out;
  EXPECT_THAT(out, HasSubstr("nightly-1\n"));
  EXPECT_THAT(out, HasSubstr("(6 trials; "));
  out.clear();
  EXPECT_EQ(
      RunCli(c, dir, {"sweep", "submit", small, "--id", "nightly-1"}, &out), 0)
      << out;
  out.clear();
  EXPECT_EQ(
      RunCli(c, dir, {"sweep", "submit", other, "--id", "nightly-1"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("ALREADY_EXISTS: id = \"nightly-1\": sweep "
                             "nightly-1 (\"unit\") exists with a different "
                             "config"));
  out.clear();
  EXPECT_EQ(RunCli(c, dir, {"sweep", "submit", small, "--id", "bad id"}, &out),
            1);
  EXPECT_THAT(out, HasSubstr("INVALID_ARGUMENT: id = \"bad id\": must be 1 "
                             "to 64 of [A-Za-z0-9_.-]"));
  v1::ListSweepsResponse sweeps;
  ASSERT_TRUE(c.sweeps_
                  ->ListSweeps(Ctx(c.user_token()).get(),
                               v1::ListSweepsRequest(), &sweeps)
                  .ok());
  ASSERT_EQ(sweeps.sweeps_size(), 1);
  EXPECT_EQ(sweeps.sweeps(0).id(), "nightly-1");
  EXPECT_EQ(c.Stop().code, 0);
}

// A drained worker leases nothing while its running trial finishes, shows
// as draining in `isoflop worker list`, stays drained across a restart, and
// leases again once undrained.
TEST(CoordinatorProcess, DrainedWorkerLeasesNothingUntilUndrained) {
  const std::string dir = FreshDir();
  auto c = std::make_unique<Coordinator>(dir, /*long_leases=*/true);
  const std::string sweep_id = SubmitSmall(*c);
  ASSERT_FALSE(sweep_id.empty());
  for (const char* id : {"wk-drain", "wk-other"}) {
    v1::RegisterWorkerRequest reg;
    reg.set_worker_id(id);
    reg.mutable_resources()->set_cpu_slots(2);
    reg.mutable_resources()->set_hostname("host-test");
    v1::RegisterWorkerResponse registered;
    ASSERT_TRUE(
        c->workers_
            ->RegisterWorker(Ctx(c->worker_token()).get(), reg, &registered)
            .ok());
  }
  const v1::LeaseTrialResponse running = Lease(*c, "wk-drain");
  ASSERT_TRUE(running.has_assignment());

  std::string out;
  ASSERT_EQ(RunCli(*c, dir, {"worker", "drain", "wk-drain"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("draining worker wk-drain"));
  EXPECT_FALSE(Lease(*c, "wk-drain").has_assignment());
  EXPECT_TRUE(Lease(*c, "wk-other").has_assignment());
  ASSERT_EQ(RunCli(*c, dir, {"worker", "list"}, &out), 0) << out;
  EXPECT_THAT(out, AllOf(HasSubstr("STATE"), HasSubstr("wk-drain"),
                         HasSubstr("host-test"), HasSubstr("draining"),
                         HasSubstr(running.spec().trial_id())));
  ASSERT_EQ(RunCli(*c, dir, {"--format", "json", "worker", "list"}, &out), 0)
      << out;
  EXPECT_THAT(out, HasSubstr("\"state\":\"WORKER_DRAINING\""));
  RunTrial(*c, "wk-drain", running);  // the running trial still finishes
  EXPECT_FALSE(Lease(*c, "wk-drain").has_assignment());

  // Stored: a restarted coordinator keeps the worker drained.
  EXPECT_EQ(c->Stop().code, 0);
  c = std::make_unique<Coordinator>(dir, /*long_leases=*/true);
  EXPECT_EQ(QueryText(dir + "/isoflop.db",
                      "SELECT draining FROM workers WHERE id = 'wk-drain'"),
            "1");
  v1::ListWorkersResponse list;
  ASSERT_TRUE(c->cluster_
                  ->ListWorkers(Ctx(c->user_token()).get(),
                                v1::ListWorkersRequest(), &list)
                  .ok());
  ASSERT_EQ(list.workers_size(), 2);
  EXPECT_EQ(list.workers(0).worker_id(), "wk-drain");
  EXPECT_EQ(list.workers(0).state(), v1::WORKER_DRAINING);
  EXPECT_EQ(list.workers(1).state(), v1::WORKER_LIVE);
  EXPECT_FALSE(Lease(*c, "wk-drain").has_assignment());

  v1::UndrainWorkerRequest undrain;
  undrain.set_worker_id("wk-drain");
  v1::Worker undrained;
  ASSERT_TRUE(
      c->cluster_
          ->UndrainWorker(Ctx(c->user_token()).get(), undrain, &undrained)
          .ok());
  EXPECT_EQ(undrained.state(), v1::WORKER_LIVE);
  EXPECT_TRUE(Lease(*c, "wk-drain").has_assignment());

  // Bad ids name the field or the worker; the worker token may not drain.
  v1::DrainWorkerRequest bad;
  v1::Worker ignored;
  grpc::Status empty =
      c->cluster_->DrainWorker(Ctx(c->user_token()).get(), bad, &ignored);
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(empty.error_message(), HasSubstr("worker_id"));
  EXPECT_EQ(RunCli(*c, dir, {"worker", "drain", "wk-nope"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("NOT_FOUND: worker wk-nope"));
  bad.set_worker_id("wk-drain");
  EXPECT_EQ(
      c->cluster_->DrainWorker(Ctx(c->worker_token()).get(), bad, &ignored)
          .error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(
      c->cluster_->ListWorkers(Ctx().get(), v1::ListWorkersRequest(), &list)
          .error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(c->Stop().code, 0);
}

// Two sweeps of 6 CPU trials: "low" (priority 0) submitted first, "high"
// (priority 5, max_concurrent_trials 2) by the CLI after it. High's trials
// go first; 8 simulated workers asking at once get exactly 2 of high's
// (the cap holds under concurrent requests) and low's 6; high's third
// trial is leased only once one of its two has ended.
TEST(CoordinatorProcess, LeasesByPriorityWithinMaxConcurrentTrials) {
  const std::string dir = FreshDir();
  Coordinator c(dir, /*long_leases=*/true);
  v1::SweepConfig low = SmallConfig();
  low.set_name("low");
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = low;
  v1::SubmitSweepResponse submitted;
  ASSERT_TRUE(
      c.sweeps_->SubmitSweep(Ctx(c.user_token()).get(), submit, &submitted)
          .ok());
  const std::string low_id = submitted.sweep_id();
  v1::SweepConfig high = SmallConfig();
  high.set_name("high");
  high.mutable_scheduling()->set_priority(5);
  high.mutable_scheduling()->set_max_concurrent_trials(2);
  std::string text;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(high, &text));
  std::ofstream(dir + "/high.textproto") << text;
  std::string out;
  ASSERT_EQ(RunCli(c, dir, {"sweep", "submit", dir + "/high.textproto"}, &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("(6 trials; priority 5, max_concurrent_trials "
                             "2)"));
  // The id as `submitted sweep ID (...)` says it: stdout and stderr share the
  // log, and submit shows the plan's summary on stderr before submitting.
  const size_t at = out.find("submitted sweep ");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string high_id =
      out.substr(at + 16, out.find(' ', at + 16) - (at + 16));
  ASSERT_EQ(RunCli(c, dir, {"sweep", "status", high_id}, &out), 0) << out;
  EXPECT_THAT(out,
              HasSubstr("scheduling: priority 5, max_concurrent_trials 2\n"));

  std::vector<std::string> workers;
  for (int i = 0; i < 9; ++i) {
    v1::RegisterWorkerRequest reg;
    reg.set_worker_id(absl::StrCat("wk-", i));
    reg.mutable_resources()->set_cpu_slots(1);
    v1::RegisterWorkerResponse registered;
    ASSERT_TRUE(
        c.workers_
            ->RegisterWorker(Ctx(c.worker_token()).get(), reg, &registered)
            .ok());
    workers.push_back(registered.worker_id());
  }
  // Priority: high's first trial although low was submitted first.
  const v1::LeaseTrialResponse first = Lease(c, workers[8]);
  EXPECT_EQ(first.spec().sweep_id(), high_id);
  RunTrial(c, workers[8], first);

  std::vector<std::future<v1::LeaseTrialResponse>> asks;
  for (int i = 0; i < 8; ++i) {
    asks.push_back(std::async(std::launch::async, [&c, &workers, i] {
      return Lease(c, workers[i]);
    }));
  }
  // Sweep id -> (worker, lease).
  std::map<std::string,
           std::vector<std::pair<std::string, v1::LeaseTrialResponse>>>
      by_sweep;
  for (int i = 0; i < 8; ++i) {
    const v1::LeaseTrialResponse lease = asks[i].get();
    if (lease.has_assignment()) {
      by_sweep[lease.spec().sweep_id()].emplace_back(workers[i], lease);
    }
  }
  ASSERT_EQ(by_sweep[high_id].size(), 2u);
  EXPECT_EQ(by_sweep[low_id].size(), 6u);
  EXPECT_FALSE(Lease(c, workers[8]).has_assignment());  // high at its cap
  const v1::Sweep capped = GetSweep(c, high_id);
  EXPECT_EQ(capped.trial_counts().at("PENDING"), 3u);
  EXPECT_EQ(capped.trial_counts().at("LEASED"), 2u);

  const auto& [worker, lease] = by_sweep[high_id][0];
  RunTrial(c, worker, lease);
  const v1::LeaseTrialResponse next = Lease(c, worker);
  EXPECT_EQ(next.spec().sweep_id(), high_id);
  EXPECT_FALSE(Lease(c, workers[8]).has_assignment());
  // No Stop(): a graceful stop with this client connected waits out the
  // server's shutdown grace (seconds); the destructor's SIGKILL does not.
}

TEST(CoordinatorProcess, SecondCoordinatorOnTheSameAddressRefusesToStart) {
  const std::string dir = FreshDir();
  Coordinator first(dir);
  const ExitStatus second = ::isoflop::testing::RunToCompletion(
      {ISOFLOP_COORDINATOR_BIN, "--listen", first.address(), "--db",
       dir + "/other.db"},
      dir + "/second.log");
  EXPECT_EQ(second.code, 1);
  EXPECT_THAT(ReadFile(dir + "/second.log"), HasSubstr("cannot bind"));
  EXPECT_EQ(first.Stop().code, 0);
}

TEST(CoordinatorProcess, UnopenableDatabaseExitsNonZeroWithTheReason) {
  const std::string dir = FreshDir();
  const ExitStatus exit = ::isoflop::testing::RunToCompletion(
      {ISOFLOP_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db",
       dir + "/missing/x.db"},
      dir + "/log");
  EXPECT_EQ(exit.code, 1);
  EXPECT_THAT(ReadFile(dir + "/log"), HasSubstr("missing/x.db"));
}

// Issue 18, defect 5: `dd if=/dev/urandom ... seek=20 count=2
// conv=notrunc` over a stopped coordinator's database.
TEST(CoordinatorProcess, CorruptDatabaseIsRefusedSayingWhatToDo) {
  const std::string dir = FreshDir();
  const std::string db_path = dir + "/isoflop.db";
  {
    Coordinator c(dir, /*long_leases=*/true);
    SubmitSmall(c);
    EXPECT_EQ(c.Stop().code, 0);
  }
  // Pages of rows past page 21, as a real database has.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
                         "i + 1 FROM n WHERE i < 300) INSERT INTO "
                         "workers(id, hostname, gpus, cpu_slots, "
                         "registered_unix_ms, last_heartbeat_unix_ms) SELECT "
                         "'wk-' || i, hex(randomblob(400)), 0, 1, 0, 0 FROM n",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  ASSERT_GT(std::stoll(QueryText(db_path, "PRAGMA page_count")), 30);
  ASSERT_EQ(RunToCompletion(
                {"/bin/dd", "if=/dev/urandom", absl::StrCat("of=", db_path),
                 "bs=4096", "seek=20", "count=2", "conv=notrunc"},
                dir + "/dd.log")
                .code,
            0);
  const ExitStatus exit = RunToCompletion(
      {ISOFLOP_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db", db_path},
      dir + "/corrupt.log");
  EXPECT_EQ(exit.code, 1);
  const std::string log = ReadFile(dir + "/corrupt.log");
  EXPECT_THAT(log,
              AllOf(HasSubstr("the database is corrupt (quick_check"),
                    HasSubstr("isoflop admin backup"), HasSubstr(".recover")));
  EXPECT_THAT(log, Not(HasSubstr("listening on")));
}

TEST(CoordinatorProcess, AnotherApplicationsDatabaseIsRefusedAndLeftAlone) {
  const std::string dir = FreshDir();
  const std::string db_path = dir + "/notes.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE notes(body TEXT)", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  const ExitStatus exit = RunToCompletion(
      {ISOFLOP_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db", db_path},
      dir + "/foreign.log");
  EXPECT_EQ(exit.code, 1);
  EXPECT_THAT(ReadFile(dir + "/foreign.log"),
              HasSubstr("not an isoflop database (tables notes"));
  EXPECT_EQ(QueryText(db_path, "SELECT count(*) FROM sqlite_master"), "1");
  EXPECT_EQ(QueryText(db_path, "PRAGMA application_id"), "0");
}

}  // namespace
}  // namespace isoflop::coordinator
