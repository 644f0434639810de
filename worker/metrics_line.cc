#include "worker/metrics_line.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace isoflop::worker {

absl::StatusOr<MetricsLine> ParseMetricsLine(const std::string& line) {
  nlohmann::json json =
      nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError("metrics line: must be one JSON object");
  }
  auto step = json.find("step");
  if (step == json.end() || !step->is_number_integer() ||
      step->get<int64_t>() < 0) {
    return absl::InvalidArgumentError(
        "metrics line: \"step\" must be present and a non-negative integer");
  }
  MetricsLine out;
  out.step = step->get<uint64_t>();
  for (const auto& [key, value] : json.items()) {
    if (key == "step" || !value.is_number()) continue;
    double v = value.get<double>();
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metrics line: \"", key, "\" = ", v, ": must be finite"));
    }
    if (key == "final") {
      out.final = v != 0;
    } else {
      out.values.emplace_back(key, v);
    }
  }
  return out;
}

}  // namespace isoflop::worker
