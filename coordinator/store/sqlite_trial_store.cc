#include "coordinator/store/sqlite_trial_store.h"

#include <algorithm>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/schema.h"
#include "google/protobuf/util/json_util.h"

namespace isoflop::coordinator {
namespace {

// trials.spec_json: the spec as JSON with the proto's field names and every
// field present, for SQL (the trial_view of docs/import-export.md).
std::string SpecJson(const v1::TrialSpec& spec) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.always_print_enums_as_ints = false;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(spec, &out, options).ok()) {
    return "{}";
  }
  return out;
}

// Rows stored before trials.spec_json existed get it once, at open.
absl::Status BackfillSpecJson(SqliteWriter& writer) {
  return writer.Write([](sqlite3* db) {
    std::vector<std::pair<std::string, std::string>> rows;
    {
      Statement q(db, "SELECT id, spec FROM trials WHERE spec_json IS NULL");
      while (q.Step()) {
        v1::TrialSpec spec;
        spec.ParseFromString(q.Text(1));
        rows.emplace_back(q.Text(0), SpecJson(spec));
      }
      RETURN_IF_ERROR(q.status());
    }
    Statement u(db, "UPDATE trials SET spec_json = ? WHERE id = ?");
    for (const auto& [id, json] : rows) {
      RETURN_IF_ERROR(u.Bind(1, json).Bind(2, id).Run());
    }
    return absl::OkStatus();
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteTrialStore>> SqliteTrialStore::Open(
    const std::string& path, bool fsync_commits) {
  return Open(path, SqliteWriterOptions{.fsync_commits = fsync_commits});
}

absl::StatusOr<std::unique_ptr<SqliteTrialStore>> SqliteTrialStore::Open(
    const std::string& path, SqliteWriterOptions options) {
  // Schema()[0]'s tables: a file with all of them is isoflop's even without
  // the application_id (stamped since issue 18).
  options.own_tables = {"attempts", "fits",   "metrics",
                        "sweeps",   "trials", "workers"};
  ASSIGN_OR_RETURN(auto writer,
                   SqliteWriter::Open(path, Schema(), std::move(options)));
  // Best effort: a store that cannot write now (docs/storage-faults.md)
  // still opens; the view shows NULL for those rows until the next open.
  BackfillSpecJson(*writer).IgnoreError();
  return std::unique_ptr<SqliteTrialStore>(
      new SqliteTrialStore(std::move(writer)));
}

int SqliteTrialStore::SchemaVersion() {
  return static_cast<int>(Schema().size());
}

absl::Status SqliteTrialStore::InsertSweep(const SweepRecord& r) {
  return writer_->Write([&r](sqlite3* db) {
    Statement s(db,
                "INSERT INTO sweeps(id, name, config, state, created_unix_ms) "
                "VALUES(?,?,?,?,?)");
    RETURN_IF_ERROR(s.Bind(1, r.sweep.id())
                        .Bind(2, r.sweep.config().name())
                        .BindBlob(3, r.sweep.config().SerializeAsString())
                        .Bind(4, v1::SweepState_Name(r.sweep.state()))
                        .Bind(5, int64_t{r.sweep.created_unix_ms()})
                        .Run());
    Statement t(db,
                "INSERT INTO trials(id, sweep_id, ordinal, spec, n_total, "
                "tokens, flops_budget, "
                "state, spec_json) VALUES(?,?,?,?,?,?,?,?,?)");
    for (const TrialRecord& tr : r.trials) {
      const v1::TrialSpec& spec = tr.trial.spec();
      RETURN_IF_ERROR(t.Bind(1, spec.trial_id())
                          .Bind(2, r.sweep.id())
                          .Bind(3, int64_t{tr.ordinal})
                          .BindBlob(4, spec.SerializeAsString())
                          .Bind(5, static_cast<int64_t>(spec.n_total()))
                          .Bind(6, static_cast<int64_t>(spec.tokens()))
                          .Bind(7, spec.flops_budget())
                          .Bind(8, v1::TrialState_Name(tr.trial.state()))
                          .Bind(9, SpecJson(spec))
                          .Run());
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteTrialStore::AddTrials(
    const std::string& sweep_id, const std::vector<TrialRecord>& trials) {
  return writer_->Write([&sweep_id, &trials](sqlite3* db) {
    Statement find(db, "SELECT 1 FROM sweeps WHERE id = ?");
    find.Bind(1, sweep_id);
    if (!find.Step()) {
      RETURN_IF_ERROR(find.status());
      return absl::NotFoundError(
          absl::StrCat("sweep ", sweep_id, ": not found"));
    }
    Statement t(db,
                "INSERT INTO trials(id, sweep_id, ordinal, spec, n_total, "
                "tokens, flops_budget, "
                "state, spec_json) VALUES(?,?,?,?,?,?,?,?,?)");
    for (const TrialRecord& tr : trials) {
      const v1::TrialSpec& spec = tr.trial.spec();
      RETURN_IF_ERROR(t.Bind(1, spec.trial_id())
                          .Bind(2, sweep_id)
                          .Bind(3, int64_t{tr.ordinal})
                          .BindBlob(4, spec.SerializeAsString())
                          .Bind(5, static_cast<int64_t>(spec.n_total()))
                          .Bind(6, static_cast<int64_t>(spec.tokens()))
                          .Bind(7, spec.flops_budget())
                          .Bind(8, v1::TrialState_Name(tr.trial.state()))
                          .Bind(9, SpecJson(spec))
                          .Run());
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteTrialStore::UpdateSweepState(const std::string& id,
                                                v1::SweepState state) {
  return writer_->Write([&](sqlite3* db) {
    return Statement(db, "UPDATE sweeps SET state = ? WHERE id = ?")
        .Bind(1, v1::SweepState_Name(state))
        .Bind(2, id)
        .Run();
  });
}

absl::Status SqliteTrialStore::UpdateSweepPaused(const std::string& id,
                                                 bool paused) {
  return writer_->Write([&](sqlite3* db) {
    return Statement(db, "UPDATE sweeps SET paused = ? WHERE id = ?")
        .Bind(1, int64_t{paused ? 1 : 0})
        .Bind(2, id)
        .Run();
  });
}

absl::Status SqliteTrialStore::UpdateSweepConfig(
    const std::string& id, const v1::SweepConfig& config) {
  return writer_->Write([&](sqlite3* db) {
    return Statement(db, "UPDATE sweeps SET config = ? WHERE id = ?")
        .BindBlob(1, config.SerializeAsString())
        .Bind(2, id)
        .Run();
  });
}

absl::Status SqliteTrialStore::UpdateTrials(
    const std::vector<TrialRecord>& trials) {
  return writer_->Write([&](sqlite3* db) {
    Statement s(db,
                "UPDATE trials SET state=?, attempt=?, lease_epoch=?, "
                "worker_id=?, step=?, "
                "train_loss=?, val_loss=?, tokens_per_s=?, error=?, "
                "updated_unix_ms=?, retry_base=?, spec=?, spec_json=? "
                "WHERE id=?");
    for (const TrialRecord& r : trials) {
      const v1::Trial& t = r.trial;
      RETURN_IF_ERROR(s.Bind(1, v1::TrialState_Name(t.state()))
                          .Bind(2, int64_t{t.attempt()})
                          .Bind(3, static_cast<int64_t>(r.lease_epoch))
                          .Bind(4, t.worker_id())
                          .Bind(5, static_cast<int64_t>(t.step()))
                          .Bind(6, t.train_loss())
                          .Bind(7, t.val_loss())
                          .Bind(8, t.tokens_per_s())
                          .Bind(9, t.error())
                          .Bind(10, t.updated_unix_ms())
                          .Bind(11, int64_t{t.retry_base()})
                          .BindBlob(12, t.spec().SerializeAsString())
                          .Bind(13, SpecJson(t.spec()))
                          .Bind(14, t.spec().trial_id())
                          .Run());
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteTrialStore::StartAttempt(const TrialRecord& r,
                                            int64_t now_ms) {
  return writer_->Write([&](sqlite3* db) {
    return Statement(db,
                     "INSERT OR REPLACE INTO attempts(trial_id, attempt, "
                     "worker_id, lease_epoch, "
                     "started_unix_ms) VALUES(?,?,?,?,?)")
        .Bind(1, r.trial.spec().trial_id())
        .Bind(2, int64_t{r.trial.attempt()})
        .Bind(3, r.trial.worker_id())
        .Bind(4, static_cast<int64_t>(r.lease_epoch))
        .Bind(5, now_ms)
        .Run();
  });
}

absl::Status SqliteTrialStore::EndAttempt(
    const std::string& trial_id, uint32_t attempt, const std::string& outcome,
    int exit_code, const std::string& message, int64_t now_ms) {
  return writer_->Write([&](sqlite3* db) {
    return Statement(db,
                     "UPDATE attempts SET ended_unix_ms=?, outcome=?, "
                     "exit_code=?, message=? "
                     "WHERE trial_id=? AND attempt=?")
        .Bind(1, now_ms)
        .Bind(2, outcome)
        .Bind(3, int64_t{exit_code})
        .Bind(4, message)
        .Bind(5, trial_id)
        .Bind(6, int64_t{attempt})
        .Run();
  });
}

absl::Status SqliteTrialStore::UpsertWorker(const std::string& id,
                                            const v1::WorkerResources& r,
                                            int64_t now_ms) {
  return writer_->Write([&](sqlite3* db) {
    return Statement(db,
                     "INSERT INTO workers(id, hostname, gpus, cpu_slots, "
                     "registered_unix_ms, "
                     "last_heartbeat_unix_ms) VALUES(?,?,?,?,?,?) ON "
                     "CONFLICT(id) DO UPDATE SET "
                     "hostname=excluded.hostname, gpus=excluded.gpus, "
                     "cpu_slots=excluded.cpu_slots, "
                     "last_heartbeat_unix_ms=excluded.last_heartbeat_unix_ms")
        .Bind(1, id)
        .Bind(2, r.hostname())
        .Bind(3, int64_t{r.gpus()})
        .Bind(4, int64_t{r.cpu_slots()})
        .Bind(5, now_ms)
        .Bind(6, now_ms)
        .Run();
  });
}

absl::Status SqliteTrialStore::UpdateWorkerDraining(const std::string& id,
                                                    bool draining) {
  return writer_->Write([&](sqlite3* db) {
    return Statement(db, "UPDATE workers SET draining = ? WHERE id = ?")
        .Bind(1, int64_t{draining ? 1 : 0})
        .Bind(2, id)
        .Run();
  });
}

absl::Status SqliteTrialStore::RemoveWorker(const std::string& id) {
  return writer_->Write([&](sqlite3* db) {
    return Statement(db, "DELETE FROM workers WHERE id=?").Bind(1, id).Run();
  });
}

absl::Status SqliteTrialStore::TouchWorker(const std::string& id,
                                           int64_t now_ms) {
  return writer_->Write([&](sqlite3* db) {
    return Statement(db,
                     "UPDATE workers SET last_heartbeat_unix_ms=? WHERE id=?")
        .Bind(1, now_ms)
        .Bind(2, id)
        .Run();
  });
}

absl::StatusOr<int> SqliteTrialStore::InsertMetrics(
    const std::string& trial_id, uint32_t attempt,
    const std::vector<v1::MetricPoint>& points) {
  int inserted = 0;
  RETURN_IF_ERROR(writer_->Write([&](sqlite3* db) {
    inserted = 0;  // a retried batch runs this again
    // A later attempt's point replaces an earlier attempt's; a point re-sent
    // by the same attempt (or a stale one) changes nothing.
    Statement s(db,
                "INSERT INTO metrics(trial_id, attempt, step, name, value, "
                "unix_ms) VALUES(?,?,?,?,?,?) "
                "ON CONFLICT(trial_id, name, step) DO UPDATE SET "
                "attempt = excluded.attempt, value = excluded.value, "
                "unix_ms = excluded.unix_ms "
                "WHERE excluded.attempt > metrics.attempt");
    for (const v1::MetricPoint& p : points) {
      RETURN_IF_ERROR(s.Bind(1, trial_id)
                          .Bind(2, int64_t{attempt})
                          .Bind(3, static_cast<int64_t>(p.step()))
                          .Bind(4, p.name())
                          .Bind(5, p.value())
                          .Bind(6, p.unix_ms())
                          .Run());
      inserted += sqlite3_changes(db);
    }
    return absl::OkStatus();
  }));
  return inserted;
}

absl::Status SqliteTrialStore::StoreFit(const std::string& sweep_id,
                                        const v1::ScalingLawFit& fit,
                                        int64_t now_ms) {
  return writer_->Write([&](sqlite3* db) {
    return Statement(db,
                     "INSERT OR REPLACE INTO fits(sweep_id, fit, e, a, b, "
                     "alpha, beta, n_points, "
                     "created_unix_ms) VALUES(?,?,?,?,?,?,?,?,?)")
        .Bind(1, sweep_id)
        .BindBlob(2, fit.SerializeAsString())
        .Bind(3, fit.e())
        .Bind(4, fit.a())
        .Bind(5, fit.b())
        .Bind(6, fit.alpha())
        .Bind(7, fit.beta())
        .Bind(8, int64_t{fit.n_points()})
        .Bind(9, now_ms)
        .Run();
  });
}

absl::StatusOr<std::vector<SweepRecord>> SqliteTrialStore::LoadAll() {
  ASSIGN_OR_RETURN(const Connection conn, writer_->OpenReader());
  sqlite3* const db = conn.get();
  std::vector<SweepRecord> out;
  std::map<std::string, size_t> index;
  Statement s(db,
              "SELECT id, config, state, created_unix_ms, paused FROM sweeps "
              "ORDER BY "
              "created_unix_ms, id");
  while (s.Step()) {
    SweepRecord r;
    r.sweep.set_id(s.Text(0));
    r.sweep.mutable_config()->ParseFromString(s.Text(1));
    v1::SweepState state = v1::SWEEP_STATE_UNSPECIFIED;
    v1::SweepState_Parse(s.Text(2), &state);
    r.sweep.set_state(state);
    r.sweep.set_created_unix_ms(s.Int(3));
    r.sweep.set_paused(s.Int(4) != 0);
    index[r.sweep.id()] = out.size();
    out.push_back(std::move(r));
  }
  Statement t(
      db,
      "SELECT sweep_id, ordinal, spec, state, attempt, lease_epoch, worker_id, "
      "step, "
      "train_loss, val_loss, tokens_per_s, error, updated_unix_ms, retry_base "
      "FROM trials "
      "ORDER BY sweep_id, ordinal");
  while (t.Step()) {
    TrialRecord r;
    r.ordinal = static_cast<int>(t.Int(1));
    r.trial.mutable_spec()->ParseFromString(t.Text(2));
    v1::TrialState state = v1::TRIAL_STATE_UNSPECIFIED;
    v1::TrialState_Parse(t.Text(3), &state);
    r.trial.set_state(state);
    r.trial.set_attempt(static_cast<uint32_t>(t.Int(4)));
    r.lease_epoch = static_cast<uint64_t>(t.Int(5));
    r.trial.set_worker_id(t.Text(6));
    r.trial.set_step(static_cast<uint64_t>(t.Int(7)));
    r.trial.set_train_loss(t.DoubleOrNaN(8));
    r.trial.set_val_loss(t.DoubleOrNaN(9));
    r.trial.set_tokens_per_s(t.DoubleOrNaN(10));
    r.trial.set_error(t.Text(11));
    r.trial.set_updated_unix_ms(t.Int(12));
    r.trial.set_retry_base(static_cast<uint32_t>(t.Int(13)));
    auto it = index.find(t.Text(0));
    if (it != index.end()) out[it->second].trials.push_back(std::move(r));
  }
  Statement f(db, "SELECT sweep_id, fit FROM fits");
  while (f.Step()) {
    auto it = index.find(f.Text(0));
    if (it != index.end())
      out[it->second].sweep.mutable_fit()->ParseFromString(f.Text(1));
  }
  absl::Status status = s.status();
  status.Update(t.status());
  status.Update(f.status());
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<uint64_t> SqliteTrialStore::AppendTrialLog(
    const std::string& trial_id, uint32_t attempt, uint64_t offset,
    const std::string& data) {
  const auto at = static_cast<int64_t>(offset);
  const auto data_end = static_cast<int64_t>(offset + data.size());
  int64_t end = 0;
  RETURN_IF_ERROR(writer_->Write([&](sqlite3* db) {
    Statement q(db,
                "SELECT coalesce(max(start + length(data)), -1) FROM "
                "trial_logs WHERE trial_id = ? AND attempt = ?");
    q.Bind(1, trial_id).Bind(2, int64_t{attempt});
    end = q.Step() ? q.Int(0) : -1;
    const bool stored = end >= 0;
    end = std::max<int64_t>(end, 0);
    RETURN_IF_ERROR(q.status());
    if (stored && data_end <= end) return absl::OkStatus();  // re-sent
    const int64_t skip = stored && at < end ? end - at : 0;
    RETURN_IF_ERROR(Statement(db,
                              "INSERT INTO trial_logs(trial_id, attempt, "
                              "start, data) VALUES(?,?,?,?)")
                        .Bind(1, trial_id)
                        .Bind(2, int64_t{attempt})
                        .Bind(3, at + skip)
                        .BindBlob(4, data.substr(static_cast<size_t>(skip)))
                        .Run());
    end = std::max(end, data_end);
    RETURN_IF_ERROR(Statement(db,
                              "DELETE FROM trial_logs WHERE trial_id = ? AND "
                              "attempt = ? AND start + length(data) <= ?")
                        .Bind(1, trial_id)
                        .Bind(2, int64_t{attempt})
                        .Bind(3, end - static_cast<int64_t>(kMaxLogBytes))
                        .Run());
    return Statement(db,
                     "DELETE FROM trial_logs WHERE trial_id = ? AND "
                     "attempt + ? <= ?")
        .Bind(1, trial_id)
        .Bind(2, int64_t{kLogAttemptsKept})
        .Bind(3, int64_t{attempt})
        .Run();
  }));
  return static_cast<uint64_t>(end);
}

absl::StatusOr<TrialLogWindow> SqliteTrialStore::ReadTrialLog(
    const std::string& trial_id, uint32_t attempt, uint64_t offset) {
  ASSIGN_OR_RETURN(const Connection conn, writer_->OpenReader());
  sqlite3* const db = conn.get();
  TrialLogWindow out;
  Statement range(db,
                  "SELECT min(start), max(start + length(data)) FROM "
                  "trial_logs WHERE trial_id = ? AND attempt = ?");
  range.Bind(1, trial_id).Bind(2, int64_t{attempt});
  if (range.Step()) {
    out.first_offset = static_cast<uint64_t>(range.Int(0));  // NULL reads 0
    out.next_offset = static_cast<uint64_t>(range.Int(1));
  }
  RETURN_IF_ERROR(range.status());
  Statement s(db,
              "SELECT start, data FROM trial_logs WHERE trial_id = ? AND "
              "attempt = ? AND start + length(data) > ? ORDER BY start");
  s.Bind(1, trial_id)
      .Bind(2, int64_t{attempt})
      .Bind(3, static_cast<int64_t>(offset));
  while (s.Step()) {
    const auto start = static_cast<uint64_t>(s.Int(0));
    const std::string bytes = s.Text(1);
    out.data += bytes.substr(offset > start ? offset - start : 0);
  }
  RETURN_IF_ERROR(s.status());
  return out;
}

absl::StatusOr<int64_t> SqliteTrialStore::CountMetrics(
    const std::string& trial_id, uint32_t attempt) {
  ASSIGN_OR_RETURN(const Connection conn, writer_->OpenReader());
  sqlite3* const db = conn.get();
  Statement s(
      db, "SELECT count(*) FROM metrics WHERE trial_id = ? AND attempt = ?");
  s.Bind(1, trial_id).Bind(2, int64_t{attempt});
  const int64_t n = s.Step() ? s.Int(0) : 0;
  absl::Status status = s.status();
  if (!status.ok()) return status;
  return n;
}

absl::StatusOr<std::vector<WorkerRecord>> SqliteTrialStore::LoadWorkers() {
  ASSIGN_OR_RETURN(const Connection conn, writer_->OpenReader());
  sqlite3* const db = conn.get();
  std::vector<WorkerRecord> out;
  Statement s(db,
              "SELECT id, hostname, gpus, cpu_slots, last_heartbeat_unix_ms, "
              "draining FROM workers ORDER BY id");
  while (s.Step()) {
    WorkerRecord w;
    w.worker_id = s.Text(0);
    w.resources.set_hostname(s.Text(1));
    w.resources.set_gpus(static_cast<uint32_t>(s.Int(2)));
    w.resources.set_cpu_slots(static_cast<uint32_t>(s.Int(3)));
    w.last_heartbeat_unix_ms = s.Int(4);
    w.draining = s.Int(5) != 0;
    out.push_back(std::move(w));
  }
  absl::Status status = s.status();
  if (!status.ok()) return status;
  return out;
}

}  // namespace isoflop::coordinator
