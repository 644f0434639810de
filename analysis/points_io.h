// Reading observations for offline fits (`isoflop fit --points FILE`).
#ifndef ISOFLOP_ANALYSIS_POINTS_IO_H_
#define ISOFLOP_ANALYSIS_POINTS_IO_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "analysis/approach3.h"

namespace isoflop::analysis {

// Reads a CSV file with a header row; columns by name (any order, extra
// columns ignored): `params` and `loss` required, plus `tokens` or `flops`
// (the missing one follows from C = 6·N·D). Returns NOT_FOUND if the file
// cannot be opened, INVALID_ARGUMENT naming the line and column of the first
// malformed row (non-numeric, NaN, inf, <= 0, wrong column count) or a missing
// column.
absl::StatusOr<std::vector<Observation>> ReadObservationsCsv(
    const std::string& path);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_POINTS_IO_H_
