// Reading observations for offline fits (`isoflop fit --points FILE`).
#ifndef ISOFLOP_ANALYSIS_POINTS_IO_H_
#define ISOFLOP_ANALYSIS_POINTS_IO_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "analysis/approach3.h"

namespace isoflop::analysis {

// Reads a CSV file with a header row; columns by name (any order, extra
// columns ignored, no quoting): `params` and `loss` required, plus `tokens`
// or `flops` (if only `flops` is given, tokens = flops / (6 params); if both,
// `tokens` is used). Cells are trimmed of blanks; blank lines are skipped;
// a UTF-8 byte-order mark and CRLF line ends are accepted. Returns NOT_FOUND
// if the file cannot be opened, and INVALID_ARGUMENT "PATH:LINE: ..." naming
// the line and the column of the first problem: a missing, unnamed or
// repeated header column, a row with a different number of cells than the
// header, or a used cell that is not a finite number > 0. Zero data rows is
// not an error here (FitApproach3 refuses fewer than 5 points).
absl::StatusOr<std::vector<Observation>> ReadObservationsCsv(
    const std::string& path);

// As ReadObservationsCsv, on the text of a file; `source` names it in
// messages ("SOURCE:LINE: ...").
absl::StatusOr<std::vector<Observation>> ParseObservationsCsv(
    const std::string& text, const std::string& source);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_POINTS_IO_H_
