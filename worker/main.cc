// isoflop-worker: parses flags and wires the Agent to a real clock, the
// fork/exec launcher and a gRPC coordinator client. See worker/agent.h.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/bearer_token.h"
#include "common/clock.h"
#include "common/grpc_log.h"
#include "common/log.h"
#include "common/tls.h"
#include "worker/agent.h"
#include "worker/grpc_coordinator_client.h"
#include "worker/posix_process_launcher.h"
#include "worker/sample_server.h"

namespace {

// Whether an Agent log line reports a failed call ("heartbeat: UNAVAILABLE:
// ..."): it names a canonical error code.
bool HasErrorStatus(absl::string_view line) {
  for (int code = 1; code <= 16; ++code) {
    if (absl::StrContains(line,
                          absl::StrCat(absl::StatusCodeToString(
                                           static_cast<absl::StatusCode>(code)),
                                       ": "))) {
      return true;
    }
  }
  return false;
}

// The key fields of an Agent log line: the agent names a trial's attempt as
// "trial ID attempt N" (Describe in agent.cc) at the start of the line.
isoflop::LogFields TrialFields(absl::string_view line) {
  std::vector<absl::string_view> words =
      absl::StrSplit(line, absl::MaxSplits(' ', 4));
  if (words.size() < 4 || words[0] != "trial" || words[2] != "attempt") {
    return {};
  }
  return {{"trial", std::string(words[1])},
          {"attempt", std::string(absl::StripSuffix(words[3], ":"))}};
}

// Waits up to `timeout` for one of the blocked signals in `set`; returns it or
// 0.
int WaitForSignal(const sigset_t& set, absl::Duration timeout) {
  timespec ts = absl::ToTimespec(timeout);
  int sig = sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

std::string Hostname() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  // Block the stop signals before any thread starts; the loop waits for them.
  // SIGUSR1 is Slurm's warning before preemption or the time limit
  // (`--signal=B:USR1@120`, deploy/slurm/isoflop-workers.sbatch forwards it):
  // the same clean stop, so that the trainers checkpoint and their trials are
  // handed back RETRYABLE before Slurm kills the job (docs/cluster.md).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  CLI::App app{
      "isoflop-worker: registers with a coordinator, leases trials and runs "
      "each as an "
      "isoflop-trainer child process, relaying its metrics and reporting its "
      "outcome."};
  std::string coordinator = "127.0.0.1:50051", data_dir, trainer,
              logs_dir = "logs", worker_id, checkpoint_dir, token_file, tls_ca,
              data_bin, sample_device = "cpu";
  int cpu_slots = 1, gpus = 0, trials_per_gpu = 1;
  std::string rendezvous_host, rendezvous_ports = "29500-29999";
  double rpc_timeout_s = 10, kill_grace_s = 10;
  std::string log_format = "text";
  app.add_option("--coordinator", coordinator, "coordinator address host:port")
      ->capture_default_str();
  app.add_option("--data-dir", data_dir,
                 "root of prepared datasets (ROOT/<dataset>/train.bin)")
      ->required();
  app.add_option("--trainer", trainer,
                 "isoflop-trainer binary (default: next to this binary)");
  app.add_option("--data-bin", data_bin,
                 "isoflop-data binary, which tokenizes sampling prompts "
                 "(default: next to this binary)");
  app.add_option("--sample-device", sample_device,
                 "sampling and eval jobs the coordinator relays (POST "
                 "/api/v1/trials/ID/generate, /eval) run on cpu or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--cpu-slots", cpu_slots,
                 "concurrent CPU trials when --gpus is 0")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--gpus", gpus, "GPUs to use (CUDA_VISIBLE_DEVICES per trial)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--trials-per-gpu", trials_per_gpu,
                 "concurrent single-GPU trials per GPU (plain processes; "
                 "raises throughput of small models, see bench/results)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--rendezvous-host", rendezvous_host,
                 "address other workers reach this one at when it hosts rank "
                 "0 of a multi-rank trial (MASTER_ADDR; default: hostname; "
                 "docs/architecture.md §2.3)");
  app.add_option("--rendezvous-ports", rendezvous_ports,
                 "LO-HI: ports the coordinator picks MASTER_PORT from for "
                 "rank 0 here (open them between workers)")
      ->capture_default_str()
      ->check([](const std::string& v) -> std::string {
        uint32_t lo = 0, hi = 0;
        const size_t dash = v.find('-');
        if (dash == std::string::npos ||
            !absl::SimpleAtoi(v.substr(0, dash), &lo) ||
            !absl::SimpleAtoi(v.substr(dash + 1), &hi) || lo < 1024 ||
            hi > 65535 || lo > hi) {
          return "--rendezvous-ports = " + v +
                 ": must be LO-HI with 1024 <= LO <= HI <= 65535";
        }
        return "";
      });
  app.add_option("--logs-dir", logs_dir,
                 "trainer logs go to DIR/<trial>-<attempt>.log")
      ->capture_default_str();
  app.add_option("--checkpoint-dir", checkpoint_dir,
                 "trainers checkpoint to DIR/<trial>/ and resume from it on "
                 "a re-run (share DIR between workers to resume across "
                 "them; default LOGS/checkpoints; 'none': off)");
  app.add_option("--token-file", token_file,
                 "file holding the coordinator's worker token, used when "
                 "ISOFLOP_WORKER_TOKEN is not set (the coordinator writes it "
                 "to STATE/worker_token beside its --db)");
  app.add_option("--tls-ca", tls_ca,
                 "PEM CA certificate that signed a TLS coordinator's "
                 "--tls-cert: talk TLS to it (env ISOFLOP_TLS_CA; default: "
                 "plain TCP)");
  app.add_option("--worker-id", worker_id,
                 "stable id to register under (default: assigned)");
  app.add_option("--rpc-timeout-s", rpc_timeout_s, "deadline of every RPC")
      ->capture_default_str();
  app.add_option("--kill-grace-s", kill_grace_s,
                 "SIGTERM to SIGKILL grace for trainers")
      ->capture_default_str();
  app.add_option("--log-format", log_format,
                 "stderr lines: text (for people) or json (one object per "
                 "line: ts, level, component, msg, worker, trial, attempt)")
      ->capture_default_str();
  app.footer(
      "Example:\n  isoflop-worker --coordinator 127.0.0.1:50051 --data-dir "
      "~/.cache/isoflop/data \\\n"
      "    --trainer build/bin/isoflop-trainer --cpu-slots 2 --logs-dir "
      "state/logs \\\n"
      "    --token-file state/worker_token\n"
      "Auth: every RPC carries the worker token: ISOFLOP_WORKER_TOKEN, else "
      "--token-file.\n"
      "TLS: a coordinator started with --tls-cert needs --tls-ca ca.pem (or "
      "ISOFLOP_TLS_CA).\n"
      "SIGTERM/SIGINT/SIGUSR1: stops running trainers (SIGTERM: they "
      "checkpoint), reports them RETRYABLE, exits 0 (SIGUSR1: Slurm's "
      "--signal=B:USR1@120 before preemption, deploy/slurm/).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  absl::StatusOr<isoflop::LogFormat> format =
      isoflop::ParseLogFormat(log_format);
  if (!format.ok()) {
    std::fprintf(stderr, "isoflop-worker: %s\n",
                 std::string(format.status().message()).c_str());
    return 2;
  }
  const isoflop::Logger log("isoflop-worker", *format);
  isoflop::RouteGrpcLogs(&log);
  if (trainer.empty())
    trainer =
        (fs::read_symlink("/proc/self/exe").parent_path() / "isoflop-trainer")
            .string();

  if (data_bin.empty())
    data_bin =
        (fs::read_symlink("/proc/self/exe").parent_path() / "isoflop-data")
            .string();

  absl::StatusOr<std::string> token =
      isoflop::TokenFromEnvOrFile("ISOFLOP_WORKER_TOKEN", token_file);
  if (!token.ok() || token->empty()) {
    log.Error(absl::StrCat(
        token.ok() ? "no token" : token.status().message(),
        ": the coordinator's worker token is needed: set ISOFLOP_WORKER_TOKEN "
        "or --token-file STATE/worker_token (STATE: the folder of the "
        "coordinator's --db)"));
    return 2;
  }

  tls_ca = isoflop::TlsCaPath(tls_ca);
  std::string tls_ca_pem;
  if (!tls_ca.empty()) {
    absl::StatusOr<std::string> pem =
        isoflop::ReadPemCertificates("--tls-ca", tls_ca);
    if (!pem.ok()) {
      log.Error(pem.status().message());
      return 2;
    }
    tls_ca_pem = *std::move(pem);
  }

  isoflop::RealClock clock;
  isoflop::worker::PosixProcessLauncher launcher(&clock);
  isoflop::worker::GrpcCoordinatorClient client(
      coordinator, absl::Seconds(rpc_timeout_s), *token, tls_ca_pem);
  isoflop::worker::AgentOptions options;
  options.worker_id = worker_id;
  options.hostname = Hostname();
  options.cpu_slots = cpu_slots;
  options.gpus = gpus;
  options.trials_per_gpu = trials_per_gpu;
  options.rendezvous_host = rendezvous_host;
  {
    const size_t dash = rendezvous_ports.find('-');  // checked above
    uint32_t lo = 0, hi = 0;
    (void)absl::SimpleAtoi(rendezvous_ports.substr(0, dash), &lo);
    (void)absl::SimpleAtoi(rendezvous_ports.substr(dash + 1), &hi);
    options.rendezvous_port_first = lo;
    options.rendezvous_port_count = hi - lo + 1;
  }
  if (checkpoint_dir.empty()) {
    checkpoint_dir = (fs::path(logs_dir) / "checkpoints").string();
  }
  options.trainer = {.trainer_path = trainer,
                     .data_root = data_dir,
                     .logs_dir = logs_dir,
                     .checkpoint_root = checkpoint_dir == "none"
                                            ? fs::path()
                                            : fs::path(checkpoint_dir)};
  // Under Slurm (or any launcher that hands the worker some of a node's
  // GPUs) CUDA_VISIBLE_DEVICES names them; the worker's GPU i is its i-th.
  absl::StatusOr<std::vector<std::string>> devices =
      isoflop::worker::VisibleDevices(std::getenv("CUDA_VISIBLE_DEVICES"),
                                      gpus);
  if (!devices.ok()) {
    log.Error(devices.status().message());
    return 2;
  }
  options.trainer.visible_devices = *std::move(devices);
  options.kill_grace = absl::Seconds(kill_grace_s);
  options.report_datasets = true;  // worker/dataset_scan.h
  // Every line after registration carries the worker's id.
  const isoflop::worker::Agent* registered = nullptr;
  const auto log_line = [&log, &registered](const std::string& line) {
    isoflop::LogFields fields;
    if (registered != nullptr && !registered->worker_id().empty()) {
      fields.emplace_back("worker", registered->worker_id());
    }
    for (auto& field : TrialFields(line)) fields.push_back(std::move(field));
    log.Log(HasErrorStatus(line) ? isoflop::LogLevel::kWarning
                                 : isoflop::LogLevel::kInfo,
            line, fields);
  };
  options.log = log_line;
  isoflop::worker::Agent agent(options, &launcher, &client);
  registered = &agent;
  // Sampling jobs for the trials whose model.bin this worker keeps, on a
  // stream of their own (worker/sample_server.h).
  isoflop::worker::SampleServer sampling(
      {.address = coordinator, .token = *token, .tls_ca_pem = tls_ca_pem},
      {.trainer_path = trainer,
       .data_bin = data_bin,
       .data_root = data_dir,
       .checkpoint_root = options.trainer.checkpoint_root,
       .scratch_dir = fs::path(logs_dir) / "sampling",
       .device = sample_device,
       .log = log_line},
      &clock);

  log_line("coordinator " + coordinator + (tls_ca.empty() ? "" : " (TLS)") +
           ", " +
           (gpus > 0 ? std::to_string(gpus) + " GPU(s) x " +
                           std::to_string(trials_per_gpu) + " trial(s)"
                     : std::to_string(cpu_slots) + " CPU slot(s)") +
           ", trainer " + trainer);
  int sig = 0;
  while (sig == 0) {
    agent.Tick(clock.Now());
    if (agent.registered()) sampling.SetWorkerId(agent.worker_id());
    sig = WaitForSignal(stop_signals, absl::Milliseconds(100));
  }
  log_line(std::string("received ") + strsignal(sig) + ": stopping trainers");
  sampling.Stop();
  agent.BeginShutdown(clock.Now());
  const absl::Time deadline =
      clock.Now() + absl::Seconds(kill_grace_s) + absl::Seconds(10);
  while (!agent.Idle() && clock.Now() < deadline) {
    agent.Tick(clock.Now());
    if (WaitForSignal(stop_signals, absl::Milliseconds(50)) != 0)
      break;  // a second signal
  }
  if (agent.Idle()) agent.Leave();  // forgotten, not shown lost
  log_line(agent.Idle() ? "stopped" : "stopped with unreported trials");
  isoflop::RouteGrpcLogs(nullptr);
  return 0;
}
