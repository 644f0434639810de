// libFuzzer target over the points reader (CSV and JSON, analysis/
// points_io.h): any input is parsed or refused with INVALID_ARGUMENT, and
// every accepted point is finite and positive where the rules say so.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "analysis/points_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<isoflop::analysis::PointSet> set =
      isoflop::analysis::ParsePoints(text, "fuzz");
  if (!set.ok()) {
    if (set.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  for (const isoflop::analysis::Point& p : set->points) {
    const bool ok = std::isfinite(p.n) && p.n > 0 && std::isfinite(p.d) &&
                    p.d > 0 && std::isfinite(p.flops) && p.flops > 0 &&
                    std::isfinite(p.loss) && p.loss > 0 && p.budget >= 0 &&
                    (!set->has_curves || (p.step >= 0 && !p.run.empty()));
    if (!ok) std::abort();
  }
  isoflop::analysis::FinalPoints(*set);
  return 0;
}
