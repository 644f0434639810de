#include "coordinator/http/auth.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/bearer_token.h"

namespace isoflop::coordinator::http {
namespace {

bool Unsafe(unsigned char c) { return c < 0x20 || c == 0x7f || c == '\\'; }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 &&
        HexDigit(s[i + 2]) >= 0) {
      out.push_back(
          static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// 32 bytes from the kernel's CSPRNG, in hex.
std::string RandomId() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) std::abort();  // no kernel randomness: no safe session id
    got += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

// Drops expired entries, then the earliest-expiring ones until one more fits
// under `max`.
void MakeRoom(absl::flat_hash_map<std::string, absl::Time>& m, absl::Time now,
              size_t max) {
  absl::erase_if(m, [now](const auto& kv) { return kv.second <= now; });
  while (!m.empty() && m.size() >= max) {
    auto oldest = m.begin();
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (it->second < oldest->second) oldest = it;
    }
    m.erase(oldest);
  }
}

bool SafePath(const std::string& p) {
  if (p.empty() || p[0] != '/') return false;
  if (p.size() > 1 && (p[1] == '/' || p[1] == '\\')) return false;
  for (unsigned char c : p) {
    if (Unsafe(c)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<Token> LoadOrCreateToken(const std::string& path) {
  absl::StatusOr<LoadedToken> t = LoadOrCreateTokenFile(path);
  if (!t.ok()) return t.status();
  return Token{t->value, t->created};
}

bool SameToken(const std::string& a, const std::string& b) {
  return isoflop::SameToken(a, b);
}

Credentials RequestCredentials(const std::string& authorization,
                               const std::string& cookie_header) {
  Credentials c;
  constexpr absl::string_view kBearer = "Bearer ";
  if (absl::StartsWith(authorization, kBearer)) {
    c.bearer = std::string(absl::StripAsciiWhitespace(
        absl::string_view(authorization).substr(kBearer.size())));
  }
  const std::string prefix = std::string(kSessionCookie) + "=";
  for (absl::string_view part : absl::StrSplit(cookie_header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, prefix)) c.session = std::string(part);
  }
  return c;
}

std::string SafeNext(const std::string& next) {
  if (next.size() > 2048 || !SafePath(next) || !SafePath(PercentDecode(next)))
    return "/";
  return next;
}

SessionStore::SessionStore(const Clock* clock, absl::Duration ttl,
                           size_t max_sessions)
    : clock_(clock == nullptr ? &real_clock_ : clock),
      ttl_(ttl),
      max_sessions_(max_sessions) {}

std::string SessionStore::Create() {
  std::string id = RandomId();
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  MakeRoom(expiry_, now, max_sessions_);
  expiry_[id] = now + ttl_;
  return id;
}

std::string SessionStore::CreateLoginCode(absl::Duration code_ttl) {
  std::string code = RandomId();
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  MakeRoom(codes_, now, max_sessions_);
  codes_[code] = now + code_ttl;
  return code;
}

bool SessionStore::RedeemLoginCode(const std::string& code) {
  if (code.empty()) return false;
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = codes_.find(code);
  if (it == codes_.end()) return false;
  const bool valid = it->second > now;
  codes_.erase(it);  // spent, or expired
  return valid;
}

bool SessionStore::Valid(const std::string& id) {
  if (id.empty()) return false;
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = expiry_.find(id);
  if (it == expiry_.end()) return false;
  if (it->second <= now) {
    expiry_.erase(it);
    return false;
  }
  return true;
}

void SessionStore::Revoke(const std::string& id) {
  absl::MutexLock lock(&mu_);
  expiry_.erase(id);
}

}  // namespace isoflop::coordinator::http
