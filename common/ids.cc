#include "common/ids.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace isoflop {

std::string StableHashHex(std::string_view bytes) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return absl::StrFormat("%016x", h);
}

std::string MakeId(std::string_view prefix, std::string_view bytes,
                   int digits) {
  // Debian builds abseil with its own absl::string_view (not std::), so
  // std::string_view must be converted explicitly.
  return absl::StrCat(std::string(prefix), "-",
                      StableHashHex(bytes).substr(0, digits));
}

}  // namespace isoflop
