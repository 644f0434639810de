#ifndef ISOFLOP_COMMON_IDS_H_
#define ISOFLOP_COMMON_IDS_H_

#include <string>
#include <string_view>

namespace isoflop {

// Stable 64-bit FNV-1a of `bytes` as 16 lowercase hex digits. Stable across
// processes, builds and machines (unlike absl::Hash), so ids derived from it
// survive restarts. Hand-written: five lines, and no dependency offers a
// stable, tiny non-cryptographic hash.
std::string StableHashHex(std::string_view bytes);

// "<prefix>-<first `digits` hex digits of StableHashHex(bytes)>".
std::string MakeId(std::string_view prefix, std::string_view bytes,
                   int digits = 12);

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_IDS_H_
