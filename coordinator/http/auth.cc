#include "coordinator/http/auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/bearer_token.h"

namespace isoflop::coordinator::http {

absl::StatusOr<Token> LoadOrCreateToken(const std::string& path) {
  absl::StatusOr<LoadedToken> t = LoadOrCreateTokenFile(path);
  if (!t.ok()) return t.status();
  return Token{t->value, t->created};
}

bool SameToken(const std::string& a, const std::string& b) {
  return isoflop::SameToken(a, b);
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
