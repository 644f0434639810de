// Bearer tokens (docs/architecture.md §5.3): secrets kept in files of mode 0600
// or in the environment, sent as `authorization: Bearer TOKEN` (gRPC metadata,
// HTTP header) and compared in constant time. The coordinator holds two: the
// user token (CLI, dashboard) and the worker token (WorkerService only).
#ifndef ISOFLOP_COMMON_BEARER_TOKEN_H_
#define ISOFLOP_COMMON_BEARER_TOKEN_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace isoflop {

// The gRPC metadata key (lower case, as gRPC requires) and the scheme.
inline constexpr char kAuthorizationKey[] = "authorization";
inline constexpr char kBearerPrefix[] = "Bearer ";

// A token is 1 to kMaxTokenBytes visible ASCII bytes (0x21-0x7E): gRPC
// metadata and HTTP header values allow nothing else, and gRPC aborts the
// process on a call whose metadata breaks that rule.
inline constexpr size_t kMaxTokenBytes = 4096;

// OK, or INVALID_ARGUMENT naming `source` (the environment variable or the
// file the token came from), the first bad byte's position and value, and the
// rule. The message never holds the token itself. Pure.
absl::Status ValidateToken(absl::string_view token, absl::string_view source);

// The token in `path`, surrounding whitespace (a trailing newline) trimmed.
// NOT_FOUND when the file cannot be opened; FAILED_PRECONDITION when it is a
// directory or holds no token; INVALID_ARGUMENT when the token breaks
// ValidateToken's rule. Every message names the path.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

struct LoadedToken {
  std::string value;
  bool created = false;  // written by this call
};

// Reads the token in `path`, or creates the file (O_EXCL, mode 0600) with 32
// random bytes in hex when it does not exist. FAILED_PRECONDITION for an empty
// or unreadable token file (a directory); INVALID_ARGUMENT for a token that
// breaks ValidateToken's rule; UNAVAILABLE when it cannot be created.
absl::StatusOr<LoadedToken> LoadOrCreateTokenFile(const std::string& path);

// The environment variable `env_name` when set and not empty (surrounding
// whitespace trimmed; INVALID_ARGUMENT naming the variable when it breaks
// ValidateToken's rule), else the token in `path` (ReadTokenFile's errors)
// when `path` is not empty, else "".
absl::StatusOr<std::string> TokenFromEnvOrFile(const char* env_name,
                                               const std::string& path);

// Constant-time comparison (the token is a secret). False if either is empty.
bool SameToken(const std::string& a, const std::string& b);

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_BEARER_TOKEN_H_
