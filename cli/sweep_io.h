// Runs in and out of the coordinator (docs/import-export.md):
// `isoflop sweep import FILE` (runs trained elsewhere become a fit-only
// sweep, ImportSweep) and `isoflop sweep export ID` (every trial's spec,
// state, results and full-resolution curves as CSV or JSON lines).
#ifndef ISOFLOP_CLI_SWEEP_IO_H_
#define ISOFLOP_CLI_SWEEP_IO_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/commands.h"

namespace isoflop::cli {

struct SweepImportOptions {
  std::string file;  // a points file (analysis/points_io.h): CSV or JSON
  std::vector<std::string> columns;  // --column NAME=FILE_COLUMN
  std::string name;                  // the sweep's name; empty: the file's stem
  std::string id;                    // empty: derived from the runs
  std::string dataset;               // a label; may be empty
  // The metric a file's training curves (`run` + `step` columns) are stored
  // as; each run's loss at its last step is its final loss.
  std::string curve_metric = "train_loss";
  bool wait = false;  // wait for the coordinator's final fit and print it
};

// Reads FILE with the points reader (params, tokens and/or flops, loss;
// optional budget, n_non_embedding, run, step: analysis/points_io.h), makes
// one run per row (named by its `run` cell, else "row-LINE"), or with
// curves one run per `run` (its rows are the curve), and calls ImportSweep.
// Prints the sweep id (table) or {sweep_id, n_trials, existed} (JSON); with
// `wait`, polls GetSweep until the final fit is stored (ctx.fit_grace) and
// adds the law. The reader's errors come back as they are (NOT_FOUND,
// INVALID_ARGUMENT naming line and column), the coordinator's too
// (INVALID_ARGUMENT naming runs[i].field; ALREADY_EXISTS for an id holding
// other runs); DEADLINE_EXCEEDED when `wait` sees no final fit in time.
absl::Status ImportSweepFile(const CommandContext& ctx,
                             const SweepImportOptions& options);

struct SweepExportOptions {
  std::string sweep_id;
  std::string format = "jsonl";  // csv or jsonl
  std::string out = "-";         // a file; "-": ctx.out
  std::vector<std::string> metrics = {"train_loss", "val_loss"};
};

// Writes the sweep with GetSweep and every point of each metric of each
// trial with GetTrialMetrics (paged: full resolution, every step stored).
//
// jsonl: line 1 {"sweep": {id, name, state, paused, imported, trial_counts,
// config (the SweepConfig as JSON, proto field names)}}, then one line per
// trial {"trial": {id, state, attempt, step, val_loss, train_loss,
// tokens_per_s, error, spec (TrialSpec as JSON), curves {metric: {steps[],
// values[]}}}} (null for a loss that is unknown).
// csv (RFC 4180; quoted where needed): one row per (trial, metric, step)
// with columns run, state, params, tokens, budget, flops, d_model, n_layers,
// n_heads, lr, batch_sequences, context, val_loss, metric, step, value; a
// trial without points has one row with metric, step and value empty.
// INVALID_ARGUMENT for a bad format or metric name, the RPCs' errors as they
// come, PERMISSION_DENIED naming a file that cannot be written.
absl::Status ExportSweep(const CommandContext& ctx,
                         const SweepExportOptions& options);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_SWEEP_IO_H_
