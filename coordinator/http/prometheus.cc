// DashboardApi::PrometheusText: GET /metrics. Written by hand: the format is
// a few lines of text, and Debian ships no Prometheus C++ client.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coordinator/http/dashboard_api.h"

namespace isoflop::coordinator::http {
namespace {

void Family(std::string* out, const char* name, const char* type,
            const char* help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type,
                  "\n");
}

}  // namespace

std::string DashboardApi::PrometheusText() const {
  const Core::Stats s = core_->GetStats();
  std::string out;
  Family(&out, "isoflop_trials", "gauge", "Trials by state.");
  for (const auto& [state, n] : s.trials_by_state) {
    absl::StrAppend(&out, "isoflop_trials{state=\"", state, "\"} ", n, "\n");
  }
  Family(&out, "isoflop_queue_depth", "gauge",
         "Trials waiting for a worker (PENDING).");
  const auto pending = s.trials_by_state.find("PENDING");
  absl::StrAppend(&out, "isoflop_queue_depth ",
                  pending == s.trials_by_state.end() ? 0 : pending->second,
                  "\n");
  Family(&out, "isoflop_sweeps", "gauge", "Sweeps by state.");
  for (const auto& [state, n] : s.sweeps_by_state) {
    absl::StrAppend(&out, "isoflop_sweeps{state=\"", state, "\"} ", n, "\n");
  }
  Family(&out, "isoflop_workers_live", "gauge",
         "Workers heard from within 3 heartbeat intervals.");
  absl::StrAppend(&out, "isoflop_workers_live ", s.workers_live, "\n");
  Family(&out, "isoflop_metric_points_ingested_total", "counter",
         "Metric points committed (duplicates not counted).");
  absl::StrAppend(&out, "isoflop_metric_points_ingested_total ",
                  s.points_ingested, "\n");
  Family(&out, "isoflop_lease_expiries_total", "counter",
         "Leases ended by the coordinator, by reason.");
  absl::StrAppend(&out, "isoflop_lease_expiries_total{reason=\"ttl\"} ",
                  s.leases_expired, "\n",
                  "isoflop_lease_expiries_total{reason=\"worker_lost\"} ",
                  s.leases_worker_lost, "\n");
  Family(&out, "isoflop_fits_total", "counter", "Scaling-law fits stored.");
  absl::StrAppend(&out, "isoflop_fits_total ", s.fits, "\n");
  Family(&out, "isoflop_fit_seconds_total", "counter",
         "Seconds spent in stored fits.");
  absl::StrAppend(&out, "isoflop_fit_seconds_total ",
                  absl::StrFormat("%.6g", s.fit_seconds), "\n");
  if (store_faults_ != nullptr) {
    absl::StrAppend(&out, store_faults_->PrometheusText());
  }
  return out;
}

}  // namespace isoflop::coordinator::http
