// isoflop: the user's command-line tool. Parses flags, builds the seams
// (gRPC coordinator API, clock, streams) and calls cli/commands.h.
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "cli/data_prepare.h"
#include "cli/grpc_coordinator_api.h"
#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
#include "cli/fit_command.h"
#endif

namespace {

using isoflop::cli::CommandContext;

struct Flags {
  std::string address = "127.0.0.1:50051";
  std::string format = "table";
  double rpc_timeout_s = 30;
  std::string file, sweep_id, points, name, data_dir = "data";
  bool wait = false;
  double optimal_flops = 0, flops = 0;
  std::optional<int> vocab_size;
  std::optional<double> val_fraction;
  std::vector<std::string> inputs;
};

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

absl::Status DataPrepare(const Flags& f) {
  auto self = std::filesystem::read_symlink("/proc/self/exe");
  auto tool = isoflop::cli::FindCompanionBinary("isoflop-data", self, Env("PATH", ""));
  if (!tool.ok()) return tool.status();
  auto argv = isoflop::cli::DataPrepareArgv(
      *tool, {f.name, f.data_dir, f.vocab_size, f.val_fraction, f.inputs});
  if (!argv.ok()) return argv.status();
  return isoflop::cli::ExecReplacingProcess(*argv);
}

absl::Status Fit(const CommandContext& ctx, const Flags& f) {
#ifdef ISOFLOP_CLI_HAVE_ANALYSIS
  return isoflop::cli::FitPoints(ctx, f.points, f.flops);
#else
  return absl::UnimplementedError("this isoflop was built without the analysis library");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  f.address = Env("ISOFLOP_ADDRESS", f.address);
  // Not ./data: in a checkout that is the source folder of isoflop-data.
  f.data_dir = Env("ISOFLOP_DATA_DIR", Env("HOME", ".") + "/.cache/isoflop/data");
  CLI::App app{"isoflop: run scaling-law sweeps (model sizes x token budgets) on a coordinator "
               "and its workers, and ask for the compute-optimal model size."};
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--address", f.address, "coordinator host:port (env ISOFLOP_ADDRESS)")
      ->capture_default_str();
  app.add_option("--format", f.format, "output: table (for people) or json (for programs)")
      ->check(CLI::IsMember({"table", "json"}))->capture_default_str();
  app.add_option("--rpc-timeout-s", f.rpc_timeout_s, "deadline of each RPC")->capture_default_str();
  app.footer("Examples:\n"
             "  isoflop data prepare --name kjv-bpe512 --vocab-size 512\n"
             "  isoflop sweep submit configs/demo-cpu.textproto --wait\n"
             "  isoflop sweep list\n"
             "  isoflop optimal --flops 1e21\n"
             "  isoflop fit --points points.csv --flops 1e21 --format json\n"
             "Exit status: 0 ok, 1 failed (one line on stderr), 2 usage error.");

  CLI::App* sweep = app.add_subcommand("sweep", "submit, watch and cancel sweeps");
  sweep->require_subcommand(1);
  CLI::App* submit = sweep->add_subcommand("submit", "submit a text-format SweepConfig");
  submit->add_option("FILE", f.file, "config, e.g. configs/demo-cpu.textproto")->required();
  submit->add_flag("--wait", f.wait, "show progress per trial, then the fit and the optimum");
  submit->add_option("--optimal-flops", f.optimal_flops,
                     "budget for the closing optimum (default 100x the largest budget)");
  submit->footer("Example: isoflop sweep submit configs/demo-cpu.textproto --wait\n"
                 "Prints the sweep id; a config error prints FILE:LINE:COL: message.");
  CLI::App* list = sweep->add_subcommand("list", "list sweeps with their state and fit");
  CLI::App* status = sweep->add_subcommand("status", "show one sweep's trials");
  status->add_option("ID", f.sweep_id, "sweep id (from submit or list)")->required();
  CLI::App* cancel = sweep->add_subcommand("cancel", "cancel a sweep's unfinished trials");
  cancel->add_option("ID", f.sweep_id, "sweep id")->required();

  CLI::App* optimal = app.add_subcommand("optimal", "compute-optimal N and D for a budget");
  optimal->add_option("--flops", f.flops, "compute budget C in FLOPs")->required();
  optimal->add_option("--sweep", f.sweep_id, "use this sweep's fit (default: newest with a fit)");
  optimal->footer("Example: isoflop optimal --flops 1e21 --sweep sw-0123456789ab");

  CLI::App* fit = app.add_subcommand("fit", "fit L(N, D) = E + A/N^alpha + B/D^beta offline");
  fit->add_option("--points", f.points, "CSV of observations (N, D, loss)")->required();
  fit->add_option("--flops", f.flops, "also print the compute-optimal N, D for this budget");
  fit->footer("Example: isoflop fit --points chinchilla.csv --flops 5.76e23");

  CLI::App* data = app.add_subcommand("data", "prepare tokenised datasets");
  data->require_subcommand(1);
  CLI::App* prepare = data->add_subcommand("prepare", "train a BPE tokenizer, write token files");
  prepare->add_option("--name", f.name, "dataset name (configs refer to it)")->required();
  prepare->add_option("--data-dir", f.data_dir, "dataset root (env ISOFLOP_DATA_DIR)")
      ->capture_default_str();
  prepare->add_option("--vocab-size", f.vocab_size, "tokenizer vocabulary size");
  prepare->add_option("--val-fraction", f.val_fraction, "held-out fraction for validation");
  prepare->add_option("--input", f.inputs, "text file(s); default: the King James Bible");
  prepare->footer("Example: isoflop data prepare --name kjv-bpe512 --vocab-size 512");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  isoflop::RealClock clock;
  std::unique_ptr<isoflop::cli::CoordinatorApi> api;
  if (!*fit && !*data) {
    api = std::make_unique<isoflop::cli::GrpcCoordinatorApi>(f.address,
                                                             absl::Seconds(f.rpc_timeout_s));
  }
  CommandContext ctx{.api = api.get(), .out = &std::cout, .err = &std::cerr,
                     .format = f.format == "json" ? isoflop::cli::Format::kJson
                                                  : isoflop::cli::Format::kTable,
                     .clock = &clock, .sleep = [](absl::Duration d) { absl::SleepFor(d); }};
  absl::Status result;
  if (*submit) result = isoflop::cli::SubmitSweep(ctx, f.file, f.wait, f.optimal_flops);
  if (*list) result = isoflop::cli::ListSweeps(ctx);
  if (*status) result = isoflop::cli::ShowSweep(ctx, f.sweep_id);
  if (*cancel) result = isoflop::cli::CancelSweep(ctx, f.sweep_id);
  if (*optimal) result = isoflop::cli::ShowOptimal(ctx, f.flops, f.sweep_id);
  if (*fit) result = Fit(ctx, f);
  if (*prepare) result = DataPrepare(f);
  std::cout.flush();
  if (result.ok()) return 0;
  std::cerr << "isoflop: " << absl::StatusCodeToString(result.code()) << ": "
            << absl::StrReplaceAll(result.message(), {{"\n", " "}}) << "\n";
  return 1;
}
