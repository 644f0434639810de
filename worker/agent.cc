#include "worker/agent.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/message_differencer.h"
#include "worker/dataset_scan.h"
#include "worker/metrics_line.h"

namespace isoflop::worker {
namespace {

std::string Describe(const v1::LeaseRef& lease) {
  return absl::StrCat("trial ", lease.trial_id(), " attempt ", lease.attempt());
}

std::string Key(const v1::LeaseRef& lease) {
  return absl::StrCat(lease.trial_id(), "/", lease.attempt());
}

// The trainer's last "isoflop-trainer: " line is its error (trainer/main.cc);
// at most this much of the log's end is read for it, and of the line kept.
constexpr std::streamoff kReasonTailBytes = std::streamoff{16} * 1024;
constexpr size_t kMaxReasonBytes = 1024;

bool SameDatasets(const std::vector<v1::WorkerDataset>& a,
                  const std::vector<v1::WorkerDataset>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const v1::WorkerDataset& x, const v1::WorkerDataset& y) {
                      return google::protobuf::util::MessageDifferencer::Equals(
                          x, y);
                    });
}

}  // namespace

Agent::Agent(AgentOptions options, ProcessLauncher* launcher,
             CoordinatorClient* coordinator)
    : options_(std::move(options)),
      launcher_(launcher),
      coordinator_(coordinator),
      gpu_slot_busy_(static_cast<size_t>(std::max(options_.gpus, 0) *
                                         std::max(options_.trials_per_gpu, 1)),
                     false) {}

int Agent::running_trials() const {
  return static_cast<int>(
      std::count_if(trials_.begin(), trials_.end(),
                    [](const auto& kv) { return kv.second.running; }));
}

int Agent::running_cpu_units() const {
  int n = 0;
  for (const auto& [key, trial] : trials_) {
    if (trial.running) n += trial.cpu_units;
  }
  return n;
}

void Agent::Tick(absl::Time now) {
  EnsureRegistered(now);
  PollTrials(now);
  FlushMetrics(now, /*force=*/false);
  Heartbeat(now);
  ReportOutcomes(now);
  LeaseWhileFree(now);
}

void Agent::Fail(Backoff& backoff, absl::Time now) {
  backoff.delay = backoff.delay == absl::ZeroDuration()
                      ? options_.retry_initial
                      : std::min(backoff.delay * 2, options_.retry_max);
  backoff.next = now + backoff.delay;
}

void Agent::RescanDatasets(absl::Time now) {
  if (!options_.report_datasets || now < next_dataset_scan_) return;
  next_dataset_scan_ = now + options_.dataset_rescan_interval;
  DatasetScan scan = ScanDatasets(options_.trainer.data_root);
  for (const std::string& line : scan.skipped) {
    if (std::find(skipped_datasets_.begin(), skipped_datasets_.end(), line) ==
        skipped_datasets_.end()) {
      options_.log(absl::StrCat("dataset skipped: ", line));
    }
  }
  skipped_datasets_ = std::move(scan.skipped);
  if (datasets_scanned_ && SameDatasets(scan.datasets, datasets_)) return;
  datasets_scanned_ = true;
  datasets_ = std::move(scan.datasets);
  std::vector<std::string> names;
  for (const v1::WorkerDataset& d : datasets_) {
    names.push_back(absl::StrCat(d.name(), " (vocab ", d.vocab_size(), ", ",
                                 d.train_tokens(), " train tokens)"));
  }
  options_.log(
      absl::StrCat("datasets under ", options_.trainer.data_root.string(), ": ",
                   names.empty() ? "none" : absl::StrJoin(names, ", ")));
}

void Agent::EnsureRegistered(absl::Time now) {
  if (registered() || now < register_backoff_.next) return;
  RescanDatasets(now);
  v1::RegisterWorkerRequest request;
  request.set_worker_id(options_.worker_id);
  if (options_.report_datasets) {
    request.set_reports_datasets(true);
    request.mutable_datasets()->Add(datasets_.begin(), datasets_.end());
  }
  v1::WorkerResources* resources = request.mutable_resources();
  resources->set_gpus(static_cast<uint32_t>(std::max(options_.gpus, 0)));
  resources->set_cpu_slots(
      options_.gpus > 0 ? 0 : static_cast<uint32_t>(options_.cpu_slots));
  resources->set_hostname(options_.hostname);
  resources->set_rendezvous_host(options_.rendezvous_host);
  resources->set_rendezvous_port_first(options_.rendezvous_port_first);
  resources->set_rendezvous_port_count(options_.rendezvous_port_count);
  absl::StatusOr<v1::RegisterWorkerResponse> response =
      coordinator_->RegisterWorker(request);
  if (!response.ok()) {
    Fail(register_backoff_, now);
    options_.log(absl::StrCat("register: ", response.status().ToString(),
                              "; retrying in ",
                              absl::FormatDuration(register_backoff_.delay)));
    return;
  }
  worker_id_ = response->worker_id();
  if (response->heartbeat_interval_ms() > 0) {
    heartbeat_interval_ = absl::Milliseconds(response->heartbeat_interval_ms());
  }
  if (response->lease_ttl_ms() > 0) {
    lease_ttl_ = absl::Milliseconds(response->lease_ttl_ms());
  }
  last_contact_ = now;
  register_backoff_ = Backoff();
  next_heartbeat_ = now;
  options_.log(absl::StrCat("registered as ", worker_id_, " (heartbeat every ",
                            absl::FormatDuration(heartbeat_interval_), ")"));
}

void Agent::HandleUnknownWorker(const absl::Status& status) {
  if (!absl::IsNotFound(status) || !registered()) return;
  options_.log(absl::StrCat("coordinator does not know worker ", worker_id_,
                            ": registering again"));
  options_.worker_id = worker_id_;
  worker_id_.clear();
}

std::vector<int> Agent::TakeGpuSlots(int n) {
  const int per_gpu = std::max(options_.trials_per_gpu, 1);
  std::vector<int> slots;
  std::vector<bool> gpu_taken(static_cast<size_t>(std::max(options_.gpus, 0)));
  for (size_t i = 0;
       i < gpu_slot_busy_.size() && static_cast<int>(slots.size()) < n; ++i) {
    const size_t gpu = i / static_cast<size_t>(per_gpu);
    if (!gpu_slot_busy_[i] && !gpu_taken[gpu]) {
      gpu_taken[gpu] = true;
      slots.push_back(static_cast<int>(i));
    }
  }
  if (static_cast<int>(slots.size()) < n) return {};
  for (int slot : slots) gpu_slot_busy_[static_cast<size_t>(slot)] = true;
  return slots;
}

int Agent::FreeGpus() const {
  const size_t per_gpu =
      static_cast<size_t>(std::max(options_.trials_per_gpu, 1));
  int free = 0;
  for (size_t gpu = 0; gpu * per_gpu < gpu_slot_busy_.size(); ++gpu) {
    for (size_t k = 0; k < per_gpu; ++k) {
      if (!gpu_slot_busy_[gpu * per_gpu + k]) {
        ++free;
        break;
      }
    }
  }
  return free;
}

void Agent::LeaseWhileFree(absl::Time now) {
  if (!registered() || stopping_ || now < lease_backoff_.next) return;
  while (true) {
    const int free_gpus = FreeGpus();
    const int free_cpu =
        options_.gpus > 0 ? 0 : options_.cpu_slots - running_cpu_units();
    if (free_gpus <= 0 && free_cpu <= 0) return;
    v1::LeaseTrialRequest request;
    request.set_worker_id(worker_id_);
    request.set_free_gpus(static_cast<uint32_t>(std::max(free_gpus, 0)));
    request.set_free_cpu_slots(static_cast<uint32_t>(std::max(free_cpu, 0)));
    absl::StatusOr<v1::LeaseTrialResponse> response =
        coordinator_->LeaseTrial(request);
    if (!response.ok()) {
      options_.log(absl::StrCat("lease: ", response.status().ToString()));
      HandleUnknownWorker(response.status());
      Fail(lease_backoff_, now);
      return;
    }
    lease_backoff_.delay = absl::ZeroDuration();
    if (!response->has_assignment()) {
      lease_backoff_.next = now + options_.idle_lease_interval;
      return;
    }
    StartTrial(*response, now);
  }
}

void Agent::StartTrial(const v1::LeaseTrialResponse& assignment,
                       absl::Time now) {
  const v1::TrialSpec& spec = assignment.spec();
  Trial trial;
  trial.lease.set_trial_id(spec.trial_id());
  trial.lease.set_attempt(assignment.attempt());
  trial.lease.set_lease_epoch(assignment.lease_epoch());
  // A multi-rank trial (docs/architecture.md §2.3): this worker's share of
  // its ranks; else one process with all of the trial's GPUs.
  const v1::RankPlacement& ranks = assignment.ranks();
  const int local_ranks =
      assignment.has_ranks() ? static_cast<int>(ranks.local_ranks()) : 1;
  trial.first_rank = assignment.has_ranks() ? ranks.first_rank() : 0;
  trial.cpu_units = options_.gpus > 0 ? 0 : local_ranks;
  const int gpus_needed = options_.gpus <= 0 ? 0
                          : assignment.has_ranks()
                              ? local_ranks
                              : std::max<int>(1, static_cast<int>(spec.gpus()));
  trial.gpu_slots = TakeGpuSlots(gpus_needed);
  trial.last_flush = now;
  std::vector<int> gpu_ids;
  for (int slot : trial.gpu_slots) {
    gpu_ids.push_back(slot / std::max(options_.trials_per_gpu, 1));
  }
  // A spec that lacks a value is refused, not defaulted (worker/
  // trial_command.h): the attempt fails with the field named.
  absl::StatusOr<LaunchSpec> launch = BuildTrainerLaunch(
      spec, assignment.attempt(), gpu_ids, options_.trainer,
      {.lease_epoch = assignment.lease_epoch(),
       .watchdog_timeout = WatchdogTimeout(lease_ttl_, heartbeat_interval_)});
  trial.last_log_flush = now;
  if (spec.release_start_checkpoint()) {
    const std::filesystem::path kept =
        TrunkCheckpointPath(spec, options_.trainer);
    if (!kept.empty()) trial.release_checkpoint = kept;
  }
  if (launch.ok() && trial.first_rank > 0) {
    // A gang peer's log is its own (its directory may be rank 0's).
    launch->log_path.replace_extension(
        absl::StrCat(".rank", trial.first_rank, ".log"));
  }
  if (launch.ok()) {
    trial.log_path = launch->log_path.string();
    std::error_code absent;  // a fresh log: 0
    const uintmax_t size = std::filesystem::file_size(launch->log_path, absent);
    trial.log_base = absent ? 0 : static_cast<uint64_t>(size);
  }
  // Each rank: the same launch with the DDP environment (trainer/README.md
  // "DDP"); ranks after this worker's first log to <trial>-<attempt>.rankR.
  auto rank_launch = [&](int local) {
    LaunchSpec l = *launch;
    const uint32_t rank = trial.first_rank + static_cast<uint32_t>(local);
    l.env.insert(
        l.env.end(),
        {absl::StrCat("WORLD_SIZE=", ranks.world_size()),
         absl::StrCat("RANK=", rank), absl::StrCat("LOCAL_RANK=", local),
         absl::StrCat("MASTER_ADDR=", ranks.master_addr()),
         absl::StrCat("MASTER_PORT=", ranks.master_port())});
    if (local > 0) {
      l.log_path = options_.trainer.logs_dir /
                   absl::StrCat(spec.trial_id(), "-", assignment.attempt(),
                                ".rank", rank, ".log");
    }
    return l;
  };
  absl::StatusOr<ProcessId> process =
      !launch.ok() ? absl::StatusOr<ProcessId>(launch.status())
      : static_cast<int>(gpu_ids.size()) < gpus_needed
          ? absl::StatusOr<ProcessId>(absl::ResourceExhaustedError(absl::StrCat(
                "needs ", gpus_needed, " GPUs, ", gpu_ids.size(), " free")))
      : assignment.has_ranks() ? launcher_->Launch(rank_launch(0))
                               : launcher_->Launch(*launch);
  for (int local = 1; process.ok() && local < local_ranks; ++local) {
    absl::StatusOr<ProcessId> other = launcher_->Launch(rank_launch(local));
    if (other.ok()) {
      trial.other_ranks.push_back(*other);
      continue;
    }
    // All or nothing: the ranks started so far are stopped and reaped.
    (void)launcher_->Terminate(*process, absl::ZeroDuration());
    for (ProcessId id : trial.other_ranks) {
      (void)launcher_->Terminate(id, absl::ZeroDuration());
    }
    trial.rank_failure =
        absl::StrCat("could not start rank ", trial.first_rank + local, ": ",
                     other.status().message());
    break;
  }
  std::string key = Key(trial.lease);
  if (!process.ok()) {
    options_.log(absl::StrCat(
        Describe(trial.lease),
        ": could not start the trainer: ", process.status().ToString()));
    trial.running = false;
    for (int slot : trial.gpu_slots) {
      gpu_slot_busy_[static_cast<size_t>(slot)] = false;
    }
    v1::ReportOutcomeRequest& outcome = trial.outcome.emplace();
    outcome.set_worker_id(worker_id_);
    *outcome.mutable_lease() = trial.lease;
    // A branch whose trunk checkpoint is not visible (yet) may run later or
    // elsewhere: retryable (BuildTrainerLaunch's UNAVAILABLE).
    outcome.set_outcome(absl::IsUnavailable(process.status())
                            ? v1::OUTCOME_RETRYABLE
                            : v1::OUTCOME_FAILED);
    outcome.set_exit_code(-1);
    outcome.set_message(absl::StrCat("could not start the trainer: ",
                                     process.status().message()));
    trial.next_report = now;
  } else {
    trial.process = *process;
    // The lease was granted after this tick's `now` (LeaseTrial was sent
    // after it): the watchdog's first renewal.
    FeedWatchdog(trial, now);
    options_.log(absl::StrCat(Describe(trial.lease), ": started (d_model ",
                              spec.shape().d_model(), ", n_layers ",
                              spec.shape().n_layers(), ", ", spec.steps(),
                              " steps); log ", trial.log_path));
  }
  trials_[key] = std::move(trial);
}

void Agent::PollOtherRanks(Trial& trial) {
  for (auto it = trial.other_ranks.begin(); it != trial.other_ranks.end();) {
    absl::StatusOr<std::optional<ExitStatus>> exit = launcher_->Poll(*it);
    if (!exit.ok() || !exit->has_value()) {
      ++it;
      continue;
    }
    const ExitStatus e = **exit;
    (void)launcher_->Release(*it);
    it = trial.other_ranks.erase(it);
    const bool ok = !e.signaled && e.exit_code == 0;
    if (!ok && !trial.first_exit.has_value() && trial.rank_failure.empty()) {
      // A rank that died leaves the others waiting for it (until the
      // rendezvous timeout): stop them now.
      trial.rank_failure = absl::StrCat(
          "another rank of this worker ended "
          "first (exit ",
          e.ShellCode(), ")");
      options_.log(absl::StrCat(Describe(trial.lease), ": ", trial.rank_failure,
                                "; terminating the other ranks"));
      TerminateRanks(trial);
    }
  }
}

void Agent::TerminateRanks(Trial& trial) {
  if (!trial.first_exit.has_value() && trial.process != 0) {
    const absl::Status s =
        launcher_->Terminate(trial.process, options_.kill_grace);
    if (!s.ok()) {
      options_.log(
          absl::StrCat(Describe(trial.lease), ": terminate: ", s.ToString()));
    }
  }
  for (ProcessId id : trial.other_ranks) {
    (void)launcher_->Terminate(id, options_.kill_grace);
  }
}

void Agent::PollTrials(absl::Time now) {
  for (auto& [key, trial] : trials_) {
    if (!trial.running) continue;
    PollOtherRanks(trial);
    if (trial.first_exit.has_value()) {
      // The first rank ended; the trial ends once every rank is reaped.
      if (trial.other_ranks.empty()) FinishTrial(trial, *trial.first_exit, now);
      continue;
    }
    // Back-pressure: the lines stay in the pipe (the exit is seen once they
    // are read) until the coordinator has acknowledged enough points.
    if (trial.pending_points.size() >= options_.max_pending_points) continue;
    absl::StatusOr<std::optional<ExitStatus>> exit =
        launcher_->Poll(trial.process);
    // After Poll: once the child has exited, all it wrote is in the pipe.
    DrainLines(trial, now);
    if (!exit.ok()) {
      options_.log(absl::StrCat(Describe(trial.lease),
                                ": poll: ", exit.status().ToString()));
    } else if (exit->has_value()) {
      if (trial.other_ranks.empty()) {
        FinishTrial(trial, **exit, now);
      } else {
        trial.first_exit = **exit;
        TerminateRanks(trial);  // those still running cannot go on alone
      }
    }
  }
  std::erase_if(trials_, [](const auto& kv) {
    return !kv.second.running && !kv.second.outcome;
  });
}

void Agent::DrainLines(Trial& trial, absl::Time now) {
  absl::StatusOr<std::vector<std::string>> lines =
      launcher_->ReadLines(trial.process);
  if (!lines.ok()) return;
  for (const std::string& line : *lines) {
    if (line.empty()) continue;
    absl::StatusOr<MetricsLine> parsed = ParseMetricsLine(line);
    if (!parsed.ok()) {
      options_.log(absl::StrCat(
          Describe(trial.lease), ": skipping malformed metrics line (",
          parsed.status().message(), "): ", line.substr(0, 200)));
      continue;
    }
    for (const auto& [name, value] : parsed->values) {
      v1::MetricPoint& point = trial.pending_points.emplace_back();
      point.set_step(parsed->step);
      point.set_name(name);
      point.set_value(value);
      point.set_unix_ms(absl::ToUnixMillis(now));
      if (name == "val_loss") trial.final_val_loss = value;
      if (name == "tokens_per_s") trial.tokens_per_s = value;
    }
    trial.saw_final = trial.saw_final || parsed->final;
  }
}

void Agent::FinishTrial(Trial& trial, const ExitStatus& exit, absl::Time now) {
  trial.running = false;
  for (int slot : trial.gpu_slots) {
    gpu_slot_busy_[static_cast<size_t>(slot)] = false;
  }
  if (trial.process != 0) (void)launcher_->Release(trial.process);
  if (trial.revoked) {
    options_.log(absl::StrCat(Describe(trial.lease),
                              ": stopped after its lease was revoked"));
    return;  // the coordinator already moved on; PollTrials forgets it
  }
  if (trial.first_rank > 0 && trial.rank_failure.empty() && !exit.signaled &&
      exit.exit_code == 0) {
    // A gang peer's ranks are done: rank 0's worker reports the outcome.
    options_.log(absl::StrCat(Describe(trial.lease), ": ranks from ",
                              trial.first_rank, " done (exit 0)"));
    return;
  }
  OutcomeDecision decision =
      DecideOutcome({.exit = exit,
                     .saw_final = trial.saw_final,
                     .stopped_by_worker = trial.stopped_by_worker});
  v1::ReportOutcomeRequest& outcome = trial.outcome.emplace();
  outcome.set_worker_id(worker_id_);
  *outcome.mutable_lease() = trial.lease;
  outcome.set_outcome(decision.outcome);
  outcome.set_exit_code(exit.ShellCode());
  outcome.set_final_val_loss(decision.outcome == v1::OUTCOME_SUCCEEDED
                                 ? trial.final_val_loss
                                 : std::numeric_limits<double>::quiet_NaN());
  outcome.set_tokens_per_s(trial.tokens_per_s);
  if (!decision.message.empty()) {
    // The trainer's own words (e.g. "dataset 'x' not found under /data")
    // reach `sweep status` through the trial's error, not only its log.
    const std::string reason = decision.outcome == v1::OUTCOME_SUCCEEDED
                                   ? std::string()
                                   : TrainerReason(trial);
    outcome.set_message(
        absl::StrCat(decision.message, reason.empty() ? "" : ": ", reason,
                     trial.rank_failure.empty() ? "" : "; ", trial.rank_failure,
                     "; log: ", trial.log_path));
  }
  trial.next_report = now;
  options_.log(absl::StrCat(Describe(trial.lease), ": exit ", exit.ShellCode(),
                            " -> ", v1::Outcome_Name(decision.outcome),
                            decision.message.empty() ? "" : ": ",
                            decision.message));
}

std::string Agent::TrainerReason(const Trial& trial) const {
  if (trial.log_path.empty()) return "";
  std::ifstream in(trial.log_path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff end = in.tellg();
  const auto base = static_cast<std::streamoff>(trial.log_base);
  if (end <= base) return "";
  const std::streamoff start = std::max(base, end - kReasonTailBytes);
  std::string tail(static_cast<size_t>(end - start), '\0');
  in.seekg(start);
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  tail.resize(static_cast<size_t>(std::max<std::streamsize>(0, in.gcount())));
  constexpr absl::string_view kPrefix = "isoflop-trainer: ";
  size_t line_end = tail.size();
  while (line_end > 0) {
    const size_t line_start = tail.rfind('\n', line_end - 1);
    const size_t from = line_start == std::string::npos ? 0 : line_start + 1;
    absl::string_view line(tail.data() + from, line_end - from);
    line = absl::StripTrailingAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, kPrefix) && !line.empty()) {
      return std::string(line.substr(0, kMaxReasonBytes));
    }
    if (line_start == std::string::npos) break;
    line_end = line_start;
  }
  return "";
}

void Agent::FlushMetrics(absl::Time now, bool force) {
  for (auto& [key, trial] : trials_) {
    // The coordinator just did not answer: do not wait out another deadline.
    if (FlushTrial(trial, now, force)) FlushLogs(trial, now, force);
  }
}

bool Agent::FlushLogs(Trial& trial, absl::Time now, bool force) {
  // A gang peer's log stays on its worker: the trial's log is rank 0's.
  if (trial.revoked || !registered() || trial.process == 0 ||
      trial.first_rank > 0) {
    return true;
  }
  if (!force && now - trial.last_log_flush < options_.metrics_flush_interval) {
    return true;
  }
  std::ifstream in(trial.log_path, std::ios::binary | std::ios::ate);
  if (!in) return true;  // nothing written yet
  const auto size = static_cast<uint64_t>(
      std::max<std::streamoff>(0, static_cast<std::streamoff>(in.tellg())));
  const uint64_t end = size > trial.log_base ? size - trial.log_base : 0;
  if (end > trial.log_sent + kLogTailBytes) {
    trial.log_sent = end - kLogTailBytes;  // the coordinator keeps the tail
  }
  std::string chunk;
  while (trial.log_sent < end) {
    chunk.resize(std::min(end - trial.log_sent, kLogChunkBytes));
    in.seekg(static_cast<std::streamoff>(trial.log_base + trial.log_sent));
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    if (in.gcount() <= 0) break;
    chunk.resize(static_cast<size_t>(in.gcount()));
    v1::ReportLogsRequest request;
    request.set_worker_id(worker_id_);
    *request.mutable_lease() = trial.lease;
    request.set_offset(trial.log_sent);
    request.set_data(chunk);
    absl::StatusOr<v1::ReportLogsResponse> response =
        coordinator_->ReportLogs(request);
    if (!response.ok() && IsTransient(response.status())) {
      trial.last_log_flush = now;  // again after the interval, not each tick
      return false;
    }
    if (!response.ok()) {
      options_.log(absl::StrCat(Describe(trial.lease), ": dropping ",
                                end - trial.log_sent,
                                " log bytes: ", response.status().ToString()));
      trial.log_sent = end;
      if (absl::IsAborted(response.status()) ||
          absl::IsNotFound(response.status())) {
        Revoke(trial.lease);
      }
      return true;
    }
    trial.log_sent += chunk.size();
  }
  trial.last_log_flush = now;
  return true;
}

bool Agent::FlushTrial(Trial& trial, absl::Time now, bool force) {
  if (trial.revoked) return true;
  if (!registered()) return trial.pending_points.empty();
  const size_t max_batch =
      static_cast<size_t>(std::max(options_.max_batch_points, 1));
  while (!trial.pending_points.empty()) {
    const bool due = force || trial.pending_points.size() >= max_batch ||
                     now - trial.last_flush >= options_.metrics_flush_interval;
    if (!due) return true;
    const size_t n = std::min(trial.pending_points.size(), max_batch);
    v1::ReportMetricsRequest request;
    request.set_worker_id(worker_id_);
    *request.mutable_lease() = trial.lease;
    request.mutable_points()->Add(trial.pending_points.begin(),
                                  trial.pending_points.begin() + n);
    absl::StatusOr<v1::ReportMetricsResponse> response =
        coordinator_->ReportMetrics(request);
    if (!response.ok() && IsTransient(response.status()))
      return false;  // resent later
    if (!response.ok()) {
      options_.log(absl::StrCat(
          Describe(trial.lease), ": dropping ", trial.pending_points.size(),
          " metric points: ", response.status().ToString()));
      trial.pending_points.clear();
      if (absl::IsAborted(response.status()) ||
          absl::IsNotFound(response.status())) {
        Revoke(trial.lease);
      }
      return true;
    }
    trial.pending_points.erase(trial.pending_points.begin(),
                               trial.pending_points.begin() + n);
    trial.last_flush = now;
  }
  return true;
}

void Agent::Heartbeat(absl::Time now) {
  if (!registered() || now < next_heartbeat_) return;
  next_heartbeat_ = now + heartbeat_interval_;
  RescanDatasets(now);
  v1::HeartbeatRequest request;
  request.set_worker_id(worker_id_);
  if (options_.report_datasets) {
    request.set_reports_datasets(true);
    request.mutable_datasets()->Add(datasets_.begin(), datasets_.end());
  }
  for (const auto& [key, trial] : trials_) {
    if (!trial.revoked) *request.add_leases() = trial.lease;
  }
  absl::StatusOr<v1::HeartbeatResponse> response =
      coordinator_->Heartbeat(request);
  if (!response.ok()) {
    options_.log(absl::StrCat("heartbeat: ", response.status().ToString()));
    HandleUnknownWorker(response.status());
    AbandonLeasesIfCutOff(now);
    return;
  }
  last_contact_ = now;
  for (const v1::LeaseRef& lease : response->revoked()) Revoke(lease);
  // Every lease not revoked was renewed by a request sent after `now`.
  for (const v1::LeaseRef& lease : request.leases()) {
    auto it = trials_.find(Key(lease));
    if (it != trials_.end()) FeedWatchdog(it->second, now);
  }
}

bool Agent::Leave() {
  if (!registered() || !Idle()) return false;
  v1::HeartbeatRequest request;
  request.set_worker_id(worker_id_);
  request.set_leaving(true);
  absl::StatusOr<v1::HeartbeatResponse> response =
      coordinator_->Heartbeat(request);
  options_.log(response.ok()
                   ? std::string("left the coordinator")
                   : absl::StrCat("leaving: ", response.status().ToString()));
  return response.ok();
}

void Agent::FeedWatchdog(Trial& trial, absl::Time renewed_at) {
  if (!trial.running || trial.revoked || trial.process == 0) return;
  const absl::Status s = launcher_->Feed(trial.process, renewed_at);
  if (!s.ok()) {
    options_.log(absl::StrCat(Describe(trial.lease),
                              ": feeding the watchdog: ", s.ToString()));
  }
  for (ProcessId id : trial.other_ranks) {
    (void)launcher_->Feed(id, renewed_at);
  }
}

void Agent::AbandonLeasesIfCutOff(absl::Time now) {
  if (now - last_contact_ <= lease_ttl_) return;
  // No heartbeat got through for longer than the lease: the coordinator has
  // re-queued these trials, so another worker may be running them. Stop ours
  // (no split brain); outcomes already waiting keep being offered (the
  // coordinator refuses stale ones).
  for (auto& [id, trial] : trials_) {
    if (!trial.running || trial.revoked) continue;
    options_.log(absl::StrCat(
        Describe(trial.lease), ": coordinator unreachable for ",
        absl::FormatDuration(
            absl::Trunc(now - last_contact_, absl::Seconds(1))),
        " > lease TTL ", absl::FormatDuration(lease_ttl_),
        "; terminating the trainer (the coordinator re-queues the trial)"));
    Revoke(trial.lease);
  }
}

void Agent::Revoke(const v1::LeaseRef& lease) {
  auto it = trials_.find(Key(lease));
  if (it == trials_.end()) return;
  Trial& trial = it->second;
  if (trial.revoked) return;
  trial.revoked = true;
  trial.pending_points.clear();
  if (!trial.running) {  // ended; its outcome is no longer wanted (PollTrials
                         // forgets it)
    options_.log(
        absl::StrCat(Describe(lease), ": lease revoked; outcome not reported"));
    trial.outcome.reset();
    return;
  }
  options_.log(absl::StrCat(Describe(lease),
                            ": lease revoked; terminating the trainer"));
  TerminateRanks(trial);
}

void Agent::ReportOutcomes(absl::Time now) {
  if (!registered()) return;
  for (auto it = trials_.begin(); it != trials_.end();) {
    Trial& trial = it->second;
    if (!trial.outcome.has_value() || now < trial.next_report) {
      ++it;
      continue;
    }
    trial.outcome->set_worker_id(worker_id_);
    absl::Status status = absl::UnavailableError("metrics not yet delivered");
    // The curve and the log first, then the end (GetTrialLogs relies on it).
    const bool flushed = FlushTrial(trial, now, /*force=*/true) &&
                         FlushLogs(trial, now, /*force=*/true);
    if (!trial.outcome.has_value()) {  // the flush found the lease gone
      it = trials_.erase(it);
      continue;
    }
    if (flushed) status = coordinator_->ReportOutcome(*trial.outcome).status();
    if (!status.ok() && IsTransient(status)) {
      trial.report_delay =
          trial.report_delay == absl::ZeroDuration()
              ? options_.retry_initial
              : std::min(trial.report_delay * 2, options_.retry_max);
      trial.next_report = now + trial.report_delay;
      options_.log(absl::StrCat(
          Describe(trial.lease), ": report outcome: ", status.ToString(),
          "; retrying in ", absl::FormatDuration(trial.report_delay)));
      ++it;
      continue;
    }
    options_.log(
        absl::StrCat(Describe(trial.lease),
                     status.ok() ? ": outcome reported" : ": outcome refused: ",
                     status.ok() ? "" : status.ToString()));
    if (status.ok() && trial.outcome->outcome() == v1::OUTCOME_SUCCEEDED &&
        !options_.trainer.checkpoint_root.empty()) {
      // A finished trial is never resumed: free the disk, but keep the final
      // weights (model.bin, written by the trainer) for `trial sample/eval`
      // and a trunk's kept checkpoints (kept.<step>.bin) for its branches.
      std::error_code ignored;
      for (const auto& entry : std::filesystem::directory_iterator(
               options_.trainer.checkpoint_root / trial.lease.trial_id(),
               ignored)) {
        const std::string name = entry.path().filename().string();
        if (name != "model.bin" && !absl::StartsWith(name, "kept.")) {
          std::filesystem::remove_all(entry.path(), ignored);
        }
      }
      // The last branch that needed its trunk's checkpoint frees it
      // (worker-side collection, docs/architecture.md "Trunks and
      // branches").
      if (trial.release_checkpoint.has_value()) {
        std::filesystem::remove(*trial.release_checkpoint, ignored);
      }
    }
    it = trials_.erase(it);
  }
}

void Agent::BeginShutdown(absl::Time now) {
  if (stopping_) return;
  stopping_ = true;
  for (auto& [key, trial] : trials_) {
    if (!trial.running || trial.revoked) continue;
    trial.stopped_by_worker = true;
    TerminateRanks(trial);
  }
}

}  // namespace isoflop::worker
