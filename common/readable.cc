#include "common/readable.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace isoflop {

std::string Sig(double v, int digits) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (digits <= 0) {  // the shortest text that reads back as exactly v
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    return std::string(buf, end);
  }
  return absl::StrFormat("%.*g", digits, v);
}

std::string Count(double v, int digits) {
  if (!std::isfinite(v) || v < 0) return Sig(v, digits);
  if (digits <= 0) return absl::StrFormat("%.0f", v);
  struct Unit {
    double scale;
    const char* suffix;
  };
  static constexpr Unit kUnits[] = {
      {1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}};
  for (const Unit& u : kUnits) {
    // Rounded first, so 999,999 reads "1M", not "1e+03K".
    const double scaled = std::stod(Sig(v / u.scale, digits));
    if (scaled >= 1) {
      if (scaled >= 1000) return Sig(v, digits);  // beyond 1000T
      return absl::StrCat(Sig(scaled, digits), u.suffix);
    }
  }
  return absl::StrFormat("%.0f", v);
}

namespace {
bool ZeroWidth(double low, double high) {
  return std::isfinite(low) && std::isfinite(high) && low == high;
}
constexpr const char* kNoWidth =
    " (95%: zero width: every resample gives this value; with fewer "
    "points than 2 per parameter that says nothing, see the verdict)";
}  // namespace

std::string LinearInterval(double low, double high, int digits) {
  if (ZeroWidth(low, high)) return kNoWidth;
  return absl::StrCat(" (95% ", Sig(low, digits), " .. ", Sig(high, digits),
                      ")");
}

std::string FactorInterval(double v, double low, double high, int digits) {
  if (ZeroWidth(low, high)) return kNoWidth;
  if (!(low > 0) || !(v > 0) || !std::isfinite(v)) {
    return absl::StrCat(" (95% ", Sig(low, digits), " .. ", Sig(high, digits),
                        ": reaches 0, not a factor)");
  }
  const double f = std::max(high / v, v / low);
  return absl::StrCat(" (95% \u00d7/\u00f7 ", Sig(f, digits), ")");
}

}  // namespace isoflop
