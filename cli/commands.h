// The CLI's commands as functions over injected seams (coordinator API,
// output streams, clock and sleep), so tests run them without a server or
// real time. main.cc only parses flags and calls these.
#ifndef ISOFLOP_CLI_COMMANDS_H_
#define ISOFLOP_CLI_COMMANDS_H_

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cli/admin_backup.h"
#include "cli/context_file.h"
#include "cli/coordinator_api.h"
#include "cli/output.h"
#include "common/clock.h"

namespace isoflop::cli {

// Everything a command touches. Pointers must outlive the call; `api` may be
// null for offline commands.
struct CommandContext {
  CoordinatorApi* api = nullptr;
  std::ostream* out = nullptr;  // results
  std::ostream* err = nullptr;  // progress and notes (never results)
  Format format = Format::kTable;
  const Clock* clock = nullptr;
  std::function<void(absl::Duration)> sleep;
  absl::Duration poll_interval = absl::Seconds(1);
  absl::Duration progress_interval = absl::Seconds(5);  // per running trial
  // `--wait` on a terminal: the sweep's progress is one line redrawn in
  // place (carriage return, erase line) and only failed trials get lines of
  // their own; off a terminal, plain lines (main.cc sets it from isatty).
  bool progress_tty = false;
  // How long to wait for the final fit after the last trial; past it the
  // newest refit (if any) is printed.
  absl::Duration fit_grace = absl::Seconds(120);
  // Significant figures of numbers in text output (--digits); 0: full
  // precision (JSON output is always full precision).
  int digits = 3;
  // `sweep submit` calls it with the loaded config before submitting (main.cc
  // shows the plan and may ask to confirm: cli/plan_command.h); a non-OK
  // status stops the submit. Unset: submit at once.
  std::function<absl::Status(const v1::SweepConfig&)> before_submit;
};

// Every command returns OK on success; otherwise the status to print as
// "isoflop: CODE: message" (the RPC's status, or the local one).

// The process exit code for a command's status: 0 for OK, 3 for a status made
// by UntrustedFitError (an unidentified fit refused), 1 otherwise (2, usage
// errors, is main.cc's).
int ExitCodeOf(const absl::Status& status);
// FAILED_PRECONDITION carrying `message`, marked so that ExitCodeOf gives 3:
// `isoflop optimal` refusing a fit whose verdict is unidentified.
absl::Status UntrustedFitError(absl::string_view message);

// Keeps JSON output compact: clears the bootstrap samples of the sweep's
// stored fit (thousands of laws; its ci95 intervals stay).
void DropSamples(v1::Sweep* sweep);

// Reads the text-format config at `path` (errors carry FILE:LINE:COL),
// submits it under `id` (empty: the coordinator derives one from the config;
// ALREADY_EXISTS if `id` names a sweep of another config) and prints the
// sweep id; with `wait`, then WaitForSweep. ctx.before_submit, when set, runs
// after the local checks and before the RPC.
absl::Status SubmitSweep(const CommandContext& ctx, const std::string& path,
                         bool wait, double optimal_flops,
                         const std::string& id = "");

// Polls the sweep until it ends, printing a progress line whenever a trial
// changes state (and at most every progress_interval while it runs) and the
// whole sweep's progress (OverallProgressText: done/total, running, pending,
// elapsed, ETA) whenever its counts change; on a terminal
// (ctx.progress_tty) only the latter, as one line redrawn at every poll,
// and lines for failed trials. Then
// prints the fit and the compute-optimal N, D and loss for `optimal_flops`
// (<= 0: 100x the sweep's largest budget). kFailedPrecondition when the
// sweep ends without success or without a fit.
// `stale`, when set, is the fit the sweep had before `sweep retry`: a final
// fit equal to it is the old one (still marked final while the retried
// trials run) and is not the answer; the refit after them is.
absl::Status WaitForSweep(const CommandContext& ctx,
                          const std::string& sweep_id, double optimal_flops,
                          const v1::ScalingLawFit* stale = nullptr);

// `sweep list --state S --limit N`.
struct ListSweepsOptions {
  // Only sweeps in this state, as `sweep list` shows it: running, paused,
  // succeeded, failed or cancelled (any case); "" for all.
  std::string state;
  // The newest `limit` sweeps (by creation) of those; 0 for all.
  int limit = 0;
};
// The table (or the ListSweepsResponse as JSON) of the sweeps that pass
// `options`, in the coordinator's order. INVALID_ARGUMENT naming --state
// and the states for an unknown state, or --limit for a negative one.
absl::Status ListSweeps(const CommandContext& ctx,
                        const ListSweepsOptions& options = {});
absl::Status ShowSweep(const CommandContext& ctx, const std::string& sweep_id);
absl::Status CancelSweep(const CommandContext& ctx,
                         const std::string& sweep_id);
// Re-queues the sweep's failed trials (`failed` must be set: --failed); with
// `wait`, then waits as `sweep submit --wait` does.
absl::Status RetrySweep(const CommandContext& ctx, const std::string& sweep_id,
                        bool failed, bool wait);

// Pauses (`paused`) or resumes the sweep: a paused sweep's pending trials are
// not leased, its running trials finish. Prints what changed.
absl::Status SetSweepPaused(const CommandContext& ctx,
                            const std::string& sweep_id, bool paused);

// `worker list`: one row per registered worker (id, host, GPUs, CPU slots,
// state live/draining/lost, heartbeat age, running trials), or the
// ListWorkersResponse as JSON.
absl::Status ListWorkers(const CommandContext& ctx);

// Drains (`draining`) or undrains the worker: a draining worker gets no new
// trials, its running trials finish. Prints what changed (JSON: the Worker).
absl::Status SetWorkerDraining(const CommandContext& ctx,
                               const std::string& worker_id, bool draining);

// `trial logs`: writes the trainer's log of the trial's attempt `attempt`
// (0: the latest) to ctx.out as it is, from its first kept byte; a note on
// ctx.err when older bytes were dropped. With `follow`, polls every
// ctx.poll_interval for new bytes, goes on to each later attempt (a
// "--- attempt K ---" line on ctx.err) and returns once the trial has ended.
// With Format::kJson, JSON lines instead of the raw bytes: one object
// {"trial_id", "attempt", "line"} per log line (the line without its
// newline; bytes that are not UTF-8 replaced by U+FFFD).
absl::Status TrialLogs(const CommandContext& ctx, const std::string& trial_id,
                       uint32_t attempt, bool follow);

// Compute-optimal N, D for `flops` from the stored fit of `sweep_id`, or of
// the only sweep with a fit when empty. kInvalidArgument if flops <= 0,
// kFailedPrecondition if no sweep has a fit, or (naming them) when more than
// one has and none is named.
absl::Status ShowOptimal(const CommandContext& ctx, double flops,
                         const std::string& sweep_id);

// The dashboard's URL when --http, ISOFLOP_HTTP and the context give none:
// the coordinator's GetCoordinatorInfo answer, with a wildcard host
// (0.0.0.0, ::, [::]) replaced by the host of `address` (what the CLI
// reached the coordinator at). FAILED_PRECONDITION when the coordinator
// serves no dashboard (it was started without --http-listen); a coordinator
// too old to answer: UNIMPLEMENTED, saying to pass --http.
absl::StatusOr<std::string> DashboardUrlFromCoordinator(
    const CommandContext& ctx, const std::string& address);

// Writes a failed command's status to `err`: with `json`, one line
// {"error": {"code": "NOT_FOUND", "message": "...", "exit_code": 1}};
// otherwise "isoflop: NOT_FOUND: message" (newlines in the message as
// spaces, unprintable bytes escaped).
void PrintError(std::ostream& err, bool json, absl::StatusCode code,
                absl::string_view message, int exit_code);

// `admin backup --format json`: {"db", "out", "pages", "bytes", "seconds",
// "integrity_check": "ok"}.
std::string BackupJson(const std::string& db, const std::string& out,
                       const BackupResult& result);

// ---- `isoflop context` over the context file at `path`
// (cli/context_file.h). Each prints what it did to `out` (JSON with `json`).

// Creates the context `name` or changes the settings given (non-empty
// fields of `given`; token_file and tls_ca made absolute); the first
// context becomes the current one.
absl::Status SetContext(const std::string& path, const std::string& name,
                        const ConnectionContext& given, std::ostream& out,
                        bool json);
// Makes `name` current; NOT_FOUND naming the known ones if there is none.
absl::Status UseContext(const std::string& path, const std::string& name,
                        std::ostream& out, bool json);
// NAME, ADDRESS, TOKEN_FILE, HTTP, TLS_CA; "*" before the current one.
absl::Status ListContexts(const std::string& path, std::ostream& out,
                          bool json);

// One connection setting and where its value came from ("flag", "env
// ISOFLOP_ADDRESS", "context lab", "default").
struct Setting {
  std::string key, value, source;
};
// `context show`: the file, the context's name and the settings.
void ShowContext(std::ostream& out, bool json, const std::string& path,
                 const std::string& name, const std::vector<Setting>& settings);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_COMMANDS_H_
