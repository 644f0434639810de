// The CLI's context file: named sets of connection settings (coordinator
// address, token file, HTTP address, TLS CA) and which one is current, so
// that a user sets them once (`isoflop context set`) instead of exporting
// ISOFLOP_ADDRESS, ISOFLOP_TOKEN_FILE, ISOFLOP_HTTP and ISOFLOP_TLS_CA in
// every shell (issue 24, point 5; README.md "Contexts").
//
// The file is JSON, at $ISOFLOP_CONFIG, else $XDG_CONFIG_HOME/isoflop/
// config.json, else ~/.config/isoflop/config.json:
//   {"current": "lab",
//    "contexts": {"lab": {"address": "gpu1:50051",
//                         "token_file": "/srv/isoflop/state/token",
//                         "http": "http://gpu1:8080", "tls_ca": ""}}}
// A flag beats its environment variable, which beats the current context,
// which beats the built-in default.
#ifndef ISOFLOP_CLI_CONTEXT_FILE_H_
#define ISOFLOP_CLI_CONTEXT_FILE_H_

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace isoflop::cli {

struct ConnectionContext {
  std::string address;     // host:port of the coordinator's gRPC
  std::string token_file;  // file holding the user token
  std::string http;        // http(s)://host:port of its dashboard
  std::string tls_ca;      // PEM CA of a TLS coordinator
};

struct ContextFile {
  std::string current;  // "" when none is chosen
  std::map<std::string, ConnectionContext> contexts;
};

// Where the file is: `getenv`("ISOFLOP_CONFIG") when set and not empty,
// else XDG_CONFIG_HOME/isoflop/config.json, else HOME/.config/isoflop/
// config.json.
std::string ContextFilePath(
    const std::function<std::optional<std::string>(const char*)>& getenv);

// 1 to 64 characters of [A-Za-z0-9_.-]; INVALID_ARGUMENT naming the value
// and the rule otherwise.
absl::Status ValidateContextName(const std::string& name);

// Reads the file: an empty ContextFile when it does not exist;
// INVALID_ARGUMENT naming the path and the key for text that is not JSON, a
// key that is not known, a value that is not a string, a bad name, or a
// "current" that names no context.
absl::StatusOr<ContextFile> LoadContextFile(const std::string& path);

// Writes `file` to `path` (folders created, mode 0600, replaced atomically
// through a temporary file beside it).
absl::Status SaveContextFile(const std::string& path, const ContextFile& file);

// The JSON text SaveContextFile writes (pretty, keys sorted).
std::string ContextFileJson(const ContextFile& file);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_CONTEXT_FILE_H_
