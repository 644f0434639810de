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

struct Flags {
  std::string listen = "127.0.0.1:50051";
  std::string db_path = "isoflop.db";
  double lease_ttl_s = 30;
  double heartbeat_s = 2;
};

void AddFlags(CLI::App& app, Flags& f) {
  app.add_option("--listen", f.listen,
                 "gRPC address host:port (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--db", f.db_path, "SQLite database file (created if missing)")
      ->capture_default_str();
  app.add_option("--lease-ttl-s", f.lease_ttl_s,
                 "a trial whose worker is silent this long is re-queued")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--heartbeat-interval-s", f.heartbeat_s,
                 "heartbeat period asked of workers (< --lease-ttl-s)")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  app.footer(
      "Example: isoflop-coordinator --listen 127.0.0.1:50051 "
      "--db state/isoflop.db");
}

// Blocks SIGTERM/SIGINT in this thread (and every thread started later) so
// that main takes them with sigwait, never in a handler.
sigset_t BlockStopSignals() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  return stop;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "isoflop-coordinator: %s\n",
               std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "isoflop-coordinator: schedules sweeps onto workers, "
      "stores results in SQLite"};
  Flags flags;
  AddFlags(app, flags);
  CLI11_PARSE(app, argc, argv);
  if (flags.heartbeat_s >= flags.lease_ttl_s) {
    std::fprintf(stderr,
                 "isoflop-coordinator: --heartbeat-interval-s = %g: must be < "
                 "--lease-ttl-s = %g\n",
                 flags.heartbeat_s, flags.lease_ttl_s);
    return 2;
  }
  const sigset_t stop = BlockStopSignals();

  auto store = isoflop::coordinator::SqliteTrialStore::Open(flags.db_path);
  if (!store.ok()) return Fail(store.status());
  isoflop::RealClock clock;
  isoflop::coordinator::Core core(
      store->get(), &clock,
      {.lease_ttl = absl::Seconds(flags.lease_ttl_s),
       .heartbeat_interval = absl::Seconds(flags.heartbeat_s)});
  if (absl::Status s = core.Recover(); !s.ok()) return Fail(s);
  auto server = isoflop::coordinator::CoordinatorServer::Start(
      &core, &clock, {.listen = flags.listen});
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
