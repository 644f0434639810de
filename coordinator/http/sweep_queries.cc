// DashboardApi: sweeps, trials, loss curves and workers (law_queries.cc has
// the scaling-law page): requests checked, the store's rows as JSON.
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/http/dashboard_api.h"
#include "coordinator/sweep/expand.h"

namespace isoflop::coordinator::http {

using nlohmann::json;

namespace {

// Ended curves kept (up to `points` pairs each).
constexpr size_t kMaxCachedCurves = 4000;

bool IsEnded(const std::string& state) {
  return state == "SUCCEEDED" || state == "FAILED" || state == "CANCELLED";
}

json SweepJson(const SweepSummary& s) {
  json out = {{"id", s.id},
              {"name", s.name},
              {"state", s.state},
              {"created_unix_ms", s.created_unix_ms},
              {"has_fit", s.has_fit},
              {"paused", s.paused},
              {"n_trials", 0},
              {"ended", 0},
              {"counts", json::object()},
              {"best_val_loss", Num(s.best_val_loss)}};
  int64_t n = 0, ended = 0;
  for (const auto& [state, count] : s.counts) {
    out["counts"][state] = count;
    n += count;
    if (IsEnded(state)) ended += count;
  }
  out["n_trials"] = n;
  out["ended"] = ended;
  return out;
}

// Log-spaced buckets over ln(1 + step); each bucket -> mean step, mean value.
json Downsample(const std::vector<std::pair<int64_t, double>>& raw,
                int max_points) {
  json out = json::array();
  const size_t n = raw.size();
  if (n <= static_cast<size_t>(max_points)) {
    for (const auto& [step, v] : raw) out.push_back(json::array({step, v}));
    return out;
  }
  const double lo = std::log1p(static_cast<double>(raw.front().first));
  const double hi = std::log1p(static_cast<double>(raw.back().first));
  const int buckets = max_points - 2;
  out.push_back(json::array({raw.front().first, raw.front().second}));
  size_t i = 1;
  for (int b = 1; b <= buckets && i < n - 1; ++b) {
    const double edge = lo + (hi - lo) * b / buckets;
    // Steps ascend: the bucket's end by bisection, so a live curve of 10^5
    // points costs 10^5 additions per call, not 10^5 logarithms.
    const size_t end = static_cast<size_t>(
        std::partition_point(
            raw.begin() + static_cast<ptrdiff_t>(i), raw.end() - 1,
            [edge](const std::pair<int64_t, double>& p) {
              return std::log1p(static_cast<double>(p.first)) <= edge;
            }) -
        raw.begin());
    double sum_step = 0, sum_v = 0;
    int count = 0;
    for (; i < end; ++i) {
      sum_step += static_cast<double>(raw[i].first);
      sum_v += raw[i].second;
      ++count;
    }
    if (count > 0) {
      out.push_back(
          json::array({std::llround(sum_step / count), sum_v / count}));
    }
  }
  out.push_back(json::array({raw.back().first, raw.back().second}));
  return out;
}

// A curve with what the sweep page needs to plot it against tokens or FLOPs
// and to colour it by budget and size (dashboards/API.md, /curves): the
// trial's N, budget, tokens and FLOPs per optimizer step (0 when the trial
// has no steps).
json CurveJson(const TrialRef& t, json n_raw, json points) {
  const double steps = static_cast<double>(t.steps);
  const double tokens_per_step =
      t.steps > 0 ? static_cast<double>(t.tokens) / steps : 0.0;
  return {{"trial", t.id},
          {"state", t.state},
          {"attempt", t.attempt},
          {"n", t.n_total},
          {"flops_budget", Num(t.flops_budget)},
          {"steps", t.steps},
          {"tokens_per_step", tokens_per_step},
          {"flops_per_step", Num(tokens_per_step * t.flops_per_token)},
          {"n_raw", std::move(n_raw)},
          {"points", std::move(points)}};
}

}  // namespace

absl::StatusOr<json> DashboardApi::ReadSweeps() const {
  ASSIGN_OR_RETURN(const std::vector<SweepSummary> sweeps,
                   reader_->ReadSweeps(""));
  json out = json::array();
  for (const SweepSummary& s : sweeps) out.push_back(SweepJson(s));
  return json{{"sweeps", std::move(out)}};
}

absl::StatusOr<json> DashboardApi::ReadSweep(
    const std::string& sweep_id) const {
  ASSIGN_OR_RETURN(const std::vector<SweepSummary> one,
                   reader_->ReadSweeps(sweep_id));
  if (one.empty()) {
    return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, ": unknown"));
  }
  const SweepSummary& s = one[0];
  json out = SweepJson(s);
  const auto& grid = s.config.grid();
  out["budgets"] = json(std::vector<double>(grid.flops_budgets().begin(),
                                            grid.flops_budgets().end()));
  json shapes = json::array();
  // Shapes given as grid.n_targets or grid.d_models come from the stored
  // (resolved) config's shape rule (docs/config.md).
  absl::StatusOr<std::vector<GridShape>> grid_shapes = GridShapes(s.config);
  if (grid_shapes.ok()) {
    for (const GridShape& g : *grid_shapes) {
      const v1::ModelShape& m = g.shape;
      shapes.push_back({m.d_model(), m.n_layers(), m.n_heads()});
    }
  }
  out["shapes"] = std::move(shapes);
  const auto count = [&s](const char* state) {
    const auto it = s.counts.find(state);
    return it == s.counts.end() ? int64_t{0} : it->second;
  };
  out["running"] = count("LEASED") + count("RUNNING");
  // The resolved config as protobuf JSON (field names as in the config
  // files): the compare page diffs two sweeps' configs with it.
  std::string config;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (google::protobuf::util::MessageToJsonString(s.config, &config, options)
          .ok()) {
    out["config"] = json::parse(config, nullptr, /*allow_exceptions=*/false);
  } else {
    out["config"] = nullptr;
  }
  return out;
}

absl::StatusOr<json> DashboardApi::ReadTrials(const std::string& sweep_id,
                                              const TrialQuery& q) const {
  if (q.limit < 1 || q.limit > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit = ", q.limit, ": must be in [1, 1000]"));
  }
  if (q.offset < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("offset = ", q.offset, ": must be >= 0"));
  }
  ASSIGN_OR_RETURN(const TrialPage page, reader_->ReadTrialPage(sweep_id, q));
  json rows = json::array();
  for (const TrialRow& t : page.rows) {
    const v1::TrialSpec& spec = t.spec;
    rows.push_back(
        {{"id", t.id},
         {"ordinal", t.ordinal},
         {"shape",
          {spec.shape().d_model(), spec.shape().n_layers(),
           spec.shape().n_heads()}},
         {"n", spec.n_total()},
         {"d", spec.tokens()},
         {"flops", spec.flops_budget()},
         // 0 until a worker reported the dataset (TrialSpec)
         {"unique_tokens", spec.unique_tokens()},
         {"epochs", spec.epochs()},
         {"state", t.state},
         {"attempt", t.attempt},
         {"worker", t.worker_id},
         {"step", t.step},
         {"steps", spec.steps()},
         {"train_loss", Num(t.train_loss)},
         {"val_loss", Num(t.val_loss)},
         {"tokens_per_s", Num(t.tokens_per_s)},
         {"updated_unix_ms", t.updated_unix_ms},
         {"error", t.error},
         {"reason", spec.reason()},
         // Trunk and branches (docs/architecture.md §2.2).
         {"role", spec.role() == v1::TRIAL_ROLE_TRUNK    ? "trunk"
                  : spec.role() == v1::TRIAL_ROLE_BRANCH ? "branch"
                                                         : "independent"},
         {"trunk", spec.trunk_trial_id().empty() ? json(nullptr)
                                                 : json(spec.trunk_trial_id())},
         {"start_step", spec.start_step()}});
  }
  return json{{"offset", q.offset},
              {"limit", q.limit},
              {"total", page.total},
              {"trials", std::move(rows)}};
}

absl::StatusOr<json> DashboardApi::ReadCurves(const std::string& sweep_id,
                                              const CurveQuery& q) const {
  if (q.max_points < 2 || q.max_points > 5000) {
    return absl::InvalidArgumentError(
        absl::StrCat("points = ", q.max_points, ": must be in [2, 5000]"));
  }
  if (q.max_trials < 1 || q.max_trials > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_trials = ", q.max_trials, ": must be in [1, 100]"));
  }
  if (q.select != "running" && q.select != "auto") {
    return absl::InvalidArgumentError(absl::StrCat(
        "select = \"", q.select.substr(0, 32), "\": must be running or auto"));
  }
  if (q.since_step.has_value() && *q.since_step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("since_step = ", *q.since_step, ": must be >= 0"));
  }
  std::vector<TrialRef> picks;
  if (!q.trials.empty()) {
    ASSIGN_OR_RETURN(picks, reader_->ReadTrialsById(sweep_id, q.trials));
    if (picks.size() > static_cast<size_t>(q.max_trials))
      picks.resize(static_cast<size_t>(q.max_trials));
  } else {
    ASSIGN_OR_RETURN(picks, reader_->ReadRunningTrials(sweep_id, q.max_trials));
    if (picks.empty() && q.select == "auto") {
      ASSIGN_OR_RETURN(picks,
                       reader_->ReadNewestTrials(sweep_id, q.max_trials));
    }
  }
  json curves = json::array();
  for (const TrialRef& p : picks) {
    // An ended attempt's curve no longer changes: its JSON is kept.
    const auto key =
        std::make_tuple(p.id, int64_t{p.attempt}, q.name, q.max_points);
    const bool keep = IsEnded(p.state) && !q.since_step.has_value();
    if (keep) {
      absl::MutexLock lock(&curves_mu_);
      auto it = ended_curves_.find(key);
      if (it != ended_curves_.end()) {
        curves.push_back(
            CurveJson(p, it->second["n_raw"], it->second["points"]));
        continue;
      }
    }
    ASSIGN_OR_RETURN(const CurvePoints raw,
                     reader_->ReadCurve(p, q.name, q.since_step.value_or(-1)));
    json points = Downsample(raw, q.max_points);
    if (keep) {
      absl::MutexLock lock(&curves_mu_);
      if (ended_curves_.size() >= kMaxCachedCurves) ended_curves_.clear();
      ended_curves_[key] = {{"n_raw", raw.size()}, {"points", points}};
    }
    curves.push_back(CurveJson(p, raw.size(), std::move(points)));
  }
  json out = {{"name", q.name}, {"curves", std::move(curves)}};
  if (q.since_step.has_value()) out["since_step"] = *q.since_step;
  return out;
}

absl::StatusOr<json> DashboardApi::SweepAction(
    const std::string& sweep_id, const std::string& action) const {
  absl::StatusOr<v1::Sweep> sweep;
  if (action == "pause" || action == "resume") {
    sweep = core_->SetSweepPaused(sweep_id, action == "pause");
  } else if (action == "cancel") {
    sweep = core_->CancelSweep(sweep_id);
  } else if (action == "retry") {
    v1::RetrySweepRequest r;
    r.set_sweep_id(sweep_id);
    r.set_failed(true);
    sweep = core_->RetrySweep(r);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("action = \"", action.substr(0, 32),
                     "\": must be pause, resume, cancel or retry"));
  }
  if (!sweep.ok()) return sweep.status();
  return json{{"id", sweep->id()},
              {"state", v1::SweepState_Name(sweep->state())},
              {"paused", sweep->paused()}};
}

absl::StatusOr<json> DashboardApi::ReadWorkers() const {
  ASSIGN_OR_RETURN(const std::vector<WorkerRow> rows, reader_->ReadWorkers());
  ASSIGN_OR_RETURN(const std::vector<TrialRef> running,
                   reader_->ReadRunningTrials("", 0));
  json workers = json::array();
  std::map<std::string, size_t> index;
  for (const WorkerRow& w : rows) {
    index[w.id] = workers.size();
    workers.push_back({{"id", w.id},
                       {"hostname", w.hostname},
                       {"gpus", w.gpus},
                       {"cpu_slots", w.cpu_slots},
                       {"registered_unix_ms", w.registered_unix_ms},
                       {"last_heartbeat_unix_ms", w.last_heartbeat_unix_ms},
                       {"draining", w.draining},
                       {"datasets", nullptr},
                       {"trials", json::array()}});
  }
  for (const TrialRef& t : running) {
    auto it = index.find(t.worker_id);
    if (it == index.end()) continue;
    workers[it->second]["trials"].push_back(
        {{"id", t.id}, {"sweep", t.sweep_id}, {"state", t.state}});
  }
  return json{{"workers", std::move(workers)}};
}

absl::StatusOr<json> DashboardApi::Sweeps() const {
  return answers_.Get(AnswerKey({"sweeps"}), [&] { return ReadSweeps(); });
}

absl::StatusOr<json> DashboardApi::Sweep(const std::string& sweep_id) const {
  ASSIGN_OR_RETURN(json out, answers_.Get(AnswerKey({"sweep", sweep_id}),
                                          [&] { return ReadSweep(sweep_id); }));
  // Why its pending trials wait for a worker (no live worker holds its
  // dataset); "" when none wait for that. From the core's view of the
  // workers, which the store's cache does not see change.
  out["pending_reason"] = core_->SweepPendingReason(sweep_id);
  return out;
}

absl::StatusOr<json> DashboardApi::Trials(const std::string& sweep_id,
                                          const TrialQuery& q) const {
  return answers_.Get(
      AnswerKey({"trials", sweep_id, absl::StrCat(q.offset),
                 absl::StrCat(q.limit), q.sort, q.descending ? "desc" : "asc",
                 q.state, q.search}),
      [&] { return ReadTrials(sweep_id, q); });
}

absl::StatusOr<json> DashboardApi::Curves(const std::string& sweep_id,
                                          const CurveQuery& q) const {
  std::string trials;
  for (const std::string& t : q.trials) trials += AnswerKey({t});
  return answers_.Get(
      AnswerKey({"curves", sweep_id, trials, q.select, q.name,
                 absl::StrCat(q.max_trials), absl::StrCat(q.max_points),
                 q.since_step ? absl::StrCat(*q.since_step) : ""}),
      [&] { return ReadCurves(sweep_id, q); });
}

absl::StatusOr<json> DashboardApi::Workers() const {
  ASSIGN_OR_RETURN(json out, answers_.Get(AnswerKey({"workers"}),
                                          [&] { return ReadWorkers(); }));
  // The datasets each worker reported: held by the core, not stored, so
  // added after the cache (which sees only the store's changes).
  std::map<std::string, json*> index;
  for (json& w : out["workers"]) index[w["id"].get<std::string>()] = &w;
  const v1::ListWorkersResponse reported = core_->ListWorkers();
  for (const v1::Worker& w : reported.workers()) {
    auto it = index.find(w.worker_id());
    if (it == index.end()) continue;
    // The CLI's words (`isoflop worker list`): lost once silent for 3
    // heartbeat intervals (docs/architecture.md §2 "Heartbeats").
    (*it->second)["state"] = w.state() == v1::WORKER_LOST       ? "lost"
                             : w.state() == v1::WORKER_DRAINING ? "draining"
                                                                : "live";
    if (!w.reports_datasets()) continue;
    json datasets = json::array();
    for (const v1::WorkerDataset& d : w.datasets()) {
      datasets.push_back({{"name", d.name()},
                          {"train_tokens", d.train_tokens()},
                          {"val_tokens", d.val_tokens()},
                          {"vocab_size", d.vocab_size()},
                          {"documents", d.documents()},
                          {"bytes", d.bytes()}});
    }
    (*it->second)["datasets"] = std::move(datasets);
  }
  return out;
}

}  // namespace isoflop::coordinator::http
