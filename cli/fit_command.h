// `isoflop fit` (offline Approaches 1, 2 and 3 of a points file, with
// bootstrap intervals and an SVG figure) and `isoflop optimal` answered from
// a fit file or a sweep's stored law, with the analysis library.
#ifndef ISOFLOP_CLI_FIT_COMMAND_H_
#define ISOFLOP_CLI_FIT_COMMAND_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/commands.h"

namespace isoflop::cli {

// The flags of `isoflop fit` (main.cc documents each).
struct FitCommandOptions {
  std::string points;  // CSV or JSON (analysis/points_io.h)
  // --column NAME=FILE_COLUMN: the file's names for the reader's columns
  // (analysis::ParseColumnMap).
  std::vector<std::string> columns;
  std::string approach = "all";   // 1, 2, 3 or all
  std::vector<double> flops;      // budgets to answer
  std::vector<double> budgets;    // IsoFLOP budgets to snap points to
  double budget_tolerance = 0.1;  // relative
  double huber_delta = 1e-3;
  std::string starts = "grid";  // analysis::StartsFromSpec
  int bootstrap = 1000;         // resamples; 0: none
  uint64_t seed = 1;
  int envelope_points = 1500;
  int threads = 0;
  bool weighted = false;  // Approach 2: weights 1 / loss^2
  std::string plot;       // SVG path; empty: none
  bool samples = false;   // JSON: keep the bootstrap samples
  bool rollout = false;   // also backtest every budget from smaller ones
  // chinchilla (L = E + A/N^alpha + B/D^beta), muennighoff (the
  // data-constrained law, analysis/constrained.h) or both (with their
  // held-out comparison).
  std::string form = "chinchilla";
  std::string r_star = "fit";  // muennighoff's R_D*, R_N*: fit or published
};

// Reads the points, runs the fits (with the backtest, analysis/backtest.h)
// and prints the report with its verdicts (table to ctx.digits significant
// figures, or one JSON object with --format json); with `plot`, writes the
// figure there. `form` muennighoff prints only the data-constrained fit
// ({"form", "n_points", "muennighoff"}), fitted from the same starts with
// Approach 3's optimum added, and returns FAILED_PRECONDITION when it cannot
// be fitted (no point repeats data); `both` adds "muennighoff" and
// "comparison" (leave-one-budget-out held-out error, the form that fits
// better) to the full report, null with reasons.muennighoff /
// reasons.comparison when they could not be computed. Returns
// the reader's error (naming line and column), INVALID_ARGUMENT for a bad
// flag (naming it), FAILED_PRECONDITION when no approach gives a fit, when
// the points hold fewer than 2 distinct N or 2 distinct D (a degenerate fit)
// or when Approach 3's answer at a --flops budget is not finite and > 0, or
// the error of writing the figure.
absl::Status FitPoints(const CommandContext& ctx,
                       const FitCommandOptions& options);

struct OptimalCommandOptions {
  std::optional<double> flops, params, loss;  // exactly one
  std::string fit_file;  // a `fit --format json` output; empty: a sweep
  std::string sweep_id;  // empty: the only sweep with a fit
  int approach = 3;      // 2 needs a fit file with Approach 2
  bool force = false;    // answer from an unidentified fit
};

// Prints {flops, params, tokens, loss, approach[, ci95]} (JSON) or the same
// as text. INVALID_ARGUMENT unless exactly one of flops, params and loss is
// given (or for a bad value); NOT_FOUND / INVALID_ARGUMENT for an unreadable
// fit file; FAILED_PRECONDITION when the fit cannot answer (analysis/
// queries.h). Without a fit file the coordinator answers (its Optimal RPC,
// from the sweep's stored fit, with ci95 once the sweep's final fit has its
// bootstrap); its errors are returned as they come (FAILED_PRECONDITION
// naming the fitted sweeps when no sweep is given and more than one has a
// fit). A fit whose verdict for the approach asked (analysis/verdict.h) is
// unidentified is refused with its reasons (UntrustedFitError: exit code 3)
// unless `force`; a weak one answers with its reasons on ctx.err (text) or
// in "verdict" (JSON). A fit without a verdict (stored before verdicts)
// answers with a note that it was not judged.
absl::Status AnswerOptimal(const CommandContext& ctx,
                           const OptimalCommandOptions& options);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_FIT_COMMAND_H_
