// The dashboard's bearer token (DESIGN.md §7): generated at first start into
// STATE_DIR/token with mode 0600, required by every /api/ request as
// `Authorization: Bearer TOKEN` or as the HttpOnly cookie the login page sets.
#ifndef ISOFLOP_COORDINATOR_HTTP_AUTH_H_
#define ISOFLOP_COORDINATOR_HTTP_AUTH_H_

#include <string>

#include "absl/status/statusor.h"

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

// The token a request carries: the Authorization header's bearer token, else
// the isoflop_token cookie in `cookie_header`; empty if neither.
std::string RequestToken(const std::string& authorization,
                         const std::string& cookie_header);

}  // namespace isoflop::coordinator::http

#endif  // ISOFLOP_COORDINATOR_HTTP_AUTH_H_
