#include "cli/plan_command.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/config_file.h"
#include "cli/output.h"
#include "common/flops.h"
#include "common/readable.h"
#include "common/status_macros.h"
#include "coordinator/sweep/expand.h"

extern char** environ;

namespace isoflop::cli {

namespace {

using ordered_json = nlohmann::ordered_json;

constexpr int kCacheVersion = 1;
// Fewer steps than this: warm-up and decay are most of the run (docs/plan.md).
constexpr uint64_t kMinSteps = 100;
// More epochs than this: repeated tokens lose value (Muennighoff et al. 2023).
constexpr double kMaxEpochs = 4;
constexpr double kMinTokensPerParam = 1, kMaxTokensPerParam = 1000;
// A forward pass costs about a third of a training step's FLOPs: evaluation
// tokens are counted at 3x the training throughput.
constexpr double kEvalSpeedup = 3;

std::string ShapeLabel(const v1::TrialSpec& s) {
  return absl::StrCat("d", s.shape().d_model(), "/L", s.shape().n_layers());
}

std::string Seconds(double s) {
  if (s < 120) return absl::StrCat(Sig(s, 3), " s");
  if (s < 2 * 3600) return absl::StrCat(Sig(s / 60, 3), " min");
  return absl::StrCat(Sig(s / 3600, 3), " h");
}

std::string PrecisionName(v1::Precision p) {
  return p == v1::BF16 ? "bf16" : "fp32";
}

ThroughputKey KeyOf(const Plan& plan, const v1::TrialSpec& s, int concurrent) {
  ThroughputKey k;
  k.host = plan.host;
  k.device = plan.device;
  k.threads = plan.threads;
  k.concurrent = concurrent;
  k.precision = plan.precision;
  k.vocab_size = s.model().vocab_size();
  k.context = s.model().context();
  k.d_model = s.shape().d_model();
  k.n_layers = s.shape().n_layers();
  k.n_heads = s.shape().n_heads();
  k.d_ff = s.shape().d_ff();
  k.batch_sequences = s.training().batch_sequences();
  return k;
}

std::string KeyText(const ThroughputKey& k) {
  return absl::StrCat("d", k.d_model, "/L", k.n_layers, " (V=", k.vocab_size,
                      ", T=", k.context, ", B=", k.batch_sequences, ") on ",
                      k.device, " ", k.precision, ", ", k.threads,
                      k.threads == 1 ? " thread" : " threads", ", ",
                      k.concurrent, " at once");
}

// ---- the cache's JSON.

ordered_json EntryJson(const ThroughputEntry& e) {
  const ThroughputKey& k = e.key;
  return ordered_json{{"host", k.host},
                      {"device", k.device},
                      {"threads", k.threads},
                      {"concurrent", k.concurrent},
                      {"precision", k.precision},
                      {"vocab_size", k.vocab_size},
                      {"context", k.context},
                      {"d_model", k.d_model},
                      {"n_layers", k.n_layers},
                      {"n_heads", k.n_heads},
                      {"d_ff", k.d_ff},
                      {"batch_sequences", k.batch_sequences},
                      {"tokens_per_s", e.tokens_per_s},
                      {"flops_per_token", e.flops_per_token},
                      {"measured_unix_s", e.measured_unix_s}};
}

absl::Status FieldError(const std::string& path, const std::string& where,
                        const std::string& field, const std::string& rule) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": ", where, ".", field, ": ", rule,
                   " (delete the file to measure again)"));
}

template <typename T>
absl::Status ReadNumber(const nlohmann::json& j, const std::string& path,
                        const std::string& where, const std::string& field,
                        bool positive, T* out) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_number()) {
    return FieldError(path, where, field, "must be a number");
  }
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < 0 || (positive && v <= 0)) {
    return FieldError(path, where, field,
                      absl::StrCat("= ", v, ": must be finite and ",
                                   positive ? "> 0" : ">= 0"));
  }
  *out = static_cast<T>(v);
  return absl::OkStatus();
}

absl::Status ReadString(const nlohmann::json& j, const std::string& path,
                        const std::string& where, const std::string& field,
                        std::string* out) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) {
    return FieldError(path, where, field, "must be a string");
  }
  *out = it->get<std::string>();
  return absl::OkStatus();
}

// The runner's nearest entries are compared by this distance.
double ShapeDistance(const ThroughputEntry& e, double flops_per_token,
                     const ThroughputKey& key) {
  const double tokens_e = static_cast<double>(e.key.batch_sequences) *
                          static_cast<double>(e.key.context);
  const double tokens = static_cast<double>(key.batch_sequences) *
                        static_cast<double>(key.context);
  return std::abs(std::log(e.flops_per_token / flops_per_token)) +
         std::abs(std::log(tokens_e / tokens));
}

// ---- running the trainer.

struct ChildRun {
  int exit_code = -1;
  std::string out, err;
  double wall_s = 0;
};

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs each argv at once (stdout and stderr into files of a temporary
// folder), with OMP_NUM_THREADS = threads; waits up to `timeout_s` for all.
absl::StatusOr<std::vector<ChildRun>> RunSideBySide(
    const std::vector<std::vector<std::string>>& argvs, int threads,
    double timeout_s) {
  std::string dir_template =
      (std::filesystem::temp_directory_path() / "isoflop-bench-XXXXXX")
          .string();
  if (mkdtemp(dir_template.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp ", dir_template, ": ", std::strerror(errno)));
  }
  const std::filesystem::path dir = dir_template;
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).rfind("OMP_NUM_THREADS=", 0) != 0) {
      env_text.emplace_back(*e);
    }
  }
  env_text.push_back(absl::StrCat("OMP_NUM_THREADS=", threads));
  std::vector<char*> envp;
  for (std::string& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::vector<ChildRun> runs(argvs.size());
  std::vector<pid_t> pids(argvs.size(), -1);
  const auto start = std::chrono::steady_clock::now();
  absl::Status status;
  for (size_t i = 0; i < argvs.size(); ++i) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string out = (dir / absl::StrCat(i, ".out")).string();
    const std::string err = (dir / absl::StrCat(i, ".err")).string();
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                     O_RDONLY, 0);
    std::vector<std::string> args = argvs[i];
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pids[i], argv[0], &actions, nullptr,
                               argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pids[i] = -1;
      status = absl::UnavailableError(
          absl::StrCat("cannot start ", argvs[i][0], ": ", std::strerror(rc)));
      break;
    }
  }
  // Reap every child started, killing them all past the deadline.
  const auto deadline =
      start + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1e3));
  bool killed = false;
  for (size_t i = 0; i < pids.size(); ++i) {
    if (pids[i] < 0) continue;
    int wstatus = 0;
    while (true) {
      const pid_t r = waitpid(pids[i], &wstatus, WNOHANG);
      if (r == pids[i] || (r < 0 && errno != EINTR)) break;
      if (!killed && std::chrono::steady_clock::now() > deadline) {
        for (pid_t p : pids) {
          if (p > 0) kill(p, SIGKILL);
        }
        killed = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    runs[i].wall_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    runs[i].exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    runs[i].out = ReadWhole((dir / absl::StrCat(i, ".out")).string());
    runs[i].err = ReadWhole((dir / absl::StrCat(i, ".err")).string());
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  if (!status.ok()) return status;
  if (killed) {
    return absl::DeadlineExceededError(absl::StrCat(
        argvs[0][0], " ", argvs[0][1], " ran past ", timeout_s, " s"));
  }
  return runs;
}

std::string LastLine(const std::string& text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

class TrainerBenchMeasurer final : public ThroughputMeasurer {
 public:
  explicit TrainerBenchMeasurer(std::string trainer)
      : trainer_(std::move(trainer)) {}

  absl::StatusOr<double> TokensPerSecond(const ThroughputKey& k) override {
    const ParamCounts counts = CountParams(
        {k.vocab_size, k.context, k.d_model, k.n_layers, k.n_heads, k.d_ff});
    const double flops_per_step = counts.flops_per_token *
                                  static_cast<double>(k.batch_sequences) *
                                  static_cast<double>(k.context);
    // About 2 s of timed steps at a guessed 1e10 FLOP/s per CPU thread (1 s
    // at 1e14 FLOP/s on CUDA), bounded.
    const bool cuda = k.device == "cuda";
    const double guess = cuda ? 1e14 : 2e10 * k.threads;
    const int64_t steps = std::clamp<int64_t>(
        std::llround(guess / flops_per_step), cuda ? 20 : 5, 500);
    const int64_t untimed = cuda ? 10 : 3;
    std::vector<std::vector<std::string>> argvs(
        static_cast<size_t>(std::max(1, k.concurrent)),
        BenchArgv(k, steps, untimed));
    ASSIGN_OR_RETURN(std::vector<ChildRun> runs,
                     RunSideBySide(argvs, k.threads, 600));
    double sum = 0;
    for (const ChildRun& r : runs) {
      ASSIGN_OR_RETURN(double tps, ParseTokensPerSecond(r, argvs[0]));
      sum += tps;
    }
    return sum / static_cast<double>(runs.size());
  }

  absl::StatusOr<double> OverheadSeconds(const std::string& device,
                                         int threads) override {
    ThroughputKey tiny;
    tiny.device = device;
    tiny.threads = threads;
    tiny.precision = device == "cuda" ? "bf16" : "fp32";
    tiny.vocab_size = 256;
    tiny.context = 16;
    tiny.d_model = 16;
    tiny.n_layers = 1;
    tiny.n_heads = 1;
    tiny.d_ff = 64;
    tiny.batch_sequences = 1;
    double best = 0;
    for (int i = 0; i < 2; ++i) {
      const std::vector<std::string> argv = BenchArgv(tiny, 1, 1);
      ASSIGN_OR_RETURN(std::vector<ChildRun> runs,
                       RunSideBySide({argv}, threads, 300));
      RETURN_IF_ERROR(ParseTokensPerSecond(runs[0], argv).status());
      best = i == 0 ? runs[0].wall_s : std::min(best, runs[0].wall_s);
    }
    return best;
  }

 private:
  std::vector<std::string> BenchArgv(const ThroughputKey& k, int64_t steps,
                                     int64_t untimed) const {
    return {trainer_,
            "bench",
            "--vocab-size",
            absl::StrCat(k.vocab_size),
            "--context",
            absl::StrCat(k.context),
            "--d-model",
            absl::StrCat(k.d_model),
            "--n-layers",
            absl::StrCat(k.n_layers),
            "--n-heads",
            absl::StrCat(k.n_heads),
            "--d-ff",
            absl::StrCat(k.d_ff),
            "--batch-sequences",
            absl::StrCat(k.batch_sequences),
            "--steps",
            absl::StrCat(steps),
            "--untimed-steps",
            absl::StrCat(untimed),
            "--lr",
            "1e-3",
            "--schedule",
            "cosine",
            "--warmup-steps",
            "0",
            "--min-lr-fraction",
            "0.1",
            "--weight-decay",
            "0.1",
            "--beta2",
            "0.95",
            "--seed",
            "0",
            "--threads",
            absl::StrCat(k.threads),
            "--device",
            k.device,
            "--precision",
            k.precision};
  }

  static absl::StatusOr<double> ParseTokensPerSecond(
      const ChildRun& r, const std::vector<std::string>& argv) {
    const nlohmann::json j =
        nlohmann::json::parse(LastLine(r.out), nullptr, false);
    if (r.exit_code != 0 || !j.is_object() || !j.contains("tokens_per_s") ||
        !j["tokens_per_s"].is_number() ||
        !(j["tokens_per_s"].get<double>() > 0)) {
      return absl::UnavailableError(
          absl::StrCat(absl::StrJoin(argv, " "), " failed (exit ", r.exit_code,
                       "): ", LastLine(r.err.empty() ? r.out : r.err)));
    }
    return j["tokens_per_s"].get<double>();
  }

  std::string trainer_;
};

// ---- planning.

// DIR/<dataset>/meta.json's train_tokens: sets plan->train_tokens, or says
// why not in plan->train_tokens_source.
void LookUpDataset(const PlanOptions& options, Plan* plan) {
  std::vector<std::string> dirs;
  if (!options.data_dir.empty()) {
    dirs.push_back(options.data_dir);
  } else {
    dirs = options.data_dir_candidates;
  }
  for (const std::string& dir : dirs) {
    const std::string meta =
        (std::filesystem::path(dir) / plan->dataset / "meta.json").string();
    std::error_code ec;
    if (!std::filesystem::exists(meta, ec)) continue;
    const nlohmann::json j =
        nlohmann::json::parse(ReadWhole(meta), nullptr, false);
    if (!j.is_object() || !j.contains("train_tokens") ||
        !j["train_tokens"].is_number_unsigned() ||
        j["train_tokens"].get<uint64_t>() == 0) {
      plan->train_tokens_source =
          absl::StrCat(meta, " has no train_tokens > 0");
      return;
    }
    plan->train_tokens = j["train_tokens"].get<uint64_t>();
    plan->train_tokens_source = meta;
    return;
  }
  plan->train_tokens_source = absl::StrCat(
      "no ", plan->dataset, "/meta.json under ",
      dirs.empty() ? std::string("any data dir") : absl::StrJoin(dirs, " or "));
}

// Log-log interpolation (or extrapolation from the two nearest shapes) of
// where tokens/N_total = kPriorTokensPerParam along one budget's shapes.
BudgetBracket Bracket(double budget, std::vector<const PlannedTrial*> trials) {
  std::sort(trials.begin(), trials.end(),
            [](const PlannedTrial* a, const PlannedTrial* b) {
              return a->spec.n_total() < b->spec.n_total();
            });
  BudgetBracket b;
  b.flops_budget = budget;
  b.shapes = static_cast<int>(trials.size());
  b.n_min = static_cast<double>(trials.front()->spec.n_total());
  b.n_max = static_cast<double>(trials.back()->spec.n_total());
  const double target = std::log(kPriorTokensPerParam);
  auto log_n = [&](size_t i) {
    return std::log(static_cast<double>(trials[i]->spec.n_total()));
  };
  auto log_r = [&](size_t i) { return std::log(trials[i]->tokens_per_param); };
  // At fixed C, D/N falls about as N^-2 (C ~ N D): the fallback slope.
  double log_opt = log_n(0) + (log_r(0) - target) / 2;
  if (trials.size() >= 2) {
    size_t i = 0;  // the segment [i, i+1] holding or nearest the target
    while (i + 2 < trials.size() && log_r(i + 1) > target) ++i;
    const double dr = log_r(i + 1) - log_r(i);
    const double dn = log_n(i + 1) - log_n(i);
    if (std::abs(dr) > 1e-12) {
      log_opt = log_n(i) + (target - log_r(i)) * dn / dr;
    }
  }
  b.prior_n_opt = std::exp(log_opt);
  if (b.shapes < 3) {
    b.position = "too_few";
  } else if (b.prior_n_opt < b.n_min) {
    b.position = "below";
  } else if (b.prior_n_opt > b.n_max) {
    b.position = "above";
  } else {
    size_t nearest = 0;
    for (size_t i = 1; i < trials.size(); ++i) {
      if (std::abs(log_n(i) - log_opt) < std::abs(log_n(nearest) - log_opt)) {
        nearest = i;
      }
    }
    b.position = nearest == 0                   ? "low_edge"
                 : nearest + 1 == trials.size() ? "high_edge"
                                                : "inside";
  }
  return b;
}

std::string ListOf(const std::vector<const PlannedTrial*>& trials,
                   const std::function<std::string(const PlannedTrial&)>& f) {
  std::vector<std::string> parts;
  for (const PlannedTrial* t : trials) {
    parts.push_back(absl::StrCat(ShapeLabel(t->spec), " ", f(*t)));
  }
  return absl::StrJoin(parts, ", ");
}

void AddWarnings(Plan* plan) {
  std::map<double, std::vector<const PlannedTrial*>> by_budget;
  for (const PlannedTrial& t : plan->trials) {
    // A trunk is no cell of any budget: its branches are.
    if (t.spec.role() == v1::TRIAL_ROLE_TRUNK) continue;
    by_budget[t.spec.flops_budget()].push_back(&t);
  }
  for (const auto& budget_trials : by_budget) {
    // Named, not bound: clang 14 cannot capture structured bindings.
    const double budget = budget_trials.first;
    const std::vector<const PlannedTrial*>& trials = budget_trials.second;
    const BudgetBracket b = Bracket(budget, trials);
    plan->brackets.push_back(b);
    const std::string c = absl::StrCat("budget ", Sig(budget, 3));
    auto shape_at = [&](double n) {
      for (const PlannedTrial* t : trials) {
        if (static_cast<double>(t->spec.n_total()) == n) {
          return absl::StrCat(ShapeLabel(t->spec), " (N = ", Count(n), ")");
        }
      }
      return Count(n);
    };
    const std::string prior =
        absl::StrCat("the prior N_opt ~ ", Count(b.prior_n_opt),
                     " (D/N = ", Sig(kPriorTokensPerParam, 3), ")");
    if (b.position == "too_few") {
      plan->warnings.push_back(absl::StrCat(
          c, " cannot bracket the optimum: it has ", b.shapes,
          " shape(s), and a minimum inside the sampled range needs at least 3 "
          "(",
          prior, ")"));
    } else if (b.position == "below" || b.position == "above") {
      const bool below = b.position == "below";
      plan->warnings.push_back(absl::StrCat(
          c, " cannot bracket the optimum: ", prior, " is ",
          below ? "below its smallest model " : "above its largest model ",
          shape_at(below ? b.n_min : b.n_max), "; add ",
          below ? "smaller" : "larger", " shapes"));
    } else if (b.position != "inside") {
      const bool low = b.position == "low_edge";
      plan->warnings.push_back(absl::StrCat(
          c, " may not bracket the optimum: ", prior, " is nearest its ",
          low ? "smallest model " : "largest model ",
          shape_at(low ? b.n_min : b.n_max),
          ", so the loss minimum is likely at that edge with no point beyond "
          "it; add a ",
          low ? "smaller" : "larger", " shape"));
    }
    std::vector<const PlannedTrial*> short_runs, repeated, odd_ratio;
    for (const PlannedTrial* t : trials) {
      if (t->spec.steps() < kMinSteps) short_runs.push_back(t);
      if (t->epochs.has_value() && *t->epochs > kMaxEpochs) {
        repeated.push_back(t);
      }
      if (t->tokens_per_param < kMinTokensPerParam ||
          t->tokens_per_param > kMaxTokensPerParam) {
        odd_ratio.push_back(t);
      }
    }
    if (!short_runs.empty()) {
      plan->warnings.push_back(absl::StrCat(
          c, ": ", short_runs.size(), " model(s) do fewer than ", kMinSteps,
          " optimizer steps (",
          ListOf(short_runs,
                 [](const PlannedTrial& t) {
                   return absl::StrCat(t.spec.steps(), " steps");
                 }),
          "): warm-up and decay are most of such a run and its loss sits above "
          "the law; raise the budget, lower batch_sequences or drop the "
          "shape"));
    }
    if (!repeated.empty()) {
      plan->warnings.push_back(absl::StrCat(
          "data-constrained: ", c, ": ", repeated.size(),
          " model(s) see more than ", Sig(kMaxEpochs, 3), " epochs of ",
          plan->dataset, " (", Count(static_cast<double>(*plan->train_tokens)),
          " training tokens): ",
          ListOf(repeated,
                 [](const PlannedTrial& t) {
                   return absl::StrCat(Sig(*t.epochs, 3), " epochs");
                 }),
          "; repeated tokens are worth less than new ones (Muennighoff et al. "
          "2023), so these losses sit above what fresh data gives; use a "
          "larger dataset or smaller budgets"));
    }
    if (!odd_ratio.empty()) {
      plan->warnings.push_back(absl::StrCat(
          c, ": ", odd_ratio.size(),
          " model(s) have tokens per parameter "
          "outside [",
          kMinTokensPerParam, ", ", kMaxTokensPerParam, "] (",
          ListOf(odd_ratio,
                 [](const PlannedTrial& t) {
                   return absl::StrCat("D/N = ", Sig(t.tokens_per_param, 3));
                 }),
          "): far from any compute-optimal ratio, they spend the budget on "
          "points the fit barely uses"));
    }
  }
}

// Wall time of `seconds` run in order, each on the first free of `slots`
// (the scheduler leases a sweep's trials in grid order).
double Makespan(const std::vector<double>& seconds, int slots) {
  std::vector<double> free_at(static_cast<size_t>(std::max(1, slots)), 0.0);
  double end = 0;
  for (double s : seconds) {
    auto slot = std::min_element(free_at.begin(), free_at.end());
    *slot += s;
    end = std::max(end, *slot);
  }
  return end;
}

double EvalTokens(const v1::TrialSpec& s) {
  const uint64_t every = s.training().eval_every_steps();
  const uint64_t evaluations =
      1 + (every > 0 && s.steps() > 0 ? (s.steps() - 1) / every : 0);
  return static_cast<double>(evaluations) *
         static_cast<double>(s.training().eval_batches()) *
         static_cast<double>(s.training().batch_sequences()) *
         static_cast<double>(s.model().context());
}

}  // namespace

bool ThroughputKey::SameRunner(const ThroughputKey& o) const {
  return host == o.host && device == o.device && threads == o.threads &&
         concurrent == o.concurrent && precision == o.precision;
}

absl::StatusOr<ThroughputCache> ThroughputCache::Load(const std::string& path) {
  ThroughputCache cache(path);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return cache;
  const nlohmann::json j =
      nlohmann::json::parse(ReadWhole(path), nullptr, false);
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a JSON object (delete the file to measure again)"));
  }
  int version = 0;
  RETURN_IF_ERROR(ReadNumber(j, path, "(top)", "version", true, &version));
  if (version != kCacheVersion) {
    return FieldError(path, "(top)", "version",
                      absl::StrCat("= ", version, ": must be ", kCacheVersion));
  }
  for (const char* list : {"entries", "overheads"}) {
    if (j.contains(list) && !j[list].is_array()) {
      return FieldError(path, "(top)", list, "must be an array");
    }
  }
  if (j.contains("entries")) {
    for (size_t i = 0; i < j["entries"].size(); ++i) {
      const nlohmann::json& e = j["entries"][i];
      const std::string where = absl::StrCat("entries[", i, "]");
      if (!e.is_object()) return FieldError(path, where, "", "not an object");
      ThroughputEntry entry;
      ThroughputKey& k = entry.key;
      RETURN_IF_ERROR(ReadString(e, path, where, "host", &k.host));
      RETURN_IF_ERROR(ReadString(e, path, where, "device", &k.device));
      RETURN_IF_ERROR(ReadString(e, path, where, "precision", &k.precision));
      RETURN_IF_ERROR(ReadNumber(e, path, where, "threads", true, &k.threads));
      RETURN_IF_ERROR(
          ReadNumber(e, path, where, "concurrent", true, &k.concurrent));
      for (auto [field, out] : std::vector<std::pair<const char*, int64_t*>>{
               {"vocab_size", &k.vocab_size},
               {"context", &k.context},
               {"d_model", &k.d_model},
               {"n_layers", &k.n_layers},
               {"n_heads", &k.n_heads},
               {"d_ff", &k.d_ff},
               {"batch_sequences", &k.batch_sequences}}) {
        RETURN_IF_ERROR(ReadNumber(e, path, where, field, true, out));
      }
      RETURN_IF_ERROR(ReadNumber(e, path, where, "tokens_per_s", true,
                                 &entry.tokens_per_s));
      RETURN_IF_ERROR(ReadNumber(e, path, where, "flops_per_token", true,
                                 &entry.flops_per_token));
      RETURN_IF_ERROR(ReadNumber(e, path, where, "measured_unix_s", false,
                                 &entry.measured_unix_s));
      cache.Put(entry);
    }
  }
  if (j.contains("overheads")) {
    for (size_t i = 0; i < j["overheads"].size(); ++i) {
      const nlohmann::json& e = j["overheads"][i];
      const std::string where = absl::StrCat("overheads[", i, "]");
      if (!e.is_object()) return FieldError(path, where, "", "not an object");
      OverheadEntry o;
      RETURN_IF_ERROR(ReadString(e, path, where, "host", &o.host));
      RETURN_IF_ERROR(ReadString(e, path, where, "device", &o.device));
      RETURN_IF_ERROR(ReadNumber(e, path, where, "threads", true, &o.threads));
      RETURN_IF_ERROR(ReadNumber(e, path, where, "seconds", false, &o.seconds));
      RETURN_IF_ERROR(ReadNumber(e, path, where, "measured_unix_s", false,
                                 &o.measured_unix_s));
      cache.PutOverhead(o);
    }
  }
  return cache;
}

absl::Status ThroughputCache::Save() const {
  ordered_json j{{"version", kCacheVersion},
                 {"entries", ordered_json::array()},
                 {"overheads", ordered_json::array()}};
  for (const ThroughputEntry& e : entries_)
    j["entries"].push_back(EntryJson(e));
  for (const OverheadEntry& o : overheads_) {
    j["overheads"].push_back(
        ordered_json{{"host", o.host},
                     {"device", o.device},
                     {"threads", o.threads},
                     {"seconds", o.seconds},
                     {"measured_unix_s", o.measured_unix_s}});
  }
  const std::filesystem::path path(path_);
  std::error_code ec;
  if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path(), ec);
  }
  const std::string tmp = absl::StrCat(path_, ".tmp.", getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(1) << "\n";
    out.close();
    if (!out) {
      return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::InternalError(
        absl::StrCat("cannot replace ", path_, ": ", ec.message()));
  }
  return absl::OkStatus();
}

const ThroughputEntry* ThroughputCache::Find(const ThroughputKey& key) const {
  for (const ThroughputEntry& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

const ThroughputEntry* ThroughputCache::Nearest(const ThroughputKey& key,
                                                double flops_per_token) const {
  const ThroughputEntry* best = nullptr;
  for (const ThroughputEntry& e : entries_) {
    if (!e.key.SameRunner(key)) continue;
    if (best == nullptr || ShapeDistance(e, flops_per_token, key) <
                               ShapeDistance(*best, flops_per_token, key)) {
      best = &e;
    }
  }
  return best;
}

const OverheadEntry* ThroughputCache::FindOverhead(const std::string& host,
                                                   const std::string& device,
                                                   int threads) const {
  for (const OverheadEntry& o : overheads_) {
    if (o.host == host && o.device == device && o.threads == threads) return &o;
  }
  return nullptr;
}

void ThroughputCache::Put(const ThroughputEntry& entry) {
  for (ThroughputEntry& e : entries_) {
    if (e.key == entry.key) {
      e = entry;
      return;
    }
  }
  entries_.push_back(entry);
}

void ThroughputCache::PutOverhead(const OverheadEntry& entry) {
  for (OverheadEntry& o : overheads_) {
    if (o.host == entry.host && o.device == entry.device &&
        o.threads == entry.threads) {
      o = entry;
      return;
    }
  }
  overheads_.push_back(entry);
}

std::string DefaultThroughputCachePath() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::string root =
      xdg != nullptr && *xdg != '\0'
          ? std::string(xdg)
          : absl::StrCat(home != nullptr && *home != '\0' ? home : ".",
                         "/.cache");
  return root + "/isoflop/throughput.json";
}

std::unique_ptr<ThroughputMeasurer> MakeTrainerBenchMeasurer(
    std::string trainer_path) {
  return std::make_unique<TrainerBenchMeasurer>(std::move(trainer_path));
}

std::optional<AdaptiveCounts> AdaptiveGridOf(const v1::SweepConfig& config) {
  // An adaptive grid (coordinator/sweep/adaptive.h) places its later
  // budgets' shapes as results arrive: shapes_per_budget each (default 5).
  if (!config.grid().has_adaptive()) return std::nullopt;
  const uint32_t k = config.grid().adaptive().shapes_per_budget();
  return AdaptiveCounts{k > 0 ? static_cast<int>(k) : 5};
}

absl::StatusOr<Plan> MakePlan(const v1::SweepConfig& config,
                              const PlanOptions& options,
                              ThroughputCache& cache,
                              ThroughputMeasurer* measurer,
                              std::ostream& progress) {
  ASSIGN_OR_RETURN(coordinator::ExpandedSweep expanded,
                   coordinator::ExpandSweep(config));
  const v1::SweepConfig& r = expanded.resolved;
  Plan plan;
  plan.name = r.name();
  plan.config_path = options.config_path;
  plan.dataset = r.data().dataset();
  plan.host = options.host;
  plan.cache_path = cache.path();
  plan.gpus_per_trial = static_cast<int>(r.resources().gpus_per_trial());
  plan.device = !options.device.empty()   ? options.device
                : plan.gpus_per_trial > 0 ? "cuda"
                                          : "cpu";
  plan.threads = options.threads > 0
                     ? options.threads
                     : static_cast<int>(r.resources().threads_per_trial());
  plan.precision = PrecisionName(r.training().precision());
  if (options.device == "cpu" && plan.gpus_per_trial > 0) {
    plan.precision = "fp32";  // planning a GPU sweep's shapes on CPU
  }
  plan.slots = options.slots > 0 ? options.slots
               : plan.device == "cuda"
                   ? 1
                   : std::max(1, options.cores / std::max(1, plan.threads));
  const uint32_t cap = r.scheduling().max_concurrent_trials();
  if (cap > 0) plan.slots = std::min(plan.slots, static_cast<int>(cap));

  const std::optional<AdaptiveCounts> adaptive =
      options.adaptive.has_value() ? options.adaptive : AdaptiveGridOf(config);
  double first_budget = 0;
  std::vector<double> later_budgets;
  {
    std::set<double> budgets(r.grid().flops_budgets().begin(),
                             r.grid().flops_budgets().end());
    first_budget = budgets.empty() ? 0 : *budgets.begin();
    for (double b : budgets) {
      if (b != first_budget) later_budgets.push_back(b);
    }
  }
  plan.adaptive = adaptive.has_value();
  for (v1::TrialSpec& spec : expanded.trials) {
    if (plan.adaptive && spec.flops_budget() != first_budget) continue;
    PlannedTrial t;
    t.tokens_per_param = static_cast<double>(spec.tokens()) /
                         static_cast<double>(spec.n_total());
    t.spec = std::move(spec);
    plan.trials.push_back(std::move(t));
  }

  LookUpDataset(options, &plan);
  if (plan.train_tokens.has_value()) {
    for (PlannedTrial& t : plan.trials) {
      t.epochs = static_cast<double>(t.spec.tokens()) /
                 static_cast<double>(*plan.train_tokens);
    }
  } else {
    plan.notes.push_back(absl::StrCat(
        "epochs unknown: ", plan.train_tokens_source,
        " (--data-dir names the dataset root); the data-constrained check (> ",
        Sig(kMaxEpochs, 3), " epochs) was skipped"));
  }

  // Throughput: cached, measured now, or scaled from the nearest shape.
  // Cleared when the trainer's bench fails: one failure (no CUDA device, no
  // trainer) is one note, not one per shape.
  bool can_measure = options.measure && measurer != nullptr;
  auto save = [&]() {
    if (absl::Status s = cache.Save(); !s.ok()) {
      plan.notes.push_back(
          absl::StrCat("throughput cache not saved: ", s.message()));
    }
  };
  const OverheadEntry* overhead =
      options.remeasure
          ? nullptr
          : cache.FindOverhead(plan.host, plan.device, plan.threads);
  if (overhead == nullptr && can_measure) {
    progress << "plan: measuring the per-trial overhead (a 1-step bench's wall "
                "time) on "
             << plan.device << " ... ";
    progress.flush();
    absl::StatusOr<double> s =
        measurer->OverheadSeconds(plan.device, plan.threads);
    if (s.ok()) {
      progress << Sig(*s, 3) << " s\n";
      cache.PutOverhead(
          {plan.host, plan.device, plan.threads, *s, options.now_unix_s});
      save();
    } else {
      progress << "failed\n";
      plan.notes.push_back(absl::StrCat(
          "per-trial overhead not measured, so no throughput was measured "
          "either: ",
          s.status().message()));
      can_measure = false;
    }
  }
  overhead = cache.FindOverhead(plan.host, plan.device, plan.threads);
  if (overhead != nullptr) plan.overhead_s = overhead->seconds;

  const int concurrent =
      plan.device == "cuda"
          ? 1
          : std::min(plan.slots,
                     std::max(1, static_cast<int>(plan.trials.size())));
  std::vector<ThroughputKey> keys;  // the shapes to measure, in grid order
  for (const PlannedTrial& t : plan.trials) {
    const ThroughputKey k = KeyOf(plan, t.spec, concurrent);
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  // Measures `k` with the trainer's bench into the cache; false (with a
  // note) when the bench fails.
  auto measure = [&](const ThroughputKey& k, const std::string& which) {
    progress << "plan: measuring throughput " << which << ": " << KeyText(k)
             << " ... ";
    progress.flush();
    absl::StatusOr<double> tps = measurer->TokensPerSecond(k);
    if (!tps.ok()) {
      progress << "failed\n";
      plan.notes.push_back(
          absl::StrCat("throughput of ", KeyText(k), " not measured: ",
                       tps.status().message(), " (no other shape was tried)"));
      can_measure = false;
      return false;
    }
    progress << Count(*tps, 3) << " tokens/s\n";
    const ParamCounts counts = CountParams(
        {k.vocab_size, k.context, k.d_model, k.n_layers, k.n_heads, k.d_ff});
    cache.Put({k, *tps, counts.flops_per_token, options.now_unix_s});
    save();
    return true;
  };
  // Tokens/s of `k` from the cache, else scaled from the nearest cached shape
  // at equal FLOP/s (tokens/s times the FLOPs/token ratio); 0: none.
  auto cached_tokens_per_s = [&](const ThroughputKey& k,
                                 double flops_per_token) {
    if (const ThroughputEntry* e = cache.Find(k); e != nullptr) {
      return e->tokens_per_s;
    }
    if (const ThroughputEntry* n = cache.Nearest(k, flops_per_token);
        n != nullptr) {
      return n->tokens_per_s * n->flops_per_token / flops_per_token;
    }
    return 0.0;
  };
  std::vector<ThroughputKey> measured;
  if (can_measure) {
    std::vector<ThroughputKey> missing;
    for (const ThroughputKey& k : keys) {
      if (options.remeasure || cache.Find(k) == nullptr) missing.push_back(k);
    }
    for (size_t i = 0; i < missing.size() && can_measure; ++i) {
      if (measure(missing[i], absl::StrCat(i + 1, "/", missing.size()))) {
        measured.push_back(missing[i]);
      }
    }
  }
  int unestimated = 0;
  for (PlannedTrial& t : plan.trials) {
    const ThroughputKey k = KeyOf(plan, t.spec, concurrent);
    t.tokens_per_s = cached_tokens_per_s(k, t.spec.flops_per_token());
    if (cache.Find(k) != nullptr) {
      t.throughput_source =
          std::find(measured.begin(), measured.end(), k) != measured.end()
              ? "measured"
              : "cached";
    } else if (t.tokens_per_s > 0) {
      t.throughput_source = "nearest";
    }
    if (t.tokens_per_s > 0) {
      t.est_seconds = plan.overhead_s.value_or(0) +
                      static_cast<double>(coordinator::TrainedTokens(t.spec)) /
                          t.tokens_per_s +
                      EvalTokens(t.spec) / (kEvalSpeedup * t.tokens_per_s);
    } else {
      ++unestimated;
    }
  }
  for (const PlannedTrial& t : plan.trials) {
    plan.total_flops += coordinator::TrainedFlops(t.spec);
    plan.independent_flops += coordinator::IndependentFlops(t.spec);
    plan.branched |= t.spec.role() == v1::TRIAL_ROLE_TRUNK;
  }
  if (!plan.branched) plan.independent_flops = 0;
  if (unestimated > 0) {
    plan.notes.push_back(absl::StrCat(
        "no time estimate for ", unestimated, " trial(s): no throughput on ",
        plan.host, " for ", plan.device, " ", plan.precision, ", ",
        plan.threads, " thread(s), ", concurrent, " at once in ", cache.path(),
        options.measure ? ""
                        : " (nothing measured here; `isoflop sweep plan "
                          "CONFIG` measures and fills it)"));
  } else if (!plan.trials.empty()) {
    std::vector<double> seconds;
    double sum = 0;
    for (const PlannedTrial& t : plan.trials) {
      seconds.push_back(*t.est_seconds);
      sum += *t.est_seconds;
    }
    plan.trial_seconds = sum;
    plan.est_seconds = Makespan(seconds, plan.slots);
  }
  if (!plan.overhead_s.has_value()) {
    plan.notes.emplace_back(
        "no per-trial overhead (process start) measured on this machine: "
        "estimates count steps and evaluation only");
  }

  if (plan.adaptive) {
    // Later budgets: the coordinator places shapes_per_budget shapes over
    // `span` around the N_opt the finished budgets predict
    // (coordinator/sweep/adaptive.h). The plan places them the same way
    // around the prior's N_opt (D/N = kPriorTokensPerParam, FLOPs/token
    // fitted log-log over the first budget's shapes), expands those cells as
    // the coordinator would and times them like planned trials; budgets run
    // one after another (each waits for the one before).
    plan.later_trials =
        adaptive->shapes_per_budget * static_cast<int>(later_budgets.size());
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    for (const PlannedTrial& t : plan.trials) {
      const double x = std::log(static_cast<double>(t.spec.n_total()));
      const double y = std::log(t.spec.flops_per_token());
      sx += x, sy += y, sxx += x * x, sxy += x * y, ++m;
    }
    const double slope = m >= 2 && sxx * m - sx * sx > 0
                             ? (sxy * m - sx * sy) / (sxx * m - sx * sx)
                             : 1.0;
    const double intercept = m > 0 ? (sy - slope * sx) / m : 0.0;
    const double span = config.grid().adaptive().span() > 1
                            ? config.grid().adaptive().span()
                            : 8.0;
    const int k = adaptive->shapes_per_budget;
    double later_sum = 0, later_wall = 0;
    bool timed = plan.est_seconds.has_value() && m >= 1;
    for (double b : later_budgets) {
      plan.later_flops += b * k;
      if (!timed) continue;
      // C / (e^intercept N^slope N) = 20  =>  N_opt.
      const double n_opt = std::exp(
          (std::log(b / kPriorTokensPerParam) - intercept) / (slope + 1));
      v1::SweepConfig one = config;
      v1::Grid* g = one.mutable_grid();
      g->clear_adaptive();
      g->clear_model_shapes();
      g->clear_d_models();
      g->clear_n_targets();
      g->clear_flops_budgets();
      g->add_flops_budgets(b);
      for (int i = 0; i < k; ++i) {
        const double u = k > 1 ? static_cast<double>(i) / (k - 1) - 0.5 : 0;
        g->add_n_targets(n_opt * std::pow(span, u));
      }
      absl::StatusOr<coordinator::ExpandedSweep> cells =
          coordinator::ExpandSweep(one);
      if (!cells.ok()) {
        plan.notes.push_back(
            absl::StrCat("budget ", Sig(b, 3),
                         ": no time estimate for the shapes the "
                         "prior places (",
                         cells.status().message(), ")"));
        timed = false;
        continue;
      }
      std::vector<double> seconds;
      for (const v1::TrialSpec& spec : cells->trials) {
        const ThroughputKey key = KeyOf(plan, spec, concurrent);
        if (cache.Find(key) == nullptr && can_measure) {
          measure(key, absl::StrCat("(budget ", Sig(b, 3),
                                    ", placed by the prior)"));
        }
        const double tps = cached_tokens_per_s(key, spec.flops_per_token());
        if (tps <= 0) {
          timed = false;
          break;
        }
        seconds.push_back(
            plan.overhead_s.value_or(0) +
            static_cast<double>(coordinator::TrainedTokens(spec)) / tps +
            EvalTokens(spec) / (kEvalSpeedup * tps));
        later_sum += seconds.back();
      }
      if (timed) later_wall += Makespan(seconds, plan.slots);
    }
    if (timed) {
      plan.later_seconds = later_sum;
      *plan.est_seconds += later_wall;
      *plan.trial_seconds += later_sum;
    }
    plan.total_flops += plan.later_flops;
    if (!later_budgets.empty()) {
      plan.notes.push_back(absl::StrCat(
          "adaptive grid: only the first budget's ", plan.trials.size(),
          " trials are planned; the other ", later_budgets.size(),
          " budget(s) get ", adaptive->shapes_per_budget,
          " shapes each, placed as results arrive (", plan.later_trials,
          " trials, ", Sig(plan.later_flops, 3),
          " FLOPs; timed as the shapes the prior places around its N_opt, "
          "extensions beyond an edge not counted); the warnings cover the "
          "first budget only"));
    }
  }
  plan.notes.push_back(absl::StrCat(
      "bracketing prior: Chinchilla's D/N = ", Sig(kPriorTokensPerParam, 3),
      " tokens per parameter (Hoffmann et al. 2022) under this sweep's FLOP "
      "convention: N = N_total, D = C / FLOPs-per-token (",
      FlopConventionText(),
      "), interpolated log-log between a budget's "
      "shapes"));
  AddWarnings(&plan);
  return plan;
}

std::string PlanJson(const Plan& plan) {
  ordered_json trials = ordered_json::array();
  auto maybe = [](const std::optional<double>& v) {
    return v.has_value() ? ordered_json(*v) : ordered_json(nullptr);
  };
  for (const PlannedTrial& t : plan.trials) {
    const v1::TrialSpec& s = t.spec;
    trials.push_back(ordered_json{
        {"trial_id", s.trial_id()},
        {"role", s.role() == v1::TRIAL_ROLE_TRUNK    ? "trunk"
                 : s.role() == v1::TRIAL_ROLE_BRANCH ? "branch"
                                                     : "cell"},
        {"flops_budget", s.flops_budget()},
        {"flops", s.flops()},
        {"trained_flops", coordinator::TrainedFlops(s)},
        {"shape",
         {{"d_model", s.shape().d_model()},
          {"n_layers", s.shape().n_layers()},
          {"n_heads", s.shape().n_heads()},
          {"d_ff", s.shape().d_ff()}}},
        {"n_params", s.n_total()},
        {"n_non_embedding", s.n_non_embedding()},
        {"flops_per_token", s.flops_per_token()},
        {"tokens", s.tokens()},
        {"tokens_per_param", t.tokens_per_param},
        {"epochs", maybe(t.epochs)},
        {"steps", s.steps()},
        {"batch_sequences", s.training().batch_sequences()},
        {"context", s.model().context()},
        {"est_seconds", maybe(t.est_seconds)},
        {"tokens_per_s", t.tokens_per_s > 0 ? ordered_json(t.tokens_per_s)
                                            : ordered_json(nullptr)},
        {"throughput", t.throughput_source}});
  }
  ordered_json budgets = ordered_json::array();
  for (const BudgetBracket& b : plan.brackets) {
    budgets.push_back(ordered_json{{"flops_budget", b.flops_budget},
                                   {"prior_n_opt", b.prior_n_opt},
                                   {"n_min", b.n_min},
                                   {"n_max", b.n_max},
                                   {"shapes", b.shapes},
                                   {"position", b.position}});
  }
  ordered_json j{{"name", plan.name},
                 {"config", plan.config_path},
                 {"dataset", plan.dataset},
                 {"train_tokens", plan.train_tokens.has_value()
                                      ? ordered_json(*plan.train_tokens)
                                      : ordered_json(nullptr)},
                 {"train_tokens_source", plan.train_tokens_source},
                 {"trials", trials},
                 {"total_flops", plan.total_flops},
                 {"independent_flops", plan.independent_flops},
                 {"est_seconds", maybe(plan.est_seconds)},
                 {"trial_seconds", maybe(plan.trial_seconds)},
                 {"overhead_seconds", maybe(plan.overhead_s)},
                 {"slots", plan.slots},
                 {"device", plan.device},
                 {"precision", plan.precision},
                 {"threads", plan.threads},
                 {"gpus_per_trial", plan.gpus_per_trial},
                 {"host", plan.host},
                 {"throughput_cache", plan.cache_path}};
  if (plan.device == "cuda") {
    j["gpu_hours"] = plan.trial_seconds.has_value()
                         ? ordered_json(*plan.trial_seconds *
                                        std::max(1, plan.gpus_per_trial) / 3600)
                         : ordered_json(nullptr);
  } else {
    j["cpu_hours"] =
        plan.trial_seconds.has_value()
            ? ordered_json(*plan.trial_seconds * plan.threads / 3600)
            : ordered_json(nullptr);
  }
  j["budgets"] = budgets;
  j["prior_tokens_per_param"] = kPriorTokensPerParam;
  j["adaptive"] =
      plan.adaptive
          ? ordered_json{{"later_trials", plan.later_trials},
                         {"later_flops", plan.later_flops},
                         {"later_est_seconds", maybe(plan.later_seconds)}}
          : ordered_json(nullptr);
  j["warnings"] = plan.warnings;
  j["notes"] = plan.notes;
  j["flops_convention"] = FlopConventionText();
  return j.dump();
}

std::string PlanSummaryText(const Plan& plan, int digits) {
  std::string out;
  std::set<double> budgets;
  for (const PlannedTrial& t : plan.trials) {
    if (t.spec.role() != v1::TRIAL_ROLE_TRUNK) {
      budgets.insert(t.spec.flops_budget());
    }
  }
  absl::StrAppend(
      &out, "plan: ", plan.trials.size() + plan.later_trials, " trials over ",
      budgets.size(),
      plan.adaptive ? " planned budget(s) (adaptive)" : " budget(s)", ", ",
      Sig(plan.total_flops, digits), " FLOPs");
  if (plan.branched && plan.independent_flops > 0) {
    absl::StrAppend(
        &out, " trained (trunks once, branches their cool-down; ",
        Sig(plan.independent_flops, digits), " as independent runs: ",
        Sig(100 * plan.total_flops / plan.independent_flops, 3), "%)");
  }
  if (plan.est_seconds.has_value()) {
    const bool cuda = plan.device == "cuda";
    const double hours =
        *plan.trial_seconds *
        (cuda ? std::max(1, plan.gpus_per_trial) : plan.threads) / 3600;
    absl::StrAppend(&out, ", about ", Seconds(*plan.est_seconds), " with ",
                    plan.slots, plan.slots == 1 ? " trial" : " trials",
                    " at once (", Sig(hours, digits),
                    cuda ? " GPU-hours" : " CPU-hours", ")\n");
    absl::StrAppend(&out, "  time from ", plan.host, "'s throughput on ",
                    plan.device, " (", plan.cache_path, ")");
    if (plan.overhead_s.has_value()) {
      absl::StrAppend(&out, ", ", Sig(*plan.overhead_s, digits),
                      " s per trial to start");
    }
    absl::StrAppend(&out, "\n");
  } else {
    absl::StrAppend(&out, ", no time estimate\n");
  }
  for (const std::string& w : plan.warnings) {
    absl::StrAppend(&out, "warning: ", w, "\n");
  }
  for (const std::string& n : plan.notes) {
    absl::StrAppend(&out, "note: ", n, "\n");
  }
  return out;
}

std::string PlanText(const Plan& plan, int digits) {
  std::vector<std::vector<std::string>> rows = {{"BUDGET", "SHAPE", "N", "D",
                                                 "D/N", "EPOCHS", "STEPS",
                                                 "TOKENS/S", "EST"}};
  for (const PlannedTrial& t : plan.trials) {
    const v1::TrialSpec& s = t.spec;
    const bool trunk = s.role() == v1::TRIAL_ROLE_TRUNK;
    const bool branch = s.role() == v1::TRIAL_ROLE_BRANCH;
    rows.push_back(
        {trunk ? "trunk" : Sig(s.flops_budget(), digits), ShapeLabel(s),
         Count(static_cast<double>(s.n_total()), digits),
         Count(static_cast<double>(s.tokens()), digits),
         Sig(t.tokens_per_param, digits),
         t.epochs.has_value() ? Sig(*t.epochs, digits) : "unknown",
         branch ? absl::StrCat(s.start_step(), "-", s.steps())
                : absl::StrCat(s.steps()),
         t.tokens_per_s > 0
             ? absl::StrCat(Count(t.tokens_per_s, digits),
                            t.throughput_source == "nearest" ? "~" : "")
             : "-",
         t.est_seconds.has_value() ? Seconds(*t.est_seconds) : "-"});
  }
  std::string out = absl::StrCat(
      "sweep ", plan.name, " (", plan.config_path, "), dataset ", plan.dataset,
      plan.train_tokens.has_value()
          ? absl::StrCat(" (", Count(static_cast<double>(*plan.train_tokens)),
                         " training tokens)")
          : std::string(" (training tokens unknown)"),
      "\n");
  absl::StrAppend(&out, RenderTable(rows));
  absl::StrAppend(&out,
                  "TOKENS/S with ~: scaled by FLOPs/token from the "
                  "nearest measured shape\n");
  absl::StrAppend(&out, PlanSummaryText(plan, digits));
  return out;
}

absl::Status PlanSweep(const CommandContext& ctx, const PlanOptions& options,
                       ThroughputCache& cache, ThroughputMeasurer* measurer) {
  ASSIGN_OR_RETURN(v1::SweepConfig config,
                   LoadSweepConfig(options.config_path));
  absl::StatusOr<Plan> plan =
      MakePlan(config, options, cache, measurer, *ctx.err);
  if (!plan.ok()) {
    return absl::Status(
        plan.status().code(),
        absl::StrCat(options.config_path, ": ", plan.status().message()));
  }
  *ctx.out << (ctx.format == Format::kJson ? PlanJson(*plan) + "\n"
                                           : PlanText(*plan, ctx.digits));
  ctx.out->flush();
  return absl::OkStatus();
}

absl::Status ShowPlanBeforeSubmit(const CommandContext& ctx,
                                  const v1::SweepConfig& config,
                                  const PlanOptions& options,
                                  ThroughputCache& cache, bool yes,
                                  bool interactive, std::istream& in) {
  PlanOptions quiet = options;
  quiet.measure = false;
  quiet.remeasure = false;
  std::ostringstream progress;
  absl::StatusOr<Plan> plan = MakePlan(config, quiet, cache, nullptr, progress);
  if (plan.ok()) {
    *ctx.err << PlanSummaryText(*plan, ctx.digits);
  } else {
    *ctx.err << "note: no plan: " << plan.status().message() << "\n";
  }
  if (yes || !interactive) {
    ctx.err->flush();
    return absl::OkStatus();
  }
  *ctx.err << "submit? [y/N] ";
  ctx.err->flush();
  std::string answer;
  std::getline(in, answer);
  while (!answer.empty() &&
         std::isspace(static_cast<unsigned char>(answer.back()))) {
    answer.pop_back();
  }
  if (answer == "y" || answer == "Y" || answer == "yes" || answer == "YES" ||
      answer == "Yes") {
    return absl::OkStatus();
  }
  return absl::CancelledError(
      "not submitted: the prompt was answered no (--yes submits without "
      "asking)");
}

}  // namespace isoflop::cli
