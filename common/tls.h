// TLS files and diagnostics shared by the coordinator (--tls-cert,
// --tls-key) and its clients (--tls-ca). OpenSSL parses the PEM files at
// start, so a wrong path or file fails with a message naming the flag, not
// with a handshake error at the first call. No gRPC here: the callers build
// their credentials from the PEM text.
#ifndef ISOFLOP_COMMON_TLS_H_
#define ISOFLOP_COMMON_TLS_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace isoflop {

// The environment variable clients read when --tls-ca is not given.
inline constexpr char kTlsCaEnv[] = "ISOFLOP_TLS_CA";

// A server's certificate chain and private key, checked to belong together.
struct TlsServerFiles {
  std::string cert_path;
  std::string key_path;
  std::string cert_pem;  // the file's text: leaf first, then intermediates
  std::string key_pem;
};

// The text of `path`, a PEM file with one or more certificates (a CA bundle
// or a server's chain). `flag` names it in errors: NOT_FOUND when the file
// cannot be read, INVALID_ARGUMENT when it holds no PEM certificate or one
// does not parse ("--tls-ca = \"x.pem\": no PEM certificate ...").
absl::StatusOr<std::string> ReadPemCertificates(absl::string_view flag,
                                                const std::string& path);

// --tls-cert and --tls-key: nullopt when both are empty (plain TCP);
// INVALID_ARGUMENT when only one is given, a file does not parse, or the key
// is not the certificate's; NOT_FOUND when a file cannot be read.
absl::StatusOr<std::optional<TlsServerFiles>> LoadTlsServerFiles(
    const std::string& cert_path, const std::string& key_path);

// The CA file a client verifies the coordinator with: `flag_value` (from
// --tls-ca) when not empty, else $ISOFLOP_TLS_CA, else "" (plain TCP).
std::string TlsCaPath(const std::string& flag_value);

// Whether something at `address` ("host:port", "[v6]:port" or
// "dns:///host:port") completes a TLS handshake within `timeout`. Verifies no
// certificate: it only tells a TLS server from a plain one, to explain a
// failed call. False when nothing answers.
bool SpeaksTls(const std::string& address,
               absl::Duration timeout = absl::Seconds(2));

// For a call to the server at `address` that failed with the transport
// error `error`: a sentence that tells the user to pass --tls-ca (the server
// speaks TLS, the client did not) or to drop it (the reverse), or "" when the
// failure is not a TLS mismatch. Probes `address` (SpeaksTls) only when
// `error` looks like a connection failure.
std::string TlsMismatchHint(const std::string& address, bool client_uses_tls,
                            absl::string_view error);

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_TLS_H_
