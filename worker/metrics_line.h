// Parsing of the trainer's metrics lines (the contract in
// docs/architecture.md §5.2: one JSON object per line, e.g.
// {"step": 10, "train_loss": 3.21, "lr": 1e-3, "tokens_per_s": 1234.5};
// the last line of a successful run carries "final": 1).
#ifndef ISOFLOP_WORKER_METRICS_LINE_H_
#define ISOFLOP_WORKER_METRICS_LINE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace isoflop::worker {

struct MetricsLine {
  uint64_t step = 0;
  // Every numeric key other than "step" and "final", in key order.
  std::vector<std::pair<std::string, double>> values;
  bool final = false;  // "final" present and non-zero
};

// Parses one line. Returns kInvalidArgument, naming the rule, when the line is
// not a JSON object, lacks a non-negative integer "step", or carries a
// non-finite number. Keys whose values are not numbers are ignored.
absl::StatusOr<MetricsLine> ParseMetricsLine(const std::string& line);

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_METRICS_LINE_H_
