// `isoflop fit`: the offline Approach-3 fit of a CSV of (N, D, loss) points
// with the analysis library; no server involved.
#ifndef ISOFLOP_CLI_FIT_COMMAND_H_
#define ISOFLOP_CLI_FIT_COMMAND_H_

#include <string>

#include "absl/status/status.h"
#include "cli/commands.h"

namespace isoflop::cli {

// Reads `csv_path` (format: analysis/points_io.h), fits, prints the law and,
// when flops > 0, the compute-optimal N, D and loss for that budget. Returns
// the CSV reader's or the fit's error status.
absl::Status FitPoints(const CommandContext& ctx, const std::string& csv_path, double flops);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_FIT_COMMAND_H_
