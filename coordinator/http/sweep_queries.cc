// DashboardApi: sweeps, trials, loss curves and workers (law_queries.cc has
// the scaling-law page).
#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/http/dashboard_api.h"
#include "coordinator/http/sqlite_reader.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator::http {

using nlohmann::json;

absl::StatusOr<Connection> OpenReadOnly(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  Connection conn(db);
  if (rc != SQLITE_OK) {
    return absl::UnavailableError(
        absl::StrCat(path, ": ", db ? sqlite3_errmsg(db) : "cannot open"));
  }
  sqlite3_busy_timeout(db, 2000);
  return conn;
}

namespace {

// Bounds of the ended trials' caches (rows: ~100 bytes each; curves: up
// to `points` pairs each).
constexpr size_t kMaxCachedRows = 200000;
constexpr size_t kMaxCachedCurves = 4000;
// Live curves kept for incremental reads: at most this many, each of at most
// this many points (16 bytes each: <= 3.2 MB a curve).
constexpr size_t kMaxLiveCurves = 400;
constexpr size_t kMaxLivePoints = 200000;

bool IsEnded(const std::string& state) {
  return state == "SUCCEEDED" || state == "FAILED" || state == "CANCELLED";
}

// The sweeps' rows plus per-state counts; `only` restricts to one sweep.
absl::StatusOr<json> SweepSummaries(sqlite3* db, const std::string& only) {
  const std::string where = only.empty() ? "" : " WHERE id = ?1";
  Statement s(db, absl::StrCat("SELECT id, name, state, created_unix_ms, "
                               "(SELECT COUNT(*) FROM fits f WHERE "
                               "f.sweep_id = sweeps.id), paused FROM sweeps",
                               where, " ORDER BY created_unix_ms, id"));
  if (!only.empty()) s.Bind(1, only);
  json sweeps = json::array();
  std::map<std::string, size_t> index;
  while (s.Step()) {
    index[s.Text(0)] = sweeps.size();
    sweeps.push_back({{"id", s.Text(0)},
                      {"name", s.Text(1)},
                      {"state", s.Text(2)},
                      {"created_unix_ms", s.Int(3)},
                      {"has_fit", s.Int(4) > 0},
                      {"paused", s.Int(5) != 0},
                      {"n_trials", 0},
                      {"ended", 0},
                      {"counts", json::object()},
                      {"best_val_loss", nullptr}});
  }
  RETURN_IF_ERROR(s.status());
  Statement c(db, absl::StrCat("SELECT sweep_id, state, COUNT(*), "
                               "MIN(val_loss) FROM trials",
                               only.empty() ? "" : " WHERE sweep_id = ?1",
                               " GROUP BY sweep_id, state"));
  if (!only.empty()) c.Bind(1, only);
  while (c.Step()) {
    auto it = index.find(c.Text(0));
    if (it == index.end()) continue;
    json& sw = sweeps[it->second];
    const std::string state = c.Text(1);
    const int64_t n = c.Int(2);
    sw["counts"][state] = n;
    sw["n_trials"] = sw["n_trials"].get<int64_t>() + n;
    if (IsEnded(state)) sw["ended"] = sw["ended"].get<int64_t>() + n;
    const double best = c.DoubleOrNaN(3);
    if (state == "SUCCEEDED" && std::isfinite(best)) sw["best_val_loss"] = best;
  }
  RETURN_IF_ERROR(c.status());
  return sweeps;
}

// The last value of metric `name` of one attempt (index range scan).
bool LastMetric(sqlite3* db, const std::string& trial, int64_t attempt,
                const std::string& name, int64_t* step, double* value) {
  Statement s(db,
              "SELECT step, value FROM metrics WHERE trial_id = ? AND "
              "attempt = ? AND name = ? ORDER BY step DESC LIMIT 1");
  s.Bind(1, trial).Bind(2, attempt).Bind(3, name);
  const bool found = s.Step();
  if (found) {
    *step = s.Int(0);
    *value = s.Double(1);
  }
  return found;
}

std::string SortColumn(const std::string& sort) {
  static const auto* kColumns = new std::map<std::string, std::string>{
      {"ordinal", "ordinal"},
      {"n", "n_total"},
      {"d", "tokens"},
      {"flops", "flops_budget"},
      {"state", "state"},
      {"attempt", "attempt"},
      {"loss", "COALESCE(val_loss, train_loss)"},
      {"tokens_per_s", "tokens_per_s"},
      {"worker", "worker_id"},
      {"updated", "updated_unix_ms"}};
  auto it = kColumns->find(sort);
  return it == kColumns->end() ? "" : it->second;
}

}  // namespace

absl::StatusOr<json> DashboardApi::ReadSweeps() const {
  ASSIGN_OR_RETURN(Connection db, OpenReadOnly(db_path_));
  ASSIGN_OR_RETURN(json sweeps, SweepSummaries(db.get(), ""));
  return json{{"sweeps", std::move(sweeps)}};
}

absl::StatusOr<json> DashboardApi::ReadSweep(
    const std::string& sweep_id) const {
  ASSIGN_OR_RETURN(Connection db, OpenReadOnly(db_path_));
  ASSIGN_OR_RETURN(json one, SweepSummaries(db.get(), sweep_id));
  if (one.empty()) {
    return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, ": unknown"));
  }
  json out = std::move(one[0]);
  Statement s(db.get(), "SELECT config FROM sweeps WHERE id = ?");
  s.Bind(1, sweep_id);
  if (s.Step()) {
    v1::SweepConfig config;
    if (config.ParseFromString(s.Text(0))) {
      out["budgets"] =
          json(std::vector<double>(config.grid().flops_budgets().begin(),
                                   config.grid().flops_budgets().end()));
      json shapes = json::array();
      for (const v1::ModelShape& m : config.grid().model_shapes())
        shapes.push_back({m.d_model(), m.n_layers(), m.n_heads()});
      out["shapes"] = std::move(shapes);
    }
  }
  RETURN_IF_ERROR(s.status());
  Statement running(db.get(),
                    "SELECT COUNT(*) FROM trials WHERE sweep_id = ? AND state "
                    "IN ('LEASED', 'RUNNING')");
  running.Bind(1, sweep_id);
  if (running.Step()) out["running"] = running.Int(0);
  return out;
}

absl::StatusOr<json> DashboardApi::ReadTrials(const std::string& sweep_id,
                                              const TrialQuery& q) const {
  const std::string column = SortColumn(q.sort);
  if (column.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sort = \"", q.sort.substr(0, 32),
        "\": must be one of ordinal, n, d, flops, state, attempt, loss, "
        "tokens_per_s, worker, updated"));
  }
  if (q.limit < 1 || q.limit > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit = ", q.limit, ": must be in [1, 1000]"));
  }
  if (q.offset < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("offset = ", q.offset, ": must be >= 0"));
  }
  ASSIGN_OR_RETURN(Connection db, OpenReadOnly(db_path_));
  std::string where = " WHERE sweep_id = ?1";
  if (!q.state.empty()) absl::StrAppend(&where, " AND state = ?2");
  if (!q.search.empty()) {
    absl::StrAppend(&where,
                    " AND (instr(id, ?3) > 0 OR instr(worker_id, ?3) > 0)");
  }
  auto bind = [&](Statement& s) {
    s.Bind(1, sweep_id);
    if (!q.state.empty()) s.Bind(2, q.state);
    if (!q.search.empty()) s.Bind(3, q.search);
  };
  json out = {{"offset", q.offset}, {"limit", q.limit}};
  Statement count(db.get(), "SELECT COUNT(*) FROM trials" + where);
  bind(count);
  if (count.Step()) out["total"] = count.Int(0);
  RETURN_IF_ERROR(count.status());

  const char* dir = q.descending ? " DESC" : " ASC";
  Statement s(db.get(),
              absl::StrCat("SELECT id, ordinal, spec, n_total, tokens, "
                           "flops_budget, state, attempt, worker_id, step, "
                           "train_loss, val_loss, tokens_per_s, "
                           "updated_unix_ms, error FROM trials",
                           where, " ORDER BY (", column, ") IS NULL, ", column,
                           dir, ", ordinal", dir, " LIMIT ?4 OFFSET ?5"));
  bind(s);
  s.Bind(4, int64_t{q.limit}).Bind(5, int64_t{q.offset});
  json rows = json::array();
  while (s.Step()) {
    v1::TrialSpec spec;
    spec.ParseFromString(s.Text(2));
    const std::string id = s.Text(0);
    const int64_t attempt = s.Int(7);
    int64_t step = s.Int(9);
    double train_loss = s.DoubleOrNaN(10);
    double tokens_per_s = s.DoubleOrNaN(12);
    // The core persists progress only in the metrics table.
    if (attempt > 0) {
      const std::string state = s.Text(6);
      const auto key = std::make_pair(id, attempt);
      LastPoints last;
      bool cached = false;
      if (IsEnded(state)) {
        absl::MutexLock lock(&ended_mu_);
        auto it = last_points_.find(key);
        if (it != last_points_.end()) {
          last = it->second;
          cached = true;
        }
      }
      if (!cached) {
        last.has_loss = LastMetric(db.get(), id, attempt, "train_loss",
                                   &last.step, &last.loss);
        int64_t at = 0;
        last.has_tokens_per_s = LastMetric(
            db.get(), id, attempt, "tokens_per_s", &at, &last.tokens_per_s);
        if (IsEnded(state)) {
          absl::MutexLock lock(&ended_mu_);
          if (last_points_.size() >= kMaxCachedRows) last_points_.clear();
          last_points_[key] = last;
        }
      }
      if (last.has_loss) {
        train_loss = last.loss;
        step = std::max(step, last.step);
      }
      if (last.has_tokens_per_s) tokens_per_s = last.tokens_per_s;
    }
    rows.push_back({{"id", id},
                    {"ordinal", s.Int(1)},
                    {"shape",
                     {spec.shape().d_model(), spec.shape().n_layers(),
                      spec.shape().n_heads()}},
                    {"n", s.Int(3)},
                    {"d", s.Int(4)},
                    {"flops", s.Double(5)},
                    {"state", s.Text(6)},
                    {"attempt", attempt},
                    {"worker", s.Text(8)},
                    {"step", step},
                    {"steps", spec.steps()},
                    {"train_loss", Num(train_loss)},
                    {"val_loss", Num(s.DoubleOrNaN(11))},
                    {"tokens_per_s", Num(tokens_per_s)},
                    {"updated_unix_ms", s.Int(13)},
                    {"error", s.Text(14)}});
  }
  RETURN_IF_ERROR(s.status());
  out["trials"] = std::move(rows);
  return out;
}

namespace {

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

// Metric `name` of `trial` past `since_step`, every attempt up to `attempt`
// merged as Curves merges them (a later attempt's point replaces an earlier
// one): one PK range per attempt, so only the new rows are read.
absl::StatusOr<std::vector<std::pair<int64_t, double>>> PointsSince(
    sqlite3* db, const std::string& trial, int64_t attempt,
    const std::string& name, int64_t since_step) {
  std::map<int64_t, double> merged;
  for (int64_t a = 1; a <= attempt; ++a) {
    Statement m(db,
                "SELECT step, value FROM metrics WHERE trial_id = ? AND "
                "attempt = ? AND step > ? AND name = ?");
    m.Bind(1, trial).Bind(2, a).Bind(3, since_step).Bind(4, name);
    while (m.Step()) merged[m.Int(0)] = m.Double(1);
    RETURN_IF_ERROR(m.status());
  }
  return std::vector<std::pair<int64_t, double>>(merged.begin(), merged.end());
}

}  // namespace

absl::StatusOr<std::optional<json>> DashboardApi::LiveCurvePoints(
    sqlite3* db, const std::string& trial, int64_t attempt,
    const CurveQuery& q) const {
  int64_t last_step = 0;
  {
    absl::MutexLock lock(&ended_mu_);
    const auto it = live_curves_.find({trial, q.name});
    if (it == live_curves_.end() || it->second.attempt != attempt) {
      return std::nullopt;
    }
    last_step = it->second.last_step;
  }
  Statement m(db,
              "SELECT step, value FROM metrics WHERE trial_id = ? AND "
              "attempt = ? AND step > ? AND name = ? ORDER BY step");
  m.Bind(1, trial).Bind(2, attempt).Bind(3, last_step).Bind(4, q.name);
  std::vector<std::pair<int64_t, double>> fresh;
  while (m.Step()) fresh.emplace_back(m.Int(0), m.Double(1));
  RETURN_IF_ERROR(m.status());
  absl::MutexLock lock(&ended_mu_);
  const auto it = live_curves_.find({trial, q.name});
  if (it == live_curves_.end() || it->second.attempt != attempt) {
    return std::nullopt;  // cleared meanwhile
  }
  LiveCurve& c = it->second;
  // New rows past every kept step append; rows among older attempts' steps
  // (a resumed attempt catching up) need the full merge: read it all.
  if (!fresh.empty() && !c.raw.empty() &&
      fresh.front().first <= c.raw.back().first) {
    live_curves_.erase(it);
    return std::nullopt;
  }
  if (c.raw.size() + fresh.size() > kMaxLivePoints) {
    live_curves_.erase(it);
    return std::nullopt;
  }
  if (!fresh.empty()) c.last_step = fresh.back().first;
  c.raw.insert(c.raw.end(), fresh.begin(), fresh.end());
  return json{{"n_raw", c.raw.size()},
              {"points", Downsample(c.raw, q.max_points)}};
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
  ASSIGN_OR_RETURN(Connection db, OpenReadOnly(db_path_));
  struct Pick {
    std::string id, state;
    int64_t attempt;
  };
  std::vector<Pick> picks;
  auto collect = [&](Statement& s) {
    while (s.Step() && picks.size() < static_cast<size_t>(q.max_trials))
      picks.push_back({s.Text(0), s.Text(1), s.Int(2)});
    return s.status();
  };
  if (!q.trials.empty()) {
    for (const std::string& id : q.trials) {
      Statement s(db.get(),
                  "SELECT id, state, attempt FROM trials WHERE sweep_id = ? "
                  "AND id = ?");
      s.Bind(1, sweep_id).Bind(2, id);
      RETURN_IF_ERROR(collect(s));
    }
  } else {
    Statement s(db.get(),
                "SELECT id, state, attempt FROM trials WHERE sweep_id = ? AND "
                "state IN ('LEASED', 'RUNNING') ORDER BY ordinal LIMIT ?");
    s.Bind(1, sweep_id).Bind(2, int64_t{q.max_trials});
    RETURN_IF_ERROR(collect(s));
    if (picks.empty() && q.select == "auto") {
      Statement newest(db.get(),
                       "SELECT id, state, attempt FROM trials WHERE sweep_id "
                       "= ? AND attempt > 0 ORDER BY updated_unix_ms DESC, "
                       "ordinal LIMIT ?");
      newest.Bind(1, sweep_id).Bind(2, int64_t{q.max_trials});
      RETURN_IF_ERROR(collect(newest));
    }
  }
  // Every attempt's points; a later attempt's point replaces an earlier one
  // at the same step (a resumed trial keeps its history).
  json curves = json::array();
  for (const Pick& p : picks) {
    if (q.since_step.has_value()) {
      ASSIGN_OR_RETURN(const auto raw, PointsSince(db.get(), p.id, p.attempt,
                                                   q.name, *q.since_step));
      curves.push_back({{"trial", p.id},
                        {"state", p.state},
                        {"attempt", p.attempt},
                        {"n_raw", raw.size()},
                        {"points", Downsample(raw, q.max_points)}});
      continue;
    }
    const auto key = std::make_tuple(p.id, p.attempt, q.name, q.max_points);
    if (IsEnded(p.state)) {
      absl::MutexLock lock(&ended_mu_);
      auto it = ended_curves_.find(key);
      if (it != ended_curves_.end()) {
        curves.push_back({{"trial", p.id},
                          {"state", p.state},
                          {"attempt", p.attempt},
                          {"n_raw", it->second["n_raw"]},
                          {"points", it->second["points"]}});
        continue;
      }
    }
    if (!IsEnded(p.state)) {
      ASSIGN_OR_RETURN(std::optional<json> live,
                       LiveCurvePoints(db.get(), p.id, p.attempt, q));
      if (live.has_value()) {
        curves.push_back({{"trial", p.id},
                          {"state", p.state},
                          {"attempt", p.attempt},
                          {"n_raw", (*live)["n_raw"]},
                          {"points", std::move((*live)["points"])}});
        continue;
      }
    }
    Statement m(db.get(),
                "SELECT step, value, attempt FROM metrics WHERE trial_id = ? "
                "AND name = ? ORDER BY step, attempt");
    m.Bind(1, p.id).Bind(2, q.name);
    std::vector<std::pair<int64_t, double>> raw;
    int64_t last_step = 0;  // of the current attempt
    while (m.Step()) {
      const int64_t step = m.Int(0);
      if (!raw.empty() && raw.back().first == step) raw.pop_back();
      raw.emplace_back(step, m.Double(1));
      if (m.Int(2) == p.attempt) last_step = step;
    }
    RETURN_IF_ERROR(m.status());
    json points = Downsample(raw, q.max_points);
    const size_t n_raw = raw.size();
    if (IsEnded(p.state)) {
      absl::MutexLock lock(&ended_mu_);
      if (ended_curves_.size() >= kMaxCachedCurves) ended_curves_.clear();
      ended_curves_[key] = {{"n_raw", n_raw}, {"points", points}};
    } else if (n_raw <= kMaxLivePoints) {
      absl::MutexLock lock(&ended_mu_);
      if (live_curves_.size() >= kMaxLiveCurves) live_curves_.clear();
      live_curves_[{p.id, q.name}] = {p.attempt, last_step, std::move(raw)};
    }
    curves.push_back({{"trial", p.id},
                      {"state", p.state},
                      {"attempt", p.attempt},
                      {"n_raw", n_raw},
                      {"points", std::move(points)}});
  }
  json out = {{"name", q.name}, {"curves", std::move(curves)}};
  if (q.since_step.has_value()) out["since_step"] = *q.since_step;
  return out;
}

absl::StatusOr<json> DashboardApi::ReadWorkers() const {
  ASSIGN_OR_RETURN(Connection db, OpenReadOnly(db_path_));
  Statement w(db.get(),
              "SELECT id, hostname, gpus, cpu_slots, registered_unix_ms, "
              "last_heartbeat_unix_ms, draining FROM workers ORDER BY id");
  json workers = json::array();
  std::map<std::string, size_t> index;
  while (w.Step()) {
    index[w.Text(0)] = workers.size();
    workers.push_back({{"id", w.Text(0)},
                       {"hostname", w.Text(1)},
                       {"gpus", w.Int(2)},
                       {"cpu_slots", w.Int(3)},
                       {"registered_unix_ms", w.Int(4)},
                       {"last_heartbeat_unix_ms", w.Int(5)},
                       {"draining", w.Int(6) != 0},
                       {"trials", json::array()}});
  }
  RETURN_IF_ERROR(w.status());
  Statement t(db.get(),
              "SELECT id, sweep_id, state, worker_id FROM trials WHERE state "
              "IN ('LEASED', 'RUNNING') ORDER BY ordinal");
  while (t.Step()) {
    auto it = index.find(t.Text(3));
    if (it == index.end()) continue;
    workers[it->second]["trials"].push_back(
        {{"id", t.Text(0)}, {"sweep", t.Text(1)}, {"state", t.Text(2)}});
  }
  RETURN_IF_ERROR(t.status());
  return json{{"workers", std::move(workers)}};
}

absl::StatusOr<json> DashboardApi::Sweeps() const {
  return answers_.Get(AnswerKey({"sweeps"}), [&] { return ReadSweeps(); });
}

absl::StatusOr<json> DashboardApi::Sweep(const std::string& sweep_id) const {
  return answers_.Get(AnswerKey({"sweep", sweep_id}),
                      [&] { return ReadSweep(sweep_id); });
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
  return answers_.Get(AnswerKey({"workers"}), [&] { return ReadWorkers(); });
}

}  // namespace isoflop::coordinator::http
