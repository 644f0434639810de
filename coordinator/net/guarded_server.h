// An HTTP/1.1 server hardened against hostile clients, under the
// dashboard's port (coordinator/http/dashboard_server.h; dashboards/API.md,
// "Limits"); it knows nothing of the dashboard. cpp-httplib 0.11 (Debian's
// shared library) reads a request line or header line into a string that grows
// without bound, takes only a per-read timeout (a client sending a header line
// every 2 s holds its connection forever) and serves connections from a fixed
// pool with an unbounded queue. GuardedServer keeps cpp-httplib's parsing and
// routing but serves each connection through its own Stream, which
//  - counts the request head (request line and headers) as it is read and
//    answers 431 past max_head_bytes, so a 300 MiB header line costs at most
//    max_head_bytes of memory;
//  - counts a body's bytes and answers 413 past max_body_bytes (cpp-httplib
//    answers 413 itself for a Content-Length above it);
//  - answers 408 when a request head is not complete head_timeout after its
//    first byte, or a body body_timeout after its head;
// and runs every connection on its own thread, up to max_connections (a
// connection beyond is answered 503 with Retry-After and closed by the
// accepting thread), of which at most max_unauthenticated may not (yet) have
// sent a request with the token: a new connection beyond that evicts the
// oldest unauthenticated one (its socket is shut down), so slow or idle
// clients can neither starve the authorised API nor lock a new client out.
#ifndef ISOFLOP_COORDINATOR_NET_GUARDED_SERVER_H_
#define ISOFLOP_COORDINATOR_NET_GUARDED_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace isoflop::coordinator::net {

struct ConnectionLimits {
  int max_connections = 256;      // connections served at once
  int max_unauthenticated = 128;  // of those, without an authorised request
  size_t max_head_bytes = size_t{16} << 10;  // request line + headers
  size_t max_body_bytes = size_t{1} << 20;
  absl::Duration head_timeout = absl::Seconds(10);  // first byte to blank line
  absl::Duration body_timeout = absl::Seconds(30);  // after the head
  absl::Duration read_timeout = absl::Seconds(5);   // each read
  absl::Duration write_timeout = absl::Seconds(5);  // each write
  absl::Duration keep_alive_timeout = absl::Seconds(5);  // between requests
  int keep_alive_max_count = 100;  // requests per connection
};

// What the guard has done so far (GET /metrics).
struct ConnectionStats {
  std::atomic<int> open{0};               // connections being served
  std::atomic<int> unauthenticated{0};    // of those, no authorised request yet
  std::atomic<int64_t> refused_total{0};  // 503 at accept
  std::atomic<int64_t> evicted_total{0};  // unauthenticated, for a newer one
  std::atomic<int64_t> head_too_large_total{0};  // 431
  std::atomic<int64_t> body_too_large_total{0};  // 413
  std::atomic<int64_t> timed_out_total{0};       // 408
};

// A server (HTTPS when both paths are set) guarded by `limits`. `stats` is
// not owned and must outlive the server.
std::unique_ptr<httplib::Server> NewGuardedServer(
    const ConnectionLimits& limits, ConnectionStats* stats,
    const std::string& tls_cert_path, const std::string& tls_key_path);

// Widens the listen backlog of a bound server from NewGuardedServer
// (cpp-httplib's is 5: a burst of connections on a busy machine would see
// dropped SYNs and 1 s retransmits). Call after bind_to_port.
void WidenListenBacklog(httplib::Server& server, int backlog = 1024);

// Marks the connection serving the calling thread's request as
// authenticated (it leaves the max_unauthenticated count). Called by the
// server's handlers once a request carries the token; a no-op elsewhere.
void MarkConnectionAuthenticated();

}  // namespace isoflop::coordinator::net

#endif  // ISOFLOP_COORDINATOR_NET_GUARDED_SERVER_H_
