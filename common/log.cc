#include "common/log.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace isoflop {
namespace {

// Length of the valid UTF-8 sequence at the start of `s`, 0 if none.
size_t Utf8Length(absl::string_view s) {
  const auto byte = [&s](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b = byte(0);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) n = 2;
  if (b >= 0xE0 && b <= 0xEF) n = 3;
  if (b >= 0xF0 && b <= 0xF4) n = 4;
  if (b == 0xE0) lo = 0xA0;  // no overlong forms
  if (b == 0xED) hi = 0x9F;  // no surrogates
  if (b == 0xF0) lo = 0x90;
  if (b == 0xF4) hi = 0x8F;  // <= U+10FFFF
  if (n == 0 || s.size() < n || byte(1) < lo || byte(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return n;
}

// `s` as a JSON string literal, quotes included.
void AppendJsonString(std::string* out, absl::string_view s) {
  out->push_back('"');
  while (!s.empty()) {
    const unsigned char c = static_cast<unsigned char>(s[0]);
    const size_t n = Utf8Length(s);
    if (n == 0) {
      out->append("\\ufffd");
      s.remove_prefix(1);
      continue;
    }
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (c < 0x20 || c == 0x7F) {
      absl::StrAppendFormat(out, "\\u%04x", c);
    } else {
      out->append(s.data(), n);
    }
    s.remove_prefix(n);
  }
  out->push_back('"');
}

}  // namespace

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view value) {
  if (value == "text") return LogFormat::kText;
  if (value == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("--log-format = \"", value, "\": must be text or json"));
}

absl::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

std::string Logger::Format(absl::Time now, LogLevel level,
                           absl::string_view msg,
                           const LogFields& fields) const {
  if (format_ == LogFormat::kText) {
    return absl::StrCat(
        absl::FormatTime("%Y-%m-%d %H:%M:%E3S", now, absl::LocalTimeZone()),
        " ", component_, ": ", msg, "\n");
  }
  std::string line = "{\"ts\":";
  AppendJsonString(&line, absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", now,
                                           absl::UTCTimeZone()));
  line.append(",\"level\":");
  AppendJsonString(&line, LogLevelName(level));
  line.append(",\"component\":");
  AppendJsonString(&line, component_);
  line.append(",\"msg\":");
  AppendJsonString(&line, msg);
  for (const auto& [key, value] : fields) {
    line.push_back(',');
    AppendJsonString(&line, key);
    line.push_back(':');
    AppendJsonString(&line, value);
  }
  line.append("}\n");
  return line;
}

void Logger::Log(LogLevel level, absl::string_view msg,
                 const LogFields& fields) const {
  const std::string line = Format(absl::Now(), level, msg, fields);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace isoflop
