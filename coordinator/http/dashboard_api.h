// DashboardApi: the JSON of the dashboard's HTTP API (/api/v1/, documented
// in dashboards/API.md), transport-free so that tests call it directly.
// Every query opens its own read-only SQLite connection (WAL readers never
// block the store's writer thread) and aggregates, paginates and downsamples
// on the server, so a page's JSON stays small at 10^4 trials x 10^3 steps.
// The polled answers (sweeps, sweep, trials, curves, workers) are cached per
// request within a freshness bound (AnswerCache), so polling tabs cost one
// query per bound, not one per poll, while the store ingests.
// Thread-safe: any HTTP thread may call any method.
#ifndef ISOFLOP_COORDINATOR_HTTP_DASHBOARD_API_H_
#define ISOFLOP_COORDINATOR_HTTP_DASHBOARD_API_H_

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/http/answer_cache.h"
#include "coordinator/service/core.h"
#include "coordinator/store/store_faults.h"
#include "nlohmann/json.hpp"

struct sqlite3;

namespace isoflop::coordinator::http {

struct TrialQuery {
  int offset = 0;
  int limit = 100;               // 1..1000
  std::string sort = "ordinal";  // ordinal|n|d|flops|state|attempt|loss|
                                 // tokens_per_s|worker|updated
  bool descending = false;
  std::string state;   // "" or a TrialState name
  std::string search;  // substring of the trial id or worker id
};

struct CurveQuery {
  std::vector<std::string> trials;  // empty: `select`
  std::string select = "auto";      // running | auto (running, else the newest)
  std::string name = "train_loss";
  int max_trials = 24;   // 1..100
  int max_points = 200;  // per curve, 2..5000
  // Set (>= 0): only the points past this step, for a client that polls and
  // keeps what it has; each curve then reads only its new rows.
  std::optional<int64_t> since_step;
};

struct DashboardApiOptions {
  // The freshness bound of the polled answers (dashboards/API.md): an answer
  // is served from memory while younger than this, and at any age while
  // nothing was committed since. Zero: answers are always current.
  absl::Duration max_staleness = absl::Seconds(1);
  const Clock* clock = nullptr;  // not owned; null: the real clock
  // The store's fault counters, appended to GET /metrics; not owned, null:
  // none.
  const StoreFaults* store_faults = nullptr;
};

class DashboardApi {
 public:
  // `core` (not owned, outlives this) answers compute-optimal queries, the
  // same code path as `isoflop optimal`.
  DashboardApi(std::string db_path, Core* core,
               DashboardApiOptions options = {})
      : db_path_(std::move(db_path)),
        core_(core),
        store_faults_(options.store_faults),
        answers_(db_path_, options.clock ? options.clock : &real_clock_,
                 options.max_staleness) {}

  // Each returns INVALID_ARGUMENT naming the parameter for a bad query,
  // NOT_FOUND for an unknown sweep, UNAVAILABLE if the database cannot be
  // read.
  // {"sweeps":[{id,name,state,created_unix_ms,n_trials,counts:{STATE:n},
  //   ended,best_val_loss,has_fit}]}
  absl::StatusOr<nlohmann::json> Sweeps() const;
  // One sweep's summary as in Sweeps() plus budgets, shapes and the fit.
  absl::StatusOr<nlohmann::json> Sweep(const std::string& sweep_id) const;
  // {"total":n,"offset":o,"limit":l,"trials":[...]} sorted and filtered.
  absl::StatusOr<nlohmann::json> Trials(const std::string& sweep_id,
                                        const TrialQuery& q) const;
  // {"name":..,"curves":[{trial,attempt,state,n_raw,points:[[step,v],..]}]}
  // with at most max_points per curve: log-spaced step buckets, each the mean
  // of its points; the first and last points are kept as they are. With
  // since_step: only the points past it (n_raw counts those), and
  // "since_step" in the answer.
  absl::StatusOr<nlohmann::json> Curves(const std::string& sweep_id,
                                        const CurveQuery& q) const;
  // Everything the scaling-law page draws: succeeded points, per-budget
  // IsoFLOP parabolas in ln N with vertices, the Approach-3 fit (stored, or
  // a provisional one of the points so far, cached), the frontier.
  absl::StatusOr<nlohmann::json> Law(const std::string& sweep_id);
  // Core::Optimal for `flops` from the sweep's stored fit.
  absl::StatusOr<nlohmann::json> Optimal(const std::string& sweep_id,
                                         double flops) const;
  // {"workers":[{id,hostname,gpus,cpu_slots,registered_unix_ms,
  //   last_heartbeat_unix_ms,trials:[{id,sweep,state}]}]}
  absl::StatusOr<nlohmann::json> Workers() const;
  // GET /api/v1/trials/{id}/logs: Core::GetTrialLogs as
  // {trial,attempt,latest_attempt,state,finished,first_offset,next_offset,
  //  data} (data as text; invalid UTF-8 replaced by U+FFFD).
  absl::StatusOr<nlohmann::json> TrialLogs(const std::string& trial_id,
                                           int64_t attempt,
                                           int64_t offset) const;
  // GET /metrics: the coordinator's state and counters in Prometheus' text
  // format (version 0.0.4), from memory (no database read).
  std::string PrometheusText() const;
  // How many polled answers were served from memory and how many computed.
  AnswerCache::Stats answer_stats() const { return answers_.stats(); }

 private:
  // The uncached answers of the methods above.
  absl::StatusOr<nlohmann::json> ReadSweeps() const;
  absl::StatusOr<nlohmann::json> ReadSweep(const std::string& sweep_id) const;
  absl::StatusOr<nlohmann::json> ReadTrials(const std::string& sweep_id,
                                            const TrialQuery& q) const;
  absl::StatusOr<nlohmann::json> ReadCurves(const std::string& sweep_id,
                                            const CurveQuery& q) const;
  absl::StatusOr<nlohmann::json> ReadWorkers() const;
  // Curves' points of a live trial from live_curves_ plus the rows since
  // (nullopt when not cached or no longer appendable: read it all).
  absl::StatusOr<std::optional<nlohmann::json>> LiveCurvePoints(
      sqlite3* db, const std::string& trial, int64_t attempt,
      const CurveQuery& q) const;

  const std::string db_path_;
  Core* const core_;
  const StoreFaults* const store_faults_;
  RealClock real_clock_;
  mutable AnswerCache answers_;
  absl::Mutex fit_mu_;
  // sweep id -> (points key, fit JSON): provisional fits are seconds of CPU.
  std::map<std::string, std::pair<std::string, nlohmann::json>> fit_cache_
      ABSL_GUARDED_BY(fit_mu_);

  // What an ended trial's rows and curves read from the metrics table, which
  // no longer changes for that (trial, attempt); a retry makes a new attempt
  // and a new key. Bounded: cleared when full.
  struct LastPoints {
    bool has_loss = false, has_tokens_per_s = false;
    int64_t step = 0;
    double loss = 0, tokens_per_s = 0;
  };
  mutable absl::Mutex ended_mu_;
  mutable std::map<std::pair<std::string, int64_t>, LastPoints> last_points_
      ABSL_GUARDED_BY(ended_mu_);
  // (trial, attempt, metric, max points) -> {"n_raw", "points"}.
  mutable std::map<std::tuple<std::string, int64_t, std::string, int>,
                   nlohmann::json>
      ended_curves_ ABSL_GUARDED_BY(ended_mu_);
  // A live trial's curve so far (every attempt merged as Curves returns it)
  // and the last step of `attempt` read into it: the next call reads only
  // that attempt's rows past it (the PK range), not the whole curve again.
  struct LiveCurve {
    int64_t attempt = 0;
    int64_t last_step = 0;
    std::vector<std::pair<int64_t, double>> raw;
  };
  // (trial, metric) -> curve. Bounded: long curves are not kept; cleared
  // when full.
  mutable std::map<std::pair<std::string, std::string>, LiveCurve> live_curves_
      ABSL_GUARDED_BY(ended_mu_);
};

// Least squares loss = c0 + c1 x + c2 x^2 over (x, loss) pairs; false when
// fewer than 3 distinct x. Exposed for tests.
bool FitParabola(const std::vector<std::pair<double, double>>& xy,
                 double coef[3]);

}  // namespace isoflop::coordinator::http

#endif  // ISOFLOP_COORDINATOR_HTTP_DASHBOARD_API_H_
