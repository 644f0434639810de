// SqliteTrialStore's TrialReader: the dashboard's queries, aggregated and
// paginated in SQL so that an answer stays small at 10^4 trials x 10^3 steps.
#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/sqlite_trial_store.h"

namespace isoflop::coordinator {
namespace {

// Idle read-only connections kept for the next query.
constexpr size_t kMaxIdleReaders = 4;
// Bound of the ended attempts' progress cache (~100 bytes an entry).
constexpr size_t kMaxCachedProgress = 200000;
// Live curves kept for incremental reads: at most this many, each of at most
// this many points (16 bytes each: <= 3.2 MB a curve).
constexpr size_t kMaxLiveCurves = 400;
constexpr size_t kMaxLivePoints = 200000;

bool IsEnded(const std::string& state) {
  return state == "SUCCEEDED" || state == "FAILED" || state == "CANCELLED";
}

absl::StatusOr<std::vector<SweepSummary>> Sweeps(sqlite3* db,
                                                 const std::string& only) {
  const std::string where = only.empty() ? "" : " WHERE id = ?1";
  Statement s(db, absl::StrCat("SELECT id, name, state, created_unix_ms, "
                               "(SELECT COUNT(*) FROM fits f WHERE "
                               "f.sweep_id = sweeps.id), paused, config FROM "
                               "sweeps",
                               where, " ORDER BY created_unix_ms, id"));
  if (!only.empty()) s.Bind(1, only);
  std::vector<SweepSummary> out;
  std::map<std::string, size_t> index;
  while (s.Step()) {
    SweepSummary sw{.id = s.Text(0),
                    .name = s.Text(1),
                    .state = s.Text(2),
                    .created_unix_ms = s.Int(3),
                    .paused = s.Int(5) != 0,
                    .has_fit = s.Int(4) > 0};
    sw.config.ParseFromString(s.Text(6));
    index[sw.id] = out.size();
    out.push_back(std::move(sw));
  }
  RETURN_IF_ERROR(s.status());
  // The per-state counts and best loss read the index
  // trials_by_sweep_state alone.
  Statement c(db, absl::StrCat("SELECT sweep_id, state, COUNT(*), "
                               "MIN(val_loss) FROM trials",
                               only.empty() ? "" : " WHERE sweep_id = ?1",
                               " GROUP BY sweep_id, state"));
  if (!only.empty()) c.Bind(1, only);
  while (c.Step()) {
    auto it = index.find(c.Text(0));
    if (it == index.end()) continue;
    SweepSummary& sw = out[it->second];
    const std::string state = c.Text(1);
    sw.counts[state] = c.Int(2);
    if (state == "SUCCEEDED") sw.best_val_loss = c.DoubleOrNaN(3);
  }
  RETURN_IF_ERROR(c.status());
  return out;
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

// The latest point of metric `name` of one attempt (an index range scan).
absl::StatusOr<std::optional<std::pair<int64_t, double>>> LastPoint(
    sqlite3* db, const std::string& trial, uint32_t attempt,
    const std::string& name) {
  Statement s(db,
              "SELECT step, value FROM metrics WHERE trial_id = ? AND "
              "attempt = ? AND name = ? ORDER BY step DESC LIMIT 1");
  s.Bind(1, trial).Bind(2, int64_t{attempt}).Bind(3, name);
  std::optional<std::pair<int64_t, double>> out;
  if (s.Step()) out.emplace(s.Int(0), s.Double(1));
  RETURN_IF_ERROR(s.status());
  return out;
}

absl::StatusOr<std::vector<TrialRef>> Refs(Statement& s, int64_t limit) {
  std::vector<TrialRef> out;
  while ((limit <= 0 || static_cast<int64_t>(out.size()) < limit) && s.Step()) {
    v1::TrialSpec spec;
    spec.ParseFromString(s.Text(5));
    out.push_back({.id = s.Text(0),
                   .sweep_id = s.Text(1),
                   .state = s.Text(2),
                   .worker_id = s.Text(3),
                   .attempt = static_cast<uint32_t>(s.Int(4)),
                   .n_total = static_cast<int64_t>(spec.n_total()),
                   .tokens = static_cast<int64_t>(spec.tokens()),
                   .steps = static_cast<int64_t>(spec.steps()),
                   .flops_budget = spec.flops_budget(),
                   .flops_per_token = spec.flops_per_token()});
  }
  RETURN_IF_ERROR(s.status());
  return out;
}

constexpr char kRefColumns[] =
    "SELECT id, sweep_id, state, worker_id, attempt, spec FROM trials "
    "WHERE ";

// The trial page's row: these columns, then any the caller adds from
// index 12 on; TrialRowAt reads them (ReadTrialPage, ReadTrial).
constexpr char kTrialRowColumns[] =
    "id, ordinal, spec, state, attempt, worker_id, step, train_loss, "
    "val_loss, tokens_per_s, updated_unix_ms, error";
TrialRow TrialRowAt(const Statement& s) {
  TrialRow row{.id = s.Text(0),
               .ordinal = s.Int(1),
               .state = s.Text(3),
               .attempt = static_cast<uint32_t>(s.Int(4)),
               .worker_id = s.Text(5),
               .step = s.Int(6),
               .train_loss = s.DoubleOrNaN(7),
               .val_loss = s.DoubleOrNaN(8),
               .tokens_per_s = s.DoubleOrNaN(9),
               .updated_unix_ms = s.Int(10),
               .error = s.Text(11)};
  row.spec.ParseFromString(s.Text(2));
  return row;
}

}  // namespace

absl::StatusOr<Connection> SqliteTrialStore::Acquire() {
  {
    absl::MutexLock lock(&readers_mu_);
    if (!idle_readers_.empty()) {
      Connection conn = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return conn;
    }
  }
  return writer_->OpenReader();
}

void SqliteTrialStore::Release(Connection conn) {
  absl::MutexLock lock(&readers_mu_);
  if (idle_readers_.size() < kMaxIdleReaders) {
    idle_readers_.push_back(std::move(conn));
  }
}

absl::StatusOr<std::vector<SweepSummary>> SqliteTrialStore::ReadSweeps(
    const std::string& only) {
  return WithReader<std::vector<SweepSummary>>(
      [&](sqlite3* db) -> absl::StatusOr<std::vector<SweepSummary>> {
        return Sweeps(db, only);
      });
}

absl::Status SqliteTrialStore::AddProgress(sqlite3* db, TrialRow& row) {
  if (row.attempt == 0) return absl::OkStatus();
  const auto key = std::make_pair(row.id, row.attempt);
  const bool ended = IsEnded(row.state);
  LastPoints last;
  bool cached = false;
  if (ended) {
    absl::MutexLock lock(&ended_mu_);
    auto it = last_points_.find(key);
    if (it != last_points_.end()) {
      last = it->second;
      cached = true;
    }
  }
  if (!cached) {
    ASSIGN_OR_RETURN(last.loss,
                     LastPoint(db, row.id, row.attempt, "train_loss"));
    ASSIGN_OR_RETURN(const auto rate,
                     LastPoint(db, row.id, row.attempt, "tokens_per_s"));
    if (rate) last.tokens_per_s = rate->second;
    if (ended) {
      absl::MutexLock lock(&ended_mu_);
      if (last_points_.size() >= kMaxCachedProgress) last_points_.clear();
      last_points_[key] = last;
    }
  }
  if (last.loss) {
    row.step = std::max(row.step, last.loss->first);
    row.train_loss = last.loss->second;
  }
  if (last.tokens_per_s) row.tokens_per_s = *last.tokens_per_s;
  return absl::OkStatus();
}

absl::StatusOr<TrialPage> SqliteTrialStore::ReadTrialPage(
    const std::string& sweep_id, const TrialPageQuery& q) {
  const std::string column = SortColumn(q.sort);
  if (column.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sort = \"", q.sort.substr(0, 32),
        "\": must be one of ordinal, n, d, flops, state, attempt, loss, "
        "tokens_per_s, worker, updated"));
  }
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
  const char* dir = q.descending ? " DESC" : " ASC";
  return WithReader<TrialPage>([&](sqlite3* db) -> absl::StatusOr<TrialPage> {
    TrialPage page;
    Statement count(db, "SELECT COUNT(*) FROM trials" + where);
    bind(count);
    if (count.Step()) page.total = count.Int(0);
    RETURN_IF_ERROR(count.status());
    Statement s(db,
                absl::StrCat("SELECT ", kTrialRowColumns, " FROM trials", where,
                             " ORDER BY (", column, ") IS NULL, ", column, dir,
                             ", ordinal", dir, " LIMIT ?4 OFFSET ?5"));
    bind(s);
    s.Bind(4, int64_t{q.limit}).Bind(5, int64_t{q.offset});
    while (s.Step()) {
      TrialRow row = TrialRowAt(s);
      RETURN_IF_ERROR(AddProgress(db, row));
      page.rows.push_back(std::move(row));
    }
    RETURN_IF_ERROR(s.status());
    return page;
  });
}

absl::StatusOr<std::vector<TrialRef>> SqliteTrialStore::ReadTrialsById(
    const std::string& sweep_id, const std::vector<std::string>& ids) {
  return WithReader<std::vector<TrialRef>>(
      [&](sqlite3* db) -> absl::StatusOr<std::vector<TrialRef>> {
        std::vector<TrialRef> out;
        for (const std::string& id : ids) {
          Statement s(db, absl::StrCat(kRefColumns, "sweep_id = ? AND id = ?"));
          s.Bind(1, sweep_id).Bind(2, id);
          ASSIGN_OR_RETURN(std::vector<TrialRef> one, Refs(s, 0));
          for (TrialRef& r : one) out.push_back(std::move(r));
        }
        return out;
      });
}

absl::StatusOr<std::vector<TrialRef>> SqliteTrialStore::ReadRunningTrials(
    const std::string& sweep_id, int64_t limit) {
  return WithReader<std::vector<TrialRef>>(
      [&](sqlite3* db) -> absl::StatusOr<std::vector<TrialRef>> {
        Statement s(db,
                    absl::StrCat(kRefColumns,
                                 sweep_id.empty() ? "" : "sweep_id = ? AND ",
                                 "state IN ('LEASED', 'RUNNING') ORDER BY "
                                 "ordinal"));
        if (!sweep_id.empty()) s.Bind(1, sweep_id);
        return Refs(s, limit);
      });
}

absl::StatusOr<std::vector<TrialRef>> SqliteTrialStore::ReadNewestTrials(
    const std::string& sweep_id, int64_t limit) {
  return WithReader<std::vector<TrialRef>>(
      [&](sqlite3* db) -> absl::StatusOr<std::vector<TrialRef>> {
        Statement s(db, absl::StrCat(kRefColumns,
                                     "sweep_id = ? AND attempt > 0 ORDER BY "
                                     "updated_unix_ms DESC, ordinal LIMIT ?"));
        s.Bind(1, sweep_id).Bind(2, limit);
        return Refs(s, limit);
      });
}

namespace {

// Rows of metric `name` of `trial` past `after_step` (the primary key
// (trial_id, name, step): one range), of attempts up to `attempt`, or of
// `attempt` alone when `only`. `last_step`, when given: the last step of
// `attempt` among them (0 if none).
absl::StatusOr<CurvePoints> CurveRows(sqlite3* db, const std::string& trial,
                                      const std::string& name,
                                      int64_t after_step, uint32_t attempt,
                                      bool only, int64_t* last_step = nullptr) {
  Statement m(db, absl::StrCat("SELECT step, value, attempt FROM metrics "
                               "WHERE trial_id = ? AND name = ? AND step > ? "
                               "AND attempt ",
                               only ? "=" : "<=", " ? ORDER BY step"));
  m.Bind(1, trial).Bind(2, name).Bind(3, after_step).Bind(4, int64_t{attempt});
  CurvePoints out;
  if (last_step != nullptr) *last_step = 0;
  while (m.Step()) {
    out.emplace_back(m.Int(0), m.Double(1));
    if (last_step != nullptr && m.Int(2) == attempt) *last_step = m.Int(0);
  }
  RETURN_IF_ERROR(m.status());
  return out;
}

}  // namespace

absl::StatusOr<std::optional<CurvePoints>> SqliteTrialStore::ReadLiveCurve(
    sqlite3* db, const TrialRef& t, const std::string& name) {
  int64_t last_step = 0;
  {
    absl::MutexLock lock(&live_mu_);
    const auto it = live_curves_.find({t.id, name});
    if (it == live_curves_.end() || it->second.attempt != t.attempt) {
      return std::nullopt;
    }
    last_step = it->second.last_step;
  }
  ASSIGN_OR_RETURN(const CurvePoints fresh,
                   CurveRows(db, t.id, name, last_step, t.attempt, true));
  absl::MutexLock lock(&live_mu_);
  const auto it = live_curves_.find({t.id, name});
  if (it == live_curves_.end() || it->second.attempt != t.attempt) {
    return std::nullopt;  // cleared meanwhile
  }
  LiveCurve& c = it->second;
  // New rows past every kept step append; rows among older attempts' steps
  // (a resumed attempt catching up) need the full merge: read it all.
  if ((!fresh.empty() && !c.points.empty() &&
       fresh.front().first <= c.points.back().first) ||
      c.points.size() + fresh.size() > kMaxLivePoints) {
    live_curves_.erase(it);
    return std::nullopt;
  }
  if (!fresh.empty()) c.last_step = fresh.back().first;
  c.points.insert(c.points.end(), fresh.begin(), fresh.end());
  return c.points;
}

absl::StatusOr<CurvePoints> SqliteTrialStore::ReadCurve(const TrialRef& t,
                                                        const std::string& name,
                                                        int64_t since_step) {
  return WithReader<CurvePoints>(
      [&](sqlite3* db) -> absl::StatusOr<CurvePoints> {
        const bool live = since_step < 0 && !IsEnded(t.state);
        if (live) {
          ASSIGN_OR_RETURN(std::optional<CurvePoints> kept,
                           ReadLiveCurve(db, t, name));
          if (kept.has_value()) return *std::move(kept);
        }
        int64_t last_step = 0;  // of the current attempt: the next call's start
        ASSIGN_OR_RETURN(CurvePoints points,
                         CurveRows(db, t.id, name, since_step, t.attempt, false,
                                   &last_step));
        if (live && points.size() <= kMaxLivePoints) {
          absl::MutexLock lock(&live_mu_);
          if (live_curves_.size() >= kMaxLiveCurves) live_curves_.clear();
          live_curves_[{t.id, name}] = {t.attempt, last_step, points};
        }
        return points;
      });
}

absl::StatusOr<std::optional<TrialDetail>> SqliteTrialStore::ReadTrial(
    const std::string& trial_id) {
  return WithReader<std::optional<TrialDetail>>(
      [&](sqlite3* db) -> absl::StatusOr<std::optional<TrialDetail>> {
        Statement s(db, absl::StrCat("SELECT ", kTrialRowColumns,
                                     ", sweep_id FROM trials WHERE id = ?"));
        s.Bind(1, trial_id);
        if (!s.Step()) {
          RETURN_IF_ERROR(s.status());
          return std::optional<TrialDetail>();
        }
        TrialDetail out{.sweep_id = s.Text(12), .row = TrialRowAt(s)};
        RETURN_IF_ERROR(AddProgress(db, out.row));
        Statement a(db,
                    "SELECT attempt, worker_id, lease_epoch, started_unix_ms, "
                    "ended_unix_ms, outcome, exit_code, message FROM attempts "
                    "WHERE trial_id = ? ORDER BY attempt");
        a.Bind(1, trial_id);
        while (a.Step()) {
          out.attempts.push_back(
              {.attempt = static_cast<uint32_t>(a.Int(0)),
               .worker_id = a.Text(1),
               .lease_epoch = static_cast<uint64_t>(a.Int(2)),
               .started_unix_ms = a.Int(3),
               .ended_unix_ms = a.Int(4),
               .outcome = a.Text(5),
               .exit_code = static_cast<int>(a.Int(6)),
               .message = a.Text(7)});
        }
        RETURN_IF_ERROR(a.status());
        for (AttemptRow& row : out.attempts) {
          ASSIGN_OR_RETURN(const auto rate, LastPoint(db, trial_id, row.attempt,
                                                      "tokens_per_s"));
          if (rate) row.tokens_per_s = rate->second;
        }
        return std::optional<TrialDetail>(std::move(out));
      });
}

absl::StatusOr<std::vector<WorkerRow>> SqliteTrialStore::ReadWorkers() {
  return WithReader<std::vector<WorkerRow>>(
      [&](sqlite3* db) -> absl::StatusOr<std::vector<WorkerRow>> {
        Statement w(
            db,
            "SELECT id, hostname, gpus, cpu_slots, registered_unix_ms, "
            "last_heartbeat_unix_ms, draining FROM workers ORDER BY id");
        std::vector<WorkerRow> out;
        while (w.Step()) {
          out.push_back({.id = w.Text(0),
                         .hostname = w.Text(1),
                         .gpus = static_cast<uint32_t>(w.Int(2)),
                         .cpu_slots = static_cast<uint32_t>(w.Int(3)),
                         .registered_unix_ms = w.Int(4),
                         .last_heartbeat_unix_ms = w.Int(5),
                         .draining = w.Int(6) != 0});
        }
        RETURN_IF_ERROR(w.status());
        return out;
      });
}

absl::StatusOr<std::vector<LawPoint>> SqliteTrialStore::ReadLawPoints(
    const std::string& sweep_id) {
  return WithReader<std::vector<LawPoint>>(
      [&](sqlite3* db) -> absl::StatusOr<std::vector<LawPoint>> {
        Statement s(db,
                    "SELECT id, n_total, tokens, flops_budget, val_loss, spec "
                    "FROM "
                    "trials WHERE sweep_id = ? AND state = 'SUCCEEDED' AND "
                    "val_loss IS NOT NULL ORDER BY flops_budget, n_total");
        s.Bind(1, sweep_id);
        std::vector<LawPoint> out;
        while (s.Step()) {
          // The spec for unique_tokens/epochs; an unreadable one leaves 0.
          v1::TrialSpec spec;
          spec.ParseFromString(s.Text(5));
          out.push_back(
              {.trial = s.Text(0),
               .n = static_cast<double>(s.Int(1)),
               .d = static_cast<double>(s.Int(2)),
               .flops = s.Double(3),
               .loss = s.Double(4),
               .unique_tokens = static_cast<double>(spec.unique_tokens()),
               .epochs = spec.epochs()});
        }
        RETURN_IF_ERROR(s.status());
        return out;
      });
}

absl::StatusOr<std::optional<v1::ScalingLawFit>> SqliteTrialStore::ReadFit(
    const std::string& sweep_id) {
  return WithReader<std::optional<v1::ScalingLawFit>>(
      [&](sqlite3* db) -> absl::StatusOr<std::optional<v1::ScalingLawFit>> {
        Statement s(db, "SELECT fit FROM fits WHERE sweep_id = ?");
        s.Bind(1, sweep_id);
        std::optional<v1::ScalingLawFit> out;
        if (s.Step() && !out.emplace().ParseFromString(s.Text(0))) {
          return absl::DataLossError(
              absl::StrCat("sweep ", sweep_id, ": stored fit unreadable"));
        }
        RETURN_IF_ERROR(s.status());
        return out;
      });
}

int64_t SqliteTrialStore::DataVersion() {
  absl::MutexLock lock(&version_mu_);
  if (version_db_ == nullptr) {
    absl::StatusOr<Connection> db = writer_->OpenReader();
    if (!db.ok()) return -1;
    version_db_ = std::move(*db);
  }
  // The pragma's read transaction ends with the statement: this connection
  // never holds back a checkpoint.
  Statement s(version_db_.get(), "PRAGMA data_version");
  return s.Step() ? s.Int(0) : -1;
}

}  // namespace isoflop::coordinator
