// The dashboard's bearer token (docs/architecture.md §5.3): generated at first
// start into STATE_DIR/token with mode 0600, required by every /api/ request as
// `Authorization: Bearer TOKEN`, or (browsers) a session: POST /api/v1/login
// with the token sets the HttpOnly cookie isoflop_session to a random id that
// the server maps to an expiry (the token itself never goes into a cookie).
// A one-time login link (GET /login?once=CODE, dashboards/API.md "One-time
// login links") carries a short-lived code that is spent when opened; the
// token never travels in a URL.
#ifndef ISOFLOP_COORDINATOR_HTTP_AUTH_H_
#define ISOFLOP_COORDINATOR_HTTP_AUTH_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace isoflop::coordinator::http {

struct Token {
  std::string value;
  bool created = false;  // written by this call
};

// Reads the token in `path` (surrounding whitespace trimmed), or creates the
// file (0600, O_EXCL) with 32 random bytes in hex when it does not exist.
// FAILED_PRECONDITION for an empty or unreadable token file; UNAVAILABLE
// when it cannot be created.
absl::StatusOr<Token> LoadOrCreateToken(const std::string& path);

// Constant-time comparison (the token is a secret).
bool SameToken(const std::string& a, const std::string& b);

inline constexpr char kSessionCookie[] = "isoflop_session";

// What a request carries: the Authorization header's bearer token and the
// isoflop_session cookie in `cookie_header`; each empty if absent.
struct Credentials {
  std::string bearer;
  std::string session;
};
Credentials RequestCredentials(const std::string& authorization,
                               const std::string& cookie_header);

// Where POST /api/v1/login may send the browser: `next` when it is a path of
// this origin, else "/". A path starts with one '/' followed by neither '/'
// nor '\' (browsers read "/\host" and "//host" as another host), and neither
// it nor its percent-decoding holds a control character or a '\' ("/%09/x"
// and "/\t/x" become "//x" in a browser); at most 2048 bytes.
std::string SafeNext(const std::string& next);

// Login sessions: random ids (32 bytes from the kernel's CSPRNG, in hex)
// mapped to their expiry. Thread-safe.
class SessionStore {
 public:
  // `clock` is not owned; null: the real clock.
  SessionStore(const Clock* clock, absl::Duration ttl, size_t max_sessions);

  // A new session valid for ttl(). The oldest session goes when
  // max_sessions are open.
  std::string Create();
  // True for an open session that has not expired (an expired one is
  // forgotten).
  bool Valid(const std::string& id);
  // Ends the session (logout); unknown ids are ignored.
  void Revoke(const std::string& id);
  absl::Duration ttl() const { return ttl_; }

  // A one-time login code (random as a session id) valid for `code_ttl`.
  // At most max_sessions codes are open; the oldest goes first.
  std::string CreateLoginCode(absl::Duration code_ttl);
  // Spends `code`: true exactly once for a code that CreateLoginCode made
  // and that has not expired; false for an unknown, spent or expired code
  // (which is forgotten either way).
  bool RedeemLoginCode(const std::string& code);

 private:
  const Clock* clock_;
  RealClock real_clock_;
  const absl::Duration ttl_;
  const size_t max_sessions_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Time> expiry_ ABSL_GUARDED_BY(mu_);
  // Open one-time login codes -> their expiry.
  absl::flat_hash_map<std::string, absl::Time> codes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace isoflop::coordinator::http

#endif  // ISOFLOP_COORDINATOR_HTTP_AUTH_H_
