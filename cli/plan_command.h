// `isoflop sweep plan CONFIG`: what a sweep would run and cost before any
// trial starts (docs/plan.md). The config is expanded with the coordinator's
// own code (coordinator/sweep/expand.h), so the plan is exactly what `sweep
// submit` would run; each trial gets N, D, tokens per parameter, epochs over
// the dataset, steps and an estimated time from a throughput table that
// `isoflop-trainer bench` measures once per machine and shape and keeps in a
// cache file (ThroughputCache); then warnings about the grid.
#ifndef ISOFLOP_CLI_PLAN_COMMAND_H_
#define ISOFLOP_CLI_PLAN_COMMAND_H_

#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/commands.h"
#include "isoflop/v1/config.pb.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::cli {

// What one throughput measurement is of: the machine, how the trainer runs,
// the model shape and the batch. Two measurements with equal keys replace
// each other in the cache.
struct ThroughputKey {
  std::string host;    // gethostname()
  std::string device;  // "cpu" or "cuda"
  int threads = 1;     // LibTorch threads per trial
  // Trials running at once on the machine while it was measured (CPU: that
  // many bench processes ran side by side, as a worker with that many slots
  // runs trials; CUDA: 1, each trial has its own GPU).
  int concurrent = 1;
  std::string precision;  // "fp32" or "bf16"
  int64_t vocab_size = 0, context = 0, d_model = 0, n_layers = 0, n_heads = 0,
          d_ff = 0, batch_sequences = 0;

  bool operator==(const ThroughputKey&) const = default;
  // Same machine and way of running (all but the shape and batch).
  bool SameRunner(const ThroughputKey& other) const;
};

struct ThroughputEntry {
  ThroughputKey key;
  double tokens_per_s = 0;     // training tokens per second, per trial
  double flops_per_token = 0;  // common/flops.h, of the key's shape
  int64_t measured_unix_s = 0;
};

// The fixed cost of one trial besides its steps and evaluations: process
// start, LibTorch and model initialisation (a 1-step bench's wall time).
struct OverheadEntry {
  std::string host, device;
  int threads = 1;
  double seconds = 0;
  int64_t measured_unix_s = 0;
};

// The per-machine throughput table, kept as JSON in one file (docs/plan.md,
// "The throughput cache"): {"version": 1, "entries": [{"host", "device",
// "threads", "concurrent", "precision", "vocab_size", "context", "d_model",
// "n_layers", "n_heads", "d_ff", "batch_sequences", "tokens_per_s",
// "flops_per_token", "measured_unix_s"}], "overheads": [{"host", "device",
// "threads", "seconds", "measured_unix_s"}]}.
class ThroughputCache {
 public:
  // An empty cache that Save writes to `path`.
  explicit ThroughputCache(std::string path = "") : path_(std::move(path)) {}
  // A missing file is an empty cache; a file that is not such JSON is
  // INVALID_ARGUMENT naming the file and the field (delete it to start
  // over).
  static absl::StatusOr<ThroughputCache> Load(const std::string& path);
  // Writes the file (creating its folder), atomically through a temporary
  // file. INTERNAL naming the path on failure.
  absl::Status Save() const;

  const std::string& path() const { return path_; }
  const std::vector<ThroughputEntry>& entries() const { return entries_; }
  const ThroughputEntry* Find(const ThroughputKey& key) const;
  // The entry of the same runner nearest in log FLOPs/token and log tokens
  // per step (B*T); nullptr when the runner has none.
  const ThroughputEntry* Nearest(const ThroughputKey& key,
                                 double flops_per_token) const;
  const OverheadEntry* FindOverhead(const std::string& host,
                                    const std::string& device,
                                    int threads) const;
  void Put(const ThroughputEntry& entry);  // replaces an equal key
  void PutOverhead(const OverheadEntry& entry);

 private:
  std::string path_;
  std::vector<ThroughputEntry> entries_;
  std::vector<OverheadEntry> overheads_;
};

// $XDG_CACHE_HOME/isoflop/throughput.json, else
// $HOME/.cache/isoflop/throughput.json.
std::string DefaultThroughputCachePath();

// Measures throughput; the real one runs `isoflop-trainer bench`, tests
// inject a fake.
class ThroughputMeasurer {
 public:
  virtual ~ThroughputMeasurer() = default;
  // Training tokens per second of one trial of `key`'s shape while
  // key.concurrent such trials run at once.
  virtual absl::StatusOr<double> TokensPerSecond(const ThroughputKey& key) = 0;
  // The per-trial overhead (OverheadEntry) on `device` with `threads`.
  virtual absl::StatusOr<double> OverheadSeconds(const std::string& device,
                                                 int threads) = 0;
};

// Runs `trainer bench` (trainer/main.cc: one JSON line on stdout with
// tokens_per_s): key.concurrent processes side by side with OMP_NUM_THREADS =
// key.threads, about 2 s of timed steps each on CPU (1 s on CUDA) after a few
// untimed ones; the mean of their tokens_per_s. OverheadSeconds: the smaller
// wall time of two 1-step benches of a tiny model. UNAVAILABLE naming the
// command and its stderr when the trainer fails.
std::unique_ptr<ThroughputMeasurer> MakeTrainerBenchMeasurer(
    std::string trainer_path);

// An adaptive grid (grid.adaptive, docs/plan.md): only the first budget's
// trials are known before it runs; the later budgets get `shapes_per_budget`
// shapes each, placed as results arrive.
struct AdaptiveCounts {
  int shapes_per_budget = 5;
};
// The config's adaptive grid, or nullopt for a fixed grid.
std::optional<AdaptiveCounts> AdaptiveGridOf(const v1::SweepConfig& config);

struct PlanOptions {
  std::string config_path;  // named in the output
  // --data-dir: DIR/<dataset>/meta.json gives the training tokens. Empty:
  // the first of `data_dir_candidates` that holds the dataset.
  std::string data_dir;
  std::vector<std::string> data_dir_candidates;
  std::string device;  // "cpu" or "cuda"; empty: cuda iff gpus_per_trial > 0
  int threads = 0;     // 0: the config's threads_per_trial
  // Trials at once (a worker's slots); 0: CPU cores / threads (as
  // scripts/demo.sh's worker), 1 on CUDA; capped by max_concurrent_trials.
  int slots = 0;
  int cores = 1;           // this machine's CPU cores (for slots)
  bool measure = true;     // false (--no-measure): nearest cached shapes
  bool remeasure = false;  // measure again even when cached
  std::string host;        // this machine's name (ThroughputKey.host)
  int64_t now_unix_s = 0;
  std::optional<AdaptiveCounts> adaptive;  // unset: AdaptiveGridOf(config)
};

struct PlannedTrial {
  v1::TrialSpec spec;
  double tokens_per_param = 0;   // tokens / n_total
  std::optional<double> epochs;  // tokens / the dataset's training tokens
  std::optional<double> est_seconds;
  double tokens_per_s = 0;  // used for est_seconds (0: none)
  // "measured" (now), "cached", "nearest" (scaled from another shape by
  // FLOPs/token) or "none".
  std::string throughput_source = "none";
};

// Where a budget's prior optimum lies against its sampled N range.
struct BudgetBracket {
  double flops_budget = 0;
  double prior_n_opt = 0;  // N_total where D/N_total = kPriorTokensPerParam
  double n_min = 0, n_max = 0;
  int shapes = 0;
  // "inside", "below" / "above" (outside the range), "low_edge" /
  // "high_edge" (nearest, in log N, to the smallest / largest shape), or
  // "too_few" (fewer than 3 shapes).
  std::string position;
};

// Chinchilla's compute-optimal tokens per parameter (Hoffmann et al. 2022):
// the prior N_opt(C) of the bracketing check, read under the sweep's FLOP
// convention (C = D x FLOPs/token of common/flops.h, N = N_total).
inline constexpr double kPriorTokensPerParam = 20;

struct Plan {
  std::string name, config_path, dataset;
  std::optional<uint64_t> train_tokens;  // from meta.json
  std::string train_tokens_source;       // the meta.json read, or why none
  std::vector<PlannedTrial> trials;      // adaptive: the first budget's
  std::vector<BudgetBracket> brackets;   // one per planned budget
  double total_flops = 0;                // planned trials' C (trained)
  // WSD_BRANCHED: the same cells as independent runs (0 otherwise).
  double independent_flops = 0;
  bool branched = false;
  std::optional<double> est_seconds;    // wall time with `slots` at once
  std::optional<double> trial_seconds;  // sum over trials
  std::optional<double> overhead_s;     // per trial, besides eval
  std::string device, precision, host, cache_path;
  int threads = 1, slots = 1, gpus_per_trial = 0;
  // Adaptive grids: what the later budgets are expected to add.
  bool adaptive = false;
  int later_trials = 0;
  double later_flops = 0;
  std::optional<double> later_seconds;
  std::vector<std::string> warnings, notes;
};

// Expands `config` (ExpandSweep), looks up the dataset, estimates every
// trial's time (measuring missing shapes with `measurer` when
// options.measure, with a progress line each on `progress`; measurements are
// saved in `cache` as they come) and derives the warnings. `measurer` may be
// null (nothing measured). The config's errors are ExpandSweep's; a failed
// measurement is a note and that trial has no estimate.
absl::StatusOr<Plan> MakePlan(const v1::SweepConfig& config,
                              const PlanOptions& options,
                              ThroughputCache& cache,
                              ThroughputMeasurer* measurer,
                              std::ostream& progress);

// The JSON of docs/plan.md: {"trials": [{"trial_id", "flops_budget",
// "flops", "shape", "n_params", "tokens", "tokens_per_param", "epochs",
// "steps", "est_seconds", "tokens_per_s", "throughput"}], "total_flops",
// "est_seconds", "trial_seconds", "cpu_hours" | "gpu_hours", "slots",
// "warnings", "notes", ...}; unknown numbers are null.
std::string PlanJson(const Plan& plan);
// The per-trial table, totals, warnings and notes.
std::string PlanText(const Plan& plan, int digits = 3);
// Totals, warnings and notes only (what `sweep submit` shows).
std::string PlanSummaryText(const Plan& plan, int digits = 3);

// `isoflop sweep plan CONFIG`: loads the config and prints the plan
// (ctx.format) on ctx.out, progress on ctx.err.
absl::Status PlanSweep(const CommandContext& ctx, const PlanOptions& options,
                       ThroughputCache& cache, ThroughputMeasurer* measurer);

// What `sweep submit` does before it submits (docs/plan.md): the plan's
// summary on ctx.err, from the cache only (nothing measured: the workers
// may be other machines; `sweep plan` measures). A plan that cannot be made
// is a note, never a refusal (the coordinator judges the config). When
// `interactive` and not `yes`, asks "submit? [y/N]" on ctx.err and reads a
// line of `in`: anything but y/yes is CANCELLED (not submitted).
absl::Status ShowPlanBeforeSubmit(const CommandContext& ctx,
                                  const v1::SweepConfig& config,
                                  const PlanOptions& options,
                                  ThroughputCache& cache, bool yes,
                                  bool interactive, std::istream& in);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_PLAN_COMMAND_H_
