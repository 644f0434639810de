#include "worker/trial_command.h"

#include <signal.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/exit_codes.h"

namespace isoflop::worker {
namespace {

template <typename Int>
std::string Num(Int v) {
  return absl::StrCat(v);
}

// Shortest text that parses back to exactly `v`: flags keep full precision.
std::string Num(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

// "" for a value the trainer has no flag for (refused by CheckResolved).
const char* PrecisionFlag(v1::Precision precision) {
  switch (precision) {
    case v1::FP32:
      return "fp32";
    case v1::BF16:
      return "bf16";
    default:
      return "";
  }
}

const char* ScheduleFlag(v1::LrSchedule schedule) {
  switch (schedule) {
    case v1::COSINE:
      return "cosine";
    case v1::WSD:
      return "wsd";
    default:
      return "";
  }
}

// A trunk trains warm-up + constant LR, a branch the WSD run of its length
// (docs/architecture.md "Trunks and branches"); else by the schedule.
const char* ScheduleFlagOf(const v1::TrialSpec& spec) {
  switch (spec.role()) {
    case v1::TRIAL_ROLE_TRUNK:
      return "constant";
    case v1::TRIAL_ROLE_BRANCH:
      return "wsd";
    default:
      return ScheduleFlag(spec.training().schedule());
  }
}

absl::Status Missing(const std::string& field, const std::string& value) {
  return absl::InvalidArgumentError(absl::StrCat(
      "trial spec ", field, " = ", value,
      ": must be set (a leased spec is fully resolved by the coordinator's "
      "sweep expansion; the worker applies no defaults)"));
}

bool IsExternalKill(int sig) {
  return sig == SIGTERM || sig == SIGKILL || sig == SIGINT || sig == SIGHUP;
}

}  // namespace

std::filesystem::path TrunkCheckpointPath(
    const v1::TrialSpec& spec, const TrainerCommandOptions& options) {
  if (options.checkpoint_root.empty() || spec.role() != v1::TRIAL_ROLE_BRANCH) {
    return {};
  }
  // trainer/checkpoint.h KeptCheckpointFileName.
  return options.checkpoint_root / spec.trunk_trial_id() /
         absl::StrCat("kept.", spec.start_step(), ".bin");
}

std::filesystem::path CheckpointDir(const v1::TrialSpec& spec,
                                    const TrainerCommandOptions& options) {
  if (options.checkpoint_root.empty()) return {};
  return options.checkpoint_root / spec.trial_id();
}

absl::Duration WatchdogTimeout(absl::Duration lease_ttl,
                               absl::Duration heartbeat) {
  return heartbeat + (lease_ttl - heartbeat) * 3 / 4;
}

absl::Status CheckResolved(const v1::TrialSpec& spec) {
  if (spec.trial_id().empty()) return Missing("trial_id", "\"\"");
  if (spec.dataset().empty()) return Missing("dataset", "\"\"");
  const v1::ModelSpec& m = spec.model();
  const v1::ModelShape& shape = spec.shape();
  const v1::Training& t = spec.training();
  for (auto [field, v] :
       {std::pair<const char*, uint64_t>{"model.vocab_size", m.vocab_size()},
        {"model.context", m.context()},
        {"shape.d_model", shape.d_model()},
        {"shape.n_layers", shape.n_layers()},
        {"shape.n_heads", shape.n_heads()},
        {"shape.d_ff", shape.d_ff()},
        {"training.batch_sequences", t.batch_sequences()},
        {"training.eval_batches", t.eval_batches()},
        {"steps", spec.steps()},
        {"threads", spec.threads()}}) {
    if (v == 0) return Missing(field, "0");
  }
  if (m.family() != v1::GPT_RMSNORM) {
    return Missing("model.family", v1::ModelFamily_Name(m.family()));
  }
  if (!(t.lr() > 0)) return Missing("training.lr", Num(t.lr()));
  if (!(t.beta2() > 0)) return Missing("training.beta2", Num(t.beta2()));
  if (*ScheduleFlagOf(spec) == '\0') {
    return Missing("training.schedule", v1::LrSchedule_Name(t.schedule()));
  }
  if (t.schedule() == v1::WSD &&
      !(t.cooldown_fraction() > 0 && t.cooldown_fraction() <= 1)) {
    return Missing("training.cooldown_fraction", Num(t.cooldown_fraction()));
  }
  if (*PrecisionFlag(t.precision()) == '\0') {
    return Missing("training.precision", v1::Precision_Name(t.precision()));
  }
  return absl::OkStatus();
}

absl::StatusOr<LaunchSpec> BuildTrainerLaunch(
    const v1::TrialSpec& spec, uint32_t attempt,
    const std::vector<int>& gpu_ids, const TrainerCommandOptions& options,
    const AttemptFence& fence) {
  if (absl::Status s = CheckResolved(spec); !s.ok()) return s;
  const v1::ModelShape& shape = spec.shape();
  const v1::Training& t = spec.training();
  const bool cuda = !gpu_ids.empty();
  const uint64_t steps = spec.steps();
  // A trunk and its branches share one warm-up (the spec's).
  const uint64_t warmup =
      spec.role() == v1::TRIAL_ROLE_INDEPENDENT
          ? static_cast<uint64_t>(std::llround(t.warmup_fraction() * steps))
          : spec.warmup_steps();
  if (spec.role() != v1::TRIAL_ROLE_INDEPENDENT &&
      options.checkpoint_root.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "trial spec role = ", v1::TrialRole_Name(spec.role()),
        ": needs the worker's --checkpoint-dir (a trunk's checkpoints reach "
        "its branches there)"));
  }
  if (spec.role() == v1::TRIAL_ROLE_BRANCH) {
    const std::filesystem::path trunk = TrunkCheckpointPath(spec, options);
    std::error_code ec;
    if (!std::filesystem::exists(trunk, ec)) {
      return absl::UnavailableError(absl::StrCat(
          "the trunk checkpoint ", trunk.string(), " of trunk ",
          spec.trunk_trial_id(), " at step ", spec.start_step(),
          " is not visible on this worker: --checkpoint-dir must be a "
          "filesystem every worker mounts (docs/faults.md \"Trunks and "
          "branches\")"));
    }
  }
  LaunchSpec launch;
  launch.argv = {
      options.trainer_path.string(), "train", "--data-dir",
      (options.data_root / spec.dataset()).string(), "--vocab-size",
      Num(spec.model().vocab_size()), "--context", Num(spec.model().context()),
      "--d-model", Num(shape.d_model()), "--n-layers", Num(shape.n_layers()),
      "--n-heads", Num(shape.n_heads()), "--d-ff", Num(shape.d_ff()),
      "--batch-sequences", Num(t.batch_sequences()), "--steps", Num(steps),
      "--lr", Num(t.lr()), "--schedule", ScheduleFlagOf(spec), "--warmup-steps",
      Num(warmup), "--min-lr-fraction", Num(t.min_lr_fraction()),
      "--weight-decay", Num(t.weight_decay()), "--beta2", Num(t.beta2()),
      "--seed", Num(t.seed()), "--eval-every", Num(t.eval_every_steps()),
      "--eval-batches", Num(t.eval_batches()), "--device",
      cuda ? "cuda" : "cpu", "--precision", PrecisionFlag(t.precision()),
      "--threads", Num(spec.threads()),
      // About 100 training points per curve, every step for short runs.
      "--log-every", Num(std::max<uint64_t>(1, steps / 100)), "--metrics-fd",
      Num(kChildMetricsFd), "--mup-base-width", Num(t.mup_base_width())};
  if (t.schedule() == v1::WSD) {
    launch.argv.insert(launch.argv.end(),
                       {"--wsd-decay-fraction", Num(t.cooldown_fraction())});
  }
  if (t.zero_stage() > 0) {  // only then: older trainers lack the flag
    launch.argv.insert(launch.argv.end(),
                       {"--zero-stage", Num(t.zero_stage())});
  }
  if (!options.checkpoint_root.empty()) {
    // A resumed attempt first re-emits every metrics line kept in the
    // checkpoint: those a killed worker read but never relayed come back
    // (the store keeps one point per step and name, docs/faults.md).
    launch.argv.insert(
        launch.argv.end(),
        {"--checkpoint-dir", CheckpointDir(spec, options).string(), "--resume",
         "--replay-metrics-from", "0"});
  }
  if (spec.role() == v1::TRIAL_ROLE_TRUNK && spec.save_at_steps_size() > 0) {
    launch.argv.insert(
        launch.argv.end(),
        {"--save-at-steps", absl::StrJoin(spec.save_at_steps(), ",")});
  }
  if (spec.role() == v1::TRIAL_ROLE_BRANCH) {
    launch.argv.insert(
        launch.argv.end(),
        {"--wsd-decay-fraction", Num(spec.cooldown_fraction()), "--init-from",
         (options.checkpoint_root / spec.trunk_trial_id()).string(),
         "--init-step", Num(spec.start_step())});
  }
  if (fence.lease_epoch > 0) {
    launch.argv.insert(launch.argv.end(),
                       {"--lease-epoch", Num(fence.lease_epoch)});
    if (fence.watchdog_timeout > absl::ZeroDuration()) {
      launch.argv.insert(
          launch.argv.end(),
          {"--watchdog-fd", Num(kChildWatchdogFd), "--watchdog-timeout-s",
           Num(absl::ToDoubleSeconds(fence.watchdog_timeout))});
      launch.watchdog = true;
    }
  }
  launch.env = {absl::StrCat("OMP_NUM_THREADS=", spec.threads())};
  if (cuda) {
    std::vector<std::string> devices;
    for (int id : gpu_ids) {
      if (id < 0 ||
          (!options.visible_devices.empty() &&
           static_cast<size_t>(id) >= options.visible_devices.size())) {
        return absl::InternalError(
            absl::StrCat("GPU ", id, " is not one of the worker's ",
                         options.visible_devices.size(), " visible devices"));
      }
      devices.push_back(options.visible_devices.empty()
                            ? absl::StrCat(id)
                            : options.visible_devices[id]);
    }
    launch.env.push_back(
        absl::StrCat("CUDA_VISIBLE_DEVICES=", absl::StrJoin(devices, ",")));
  }
  launch.log_path =
      options.logs_dir / absl::StrCat(spec.trial_id(), "-", attempt, ".log");
  return launch;
}

absl::StatusOr<std::vector<std::string>> VisibleDevices(const char* env,
                                                        int gpus) {
  std::vector<std::string> devices;
  if (env == nullptr || *env == '\0' || gpus <= 0) return devices;
  for (absl::string_view d : absl::StrSplit(env, ',', absl::SkipWhitespace())) {
    devices.emplace_back(absl::StripAsciiWhitespace(d));
  }
  if (devices.size() < static_cast<size_t>(gpus)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gpus = ", gpus, ": CUDA_VISIBLE_DEVICES = \"", env,
                     "\" lists ", devices.size(),
                     " device(s); a worker may use only the devices it was "
                     "given (ask its job for --gpus-per-node ",
                     gpus, ")"));
  }
  devices.resize(static_cast<size_t>(gpus));
  return devices;
}

OutcomeDecision DecideOutcome(const AttemptEnd& end) {
  const ExitStatus& e = end.exit;
  const int code = e.ShellCode();
  if (!e.signaled && code == kExitOk) {
    if (end.saw_final) return {v1::OUTCOME_SUCCEEDED, ""};
    return {v1::OUTCOME_FAILED,
            "trainer exited 0 without a final metrics line"};
  }
  if (end.stopped_by_worker) {
    return {v1::OUTCOME_RETRYABLE,
            absl::StrCat("worker shut down (trainer exit ", code, ")")};
  }
  if (!e.signaled && code == kExitInvalidConfig) {
    return {v1::OUTCOME_FAILED, "trainer refused its flags or data (exit 2)"};
  }
  if (!e.signaled && code == kExitRetryable) {
    return {v1::OUTCOME_RETRYABLE, "trainer asked for a retry (exit 75)"};
  }
  if (!e.signaled && code == kExitFenced) {
    return {v1::OUTCOME_RETRYABLE,
            "trainer fenced itself (exit 76): its lease was not renewed in "
            "time, or a newer attempt owns its checkpoint directory"};
  }
  const int sig =
      e.signaled ? e.signal : (code > 128 && code < 128 + 65 ? code - 128 : 0);
  if (sig != 0) {
    std::string what = absl::StrCat("trainer killed by signal ", sig, " (",
                                    strsignal(sig), ")");
    if (IsExternalKill(sig)) return {v1::OUTCOME_RETRYABLE, what};
    return {v1::OUTCOME_FAILED, what};
  }
  return {v1::OUTCOME_FAILED,
          absl::StrCat("trainer failed with exit code ", code)};
}

}  // namespace isoflop::worker
