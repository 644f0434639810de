#include "cli/output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/flops.h"
#include "common/readable.h"
#include "common/text.h"

namespace isoflop::cli {
namespace {

std::string Short(double v, int digits = 3) {
  if (std::isnan(v)) return "-";
  return Sig(v, digits);
}

// A whole count (N, D) with K/M/B/T.
std::string CountText(double v, int digits = 3) {
  if (std::isnan(v)) return "-";
  return Count(v, digits);
}

bool HasLaw(const v1::ScalingLawFit& f) {
  return f.alpha() > 0 && f.beta() > 0 && f.a() > 0 && f.b() > 0 &&
         std::isfinite(f.alpha()) && std::isfinite(f.beta()) &&
         std::isfinite(f.a()) && std::isfinite(f.b());
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
  // Every state is counted, so the parts add up to the total.
  std::string text =
      absl::StrCat(get("SUCCEEDED"), "/", total, " succeeded, ",
                   get("RUNNING") + get("LEASED"), " running, ", get("PENDING"),
                   " pending, ", get("FAILED"), " failed");
  if (get("CANCELLED") > 0)
    absl::StrAppend(&text, ", ", get("CANCELLED"), " cancelled");
  return text;
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

namespace {

// Protobuf's JSON mapping prints 64-bit integers as strings; programs read
// them as numbers (issue 20), so each such field of `type` in `json` (and
// in its messages, lists and maps) becomes a number again.
void Int64sAsNumbers(const google::protobuf::Descriptor* type,
                     nlohmann::json* json);

void Int64AsNumber(const google::protobuf::FieldDescriptor* field,
                   nlohmann::json* value) {
  using FD = google::protobuf::FieldDescriptor;
  if (field->cpp_type() == FD::CPPTYPE_MESSAGE) {
    Int64sAsNumbers(field->message_type(), value);
    return;
  }
  if (!value->is_string()) return;
  const std::string text = value->get<std::string>();
  if (field->cpp_type() == FD::CPPTYPE_INT64) {
    int64_t v = 0;
    if (absl::SimpleAtoi(text, &v)) *value = v;
  } else if (field->cpp_type() == FD::CPPTYPE_UINT64) {
    uint64_t v = 0;
    if (absl::SimpleAtoi(text, &v)) *value = v;
  }
}

void Int64sAsNumbers(const google::protobuf::Descriptor* type,
                     nlohmann::json* json) {
  if (!json->is_object()) return;
  for (int i = 0; i < type->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = type->field(i);
    auto it = json->find(field->name());
    if (it == json->end()) continue;
    if (field->is_map()) {
      const auto* value_field = field->message_type()->map_value();
      for (auto& [key, value] : it->items()) {
        (void)key;
        Int64AsNumber(value_field, &value);
      }
    } else if (field->is_repeated()) {
      for (nlohmann::json& value : *it) Int64AsNumber(field, &value);
    } else {
      Int64AsNumber(field, &*it);
    }
  }
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  nlohmann::json json =
      nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return out;
  Int64sAsNumbers(message.GetDescriptor(), &json);
  return json.dump();
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
    // A fit that found no law says so: never "alpha=0".
    std::string fit = "-";
    if (s.has_fit()) {
      fit = HasLaw(s.fit()) ? absl::StrCat("alpha=", Short(s.fit().alpha()),
                                           " beta=", Short(s.fit().beta()))
                            : "not fitted";
      if (!s.fit().verdict().level().empty()) {
        absl::StrAppend(&fit, " (", s.fit().verdict().level(), ")");
      }
    }
    rows.push_back({s.id(), s.config().name(), SweepStateName(s),
                    TrialCountsText(s),
                    absl::FormatTime("%Y-%m-%d %H:%M:%S",
                                     absl::FromUnixMillis(s.created_unix_ms()),
                                     absl::LocalTimeZone()),
                    fit});
  }
  return RenderTable(rows);
}

std::string DatasetsText(const v1::Worker& w) {
  if (!w.reports_datasets()) return "not reported";
  if (w.datasets().empty()) return "none";
  std::vector<std::string> parts;
  for (const v1::WorkerDataset& d : w.datasets()) {
    parts.push_back(absl::StrCat(
        d.name(), "(V=", d.vocab_size(), ", ",
        CountText(static_cast<double>(d.train_tokens()), 3), " tokens)"));
  }
  return absl::StrJoin(parts, " ");
}

std::string WorkersTable(const v1::ListWorkersResponse& workers) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "HOST", "GPUS", "CPU_SLOTS", "STATE", "HEARTBEAT", "TRIALS",
       "DATASETS"}};
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
             : absl::StrJoin(w.running_trial_ids(), ","),
         DatasetsText(w)});
  }
  return RenderTable(rows);
}

std::string SweepStatusText(const v1::Sweep& sweep, int digits) {
  std::string out = absl::StrCat(
      "sweep ", EscapeUnprintable(sweep.id()), " (",
      EscapeUnprintable(sweep.config().name()), "): ", SweepStateName(sweep),
      "; ", TrialCountsText(sweep), "\n",
      "scheduling: ", SchedulingText(sweep.config().scheduling()), "\n");
  if (!sweep.pending_reason().empty()) {
    absl::StrAppend(
        &out, "pending: ", EscapeUnprintable(sweep.pending_reason()), "\n");
  }
  if (sweep.independent_flops() > 0) {
    // A branched sweep trains each trunk once (docs/architecture.md §2.2).
    absl::StrAppend(
        &out, "compute: ", Short(sweep.total_flops(), digits),
        " FLOPs; as independent runs: ",
        Short(sweep.independent_flops(), digits), " FLOPs (",
        Short(100 * sweep.total_flops() / sweep.independent_flops(), digits),
        "%)\n");
  }
  std::vector<std::vector<std::string>> rows = {
      {"TRIAL", "SHAPE", "N", "D", "EPOCHS", "BUDGET", "STATE", "ATTEMPT",
       "STEP", "TRAIN_LOSS", "VAL_LOSS", "ERROR"}};
  // Why an adaptive grid added each trial (coordinator/sweep/adaptive.h):
  // a column only when some trial says.
  const bool reasons = std::any_of(
      sweep.trials().begin(), sweep.trials().end(),
      [](const v1::Trial& t) { return !t.spec().reason().empty(); });
  if (reasons) rows[0].push_back("REASON");
  for (const v1::Trial& t : sweep.trials()) {
    const v1::TrialSpec& s = t.spec();
    rows.push_back(
        {s.trial_id(),
         absl::StrCat("d", s.shape().d_model(), "/L", s.shape().n_layers(),
                      s.role() == v1::TRIAL_ROLE_TRUNK ? " trunk"
                      : s.role() == v1::TRIAL_ROLE_BRANCH
                          ? absl::StrCat(" branch@", s.start_step())
                          : ""),
         CountText(static_cast<double>(s.n_total()), digits),
         CountText(static_cast<double>(s.tokens()), digits),
         // Passes over the dataset's unique tokens (TrialSpec.epochs); "-"
         // until a worker reported the dataset.
         s.unique_tokens() > 0 ? Short(s.epochs(), digits) : "-",
         Short(s.flops_budget(), digits), StateName(t.state()),
         absl::StrCat(t.attempt()), absl::StrCat(t.step(), "/", s.steps()),
         Short(t.train_loss(), digits), Short(t.val_loss(), digits),
         t.error().empty() ? "-" : t.error()});
    if (reasons) {
      rows.back().push_back(s.reason().empty() ? "-"
                                               : EscapeUnprintable(s.reason()));
    }
  }
  absl::StrAppend(&out, RenderTable(rows));
  for (const std::string& w : sweep.design_warnings()) {
    absl::StrAppend(&out, "warning: ", EscapeUnprintable(w), "\n");
  }
  if (sweep.has_fit()) absl::StrAppend(&out, FitText(sweep.fit(), digits));
  return out;
}

namespace {
// "0s", "42s", "1h2m3s": whole seconds.
std::string WholeSeconds(absl::Duration d) {
  d = absl::Trunc(d, absl::Seconds(1));
  return d <= absl::ZeroDuration() ? "0s" : absl::FormatDuration(d);
}
}  // namespace

std::string OverallProgressText(const v1::Sweep& sweep,
                                absl::Duration elapsed) {
  int succeeded = 0, failed = 0, cancelled = 0, running = 0, pending = 0;
  double work = 0, done = 0;
  for (const v1::Trial& t : sweep.trials()) {
    const v1::TrialSpec& s = t.spec();
    const double weight = s.flops() > 0          ? s.flops()
                          : s.flops_budget() > 0 ? s.flops_budget()
                                                 : 1.0;
    work += weight;
    switch (t.state()) {
      case v1::SUCCEEDED:
        ++succeeded;
        done += weight;
        break;
      case v1::FAILED:
        ++failed;
        done += weight;
        break;
      case v1::CANCELLED:
        ++cancelled;
        done += weight;
        break;
      case v1::LEASED:
      case v1::RUNNING:
        ++running;
        if (s.steps() > 0) {
          done += weight * std::min(1.0, static_cast<double>(t.step()) /
                                             static_cast<double>(s.steps()));
        }
        break;
      default:
        ++pending;
    }
  }
  const int ended = succeeded + failed + cancelled;
  std::string text =
      absl::StrCat("[", ended, "/", sweep.trials_size(), "] ", succeeded,
                   " succeeded, ", failed, " failed, ");
  if (cancelled > 0) absl::StrAppend(&text, cancelled, " cancelled, ");
  absl::StrAppend(&text, running, " running, ", pending, " pending; elapsed ",
                  WholeSeconds(elapsed), ", ETA ");
  if (done > 0 && work > done) {
    const absl::Duration eta = elapsed * ((work - done) / done);
    absl::StrAppend(&text, WholeSeconds(eta));
  } else if (done > 0 && work <= done) {
    absl::StrAppend(&text, "0s");
  } else {
    absl::StrAppend(&text, "-");
  }
  return text;
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
      CountText(static_cast<double>(s.n_total())),
      CountText(static_cast<double>(s.tokens())), Short(s.flops_budget()),
      StateName(trial.state()), trial.step(), s.steps(), loss);
  if (!trial.error().empty()) {
    absl::StrAppend(&line, " (", EscapeUnprintable(trial.error()), ")");
  }
  return line;
}

namespace {

// The interval of `key` in `ci` for a value `v`: a scale parameter's (A, B,
// a coefficient) as a ×/÷ factor, another's as low .. high; "" without one.
std::string Ci95Text(const google::protobuf::Map<std::string, v1::Interval>& ci,
                     absl::string_view key, double v, bool scale, int digits) {
  const auto it = ci.find(std::string(key));
  if (it == ci.end()) return "";
  return scale ? FactorInterval(v, it->second.low(), it->second.high(), digits)
               : LinearInterval(it->second.low(), it->second.high(), digits);
}

std::string VerdictLines(const v1::FitVerdict& v, const std::string& indent) {
  if (v.level().empty()) {
    return absl::StrCat(indent,
                        "verdict: not judged (fit stored before verdicts; "
                        "refit to judge it)\n");
  }
  std::string out = absl::StrCat(indent, "verdict: ", v.level(), "\n");
  for (const std::string& r : v.reasons()) {
    absl::StrAppend(&out, indent, "  - ", EscapeUnprintable(r), "\n");
  }
  return out;
}

// A stored convention's description, or 6ND's for a fit or answer stored
// before conventions were (analysis/flops.h FlopsModel::Describe words both).
std::string ConventionOr6ND(const std::string& description) {
  return description.empty() ? "C = 6 N D (FLOPs/token = 6 N)" : description;
}

// The fit's C convention (analysis/flops.h; stored since issue 20, 6ND
// before) and its sensitivity line, as analysis::SensitivityText words it.
std::string FlopsConventionText(const v1::ScalingLawFit& fit) {
  std::string out =
      absl::StrCat("  C: ", ConventionOr6ND(fit.flops().description()), "\n");
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

std::string BacktestText(const v1::ScalingLawFit& fit, int digits) {
  if (!fit.has_backtest()) {
    return fit.backtest_message().empty()
               ? ""
               : absl::StrCat("backtest: none: ",
                              EscapeUnprintable(fit.backtest_message()), "\n");
  }
  const v1::FitBacktest& b = fit.backtest();
  return absl::StrCat(
      "backtest: the law fitted on budgets <= ",
      Sig(b.train_max_flops(), digits), " FLOPs (", b.train_points(),
      " points) predicts budget ", Sig(b.holdout_flops(), digits),
      ": best point loss ", Sig(b.predicted_loss(), digits), " vs observed ",
      Sig(b.observed_loss(), digits), " (",
      Sig(100 * b.relative_error(), digits), "%); mean |error| ",
      Sig(100 * b.mean_abs_relative_error(), digits), "% over its ", b.points(),
      " points\n");
}

std::string FitText(const v1::ScalingLawFit& fit, int digits) {
  std::string out =
      absl::StrCat("fitted law (Approach 3, N = ",
                   fit.n_convention().empty() ? "n_total" : fit.n_convention(),
                   "): L(N, D) = E + A / N^alpha + B / D^beta\n");
  if (fit.has_verdict() || !HasLaw(fit)) {
    absl::StrAppend(&out, VerdictLines(fit.verdict(), ""));
  }
  struct Row {
    const char* name;
    double v;
    bool scale;
  };
  const Row params[] = {{"E    ", fit.e(), false},
                        {"A    ", fit.a(), true},
                        {"B    ", fit.b(), true},
                        {"alpha", fit.alpha(), false},
                        {"beta ", fit.beta(), false}};
  for (const Row& p : params) {
    absl::StrAppend(
        &out, "  ", p.name, " = ", Sig(p.v, digits),
        Ci95Text(fit.ci95(), absl::StripTrailingAsciiWhitespace(p.name), p.v,
                 p.scale, digits),
        "\n");
  }
  absl::StrAppend(&out, "  ", fit.n_points(), " points, ", fit.n_starts(),
                  " starts (", fit.n_starts_at_best(),
                  " at the best), summed Huber objective ",
                  Sig(fit.objective(), digits), "\n");
  // The analysis library joins its message items with "; " (one per line
  // here); it already names grid-edge and conditioning warnings.
  for (absl::string_view item :
       absl::StrSplit(fit.message(), "; ", absl::SkipEmpty())) {
    absl::StrAppend(&out, "  ", item, "\n");
  }
  if (fit.has_approach2()) {
    const v1::Approach2Law& law = fit.approach2();
    absl::StrAppend(&out, "Approach 2 (IsoFLOP minima): N_opt = ",
                    Sig(law.n_opt_coef(), digits), " * C^",
                    Sig(law.n_opt_exponent(), digits),
                    Ci95Text(fit.ci95(), "n_opt_exponent", law.n_opt_exponent(),
                             false, digits),
                    ", D_opt = ", Sig(law.d_opt_coef(), digits), " * C^",
                    Sig(law.d_opt_exponent(), digits),
                    Ci95Text(fit.ci95(), "d_opt_exponent", law.d_opt_exponent(),
                             false, digits),
                    "\n");
    if (fit.has_approach2_verdict()) {
      absl::StrAppend(&out, VerdictLines(fit.approach2_verdict(), "  "));
    }
  }
  absl::StrAppend(&out, BacktestText(fit, digits));
  if (fit.bootstrap_resamples() > 0) {
    absl::StrAppend(&out, "  [95% intervals: ", fit.bootstrap_resamples(),
                    " bootstrap resamples, seed ", fit.bootstrap_seed(), ", ",
                    fit.bootstrap_failed(), " failed]\n");
  }
  absl::StrAppend(&out, FlopsConventionText(fit));
  return out;
}

std::string OptimalText(const v1::OptimalResponse& optimal, int digits) {
  const auto& ci = optimal.ci95();
  return absl::StrCat(
      "compute-optimal for C = ", Sig(optimal.flops(), digits), " FLOPs",
      Ci95Text(ci, "flops", optimal.flops(), true, digits), ":\n",
      "  N_opt          = ", Count(optimal.n_opt(), digits), " parameters",
      Ci95Text(ci, "params", optimal.n_opt(), true, digits), "\n",
      "  D_opt          = ", Count(optimal.d_opt(), digits), " tokens",
      Ci95Text(ci, "tokens", optimal.d_opt(), true, digits), "\n",
      "  predicted loss = ", Sig(optimal.predicted_loss(), digits),
      Ci95Text(ci, "loss", optimal.predicted_loss(), false, digits), "\n",
      "  C: ", ConventionOr6ND(optimal.flops_convention_description()), "\n",
      "  trials' FLOPs/token: ", FlopConventionText(), "\n");
}

}  // namespace isoflop::cli
