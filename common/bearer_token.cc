#include "common/bearer_token.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace isoflop {

namespace {

constexpr char kTokenRule[] =
    "a token must be 1 to 4096 visible ASCII characters (0x21-0x7E)";

// More than any token file holds: the read stops here.
constexpr size_t kMaxTokenFileBytes = size_t{64} * 1024;

}  // namespace

absl::Status ValidateToken(absl::string_view token, absl::string_view source) {
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": the token is empty: ", kTokenRule));
  }
  if (token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": the token is ", token.size(), " bytes: ", kTokenRule));
  }
  for (size_t i = 0; i < token.size(); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (c < 0x21 || c > 0x7E) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: token byte %d is 0x%02X: %s", source, i + 1, c, kTokenRule));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot read token file: ", strerror(errno)));
  }
  struct stat st {};
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": is a directory, not a token file (give the file's path)"));
  }
  std::string text;
  char buffer[4096];
  ssize_t n = 0;
  while (text.size() <= kMaxTokenFileBytes &&
         (n = read(fd, buffer, sizeof(buffer))) > 0) {
    text.append(buffer, static_cast<size_t>(n));
  }
  const int read_errno = errno;
  close(fd);
  if (n < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": cannot read token file: ", strerror(read_errno)));
  }
  if (text.size() > kMaxTokenFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": more than ", kMaxTokenFileBytes,
                     " bytes: not a token file: ", kTokenRule));
  }
  std::string token(absl::StripAsciiWhitespace(text));
  if (token.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": empty token file (delete it to regenerate)"));
  }
  RETURN_IF_ERROR(ValidateToken(token, path));
  return token;
}

absl::StatusOr<LoadedToken> LoadOrCreateTokenFile(const std::string& path) {
  if (access(path.c_str(), F_OK) == 0) {
    absl::StatusOr<std::string> token = ReadTokenFile(path);
    if (!token.ok()) {
      return absl::IsInvalidArgument(token.status())
                 ? token.status()
                 : absl::FailedPreconditionError(token.status().message());
    }
    return LoadedToken{*std::move(token), false};
  }
  std::random_device rd;
  std::string hex;
  for (int i = 0; i < 8; ++i) {
    absl::StrAppend(&hex, absl::Hex(rd(), absl::kZeroPad8));
  }
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat(path, ": cannot create token file: ", strerror(errno)));
  }
  const std::string line = hex + "\n";
  const bool ok =
      write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  close(fd);
  if (!ok) return absl::UnavailableError(absl::StrCat(path, ": write failed"));
  return LoadedToken{hex, true};
}

absl::StatusOr<std::string> TokenFromEnvOrFile(const char* env_name,
                                               const std::string& path) {
  if (const char* env = std::getenv(env_name); env != nullptr && *env != 0) {
    std::string token(absl::StripAsciiWhitespace(env));
    RETURN_IF_ERROR(ValidateToken(token, env_name));
    return token;
  }
  if (path.empty()) return std::string();
  return ReadTokenFile(path);
}

bool SameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size() || a.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

}  // namespace isoflop
