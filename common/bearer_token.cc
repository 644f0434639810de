#include "common/bearer_token.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace isoflop {

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot read token file: ", strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": empty token file (delete it to regenerate)"));
  }
  return token;
}

absl::StatusOr<LoadedToken> LoadOrCreateTokenFile(const std::string& path) {
  if (access(path.c_str(), F_OK) == 0) {
    absl::StatusOr<std::string> token = ReadTokenFile(path);
    if (!token.ok()) {
      return absl::FailedPreconditionError(token.status().message());
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
    return std::string(absl::StripAsciiWhitespace(env));
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
