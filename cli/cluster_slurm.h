// `isoflop cluster slurm submit-workers`: writes the sbatch script that runs
// one isoflop-worker per allocated node (the body is
// deploy/slurm/isoflop-workers.sbatch, compiled in) with #SBATCH lines and
// settings from the flags, and submits it with sbatch. docs/cluster.md.
#ifndef ISOFLOP_CLI_CLUSTER_SLURM_H_
#define ISOFLOP_CLI_CLUSTER_SLURM_H_

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace isoflop::cli {

struct SlurmWorkersOptions {
  int nodes = 0;            // --nodes, 1..10000
  std::string partition;    // --partition ("" : the cluster's default)
  int gpus_per_node = 0;    // --gpus-per-node, 0..64 (0: CPU workers)
  std::string time;         // --time in a Slurm time format ("" : default)
  int signal_lead_s = 120;  // USR1 this many seconds before the end
  std::string job_name = "isoflop-workers";
  std::string coordinator;     // host:port the nodes dial (required)
  std::string data_dir;        // dataset root on the nodes (required)
  std::string token_file;      // the coordinator's STATE/worker_token
  std::string checkpoint_dir;  // "" : per node under the logs directory
  std::string logs_dir;        // "" : $HOME/isoflop-logs on the nodes
  std::string worker_bin;      // "" : isoflop-worker on the nodes' PATH
  int cpu_slots = 1;           // CPU trials per node without GPUs, 1..256
  std::string output;          // sbatch --output ("" : Slurm's default)
  std::string script_out;      // where the script is written (required)
  std::string sbatch = "sbatch";
  bool dry_run = false;  // write the script, do not submit
};

// Every field checked at the boundary: an error names the flag, its value
// and the rule.
absl::Status ValidateSlurmWorkersOptions(const SlurmWorkersOptions& o);

// Whether `t` is a Slurm time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or
// D-HH:MM:SS (digits only; "infinite"/"unlimited" too).
bool IsSlurmTime(const std::string& t);

// The script: shebang, #SBATCH lines from `o`, the settings as exported
// shell variables (single-quoted), then the body of
// deploy/slurm/isoflop-workers.sbatch without its own #SBATCH lines.
std::string SlurmWorkersScript(const SlurmWorkersOptions& o);

// Runs argv (argv[0] looked up on PATH), returns its exit code and stdout;
// stderr goes to `err`. Injected so tests can fake sbatch.
using CommandRunner = std::function<absl::StatusOr<std::pair<int, std::string>>(
    const std::vector<std::string>& argv)>;
CommandRunner RealCommandRunner();

// Validates, writes the script to o.script_out and (unless dry_run) submits
// it with `sbatch --parsable`; prints the script path and the job id to
// `out`. Returns the job id ("" on a dry run).
absl::StatusOr<std::string> SubmitSlurmWorkers(const SlurmWorkersOptions& o,
                                               const CommandRunner& run,
                                               std::ostream& out);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_CLUSTER_SLURM_H_
