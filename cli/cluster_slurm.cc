#include "cli/cluster_slurm.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/slurm_script_body.h"  // generated from deploy/slurm/

extern char** environ;

namespace isoflop::cli {
namespace {

namespace fs = std::filesystem;

bool AllDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

bool OnlyChars(absl::string_view s, absl::string_view extra) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [extra](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           absl::StrContains(extra, c);
  });
}

bool HasControl(absl::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_iscntrl(static_cast<unsigned char>(c));
  });
}

absl::Status Refuse(absl::string_view flag, absl::string_view value,
                    absl::string_view rule) {
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " = \"", value, "\": ", rule));
}

absl::Status RefuseInt(absl::string_view flag, int value,
                       absl::string_view rule) {
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " = ", value, ": ", rule));
}

// Single-quoted for bash: ' becomes '\''.
std::string ShellQuote(absl::string_view s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

// A path the nodes can use: absolute (relative ones are taken from the
// current directory, which sbatch also runs the job in).
std::string Absolute(const std::string& p) {
  if (p.empty()) return p;
  std::error_code ec;
  fs::path a = fs::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
}

}  // namespace

bool IsSlurmTime(const std::string& t) {
  if (t == "infinite" || t == "unlimited" || t == "INFINITE" ||
      t == "UNLIMITED") {
    return true;
  }
  absl::string_view rest = t;
  bool has_days = false;
  if (const size_t dash = rest.find('-'); dash != absl::string_view::npos) {
    if (!AllDigits(rest.substr(0, dash))) return false;
    rest = rest.substr(dash + 1);
    has_days = true;
  }
  std::vector<absl::string_view> parts = absl::StrSplit(rest, ':');
  if (parts.size() > 3) return false;
  for (absl::string_view p : parts) {
    if (!AllDigits(p)) return false;
  }
  return !(has_days && parts.empty());
}

absl::Status ValidateSlurmWorkersOptions(const SlurmWorkersOptions& o) {
  if (o.nodes < 1 || o.nodes > 10000) {
    return RefuseInt("--nodes", o.nodes, "must be in [1, 10000]");
  }
  if (!o.partition.empty() && !OnlyChars(o.partition, "_.,-")) {
    return Refuse("--partition", o.partition,
                  "must be a partition name (letters, digits, _ . - ; "
                  "several separated by commas)");
  }
  if (o.gpus_per_node < 0 || o.gpus_per_node > 64) {
    return RefuseInt("--gpus-per-node", o.gpus_per_node, "must be in [0, 64]");
  }
  if (!o.time.empty() && !IsSlurmTime(o.time)) {
    return Refuse("--time", o.time,
                  "must be a Slurm time limit: MM, MM:SS, HH:MM:SS, D-HH, "
                  "D-HH:MM or D-HH:MM:SS");
  }
  if (o.signal_lead_s < 1 || o.signal_lead_s > 65535) {
    return RefuseInt("--signal-lead-s", o.signal_lead_s,
                     "must be in [1, 65535] (sbatch --signal's @time)");
  }
  if (!OnlyChars(o.job_name, "_.-")) {
    return Refuse("--job-name", o.job_name,
                  "must be 1 or more of letters, digits, _ . -");
  }
  {
    const size_t colon = o.coordinator.rfind(':');
    int port = 0;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(o.coordinator.substr(colon + 1), &port) || port < 1 ||
        port > 65535 || HasControl(o.coordinator) ||
        absl::StrContains(o.coordinator, ' ')) {
      return Refuse("--coordinator", o.coordinator,
                    "must be host:port with a port in [1, 65535], an address "
                    "the nodes can reach (not 127.0.0.1 on a real cluster)");
    }
  }
  if (o.data_dir.empty()) {
    return Refuse("--data-dir", o.data_dir,
                  "must name the dataset root the nodes read "
                  "(DATA/<name>/train.bin)");
  }
  if (o.cpu_slots < 1 || o.cpu_slots > 256) {
    return RefuseInt("--cpu-slots", o.cpu_slots, "must be in [1, 256]");
  }
  if (o.script_out.empty()) {
    return Refuse("--script-out", o.script_out, "must name a file to write");
  }
  for (const auto& [flag, value] :
       {std::pair<const char*, const std::string*>{"--data-dir", &o.data_dir},
        {"--worker-token-file", &o.token_file},
        {"--checkpoint-dir", &o.checkpoint_dir},
        {"--logs-dir", &o.logs_dir},
        {"--worker-bin", &o.worker_bin},
        {"--output", &o.output},
        {"--script-out", &o.script_out},
        {"--sbatch", &o.sbatch}}) {
    if (HasControl(*value)) {
      return Refuse(flag, absl::CEscape(*value),
                    "must not contain control characters");
    }
  }
  return absl::OkStatus();
}

std::string SlurmWorkersScript(const SlurmWorkersOptions& o) {
  std::string s = "#!/bin/bash\n";
  absl::StrAppend(&s,
                  "# Written by `isoflop cluster slurm submit-workers`; body: "
                  "deploy/slurm/isoflop-workers.sbatch.\n");
  absl::StrAppend(&s, "#SBATCH --job-name=", o.job_name, "\n");
  absl::StrAppend(&s, "#SBATCH --nodes=", o.nodes, "\n");
  absl::StrAppend(&s, "#SBATCH --ntasks-per-node=1\n");
  if (!o.partition.empty()) {
    absl::StrAppend(&s, "#SBATCH --partition=", o.partition, "\n");
  }
  if (o.gpus_per_node > 0) {
    absl::StrAppend(&s, "#SBATCH --gpus-per-node=", o.gpus_per_node, "\n");
  }
  if (!o.time.empty()) absl::StrAppend(&s, "#SBATCH --time=", o.time, "\n");
  absl::StrAppend(&s, "#SBATCH --signal=B:USR1@", o.signal_lead_s, "\n");
  if (!o.output.empty()) {
    absl::StrAppend(&s, "#SBATCH --output=", Absolute(o.output), "\n");
  }
  const auto setting = [&s](absl::string_view name, const std::string& value) {
    if (!value.empty()) {
      absl::StrAppend(&s, "export ", name, "=", ShellQuote(value), "\n");
    }
  };
  setting("ISOFLOP_COORDINATOR", o.coordinator);
  setting("ISOFLOP_DATA_DIR", Absolute(o.data_dir));
  setting("ISOFLOP_WORKER_TOKEN_FILE", Absolute(o.token_file));
  setting("ISOFLOP_CHECKPOINT_DIR", Absolute(o.checkpoint_dir));
  setting("ISOFLOP_LOGS_DIR", Absolute(o.logs_dir));
  setting("ISOFLOP_WORKER_BIN", absl::StrContains(o.worker_bin, '/')
                                    ? Absolute(o.worker_bin)
                                    : o.worker_bin);
  setting("ISOFLOP_CPU_SLOTS", absl::StrCat(o.cpu_slots));
  // The body: everything of the template but its shebang and #SBATCH lines
  // (sbatch reads #SBATCH only before the first command, so they are all
  // above).
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(kSlurmScriptBody), '\n')) {
    if (absl::StartsWith(line, "#!") || absl::StartsWith(line, "#SBATCH")) {
      continue;
    }
    absl::StrAppend(&s, line, "\n");
  }
  while (absl::EndsWith(s, "\n\n")) s.pop_back();
  return s;
}

CommandRunner RealCommandRunner() {
  return [](const std::vector<std::string>& argv)
             -> absl::StatusOr<std::pair<int, std::string>> {
    int fds[2];
    if (pipe(fds) != 0) {
      return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int rc =
        posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (rc != 0) {
      close(fds[0]);
      return absl::FailedPreconditionError(absl::StrCat(
          "--sbatch = \"", argv[0], "\": cannot run it (", std::strerror(rc),
          "): is this a Slurm login node with sbatch on PATH?"));
    }
    std::string out;
    char buf[4096];
    while (true) {
      const ssize_t n = read(fds[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const int code =
        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return std::make_pair(code, out);
  };
}

absl::StatusOr<std::string> SubmitSlurmWorkers(const SlurmWorkersOptions& o,
                                               const CommandRunner& run,
                                               std::ostream& out) {
  if (absl::Status s = ValidateSlurmWorkersOptions(o); !s.ok()) return s;
  const std::string script = SlurmWorkersScript(o);
  {
    std::ofstream f(o.script_out, std::ios::trunc);
    f << script;
    f.close();
    if (!f) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--script-out = \"", o.script_out, "\": cannot write it"));
    }
  }
  std::error_code ec;
  fs::permissions(o.script_out, fs::perms::owner_exec | fs::perms::group_exec,
                  fs::perm_options::add, ec);
  out << "wrote " << o.script_out << "\n";
  if (o.dry_run) return std::string();
  absl::StatusOr<std::pair<int, std::string>> r =
      run({o.sbatch, "--parsable", o.script_out});
  if (!r.ok()) return r.status();
  const std::string answer(absl::StripAsciiWhitespace(r->second));
  if (r->first != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("sbatch refused ", o.script_out, " (exit ", r->first,
                     "; its message is above)"));
  }
  // --parsable: "JOBID" or "JOBID;CLUSTER".
  const std::string job = answer.substr(0, answer.find(';'));
  if (!AllDigits(job)) {
    return absl::InternalError(absl::StrCat("sbatch --parsable answered \"",
                                            absl::CEscape(answer),
                                            "\", not a job id"));
  }
  out << "submitted job " << job << ": " << o.nodes << " node(s), one "
      << "isoflop-worker each, coordinator " << o.coordinator << "\n";
  return job;
}

}  // namespace isoflop::cli
