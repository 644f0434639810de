#include "cli/output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/flops.h"
#include "common/text.h"

namespace isoflop::cli {
namespace {

std::string Short(double v) {
  if (std::isnan(v)) return "-";
  return absl::StrFormat("%.4g", v);
}

std::string StateName(v1::TrialState state) {
  return v1::TrialState_Name(state);
}

// RUNNING, SUCCEEDED, ...; PAUSED for a running sweep that is paused.
std::string SweepStateName(const v1::Sweep& sweep) {
  if (sweep.paused() && sweep.state() == v1::SWEEP_RUNNING) return "PAUSED";
  std::string name = v1::SweepState_Name(sweep.state());
  return name.rfind("SWEEP_", 0) == 0 ? name.substr(6) : name;
}

// "1.2s ago", "3m4.5s ago", "just now" (under 0.1 s).
std::string AgeText(int64_t age_ms) {
  const absl::Duration age =
      absl::Trunc(absl::Milliseconds(age_ms), absl::Milliseconds(100));
  if (age <= absl::ZeroDuration()) return "just now";
  return absl::StrCat(absl::FormatDuration(age), " ago");
}

}  // namespace

std::string TrialCountsText(const v1::Sweep& sweep) {
  uint32_t total = 0;
  for (const auto& [state, n] : sweep.trial_counts()) total += n;
  auto get = [&sweep](const char* name) {
    auto it = sweep.trial_counts().find(name);
    return it == sweep.trial_counts().end() ? 0u : it->second;
  };
  return absl::StrCat(get("SUCCEEDED"), "/", total, " succeeded, ",
                      get("RUNNING") + get("LEASED"), " running, ",
                      get("PENDING"), " pending, ", get("FAILED"), " failed");
}

std::string SchedulingText(const v1::Scheduling& scheduling) {
  return absl::StrCat("priority ", scheduling.priority(),
                      ", max_concurrent_trials ",
                      scheduling.max_concurrent_trials() == 0
                          ? "unlimited"
                          : absl::StrCat(scheduling.max_concurrent_trials()));
}

std::string FullPrecision(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

std::string ToJsonObject(
    const std::vector<std::pair<std::string, const google::protobuf::Message*>>&
        fields) {
  nlohmann::json object = nlohmann::json::object();
  for (const auto& [key, message] : fields)
    object[key] = nlohmann::json::parse(ToJson(*message));
  return object.dump();
}

std::string RenderTable(const std::vector<std::vector<std::string>>& input) {
  // Cells hold text from the coordinator (names, errors): a control byte
  // would reach the terminal raw (an escape sequence), so it is shown \xNN.
  std::vector<std::vector<std::string>> rows = input;
  for (auto& row : rows) {
    for (std::string& cell : row) cell = EscapeUnprintable(cell);
  }
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string SweepsTable(const v1::ListSweepsResponse& sweeps) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "NAME", "STATE", "TRIALS", "CREATED", "FIT"}};
  for (const v1::Sweep& s : sweeps.sweeps()) {
    std::string fit = s.has_fit()
                          ? absl::StrCat("alpha=", Short(s.fit().alpha()),
                                         " beta=", Short(s.fit().beta()))
                          : "-";
    rows.push_back({s.id(), s.config().name(), SweepStateName(s),
                    TrialCountsText(s),
                    absl::FormatTime("%Y-%m-%d %H:%M:%S",
                                     absl::FromUnixMillis(s.created_unix_ms()),
                                     absl::LocalTimeZone()),
                    fit});
  }
  return RenderTable(rows);
}

std::string WorkersTable(const v1::ListWorkersResponse& workers) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "HOST", "GPUS", "CPU_SLOTS", "STATE", "HEARTBEAT", "TRIALS"}};
  for (const v1::Worker& w : workers.workers()) {
    std::string state =
        w.state() == v1::WORKER_LOST
            ? (w.draining() ? "lost, draining" : "lost")
            : (w.state() == v1::WORKER_DRAINING ? "draining" : "live");
    rows.push_back(
        {w.worker_id(),
         w.resources().hostname().empty() ? "-" : w.resources().hostname(),
         absl::StrCat(w.resources().gpus()),
         absl::StrCat(w.resources().cpu_slots()), state,
         AgeText(w.heartbeat_age_ms()),
         w.running_trial_ids().empty()
             ? "-"
             : absl::StrJoin(w.running_trial_ids(), ",")});
  }
  return RenderTable(rows);
}

std::string SweepStatusText(const v1::Sweep& sweep) {
  std::string out = absl::StrCat(
      "sweep ", EscapeUnprintable(sweep.id()), " (",
      EscapeUnprintable(sweep.config().name()), "): ", SweepStateName(sweep),
      "; ", TrialCountsText(sweep), "\n",
      "scheduling: ", SchedulingText(sweep.config().scheduling()), "\n");
  std::vector<std::vector<std::string>> rows = {
      {"TRIAL", "SHAPE", "N", "D", "BUDGET", "STATE", "ATTEMPT", "STEP",
       "TRAIN_LOSS", "VAL_LOSS", "ERROR"}};
  for (const v1::Trial& t : sweep.trials()) {
    const v1::TrialSpec& s = t.spec();
    rows.push_back(
        {s.trial_id(),
         absl::StrCat("d", s.shape().d_model(), "/L", s.shape().n_layers()),
         Short(static_cast<double>(s.n_total())),
         Short(static_cast<double>(s.tokens())), Short(s.flops_budget()),
         StateName(t.state()), absl::StrCat(t.attempt()),
         absl::StrCat(t.step(), "/", s.steps()), Short(t.train_loss()),
         Short(t.val_loss()), t.error().empty() ? "-" : t.error()});
  }
  absl::StrAppend(&out, RenderTable(rows));
  if (sweep.has_fit()) absl::StrAppend(&out, FitText(sweep.fit()));
  return out;
}

std::string TrialProgressLine(const v1::Trial& trial) {
  const v1::TrialSpec& s = trial.spec();
  std::string loss =
      !std::isnan(trial.val_loss()) && trial.state() == v1::SUCCEEDED
          ? absl::StrCat("val_loss ", Short(trial.val_loss()))
          : absl::StrCat("loss ", Short(trial.train_loss()));
  std::string line = absl::StrFormat(
      "%s d%u/L%u N=%s D=%s C=%s %-9s step %u/%u %s", s.trial_id(),
      s.shape().d_model(), s.shape().n_layers(),
      Short(static_cast<double>(s.n_total())),
      Short(static_cast<double>(s.tokens())), Short(s.flops_budget()),
      StateName(trial.state()), trial.step(), s.steps(), loss);
  if (!trial.error().empty()) {
    absl::StrAppend(&line, " (", EscapeUnprintable(trial.error()), ")");
  }
  return line;
}

// "  (95% a .. b)" when `ci` has `key`, else "".
std::string Ci95Text(const google::protobuf::Map<std::string, v1::Interval>& ci,
                     absl::string_view key) {
  const auto it = ci.find(std::string(key));
  if (it == ci.end()) return "";
  return absl::StrCat("  (95% ", Short(it->second.low()), " .. ",
                      Short(it->second.high()), ")");
}

namespace {

// The fit's C convention (analysis/flops.h; stored since issue 20, 6ND
// before) and its sensitivity line, as analysis::SensitivityText words it.
std::string FlopsConventionText(const v1::ScalingLawFit& fit) {
  std::string out = absl::StrCat("  C: ",
                                 fit.flops().description().empty()
                                     ? "C = 6 N D (FLOPs/token = 6 N)"
                                     : fit.flops().description(),
                                 "\n");
  std::vector<std::string> rows;
  for (const v1::ExponentSensitivity& r : fit.sensitivity()) {
    const std::string label = absl::StrCat(
        "N ", r.n_convention() == "n_total" ? "total" : "non-embedding", ", C ",
        r.flops_convention() == "6ND" ? "= 6ND" : "exact");
    rows.push_back(std::isfinite(r.a())
                       ? absl::StrFormat("%.3g (%s)", r.a(), label)
                       : absl::StrCat(label, ": ", r.reason()));
  }
  if (!rows.empty()) {
    absl::StrAppend(&out, "  Sensitivity of the N_opt exponent a: ",
                    absl::StrJoin(rows, "; "), "\n");
  }
  return out;
}

}  // namespace

std::string FitText(const v1::ScalingLawFit& fit) {
  std::string out =
      absl::StrCat("fitted law (Approach 3, N = ",
                   fit.n_convention().empty() ? "n_total" : fit.n_convention(),
                   "): L(N, D) = E + A / N^alpha + B / D^beta\n");
  const std::pair<const char*, double> params[] = {{"E    ", fit.e()},
                                                   {"A    ", fit.a()},
                                                   {"B    ", fit.b()},
                                                   {"alpha", fit.alpha()},
                                                   {"beta ", fit.beta()}};
  for (const auto& [name, value] : params) {
    absl::StrAppend(
        &out, "  ", name, " = ", FullPrecision(value),
        Ci95Text(fit.ci95(), absl::StripTrailingAsciiWhitespace(name)), "\n");
  }
  absl::StrAppend(&out, "  ", fit.n_points(), " points, ", fit.n_starts(),
                  " starts (", fit.n_starts_at_best(),
                  " at the best), summed Huber objective ",
                  FullPrecision(fit.objective()), "\n");
  // The analysis library joins its message items with "; " (one per line
  // here); it already names grid-edge and conditioning warnings.
  for (absl::string_view item :
       absl::StrSplit(fit.message(), "; ", absl::SkipEmpty())) {
    absl::StrAppend(&out, "  ", item, "\n");
  }
  if (fit.has_approach2()) {
    const v1::Approach2Law& law = fit.approach2();
    absl::StrAppend(
        &out, "Approach 2 (IsoFLOP minima): N_opt = ", Short(law.n_opt_coef()),
        " * C^", absl::StrFormat("%.4f", law.n_opt_exponent()),
        Ci95Text(fit.ci95(), "n_opt_exponent"),
        ", D_opt = ", Short(law.d_opt_coef()), " * C^",
        absl::StrFormat("%.4f", law.d_opt_exponent()),
        Ci95Text(fit.ci95(), "d_opt_exponent"), "\n");
  }
  if (fit.bootstrap_resamples() > 0) {
    absl::StrAppend(&out, "  [95% intervals: ", fit.bootstrap_resamples(),
                    " bootstrap resamples, seed ", fit.bootstrap_seed(), ", ",
                    fit.bootstrap_failed(), " failed]\n");
  }
  absl::StrAppend(&out, FlopsConventionText(fit));
  return out;
}

std::string OptimalText(const v1::OptimalResponse& optimal) {
  const auto& ci = optimal.ci95();
  return absl::StrCat(
      "compute-optimal for C = ", Short(optimal.flops()), " FLOPs",
      Ci95Text(ci, "flops"), ":\n",
      "  N_opt          = ", FullPrecision(optimal.n_opt()), " parameters (",
      Short(optimal.n_opt()), ")", Ci95Text(ci, "params"), "\n",
      "  D_opt          = ", FullPrecision(optimal.d_opt()), " tokens (",
      Short(optimal.d_opt()), ")", Ci95Text(ci, "tokens"), "\n",
      "  predicted loss = ", FullPrecision(optimal.predicted_loss()),
      Ci95Text(ci, "loss"), "\n", "  C: ",
      optimal.flops_convention_description().empty()
          ? "C = 6 N D (FLOPs/token = 6 N)"
          : optimal.flops_convention_description(),
      "\n", "  trials' FLOPs/token: ", FlopConventionText(), "\n");
}

}  // namespace isoflop::cli
