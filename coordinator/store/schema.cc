// The store's schema and every migration of it, in one place
// (docs/architecture.md §3 lists the tables).
#include "coordinator/store/schema.h"

namespace isoflop::coordinator {

const std::vector<std::string>& Schema() {
  static const auto* kSchema =
      new std::vector<std::string>{R"sql(
CREATE TABLE sweeps(
  id TEXT PRIMARY KEY, name TEXT NOT NULL, config BLOB NOT NULL,
  state TEXT NOT NULL, created_unix_ms INTEGER NOT NULL);
CREATE TABLE trials(
  id TEXT PRIMARY KEY, sweep_id TEXT NOT NULL REFERENCES sweeps(id),
  ordinal INTEGER NOT NULL, spec BLOB NOT NULL,
  n_total INTEGER NOT NULL, tokens INTEGER NOT NULL, flops_budget REAL NOT NULL,
  state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,
  lease_epoch INTEGER NOT NULL DEFAULT 0, worker_id TEXT NOT NULL DEFAULT '',
  step INTEGER NOT NULL DEFAULT 0, train_loss REAL, val_loss REAL, tokens_per_s REAL,
  error TEXT NOT NULL DEFAULT '', updated_unix_ms INTEGER NOT NULL DEFAULT 0);
CREATE INDEX trials_by_sweep ON trials(sweep_id, ordinal);
CREATE TABLE attempts(
  trial_id TEXT NOT NULL REFERENCES trials(id), attempt INTEGER NOT NULL,
  worker_id TEXT NOT NULL, lease_epoch INTEGER NOT NULL,
  started_unix_ms INTEGER NOT NULL, ended_unix_ms INTEGER,
  outcome TEXT, exit_code INTEGER, message TEXT,
  PRIMARY KEY(trial_id, attempt));
CREATE TABLE workers(
  id TEXT PRIMARY KEY, hostname TEXT NOT NULL, gpus INTEGER NOT NULL,
  cpu_slots INTEGER NOT NULL, registered_unix_ms INTEGER NOT NULL,
  last_heartbeat_unix_ms INTEGER NOT NULL);
CREATE TABLE metrics(
  trial_id TEXT NOT NULL REFERENCES trials(id), attempt INTEGER NOT NULL,
  step INTEGER NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
  unix_ms INTEGER NOT NULL,
  PRIMARY KEY(trial_id, attempt, step, name)) WITHOUT ROWID;
CREATE TABLE fits(
  sweep_id TEXT PRIMARY KEY REFERENCES sweeps(id), fit BLOB NOT NULL,
  e REAL, a REAL, b REAL, alpha REAL, beta REAL, n_points INTEGER,
  created_unix_ms INTEGER NOT NULL))sql",
                                   // 2: the dashboard's per-state
                                   // counts and best loss read
                                   // this index alone.
                                   R"sql(
CREATE INDEX trials_by_sweep_state ON trials(sweep_id, state, val_loss))sql",
                                   // 3: sweep retry --failed.
                                   R"sql(
ALTER TABLE trials ADD COLUMN retry_base INTEGER NOT NULL DEFAULT 0)sql",
                                   // 4: sweep pause / resume.
                                   R"sql(
ALTER TABLE sweeps ADD COLUMN paused INTEGER NOT NULL DEFAULT 0)sql",
                                   // 5: worker drain / undrain.
                                   R"sql(
ALTER TABLE workers ADD COLUMN draining INTEGER NOT NULL DEFAULT 0)sql",
                                   // 6: trial logs (the trainer's
                                   // stdout and stderr, a tail).
                                   R"sql(
CREATE TABLE trial_logs(
  trial_id TEXT NOT NULL REFERENCES trials(id), attempt INTEGER NOT NULL,
  start INTEGER NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY(trial_id, attempt, start)))sql",
                                   // 7: one row per (trial, step, name)
                                   // across attempts, the latest
                                   // attempt's (docs/faults.md).
                                   R"sql(
CREATE TABLE metrics_v7(
  trial_id TEXT NOT NULL REFERENCES trials(id), attempt INTEGER NOT NULL,
  step INTEGER NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
  unix_ms INTEGER NOT NULL,
  PRIMARY KEY(trial_id, name, step)) WITHOUT ROWID;
INSERT INTO metrics_v7(trial_id, attempt, step, name, value, unix_ms)
  SELECT trial_id, max(attempt), step, name, value, unix_ms FROM metrics
  GROUP BY trial_id, name, step;
DROP TABLE metrics;
ALTER TABLE metrics_v7 RENAME TO metrics)sql",
                                   // 8: the trial spec as JSON and
                                   // views over it for SQL users
                                   // (docs/import-export.md).
                                   R"sql(
ALTER TABLE trials ADD COLUMN spec_json TEXT;
CREATE VIEW trial_view AS SELECT
  t.id AS trial_id, t.sweep_id, s.name AS sweep_name, t.ordinal, t.state,
  t.attempt, t.step, t.worker_id,
  t.n_total AS params, t.tokens, t.flops_budget AS budget,
  CAST(json_extract(t.spec_json, '$.flops') AS REAL) AS flops,
  CAST(json_extract(t.spec_json, '$.flops_per_token') AS REAL)
    AS flops_per_token,
  CAST(json_extract(t.spec_json, '$.n_non_embedding') AS INTEGER)
    AS n_non_embedding,
  CAST(json_extract(t.spec_json, '$.shape.d_model') AS INTEGER) AS d_model,
  CAST(json_extract(t.spec_json, '$.shape.n_layers') AS INTEGER) AS n_layers,
  CAST(json_extract(t.spec_json, '$.shape.n_heads') AS INTEGER) AS n_heads,
  CAST(json_extract(t.spec_json, '$.shape.d_ff') AS INTEGER) AS d_ff,
  CAST(json_extract(t.spec_json, '$.model.context') AS INTEGER) AS context,
  CAST(json_extract(t.spec_json, '$.model.vocab_size') AS INTEGER)
    AS vocab_size,
  json_extract(t.spec_json, '$.dataset') AS dataset,
  CAST(json_extract(t.spec_json, '$.steps') AS INTEGER) AS steps,
  CAST(json_extract(t.spec_json, '$.training.batch_sequences') AS INTEGER)
    AS batch_sequences,
  CAST(json_extract(t.spec_json, '$.training.lr') AS REAL) AS lr,
  CAST(json_extract(t.spec_json, '$.training.beta2') AS REAL) AS beta2,
  CAST(json_extract(t.spec_json, '$.gpus') AS INTEGER) AS gpus,
  json_extract(t.spec_json, '$.role') AS role,
  t.train_loss, t.val_loss, t.tokens_per_s, t.error, t.updated_unix_ms,
  t.spec_json
FROM trials AS t JOIN sweeps AS s ON s.id = t.sweep_id;
CREATE VIEW sweep_view AS SELECT
  s.id AS sweep_id, s.name, s.state, s.paused, s.created_unix_ms,
  (SELECT count(*) FROM trials AS t WHERE t.sweep_id = s.id) AS trials,
  (SELECT count(*) FROM trials AS t
     WHERE t.sweep_id = s.id AND t.state = 'SUCCEEDED') AS succeeded,
  (SELECT min(val_loss) FROM trials AS t
     WHERE t.sweep_id = s.id AND t.state = 'SUCCEEDED') AS best_val_loss,
  f.e, f.a, f.b, f.alpha, f.beta, f.n_points AS fit_points
FROM sweeps AS s LEFT JOIN fits AS f ON f.sweep_id = s.id)sql"};
  return *kSchema;
}

}  // namespace isoflop::coordinator
