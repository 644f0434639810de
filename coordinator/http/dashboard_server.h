// DashboardServer: the coordinator's HTTP port. Serves the static pages of
// dashboards/ (Chart.js copied next to them at build time), the JSON API
// under /api/v1/ (DashboardApi; dashboards/API.md documents it) and the live
// event stream /api/v1/events (Server-Sent Events, resumable with
// Last-Event-ID). /api/ needs the bearer token (auth.h); the pages do not
// (they hold no data) and send a viewer without the cookie to /login.html.
// Hostile clients meet the limits of net/guarded_server.h and a cap on event
// streams (dashboards/API.md, "Limits").
#ifndef ISOFLOP_COORDINATOR_HTTP_DASHBOARD_SERVER_H_
#define ISOFLOP_COORDINATOR_HTTP_DASHBOARD_SERVER_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/events/event_feed.h"
#include "coordinator/http/auth.h"
#include "coordinator/http/dashboard_api.h"
#include "coordinator/http/generation.h"
#include "coordinator/net/guarded_server.h"
#include "coordinator/service/rpc_latency.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace isoflop::coordinator::http {

using events::EventFeed;
using events::FeedBatch;
using events::FeedEvent;

using net::ConnectionLimits;
using net::ConnectionStats;

struct DashboardOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0: any free port
  std::string static_dir;  // the built dashboards/ (with vendor/chart.js)
  std::string token;       // required on /api/; must not be empty
  Generation* generation = nullptr;  // POST .../generate; null: 503
  // HTTPS when both are set: PEM files of the certificate chain and its
  // private key (checked by LoadTlsServerFiles first). Empty: plain HTTP.
  std::string tls_cert_path;
  std::string tls_key_path;
  // Its histograms are appended to GET /metrics; null: none.
  const RpcLatency* rpc_latency = nullptr;
  // Connections, request sizes and timeouts (net/guarded_server.h).
  ConnectionLimits limits;
  // GET /api/v1/events streams open at once; beyond: 503 with Retry-After.
  int max_event_streams = 64;
  // A login session's life (the cookie's Max-Age).
  absl::Duration session_ttl = absl::Hours(12);
  size_t max_sessions = 10000;
  // A one-time login link's life (GET /login?once=CODE): spent when opened,
  // refused after this.
  absl::Duration login_code_ttl = absl::Minutes(10);
  const Clock* clock = nullptr;  // session expiry; null: the real clock
};

class DashboardServer {
 public:
  // Binds and starts serving on its own threads. `api` and `feed` are not
  // owned and must outlive the server. INVALID_ARGUMENT for a malformed
  // listen address or empty token, NOT_FOUND for a static_dir without
  // index.html, INVALID_ARGUMENT when the TLS files do not load,
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<DashboardServer>> Start(
      DashboardApi* api, EventFeed* feed, const DashboardOptions& options);
  ~DashboardServer();  // Shutdown()

  // "http://127.0.0.1:41234" (https:// with TLS) with the port actually
  // bound.
  const std::string& url() const { return url_; }
  // A one-time login link, url() + "/login?once=CODE": opened once within
  // login_code_ttl it sets the session cookie and goes to "/" (then it is
  // spent). What the coordinator prints at start and
  // POST /api/v1/login/once answers.
  std::string LoginLink();
  // Ends the event streams (closes `feed`), stops taking requests and joins
  // the server thread. Idempotent.
  void Shutdown();

 private:
  DashboardServer(DashboardApi* api, EventFeed* feed, DashboardOptions options);
  void Routes();
  // The Set-Cookie value of a new login session.
  std::string NewSessionCookie();
  // The gzip of a static file's `body` whose ETag is `etag`, compressed once.
  std::string GzipStatic(const std::string& path, const std::string& etag,
                         const std::string& body);

  // 503 with Retry-After when max_event_streams are open; else the slot,
  // freed with the stream.
  std::shared_ptr<void> EventStreamSlot();

  DashboardApi* const api_;
  EventFeed* const feed_;
  const DashboardOptions options_;
  ConnectionStats connection_stats_;
  SessionStore sessions_;
  std::atomic<int> event_streams_{0};
  const std::string boot_id_;  // event ids are "<boot_id>-<seq>"
  std::unique_ptr<httplib::Server> server_;
  std::string url_;
  std::thread thread_;
  bool shut_down_ = false;
  absl::Mutex static_mu_;
  // path -> (ETag, gzip body) of the static files served so far.
  std::map<std::string, std::pair<std::string, std::string>> gzip_cache_
      ABSL_GUARDED_BY(static_mu_);
};

}  // namespace isoflop::coordinator::http

#endif  // ISOFLOP_COORDINATOR_HTTP_DASHBOARD_SERVER_H_
