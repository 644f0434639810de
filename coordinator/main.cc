// isoflop-coordinator: parses flags and wires the SQLite store, the core and
// the gRPC server, and the dashboard's HTTP server when --http-listen is
// given; shuts down gracefully on SIGTERM/SIGINT (exit 0).
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/bearer_token.h"
#include "common/clock.h"
#include "common/grpc_log.h"
#include "common/log.h"
#include "common/tls.h"
#include "coordinator/events/event_feed.h"
#include "coordinator/events/publishing_trial_store.h"
#include "coordinator/http/dashboard_api.h"
#include "coordinator/http/dashboard_server.h"
#include "coordinator/http/generation.h"
#include "coordinator/service/core.h"
#include "coordinator/service/generation_relay.h"
#include "coordinator/service/rpc_latency.h"
#include "coordinator/service/server.h"
#include "coordinator/store/sqlite_trial_store.h"

namespace {

struct Flags {
  std::string listen = "127.0.0.1:50051";
  std::string db_path = "isoflop.db";
  double lease_ttl_s = 30;
  double heartbeat_s = 2;
  bool fsync_commits = false;
  std::string http_listen;        // empty: no dashboard
  std::string dashboards_dir;     // empty: BIN/../share/isoflop/dashboards
  std::string worker_token_file;  // empty: STATE_DIR/worker_token
  // POST /api/v1/trials/{id}/generate and /eval, relayed to the workers
  // (coordinator/service/generation_relay.h).
  int max_generations = 2;
  std::string tls_cert;  // both or neither: TLS on gRPC and HTTP
  std::string tls_key;
  std::string log_format = "text";
  std::string check_db = "quick";
  // Tests only: PRAGMA max_page_count from this file's number, re-read
  // before each write when the file changed (a full disk, then space back).
  std::string test_db_max_pages_file;
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
  app.add_option("--check-db", f.check_db,
                 "check of --db at start: quick (PRAGMA quick_check), full "
                 "(integrity_check, also every index; slower) or off. A "
                 "corrupt database is refused (exit 1) with what to do")
      ->capture_default_str()
      ->check(CLI::IsMember({"off", "quick", "full"}));
  app.add_option("--test-db-max-pages-file", f.test_db_max_pages_file)
      ->group("");  // hidden: tests/integration/disk_full_test.cc
  app.add_flag("--fsync-commits", f.fsync_commits,
               "fsync every commit (SQLite synchronous=FULL): acknowledged "
               "results survive a power loss, not only a coordinator crash; "
               "about half the ingest rate");
  app.add_option("--http-listen", f.http_listen,
                 "dashboard + JSON API address host:port (port 0: any free "
                 "port; empty: off). API token: the user token (below)")
      ->capture_default_str();
  app.add_option("--worker-token-file", f.worker_token_file,
                 "the workers' token (WorkerService only), used when "
                 "ISOFLOP_WORKER_TOKEN is not set; created 0600 at first "
                 "start (default: `worker_token` beside --db)");
  app.add_option("--dashboards-dir", f.dashboards_dir,
                 "the built dashboards (default: BIN/../share/isoflop/"
                 "dashboards)");
  app.add_option("--max-generations", f.max_generations,
                 "sampling (POST /api/v1/trials/ID/generate and /eval, run "
                 "by the worker that keeps the trial's model.bin): jobs at "
                 "once; more are refused (HTTP 429)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--tls-cert", f.tls_cert,
                 "PEM certificate chain: serve gRPC and the dashboard over "
                 "TLS (with --tls-key; clients then pass --tls-ca)");
  app.add_option("--tls-key", f.tls_key,
                 "PEM private key of --tls-cert (unencrypted)");
  app.add_option("--log-format", f.log_format,
                 "stderr lines: text (for people) or json (one object per "
                 "line: ts, level, component, msg and key fields)")
      ->capture_default_str();
  app.footer(
      "Example: isoflop-coordinator --listen 127.0.0.1:50051 "
      "--db state/isoflop.db\n"
      "Auth: every RPC but grpc.health.v1 and reflection needs `authorization: "
      "Bearer TOKEN`.\n"
      "  user token (isoflop CLI, dashboard): ISOFLOP_TOKEN, else the file "
      "STATE/token\n"
      "  worker token (isoflop-worker only): ISOFLOP_WORKER_TOKEN, else "
      "--worker-token-file\n"
      "STATE is the folder of --db; missing token files are created (0600) "
      "at start.\n"
      "Then: isoflop-worker --token-file STATE/worker_token ...; "
      "ISOFLOP_TOKEN_FILE=STATE/token isoflop sweep list\n"
      "TLS: --tls-cert cert.pem --tls-key key.pem; clients verify it with "
      "--tls-ca ca.pem\n"
      "  (or ISOFLOP_TLS_CA), the dashboard is then https://.");
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

// This binary's directory (BIN), where the build puts the other binaries.
std::filesystem::path BinDir() {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
}

// Where the build (and an install) puts the pages: BIN/../share/isoflop/.
std::string DefaultDashboardsDir() {
  return (BinDir().parent_path() / "share/isoflop/dashboards").string();
}

// The environment variable `env` when set, else the token in `path`
// (created 0600 at first start). `what` names it in the log.
absl::StatusOr<std::string> ServiceToken(const isoflop::Logger& log,
                                         const char* env,
                                         const std::string& path,
                                         const char* what) {
  if (const char* v = std::getenv(env); v != nullptr && *v != 0) {
    return isoflop::TokenFromEnvOrFile(env, "");
  }
  auto token = isoflop::LoadOrCreateTokenFile(path);
  if (!token.ok()) return token.status();
  if (token->created) {
    log.Info(absl::StrCat(what, " written to ", path, " (0600)"),
             {{"path", path}});
  }
  return token->value;
}

// ISOFLOP_TOKEN, else STATE_DIR/token; ISOFLOP_WORKER_TOKEN, else
// --worker-token-file (default STATE_DIR/worker_token).
absl::StatusOr<isoflop::coordinator::ServiceTokens> Tokens(
    const isoflop::Logger& log, const Flags& f) {
  const std::filesystem::path state =
      std::filesystem::absolute(f.db_path).parent_path();
  isoflop::coordinator::ServiceTokens tokens;
  auto user = ServiceToken(log, "ISOFLOP_TOKEN", (state / "token").string(),
                           "user token");
  if (!user.ok()) return user.status();
  tokens.user = *std::move(user);
  auto worker = ServiceToken(log, "ISOFLOP_WORKER_TOKEN",
                             f.worker_token_file.empty()
                                 ? (state / "worker_token").string()
                                 : f.worker_token_file,
                             "worker token");
  if (!worker.ok()) return worker.status();
  tokens.worker = *std::move(worker);
  return tokens;
}

// --test-db-max-pages-file: sets the writer connection's max_page_count to
// the number in `path` whenever the file's mtime changes.
std::function<void(sqlite3*)> MaxPagesFromFile(const std::string& path) {
  auto seen = std::make_shared<std::filesystem::file_time_type>();
  return [path, seen](sqlite3* db) {
    std::error_code ec;
    const auto mtime = std::filesystem::last_write_time(path, ec);
    if (ec || mtime == *seen) return;
    *seen = mtime;
    long long pages = 0;
    std::ifstream(path) >> pages;
    if (pages > 0) {
      isoflop::coordinator::Exec(
          db, absl::StrCat("PRAGMA max_page_count = ", pages))
          .IgnoreError();
    }
  };
}

int Fail(const isoflop::Logger& log, const absl::Status& s, int exit_code = 1) {
  log.Error(s.message(), {{"code", absl::StatusCodeToString(s.code())}});
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "isoflop-coordinator: schedules sweeps onto workers, "
      "stores results in SQLite"};
  Flags flags;
  AddFlags(app, flags);
  CLI11_PARSE(app, argc, argv);
  absl::StatusOr<isoflop::LogFormat> log_format =
      isoflop::ParseLogFormat(flags.log_format);
  if (!log_format.ok()) {
    std::fprintf(stderr, "isoflop-coordinator: %s\n",
                 std::string(log_format.status().message()).c_str());
    return 2;
  }
  const isoflop::Logger log("isoflop-coordinator", *log_format);
  isoflop::RouteGrpcLogs(&log);
  // A client that hung up must fail a write with EPIPE, not end the
  // coordinator.
  signal(SIGPIPE, SIG_IGN);
  if (flags.heartbeat_s >= flags.lease_ttl_s) {
    return Fail(log,
                absl::InvalidArgumentError(absl::StrFormat(
                    "--heartbeat-interval-s = %g: must be < --lease-ttl-s = %g",
                    flags.heartbeat_s, flags.lease_ttl_s)),
                2);
  }
  // SQLite opens "" as a private temporary database: each connection (store,
  // dashboard) would see its own empty one.
  if (flags.db_path.empty()) {
    return Fail(log,
                absl::InvalidArgumentError(
                    "--db = \"\": must name the SQLite database file (e.g. "
                    "state/isoflop.db)"),
                2);
  }
  auto tls = isoflop::LoadTlsServerFiles(flags.tls_cert, flags.tls_key);
  if (!tls.ok()) return Fail(log, tls.status(), 2);
  const sigset_t stop = BlockStopSignals();

  namespace http = isoflop::coordinator::http;
  // Storage faults (disk full, I/O errors): logged once per episode,
  // counted in /metrics.
  isoflop::coordinator::StoreFaults store_faults(&log, flags.db_path);
  auto store = isoflop::coordinator::SqliteTrialStore::Open(
      flags.db_path,
      isoflop::coordinator::SqliteWriterOptions{
          .fsync_commits = flags.fsync_commits,
          .check = *isoflop::coordinator::ParseDbCheck(flags.check_db),
          .faults = &store_faults,
          .before_try = flags.test_db_max_pages_file.empty()
                            ? nullptr
                            : MaxPagesFromFile(flags.test_db_max_pages_file)});
  if (!store.ok()) return Fail(log, store.status());
  // The dashboard's live view sees every committed write through this.
  isoflop::coordinator::events::EventFeed feed;
  isoflop::coordinator::events::PublishingTrialStore published(store->get(),
                                                               &feed);
  isoflop::RealClock clock;
  isoflop::coordinator::Core core(
      &published, &clock,
      {.lease_ttl = absl::Seconds(flags.lease_ttl_s),
       .heartbeat_interval = absl::Seconds(flags.heartbeat_s)});
  if (absl::Status s = core.Recover(); !s.ok()) return Fail(log, s);
  auto tokens = Tokens(log, flags);
  if (!tokens.ok()) {  // a bad token (ValidateToken) is a usage error
    return Fail(log, tokens.status(),
                absl::IsInvalidArgument(tokens.status()) ? 2 : 1);
  }
  isoflop::coordinator::RpcLatency rpc_latency;  // GET /metrics
  // Sampling jobs go to the workers over their ServeSamples streams.
  isoflop::coordinator::GenerationRelay relay(
      {.max_concurrent = flags.max_generations});
  // The dashboard first, so that GetCoordinatorInfo can name its URL.
  http::DashboardApi api(store->get(), &core, {.store_faults = &store_faults});
  http::Generation generation(
      &relay,
      [&core](const std::string& trial_id) { return core.GetTrial(trial_id); },
      {.log = &log});
  std::unique_ptr<http::DashboardServer> dashboard;
  if (!flags.http_listen.empty()) {
    auto started = http::DashboardServer::Start(
        &api, &feed,
        {.listen = flags.http_listen,
         .static_dir = flags.dashboards_dir.empty() ? DefaultDashboardsDir()
                                                    : flags.dashboards_dir,
         .token = tokens->user,
         .generation = &generation,
         .tls_cert_path = flags.tls_cert,
         .tls_key_path = flags.tls_key,
         .rpc_latency = &rpc_latency});
    if (!started.ok()) return Fail(log, started.status());
    dashboard = std::move(*started);
  }
  auto server = isoflop::coordinator::CoordinatorServer::Start(
      &core, &clock,
      {.listen = flags.listen,
       .tokens = *tokens,
       .tls_cert_pem = *tls ? (*tls)->cert_pem : "",
       .tls_key_pem = *tls ? (*tls)->key_pem : "",
       .rpc_latency = &rpc_latency,
       .generation_relay = &relay,
       .reader = store->get(),
       .dashboard_url = dashboard != nullptr ? dashboard->url() : ""});
  if (!server.ok()) return Fail(log, server.status());
  log.Info(absl::StrCat("listening on ", (*server)->address()),
           {{"address", (*server)->address()}});
  if (*tls) {
    log.Info(absl::StrCat("TLS with certificate ", (*tls)->cert_path),
             {{"cert", (*tls)->cert_path}});
  }
  if (dashboard != nullptr) {
    log.Info(absl::StrCat("dashboard on ", dashboard->url()),
             {{"url", dashboard->url()}});
    // Single use and short-lived (dashboards/API.md "One-time login
    // links"): the token itself never goes into a URL or a log.
    const std::string link = dashboard->LoginLink();
    log.Info(absl::StrCat("dashboard login link (opens once, within 10 min): ",
                          link),
             {{"login_url", link}});
  }

  int sig = 0;
  sigwait(&stop, &sig);
  log.Info(absl::StrCat(strsignal(sig), ", shutting down"),
           {{"signal", strsignal(sig)}});
  if (dashboard != nullptr) dashboard->Shutdown();
  (*server)->Shutdown();
  isoflop::RouteGrpcLogs(nullptr);
  return 0;
}
