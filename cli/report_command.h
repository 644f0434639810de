// `isoflop report SWEEP --out DIR`: everything a finished sweep says, as
// files: report.md (for people), report.json (for programs), trials.csv and
// the diagnostic SVG figures (analysis/plot_svg.h, shared with `fit --plot`).
// Reads the sweep with one GetSweep; the fits' intervals and optima are
// computed here from the stored fit's bootstrap samples (analysis/bootstrap.h),
// so no other RPC is needed.
#ifndef ISOFLOP_CLI_REPORT_COMMAND_H_
#define ISOFLOP_CLI_REPORT_COMMAND_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/commands.h"
#include "google/protobuf/message.h"

namespace isoflop::cli {

// A fit's verdict as `isoflop fit --format json` names it: "ok", "weak" or
// "unidentified", with the reasons in words.
struct VerdictView {
  std::string level;
  std::vector<std::string> reasons;
};

// The verdict stored with a fit (v1::ScalingLawFit): a singular message
// field `verdict` with `level` (a string, or an enum whose value name ends
// in OK, WEAK or UNIDENTIFIED) and `repeated string reasons`, read by name
// through protobuf reflection, so that the report prints the verdict as soon
// as the fit carries one. nullopt when there is no such field, it is unset,
// or its level is none of the three.
std::optional<VerdictView> StoredVerdict(const google::protobuf::Message& fit);

struct ReportOptions {
  std::string sweep_id;
  std::string out_dir;       // created if missing; files in it replaced
  double peak_tflops = 989;  // per GPU (H100/H200 dense bf16), for MFU
  // The data's true entropy rate (nats/token), to compare with the fitted E;
  // unset: `entropy_rate_nats` of DATA_DIR/DATASET/meta.json when present.
  std::optional<double> entropy_rate_nats;
  std::string data_dir;  // empty: no meta.json lookup
  // Also report.html (self-contained: cli/report_html.h); `pdf` implies it
  // and prints it to report.pdf with headless Chromium (`chromium`, or
  // FindChromium() when empty).
  bool html = false;
  bool pdf = false;
  std::string chromium;
  // The starts of the backtests' Approach-3 refits, as `isoflop fit
  // --starts` (analysis::StartsFromSpec): "grid" is Chinchilla's 4500.
  std::string starts = "grid";
};

// Writes DIR/report.md, report.json, trials.csv, isoflop_profiles.svg,
// frontier.svg, residuals.svg, predicted_vs_observed.svg and backtest.svg
// (with `html`, report.html; with `pdf`, report.html and report.pdf), with
// progress lines on ctx.err, and prints the paths on ctx.out. A sweep that is
// still running or has no fit is reported as it is (the files say "no fit yet"
// and have no law or optimum): the point of a report is to show what exists.
// Returns the GetSweep error as it comes (NOT_FOUND naming the sweep id when it
// is unknown), INVALID_ARGUMENT for an empty id, a peak that is not finite
// and > 0 or `starts` that StartsFromSpec refuses, PERMISSION_DENIED naming the
// path that could not be written, or for `pdf`: FAILED_PRECONDITION when no
// Chromium is found (the other files are written first), else PrintPdf's error.
//
// trials.csv columns: trial_id, state, shape, params (N), tokens (D), budget
// (the trial's FLOP budget), flops_per_token, gpus, loss (validation loss;
// empty unless SUCCEEDED, and for a branched sweep's trunk), attempts,
// seconds, seconds_estimated, tokens_per_s, mfu, flops (the trial's actual
// C). `isoflop fit --points trials.csv` reads it back (analysis/points_io.h)
// and fits the points the coordinator fitted.
//
// report.json keys: sweep {id, name, state, created_unix_ms, wall_s},
// config {dataset, vocab_size, context, batch_sequences, gpus_per_trial,
// flops_budgets[], shapes[]}, trial_counts {STATE: n}, fit (null without a
// law) {final, n_points, message, approach3 {E, A, B, alpha, beta, a, b},
// approach2 {n_opt_coef, n_opt_exponent, d_opt_coef, d_opt_exponent} or
// null, ci95 {name: [low, high]}}, optimal [{multiple, flops, n_opt, d_opt,
// loss, ci95 {n_opt, d_opt, loss}, approach2 {n_opt, d_opt} or null}],
// entropy {rate_nats, source, fitted_e, relative_error} or null, verdict
// {level, reasons[]} or null (a sweep without a law: "unidentified"),
// backtest {holdout_flops, predicted_loss, observed_loss, relative_error,
// points, mean_abs_relative_error} or null (Approach 3 refitted without the
// largest budget; predicted/observed at that budget's best trial), compute
// {gpu_hours, cpu_core_hours, trials_seconds_estimated}, peak_tflops,
// trials[{id, state, shape, n, d, flops, flops_per_token, gpus, val_loss,
// attempts, seconds, seconds_estimated, tokens_per_s, mfu}] (null where a
// value is unknown). A trial's seconds are Trial.attempt_seconds, or, when
// the coordinator restarted since its first attempt, estimated as tokens
// trained / tokens/s (seconds_estimated).
absl::Status WriteSweepReport(const CommandContext& ctx,
                              const ReportOptions& options);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_REPORT_COMMAND_H_
