// isoflop-coordinator: parses flags and wires the SQLite store, the core and
// the gRPC server; shuts down gracefully on SIGTERM/SIGINT (exit 0).
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "CLI/CLI.hpp"
#include "common/clock.h"
#include "coordinator/service/core.h"
#include "coordinator/service/server.h"
#include "coordinator/store/sqlite_trial_store.h"

namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "isoflop-coordinator: %s\n",
               std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "isoflop-coordinator: schedules sweeps onto workers, stores results in "
      "SQLite"};
  std::string listen = "127.0.0.1:50051", db_path = "isoflop.db";
  double lease_ttl_s = 30, heartbeat_s = 2;
  app.add_option("--listen", listen,
                 "gRPC address host:port (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--db", db_path, "SQLite database file (created if missing)")
      ->capture_default_str();
  app.add_option("--lease-ttl-s", lease_ttl_s,
                 "a trial whose worker is silent this long is re-queued")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--heartbeat-interval-s", heartbeat_s,
                 "heartbeat period asked of workers")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  app.footer(
      "Example: isoflop-coordinator --listen 127.0.0.1:50051 --db "
      "state/isoflop.db");
  CLI11_PARSE(app, argc, argv);
  if (heartbeat_s >= lease_ttl_s) {
    std::fprintf(stderr,
                 "isoflop-coordinator: --heartbeat-interval-s = %g: must be < "
                 "--lease-ttl-s = %g\n",
                 heartbeat_s, lease_ttl_s);
    return 2;
  }

  // Stop signals are taken by this thread with sigwait, never by a handler;
  // blocked before any thread starts so every thread inherits the mask.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto store = isoflop::coordinator::SqliteTrialStore::Open(db_path);
  if (!store.ok()) return Fail(store.status());
  isoflop::RealClock clock;
  isoflop::coordinator::Core core(
      store->get(), &clock,
      {.lease_ttl = absl::Seconds(lease_ttl_s),
       .heartbeat_interval = absl::Seconds(heartbeat_s)});
  if (absl::Status s = core.Recover(); !s.ok()) return Fail(s);
  auto server = isoflop::coordinator::CoordinatorServer::Start(
      &core, &clock, {.listen = listen});
  if (!server.ok()) return Fail(server.status());
  std::fprintf(stderr, "isoflop-coordinator listening on %s\n",
               (*server)->address().c_str());
  std::fflush(stderr);

  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "isoflop-coordinator: %s, shutting down\n",
               strsignal(sig));
  (*server)->Shutdown();
  return 0;
}
