#include "common/text.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace isoflop {
namespace {

// The next code point of `text` at `i`: its byte length (0: not UTF-8) and
// value.
struct Decoded {
  size_t length = 0;
  uint32_t code_point = 0;
};

Decoded DecodeUtf8(std::string_view text, size_t i) {
  const auto byte = [&text](size_t k) {
    return static_cast<unsigned char>(text[k]);
  };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return {1, b0};
  size_t length = 0;
  uint32_t cp = 0;
  uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    length = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    length = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    length = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return {};
  }
  if (i + length > text.size()) return {};
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return {};
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {};
  return {length, cp};
}

bool IsControl(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 ||
         cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

std::optional<std::string> TextProblem(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const Decoded d = DecodeUtf8(text, i);
    if (d.length == 0) {
      return absl::StrFormat("byte %d (0x%02X) is not UTF-8", i + 1,
                             static_cast<unsigned char>(text[i]));
    }
    if (IsControl(d.code_point)) {
      return d.code_point < 0x80
                 ? absl::StrFormat("byte %d is 0x%02X, a control character",
                                   i + 1, d.code_point)
                 : absl::StrFormat("byte %d starts U+%04X, a control character",
                                   i + 1, d.code_point);
    }
    i += d.length;
  }
  return std::nullopt;
}

std::string EscapeUnprintable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const Decoded d = DecodeUtf8(text, i);
    if (d.length != 0 && !IsControl(d.code_point)) {
      out.append(text.substr(i, d.length));
      i += d.length;
      continue;
    }
    const size_t n = d.length == 0 ? 1 : d.length;
    for (size_t k = 0; k < n; ++k) {
      absl::StrAppendFormat(&out, "\\x%02X",
                            static_cast<unsigned char>(text[i + k]));
    }
    i += n;
  }
  return out;
}

}  // namespace isoflop
