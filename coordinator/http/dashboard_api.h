// DashboardApi: the JSON of the dashboard's HTTP API (/api/v1/, documented
// in dashboards/API.md), transport-free so that tests call it directly. It
// reads through the store's TrialReader (coordinator/store/trial_reader.h:
// every query is there) and shapes JSON; fits come only from the store (a
// sweep without one gets a fit queued on the core: "fit pending"). The
// polled answers (sweeps, sweep, trials, curves, workers) are cached per
// request within a freshness bound (AnswerCache), so polling tabs cost one
// query per bound, not one per poll, while the store ingests.
// Thread-safe: any HTTP thread may call any method.
#ifndef ISOFLOP_COORDINATOR_HTTP_DASHBOARD_API_H_
#define ISOFLOP_COORDINATOR_HTTP_DASHBOARD_API_H_

#include <cmath>
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
#include "coordinator/store/trial_reader.h"
#include "nlohmann/json.hpp"

namespace isoflop::coordinator::http {

// JSON has no NaN or infinity: those become null.
inline nlohmann::json Num(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

// offset >= 0, limit 1..1000; the rest as TrialPageQuery says.
using TrialQuery = TrialPageQuery;

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
  // `reader` and `core` (not owned, outlive this): the store's read side;
  // the core answers compute-optimal queries (the same code path as
  // `isoflop optimal`), trial logs and takes fit requests.
  DashboardApi(TrialReader* reader, Core* core,
               DashboardApiOptions options = {})
      : reader_(reader),
        core_(core),
        store_faults_(options.store_faults),
        answers_(reader, options.clock ? options.clock : &real_clock_,
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
  // IsoFLOP parabolas in ln N with vertices, the stored Approach-3 fit, the
  // frontier. A sweep with enough points but no stored fit yet gets one
  // queued (Core::RequestFit) and answers at once with fit null and
  // fit_pending true.
  absl::StatusOr<nlohmann::json> Law(const std::string& sweep_id) const;
  // Core::Optimal for `flops` from the sweep's stored fit.
  absl::StatusOr<nlohmann::json> Optimal(const std::string& sweep_id,
                                         double flops) const;
  // POST /api/v1/sweeps/{id}/{action}: `action` pause, resume, cancel or
  // retry (its FAILED trials, as `isoflop sweep retry --failed`) through the
  // core, as the CLI's verbs; {"id","state","paused"} after it.
  // INVALID_ARGUMENT naming an unknown action; the core's refusals as they
  // are (FAILED_PRECONDITION: pausing an ended sweep).
  absl::StatusOr<nlohmann::json> SweepAction(const std::string& sweep_id,
                                             const std::string& action) const;
  // {"workers":[{id,hostname,gpus,cpu_slots,registered_unix_ms,
  //   last_heartbeat_unix_ms,trials:[{id,sweep,state}]}]}
  absl::StatusOr<nlohmann::json> Workers() const;
  // GET /api/v1/trials/{id}/logs: Core::GetTrialLogs as
  // {trial,attempt,latest_attempt,state,finished,first_offset,next_offset,
  //  data} (data as text; invalid UTF-8 replaced by U+FFFD).
  absl::StatusOr<nlohmann::json> TrialLogs(const std::string& trial_id,
                                           int64_t attempt,
                                           int64_t offset) const;
  // GET /api/v1/trials/{id}: the trial's row, its resolved spec (as the
  // proto's JSON) and its attempts {attempt,worker,lease_epoch,
  // started_unix_ms,ended_unix_ms,outcome,exit_code,message,tokens_per_s};
  // NOT_FOUND for an unknown trial.
  absl::StatusOr<nlohmann::json> Trial(const std::string& trial_id) const;
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
  TrialReader* const reader_;
  Core* const core_;
  const StoreFaults* const store_faults_;
  RealClock real_clock_;
  mutable AnswerCache answers_;
  // Curves of ended attempts (which no longer change; a retry makes a new
  // attempt and key), (trial, attempt, metric, max points) -> {"n_raw",
  // "points"}. Bounded: cleared when full.
  mutable absl::Mutex curves_mu_;
  mutable std::map<std::tuple<std::string, int64_t, std::string, int>,
                   nlohmann::json>
      ended_curves_ ABSL_GUARDED_BY(curves_mu_);
};

}  // namespace isoflop::coordinator::http

#endif  // ISOFLOP_COORDINATOR_HTTP_DASHBOARD_API_H_
