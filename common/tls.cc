#include "common/tls.h"

#include <fcntl.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace isoflop {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using SslCtx = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX, SSL_CTX_free>>;
using Ssl = std::unique_ptr<SSL, Deleter<SSL, SSL_free>>;

// OpenSSL's last queued error as text (and clears the queue).
std::string OpenSslError() {
  const auto e = ERR_peek_last_error();
  char text[256] = "unknown error";
  if (e != 0) ERR_error_string_n(e, text, sizeof(text));
  ERR_clear_error();
  return text;
}

bool NoMorePem() {
  const auto e = ERR_peek_last_error();
  return ERR_GET_LIB(e) == ERR_LIB_PEM &&
         ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

absl::StatusOr<std::string> ReadText(absl::string_view flag,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(flag, " = \"", path, "\": cannot read the file"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Bio MemoryBio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Refuses to prompt for a passphrase on the terminal.
int NoPassword(char*, int, int, void*) { return -1; }

enum class Probe { kNoAnswer, kPlain, kTls };

// Connects to host:port within `timeout`; -1 when nothing accepts.
int Connect(const std::string& host, const std::string& port,
            absl::Duration timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    pollfd p{.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof(err);
    if ((connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) ||
        poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) !=
            1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return -1;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  const timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

Probe ProbeTls(const std::string& address, absl::Duration timeout) {
  absl::string_view rest = address;
  for (absl::string_view scheme :
       {"dns:///", "ipv4:", "ipv6:", "https://", "http://"}) {
    absl::ConsumePrefix(&rest, scheme);
  }
  rest = rest.substr(0, rest.find('/'));
  const size_t colon = rest.rfind(':');
  if (colon == absl::string_view::npos) return Probe::kNoAnswer;
  absl::string_view host = rest.substr(0, colon);
  absl::ConsumePrefix(&host, "[");
  absl::ConsumeSuffix(&host, "]");
  const int fd =
      Connect(std::string(host), std::string(rest.substr(colon + 1)), timeout);
  if (fd < 0) return Probe::kNoAnswer;
  SslCtx ctx(SSL_CTX_new(TLS_client_method()));
  Ssl ssl(ctx != nullptr ? SSL_new(ctx.get()) : nullptr);
  bool tls = false;
  if (ssl != nullptr) {
    SSL_set_verify(ssl.get(), SSL_VERIFY_NONE, nullptr);
    // gRPC servers want HTTP/2 negotiated; the HTTP server takes either.
    static const unsigned char kAlpn[] = "\x02h2\x08http/1.1";
    SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof(kAlpn) - 1);
    SSL_set_fd(ssl.get(), fd);
    tls = SSL_connect(ssl.get()) == 1;
    if (tls) SSL_shutdown(ssl.get());
  }
  ERR_clear_error();
  close(fd);
  return tls ? Probe::kTls : Probe::kPlain;
}

}  // namespace

absl::StatusOr<std::string> ReadPemCertificates(absl::string_view flag,
                                                const std::string& path) {
  absl::StatusOr<std::string> text = ReadText(flag, path);
  if (!text.ok()) return text.status();
  Bio bio = MemoryBio(*text);
  ERR_clear_error();
  int certificates = 0;
  while (X509Ptr cert{
      PEM_read_bio_X509(bio.get(), nullptr, NoPassword, nullptr)}) {
    ++certificates;
  }
  if (NoMorePem() && certificates > 0) {
    ERR_clear_error();
    return text;
  }
  if (certificates == 0 && NoMorePem()) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " = \"", path,
        "\": no PEM certificate in the file (a -----BEGIN CERTIFICATE----- "
        "block)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " = \"", path, "\": certificate ", certificates + 1,
                   " does not parse: ", OpenSslError()));
}

absl::StatusOr<std::optional<TlsServerFiles>> LoadTlsServerFiles(
    const std::string& cert_path, const std::string& key_path) {
  if (cert_path.empty() && key_path.empty()) return std::nullopt;
  if (cert_path.empty() || key_path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert = \"", cert_path, "\", --tls-key = \"",
                     key_path, "\": give both (TLS) or neither (plain TCP)"));
  }
  TlsServerFiles files{.cert_path = cert_path, .key_path = key_path};
  absl::StatusOr<std::string> cert =
      ReadPemCertificates("--tls-cert", cert_path);
  if (!cert.ok()) return cert.status();
  files.cert_pem = *std::move(cert);
  absl::StatusOr<std::string> key = ReadText("--tls-key", key_path);
  if (!key.ok()) return key.status();
  files.key_pem = *std::move(key);

  ERR_clear_error();
  Bio key_bio = MemoryBio(files.key_pem);
  KeyPtr pkey(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassword, nullptr));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key = \"", key_path,
        "\": no PEM private key that parses (an encrypted key is not "
        "supported): ",
        OpenSslError()));
  }
  Bio cert_bio = MemoryBio(files.cert_pem);
  X509Ptr leaf(PEM_read_bio_X509(cert_bio.get(), nullptr, NoPassword, nullptr));
  if (leaf == nullptr || X509_check_private_key(leaf.get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key = \"", key_path,
                     "\": not the private key of --tls-cert = \"", cert_path,
                     "\" (its first certificate)"));
  }
  return files;
}

std::string TlsCaPath(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  const char* env = std::getenv(kTlsCaEnv);
  return env != nullptr ? env : "";
}

bool SpeaksTls(const std::string& address, absl::Duration timeout) {
  return ProbeTls(address, timeout) == Probe::kTls;
}

std::string TlsMismatchHint(const std::string& address, bool client_uses_tls,
                            absl::string_view error) {
  const Probe probe = ProbeTls(address, absl::Seconds(2));
  if (!client_uses_tls && probe == Probe::kTls) {
    return absl::StrCat("the coordinator at ", address,
                        " uses TLS: pass --tls-ca FILE (or set ", kTlsCaEnv,
                        "), the CA certificate that signed its --tls-cert");
  }
  if (client_uses_tls && probe == Probe::kPlain) {
    return absl::StrCat("the coordinator at ", address,
                        " does not use TLS: drop --tls-ca / ", kTlsCaEnv,
                        ", or start it with --tls-cert and --tls-key");
  }
  if (client_uses_tls && probe == Probe::kTls &&
      absl::StrContains(absl::AsciiStrToLower(error), "handshake")) {
    return absl::StrCat(
        "the TLS handshake with ", address,
        " failed: --tls-ca must be the CA certificate that signed the "
        "coordinator's --tls-cert, and that certificate must name the host "
        "you connect to");
  }
  return "";
}

}  // namespace isoflop
