#include "coordinator/http/auth.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace isoflop::coordinator::http {

absl::StatusOr<Token> LoadOrCreateToken(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    Token t{std::string(absl::StripAsciiWhitespace(text.str())), false};
    if (t.value.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": empty token file (delete it to regenerate)"));
    }
    return t;
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
  return Token{hex, true};
}

bool SameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size() || a.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string RequestToken(const std::string& authorization,
                         const std::string& cookie_header) {
  constexpr absl::string_view kBearer = "Bearer ";
  if (absl::StartsWith(authorization, kBearer)) {
    return std::string(absl::StripAsciiWhitespace(
        absl::string_view(authorization).substr(kBearer.size())));
  }
  for (absl::string_view part : absl::StrSplit(cookie_header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, "isoflop_token=")) return std::string(part);
  }
  return "";
}

}  // namespace isoflop::coordinator::http
