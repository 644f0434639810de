// isoflop-coordinator: parses flags and wires the store, the core, the gRPC
// services and the background loop (lease reaper, fits).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>

#include "CLI/CLI.hpp"
#include "common/clock.h"
#include "coordinator/service/core.h"
#include "coordinator/service/grpc_services.h"
#include "coordinator/store/store.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "isoflop-coordinator: %s\n", std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"isoflop-coordinator: schedules sweeps onto workers, stores results in SQLite"};
  std::string listen = "127.0.0.1:50051", db_path = "isoflop.db";
  double lease_ttl_s = 30, heartbeat_s = 2;
  app.add_option("--listen", listen, "gRPC address (loopback by default)")->capture_default_str();
  app.add_option("--db", db_path, "SQLite database file (created if missing)")->capture_default_str();
  app.add_option("--lease-ttl-s", lease_ttl_s, "a trial whose worker is silent this long is re-queued")
      ->capture_default_str()->check(CLI::Range(1.0, 86400.0));
  app.add_option("--heartbeat-interval-s", heartbeat_s, "heartbeat period asked of workers")
      ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  app.footer("Example: isoflop-coordinator --listen 127.0.0.1:50051 --db state/isoflop.db");
  CLI11_PARSE(app, argc, argv);

  // Stop signals are taken by a dedicated thread (sigwait), never by a handler.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto store = isoflop::coordinator::Store::Open(db_path);
  if (!store.ok()) return Fail(store.status());
  isoflop::RealClock clock;
  isoflop::coordinator::Core core(store->get(), &clock,
                                  {.lease_ttl = absl::Seconds(lease_ttl_s),
                                   .heartbeat_interval = absl::Seconds(heartbeat_s)});
  if (absl::Status s = core.Recover(); !s.ok()) return Fail(s);

  isoflop::coordinator::SweepServiceImpl sweeps(&core);
  isoflop::coordinator::WorkerServiceImpl workers(&core);
  isoflop::coordinator::AnalysisServiceImpl analysis(&core);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&sweeps).RegisterService(&workers).RegisterService(&analysis);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return Fail(absl::UnavailableError("cannot listen on " + listen));
  }
  std::fprintf(stderr, "isoflop-coordinator listening on %s (db %s)\n", listen.c_str(),
               db_path.c_str());

  std::atomic<bool> stopping{false};
  std::thread background([&] {
    while (!stopping) {
      core.ReapExpiredLeases(clock.Now());
      core.RunPendingFits();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "isoflop-coordinator: signal %d, shutting down\n", sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  stopping = true;
  background.join();
  return 0;
}
