#include "cli/commands.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "cli/config_file.h"
#include "common/readable.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/sweep/validate.h"

namespace isoflop::cli {

namespace {
constexpr char kExitCodeUrl[] = "isoflop.dev/exit-code";
}  // namespace

int ExitCodeOf(const absl::Status& status) {
  if (status.ok()) return 0;
  const auto code = status.GetPayload(kExitCodeUrl);
  return code.has_value() && *code == "3" ? 3 : 1;
}

void DropSamples(v1::Sweep* sweep) {
  if (!sweep->has_fit()) return;
  sweep->mutable_fit()->clear_approach3_samples();
  sweep->mutable_fit()->clear_approach2_samples();
}

absl::Status UntrustedFitError(absl::string_view message) {
  absl::Status status = absl::FailedPreconditionError(message);
  status.SetPayload(kExitCodeUrl, absl::Cord("3"));
  return status;
}
namespace {

bool Ended(v1::SweepState state) {
  return state == v1::SWEEP_SUCCEEDED || state == v1::SWEEP_FAILED ||
         state == v1::SWEEP_CANCELLED;
}

bool TrialEnded(v1::TrialState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED ||
         state == v1::CANCELLED;
}

std::ostream& ProgressStream(const CommandContext& ctx) {
  return ctx.format == Format::kJson ? *ctx.err : *ctx.out;
}

// A progress line of its own; on a terminal it first erases the redrawn
// overall line (which the next poll draws again below it).
void ProgressLine(const CommandContext& ctx, const std::string& text) {
  if (ctx.progress_tty) ProgressStream(ctx) << "\r\033[K";
  ProgressStream(ctx) << text << "\n";
}

// What was last printed about one trial.
struct Seen {
  v1::TrialState state = v1::PENDING;
  uint64_t step = 0;
  absl::Time printed = absl::InfinitePast();
};

void PrintProgress(const CommandContext& ctx, const v1::Sweep& sweep,
                   std::map<std::string, Seen>& seen) {
  const int total = sweep.trials_size();
  const auto ended =
      std::count_if(sweep.trials().begin(), sweep.trials().end(),
                    [](const v1::Trial& t) { return TrialEnded(t.state()); });
  const absl::Time now = ctx.clock->Now();
  for (const v1::Trial& trial : sweep.trials()) {
    Seen& s = seen[trial.spec().trial_id()];
    const bool changed = trial.state() != s.state;
    const bool progressed = trial.state() == v1::RUNNING &&
                            trial.step() != s.step &&
                            now - s.printed >= ctx.progress_interval;
    if (!changed && !progressed) continue;
    s = {trial.state(), trial.step(), now};
    // On a terminal the overall line says it all, but for failures.
    if (ctx.progress_tty && !(changed && trial.state() == v1::FAILED)) continue;
    ProgressLine(ctx, absl::StrCat("[", ended, "/", total, "] ",
                                   TrialProgressLine(trial)));
  }
  ProgressStream(ctx).flush();
}

double LargestBudget(const v1::Sweep& sweep) {
  double largest = 0;
  for (double b : sweep.config().grid().flops_budgets())
    largest = std::max(largest, b);
  return largest;
}

std::string FirstError(const v1::Sweep& sweep) {
  for (const v1::Trial& t : sweep.trials()) {
    if (!t.error().empty())
      return absl::StrCat("; first error (", t.spec().trial_id(),
                          "): ", t.error());
  }
  return "";
}

absl::Status PrintResult(const CommandContext& ctx, const v1::Sweep& sweep,
                         double optimal_flops) {
  if (sweep.state() != v1::SWEEP_SUCCEEDED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sweep ", sweep.id(), " ended ", v1::SweepState_Name(sweep.state()),
        ": ", TrialCountsText(sweep), FirstError(sweep)));
  }
  if (!sweep.has_fit()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sweep ", sweep.id(), " succeeded but no fit was stored within ",
        absl::FormatDuration(ctx.fit_grace), "; see the coordinator's log"));
  }
  // An unidentified law answers nothing (docs/fitting.md): the law and the
  // reasons are shown, and `optimal --force` is the way to ask anyway.
  if (sweep.fit().approach3_verdict().level() == "unidentified") {
    if (ctx.format == Format::kJson) {
      v1::Sweep compact = sweep;
      DropSamples(&compact);
      *ctx.out << ToJsonObject({{"sweep", &compact}}) << "\n";
    } else {
      *ctx.out << "sweep " << sweep.id()
               << " SUCCEEDED: " << TrialCountsText(sweep) << "\n"
               << FitText(sweep.fit(), ctx.digits)
               << "no compute-optimal answer: the Approach 3 law is "
                  "unidentified (reasons above); `isoflop optimal --sweep "
               << sweep.id() << " --flops C --force` answers anyway\n";
    }
    return absl::OkStatus();
  }
  // By default 10x the largest budget: an answer near the data, its
  // extrapolation factor stated; far beyond it, a warning.
  const double largest = LargestBudget(sweep);
  v1::OptimalRequest request;
  request.set_flops(optimal_flops > 0 ? optimal_flops : 10 * largest);
  request.set_sweep_id(sweep.id());
  const double factor = largest > 0 ? request.flops() / largest : 0;
  std::string extrapolation;
  if (factor > 0) {
    extrapolation = absl::StrCat(
        "  extrapolation: ",
        factor >= 10 ? absl::StrFormat("%.0f", factor) : Sig(factor, 2),
        "x the sweep's largest budget",
        factor > 100 ? " (warning: beyond 100x, far past the data)" : "", "\n");
  }
  absl::StatusOr<v1::OptimalResponse> optimal_or = ctx.api->Optimal(request);
  if (!optimal_or.ok()) {
    // Show the law that was fitted, then say plainly why it gives no answer.
    if (ctx.format != Format::kJson) {
      *ctx.out << "sweep " << sweep.id()
               << " SUCCEEDED: " << TrialCountsText(sweep) << "\n"
               << FitText(sweep.fit(), ctx.digits);
    }
    return absl::FailedPreconditionError(
        absl::StrCat("no compute-optimal answer from this fit: ",
                     optimal_or.status().message(),
                     "; the grid probably does not bracket the optimum (add "
                     "model sizes or budgets)"));
  }
  const v1::OptimalResponse& optimal = *optimal_or;
  if (ctx.format == Format::kJson) {
    v1::Sweep compact = sweep;
    DropSamples(&compact);
    *ctx.out << ToJsonObject({{"sweep", &compact}, {"optimal", &optimal}})
             << "\n";
  } else {
    *ctx.out << "sweep " << sweep.id()
             << " SUCCEEDED: " << TrialCountsText(sweep) << "\n"
             << FitText(sweep.fit(), ctx.digits) << OptimalText(optimal)
             << extrapolation;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SubmitSweep(const CommandContext& ctx, const std::string& path,
                         bool wait, double optimal_flops,
                         const std::string& id) {
  v1::SubmitSweepRequest request;
  ASSIGN_OR_RETURN(*request.mutable_config(), LoadSweepConfig(path));
  request.set_id(id);
  // Checked here, not only by the coordinator: a config over gRPC's message
  // limit, or one protobuf cannot send (a name that is not UTF-8), would
  // fail in transport with no field named.
  if (!id.empty()) RETURN_IF_ERROR(coordinator::ValidateSweepId(id));
  if (absl::Status s = coordinator::ValidateSweepConfigLimits(request.config());
      !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  if (ctx.before_submit) RETURN_IF_ERROR(ctx.before_submit(request.config()));
  ASSIGN_OR_RETURN(v1::SubmitSweepResponse response, ctx.api->Submit(request));
  if (ctx.format == Format::kJson) {
    *ctx.out << ToJson(response) << "\n";
  } else {
    *ctx.out << response.sweep_id() << "\n";
    *ctx.err << "submitted sweep " << response.sweep_id() << " ("
             << response.n_trials() << " trials; "
             << SchedulingText(request.config().scheduling()) << ")\n";
    if (request.config().grid().has_adaptive()) {
      *ctx.err << "adaptive grid: those trials are the first budget's; the "
                  "coordinator places the next budgets' as budgets end\n";
    }
    for (const std::string& w : response.design_warnings()) {
      *ctx.err << "warning: " << EscapeUnprintable(w) << "\n";
    }
  }
  ctx.out->flush();
  if (!wait) return absl::OkStatus();
  return WaitForSweep(ctx, response.sweep_id(), optimal_flops);
}

absl::Status WaitForSweep(const CommandContext& ctx,
                          const std::string& sweep_id, double optimal_flops,
                          const v1::ScalingLawFit* stale) {
  std::map<std::string, Seen> seen;
  absl::Time fit_deadline = absl::InfiniteFuture();
  int transient_failures = 0;
  const absl::Time start = ctx.clock->Now();
  std::string last_counts;  // the overall line up to its elapsed time
  bool bar_drawn = false;
  while (true) {
    absl::StatusOr<v1::Sweep> sweep = ctx.api->GetSweep(sweep_id);
    if (!sweep.ok()) {
      // Ride out a coordinator restart; give up after about half a minute.
      if (absl::IsUnavailable(sweep.status()) && ++transient_failures < 30) {
        ctx.sleep(ctx.poll_interval);
        continue;
      }
      return sweep.status();
    }
    transient_failures = 0;
    PrintProgress(ctx, *sweep, seen);
    const std::string overall =
        OverallProgressText(*sweep, ctx.clock->Now() - start);
    const std::string counts = overall.substr(0, overall.find("; elapsed"));
    if (ctx.progress_tty) {
      ProgressStream(ctx) << "\r\033[K" << overall;
      bar_drawn = true;
    } else if (counts != last_counts) {
      ProgressStream(ctx) << "progress " << overall << "\n";
    }
    last_counts = counts;
    ProgressStream(ctx).flush();
    if (Ended(sweep->state())) {
      // The sweep's last trial queues the final fit (Approach 2 + bootstrap);
      // a refit stored while it ran has fewer points.
      const absl::Time now = ctx.clock->Now();
      const bool fresh_final =
          sweep->has_fit() && sweep->fit().final() &&
          (stale == nullptr ||
           !google::protobuf::util::MessageDifferencer::Equals(sweep->fit(),
                                                               *stale));
      if (fit_deadline == absl::InfiniteFuture()) {
        fit_deadline = now + ctx.fit_grace;
        if (sweep->state() == v1::SWEEP_SUCCEEDED && !fresh_final) {
          ProgressLine(ctx,
                       "all trials ended; waiting for the final fit "
                       "(Approaches 2 and 3, bootstrap)");
          ProgressStream(ctx).flush();
        }
      }
      if (sweep->state() != v1::SWEEP_SUCCEEDED || fresh_final ||
          now >= fit_deadline) {
        if (bar_drawn) ProgressStream(ctx) << "\n";  // keep the last line
        return PrintResult(ctx, *sweep, optimal_flops);
      }
    }
    ctx.sleep(ctx.poll_interval);
  }
}

absl::Status ListSweeps(const CommandContext& ctx,
                        const ListSweepsOptions& options) {
  const std::string state = absl::AsciiStrToUpper(options.state);
  const std::vector<std::string> states = {"RUNNING", "PAUSED", "SUCCEEDED",
                                           "FAILED", "CANCELLED"};
  if (!state.empty() &&
      std::find(states.begin(), states.end(), state) == states.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--state = '", options.state,
        "': must be running, paused, succeeded, failed or cancelled"));
  }
  if (options.limit < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--limit = ", options.limit, ": must be >= 0 (0: all)"));
  }
  ASSIGN_OR_RETURN(v1::ListSweepsResponse all, ctx.api->ListSweeps());
  std::vector<const v1::Sweep*> kept;
  for (const v1::Sweep& s : all.sweeps()) {
    const std::string name =
        s.paused() && s.state() == v1::SWEEP_RUNNING
            ? "PAUSED"
            : v1::SweepState_Name(s.state()).substr(6);  // "SWEEP_..."
    if (state.empty() || name == state) kept.push_back(&s);
  }
  if (options.limit > 0 && kept.size() > static_cast<size_t>(options.limit)) {
    std::vector<const v1::Sweep*> newest = kept;
    std::stable_sort(newest.begin(), newest.end(),
                     [](const v1::Sweep* a, const v1::Sweep* b) {
                       return a->created_unix_ms() > b->created_unix_ms();
                     });
    newest.resize(static_cast<size_t>(options.limit));
    std::erase_if(kept, [&newest](const v1::Sweep* s) {
      return std::find(newest.begin(), newest.end(), s) == newest.end();
    });
  }
  v1::ListSweepsResponse sweeps;
  for (const v1::Sweep* s : kept) *sweeps.add_sweeps() = *s;
  for (v1::Sweep& s : *sweeps.mutable_sweeps()) DropSamples(&s);
  *ctx.out << (ctx.format == Format::kJson ? ToJson(sweeps) + "\n"
                                           : SweepsTable(sweeps));
  return absl::OkStatus();
}

absl::Status ShowSweep(const CommandContext& ctx, const std::string& sweep_id) {
  ASSIGN_OR_RETURN(v1::Sweep sweep, ctx.api->GetSweep(sweep_id));
  DropSamples(&sweep);
  *ctx.out << (ctx.format == Format::kJson
                   ? ToJson(sweep) + "\n"
                   : SweepStatusText(sweep, ctx.digits));
  return absl::OkStatus();
}

absl::Status CancelSweep(const CommandContext& ctx,
                         const std::string& sweep_id) {
  ASSIGN_OR_RETURN(v1::Sweep sweep, ctx.api->CancelSweep(sweep_id));
  if (ctx.format == Format::kJson) {
    *ctx.out << ToJson(sweep) << "\n";
  } else {
    *ctx.out << "cancelled sweep " << sweep.id() << ": "
             << TrialCountsText(sweep) << "\n";
  }
  return absl::OkStatus();
}

absl::Status RetrySweep(const CommandContext& ctx, const std::string& sweep_id,
                        bool failed, bool wait) {
  if (!failed) {
    return absl::InvalidArgumentError(
        "say which trials: --failed (re-queues exactly the FAILED ones)");
  }
  // The fit before the retry: the old final fit stays marked final until
  // the refit after the retried trials replaces it.
  std::optional<v1::ScalingLawFit> stale;
  if (wait) {
    absl::StatusOr<v1::Sweep> before = ctx.api->GetSweep(sweep_id);
    if (before.ok() && before->has_fit()) stale = before->fit();
  }
  v1::RetrySweepRequest request;
  request.set_sweep_id(sweep_id);
  request.set_failed(true);
  ASSIGN_OR_RETURN(v1::Sweep sweep, ctx.api->RetrySweep(request));
  int requeued = 0;
  for (const v1::Trial& t : sweep.trials())
    requeued += t.state() == v1::PENDING;
  if (ctx.format == Format::kJson && !wait) {
    *ctx.out << ToJson(sweep) << "\n";
  } else {
    ProgressStream(ctx) << "re-queued " << requeued
                        << " failed trial(s) of sweep " << sweep.id() << ": "
                        << TrialCountsText(sweep) << "\n";
  }
  ctx.out->flush();
  if (!wait) return absl::OkStatus();
  return WaitForSweep(ctx, sweep.id(), 0, stale ? &*stale : nullptr);
}

absl::Status SetSweepPaused(const CommandContext& ctx,
                            const std::string& sweep_id, bool paused) {
  ASSIGN_OR_RETURN(v1::Sweep sweep, paused ? ctx.api->PauseSweep(sweep_id)
                                           : ctx.api->ResumeSweep(sweep_id));
  if (ctx.format == Format::kJson) {
    *ctx.out << ToJson(sweep) << "\n";
    return absl::OkStatus();
  }
  int running = 0;
  for (const v1::Trial& t : sweep.trials()) {
    running += t.state() == v1::LEASED || t.state() == v1::RUNNING;
  }
  if (paused) {
    *ctx.out << "paused sweep " << sweep.id() << ": " << TrialCountsText(sweep)
             << "\n"
             << running << " running trial(s) finish; pending ones wait for "
             << "`isoflop sweep resume " << sweep.id() << "`\n";
  } else {
    *ctx.out << "resumed sweep " << sweep.id() << ": " << TrialCountsText(sweep)
             << "\n";
  }
  return absl::OkStatus();
}

absl::Status ListWorkers(const CommandContext& ctx) {
  ASSIGN_OR_RETURN(v1::ListWorkersResponse workers, ctx.api->ListWorkers());
  *ctx.out << (ctx.format == Format::kJson ? ToJson(workers) + "\n"
                                           : WorkersTable(workers));
  return absl::OkStatus();
}

absl::Status SetWorkerDraining(const CommandContext& ctx,
                               const std::string& worker_id, bool draining) {
  ASSIGN_OR_RETURN(v1::Worker worker, draining
                                          ? ctx.api->DrainWorker(worker_id)
                                          : ctx.api->UndrainWorker(worker_id));
  if (ctx.format == Format::kJson) {
    *ctx.out << ToJson(worker) << "\n";
    return absl::OkStatus();
  }
  if (draining) {
    *ctx.out << "draining worker " << worker.worker_id() << ": no new trials; "
             << worker.running_trial_ids_size()
             << " running trial(s) finish; `isoflop worker undrain "
             << worker.worker_id() << "` takes it back\n";
  } else {
    *ctx.out << "undrained worker " << worker.worker_id()
             << ": it leases trials again\n";
  }
  return absl::OkStatus();
}

absl::Status ShowOptimal(const CommandContext& ctx, double flops,
                         const std::string& sweep_id) {
  if (!(flops > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--flops = ", flops, ": must be > 0"));
  }
  std::string id = sweep_id;
  if (id.empty()) {
    ASSIGN_OR_RETURN(v1::ListSweepsResponse sweeps, ctx.api->ListSweeps());
    std::vector<std::string> fitted;  // never a silent "newest"
    for (const v1::Sweep& s : sweeps.sweeps()) {
      if (s.has_fit()) fitted.push_back(s.id());
    }
    if (fitted.size() > 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          fitted.size(), " sweeps have a fit (", absl::StrJoin(fitted, ", "),
          "): name one with --sweep"));
    }
    if (fitted.size() == 1) id = fitted[0];
    if (id.empty()) {
      return absl::FailedPreconditionError(
          "no sweep has a fitted law yet: run `isoflop sweep submit CONFIG "
          "--wait` first, "
          "or name one with --sweep ID");
    }
  }
  v1::OptimalRequest request;
  request.set_flops(flops);
  request.set_sweep_id(id);
  ASSIGN_OR_RETURN(v1::OptimalResponse optimal, ctx.api->Optimal(request));
  if (ctx.format == Format::kJson) {
    *ctx.out << ToJson(optimal) << "\n";
  } else {
    *ctx.out << "sweep " << id << "\n"
             << FitText(optimal.fit(), ctx.digits)
             << OptimalText(optimal, ctx.digits);
  }
  return absl::OkStatus();
}

absl::Status TrialLogs(const CommandContext& ctx, const std::string& trial_id,
                       uint32_t attempt, bool follow) {
  v1::GetTrialLogsRequest request;
  request.set_trial_id(trial_id);
  request.set_attempt(attempt);
  std::string pending_line;  // JSON: bytes after the last newline
  auto print_line = [&ctx, &trial_id](const std::string& line, uint32_t a) {
    *ctx.out << nlohmann::json{{"trial_id", trial_id},
                               {"attempt", a},
                               {"line", line}}
                    .dump(-1, ' ', false,
                          nlohmann::json::error_handler_t::replace)
             << "\n";
  };
  while (true) {
    ASSIGN_OR_RETURN(v1::GetTrialLogsResponse r,
                     ctx.api->GetTrialLogs(request));
    if (r.first_offset() > request.offset()) {
      *ctx.err << "[" << r.first_offset() - request.offset()
               << " earlier bytes of attempt " << r.attempt()
               << " not kept: the coordinator keeps the last 1 MiB; the "
                  "worker's --logs-dir has all of it]\n";
    }
    if (ctx.format == Format::kJson) {
      pending_line += r.data();
      size_t start = 0;
      for (size_t nl = pending_line.find('\n'); nl != std::string::npos;
           nl = pending_line.find('\n', start)) {
        print_line(pending_line.substr(start, nl - start), r.attempt());
        start = nl + 1;
      }
      pending_line.erase(0, start);
      // A partial last line is printed once its attempt's log is complete.
      if (!pending_line.empty() &&
          (!follow || r.attempt() < r.latest_attempt() || r.finished())) {
        print_line(pending_line, r.attempt());
        pending_line.clear();
      }
    } else {
      *ctx.out << r.data();
    }
    ctx.out->flush();
    request.set_attempt(r.attempt());
    request.set_offset(std::max(r.next_offset(), request.offset()));
    if (!follow) return absl::OkStatus();
    if (r.attempt() < r.latest_attempt()) {
      // That attempt has ended and its log is complete: on to the next.
      request.set_attempt(r.attempt() + 1);
      request.set_offset(0);
      *ctx.err << "--- attempt " << request.attempt() << " ---\n";
      continue;
    }
    if (r.finished()) return absl::OkStatus();
    ctx.sleep(ctx.poll_interval);
  }
}

absl::StatusOr<std::string> DashboardUrlFromCoordinator(
    const CommandContext& ctx, const std::string& address) {
  absl::StatusOr<v1::CoordinatorInfo> info = ctx.api->GetCoordinatorInfo();
  if (absl::IsUnimplemented(info.status())) {
    return absl::UnimplementedError(
        "this coordinator does not report its dashboard address: pass --http "
        "http://HOST:PORT (its --http-listen)");
  }
  if (!info.ok()) return info.status();
  std::string url = info->dashboard_url();
  if (url.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the coordinator at ", address,
        " serves no dashboard (it was started without --http-listen); "
        "sampling and evaluation need it"));
  }
  // "http://0.0.0.0:8080" -> the host the coordinator was reached at.
  const size_t scheme_end = url.find("://");
  if (scheme_end != std::string::npos) {
    const size_t host_start = scheme_end + 3;
    const size_t port_colon = url.rfind(':');
    if (port_colon != std::string::npos && port_colon > host_start) {
      const std::string host = url.substr(host_start, port_colon - host_start);
      if (host == "0.0.0.0" || host == "::" || host == "[::]" || host.empty()) {
        std::string address_host = address.substr(0, address.rfind(':'));
        if (address_host.empty()) address_host = "127.0.0.1";
        url = absl::StrCat(url.substr(0, host_start), address_host,
                           url.substr(port_colon));
      }
    }
  }
  return url;
}

void PrintError(std::ostream& err, bool json, absl::StatusCode code,
                absl::string_view message, int exit_code) {
  if (json) {
    err << nlohmann::json{{"error",
                           {{"code", absl::StatusCodeToString(code)},
                            {"message", std::string(message)},
                            {"exit_code", exit_code}}}}
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
    return;
  }
  err << "isoflop: " << absl::StatusCodeToString(code) << ": "
      << EscapeUnprintable(absl::StrReplaceAll(message, {{"\n", " "}})) << "\n";
}

std::string BackupJson(const std::string& db, const std::string& out,
                       const BackupResult& result) {
  return nlohmann::json{{"db", db},
                        {"out", out},
                        {"pages", result.pages},
                        {"bytes", result.bytes},
                        {"seconds", result.seconds},
                        {"integrity_check", "ok"}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

nlohmann::json ContextJson(const std::string& name,
                           const ConnectionContext& c) {
  return {{"name", name},
          {"address", c.address},
          {"token_file", c.token_file},
          {"http", c.http},
          {"tls_ca", c.tls_ca}};
}

std::string Absolute(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

}  // namespace

absl::Status SetContext(const std::string& path, const std::string& name,
                        const ConnectionContext& given, std::ostream& out,
                        bool json) {
  RETURN_IF_ERROR(ValidateContextName(name));
  ASSIGN_OR_RETURN(ContextFile file, LoadContextFile(path));
  const bool created = !file.contexts.contains(name);
  ConnectionContext& c = file.contexts[name];
  if (!given.address.empty()) c.address = given.address;
  if (!given.token_file.empty()) c.token_file = Absolute(given.token_file);
  if (!given.http.empty()) c.http = given.http;
  if (!given.tls_ca.empty()) c.tls_ca = Absolute(given.tls_ca);
  if (file.current.empty()) file.current = name;
  RETURN_IF_ERROR(SaveContextFile(path, file));
  if (json) {
    out << ContextJson(name, c).dump() << "\n";
  } else {
    out << (created ? "created" : "changed") << " context " << name << " in "
        << path << (file.current == name ? " (current)" : "") << "\n";
  }
  return absl::OkStatus();
}

absl::Status UseContext(const std::string& path, const std::string& name,
                        std::ostream& out, bool json) {
  RETURN_IF_ERROR(ValidateContextName(name));
  ASSIGN_OR_RETURN(ContextFile file, LoadContextFile(path));
  if (!file.contexts.contains(name)) {
    std::vector<std::string> names;
    for (const auto& [n, c] : file.contexts) names.push_back(n);
    return absl::NotFoundError(absl::StrCat(
        "context '", name, "': not in ", path, " (known: ",
        names.empty() ? "none; isoflop context set NAME ... makes one"
                      : absl::StrJoin(names, ", "),
        ")"));
  }
  file.current = name;
  RETURN_IF_ERROR(SaveContextFile(path, file));
  if (json) {
    out << ContextJson(name, file.contexts[name]).dump() << "\n";
  } else {
    out << "using context " << name << "\n";
  }
  return absl::OkStatus();
}

absl::Status ListContexts(const std::string& path, std::ostream& out,
                          bool json) {
  ASSIGN_OR_RETURN(ContextFile file, LoadContextFile(path));
  if (json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [name, c] : file.contexts) {
      list.push_back(ContextJson(name, c));
    }
    out << nlohmann::json{{"current", file.current}, {"contexts", list}}.dump()
        << "\n";
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows = {
      {"", "NAME", "ADDRESS", "TOKEN_FILE", "HTTP", "TLS_CA"}};
  for (const auto& [name, c] : file.contexts) {
    rows.push_back({name == file.current ? "*" : "", name, c.address,
                    c.token_file, c.http, c.tls_ca});
  }
  out << RenderTable(rows);
  return absl::OkStatus();
}

void ShowContext(std::ostream& out, bool json, const std::string& path,
                 const std::string& name,
                 const std::vector<Setting>& settings) {
  if (json) {
    nlohmann::json doc = {{"file", path}, {"context", name}};
    for (const Setting& s : settings) {
      doc["settings"][s.key] = {{"value", s.value}, {"source", s.source}};
    }
    out << doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
    return;
  }
  out << "file: " << path << "\ncontext: " << (name.empty() ? "(none)" : name)
      << "\n";
  for (const Setting& s : settings) {
    out << s.key << ": " << (s.value.empty() ? "(none)" : s.value) << "  ["
        << s.source << "]\n";
  }
}

}  // namespace isoflop::cli
