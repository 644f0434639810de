// A CoordinatorClient for tests: records every request and answers from
// scripted queues (default answers when a queue is empty). Not thread-safe.
#ifndef ISOFLOP_WORKER_FAKE_COORDINATOR_CLIENT_H_
#define ISOFLOP_WORKER_FAKE_COORDINATOR_CLIENT_H_

#include <deque>
#include <string>
#include <vector>

#include "worker/coordinator_client.h"

namespace isoflop::worker {

class FakeCoordinatorClient final : public CoordinatorClient {
 public:
  FakeCoordinatorClient() {
    register_default_.set_worker_id("w-fake");
    register_default_.set_lease_ttl_ms(30'000);
    register_default_.set_heartbeat_interval_ms(2'000);
  }

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request) override {
    registers.push_back(request);
    return Next(register_errors_, register_default_);
  }
  absl::StatusOr<v1::LeaseTrialResponse> LeaseTrial(
      const v1::LeaseTrialRequest& request) override {
    leases.push_back(request);
    if (!lease_errors_.empty())
      return Next(lease_errors_, v1::LeaseTrialResponse());
    if (assignments_.empty()) return v1::LeaseTrialResponse();
    v1::LeaseTrialResponse r = assignments_.front();
    assignments_.pop_front();
    return r;
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request) override {
    heartbeats.push_back(request);
    v1::HeartbeatResponse r;
    if (!revoke_next_.empty()) {
      *r.mutable_revoked() = {revoke_next_.begin(), revoke_next_.end()};
      revoke_next_.clear();
    }
    return Next(heartbeat_errors_, r);
  }
  absl::StatusOr<v1::ReportMetricsResponse> ReportMetrics(
      const v1::ReportMetricsRequest& request) override {
    metric_calls.push_back(request);
    v1::ReportMetricsResponse r;
    r.set_accepted(request.points_size());
    absl::StatusOr<v1::ReportMetricsResponse> out = Next(metrics_errors_, r);
    if (out.ok()) metrics.push_back(request);
    return out;
  }
  absl::StatusOr<v1::ReportOutcomeResponse> ReportOutcome(
      const v1::ReportOutcomeRequest& request) override {
    outcome_calls.push_back(request);
    absl::StatusOr<v1::ReportOutcomeResponse> out =
        Next(outcome_errors_, v1::ReportOutcomeResponse());
    if (out.ok()) outcomes.push_back(request);
    return out;
  }

  absl::StatusOr<v1::ReportLogsResponse> ReportLogs(
      const v1::ReportLogsRequest& request) override {
    log_calls.push_back(request);
    v1::ReportLogsResponse r;
    r.set_next_offset(request.offset() + request.data().size());
    absl::StatusOr<v1::ReportLogsResponse> out = Next(logs_errors_, r);
    if (out.ok()) logs.push_back(request);
    return out;
  }

  // Scripting.
  void QueueAssignment(const v1::TrialSpec& spec, uint32_t attempt = 1,
                       uint64_t epoch = 1) {
    v1::LeaseTrialResponse r;
    r.set_has_assignment(true);
    *r.mutable_spec() = spec;
    r.set_attempt(attempt);
    r.set_lease_epoch(epoch);
    assignments_.push_back(r);
  }
  void QueueResponse(const v1::LeaseTrialResponse& r) {
    assignments_.push_back(r);
  }
  void RevokeOnNextHeartbeat(const v1::LeaseRef& lease) {
    revoke_next_.push_back(lease);
  }
  void FailRegister(absl::Status s) {
    register_errors_.push_back(std::move(s));
  }
  void FailLease(absl::Status s) { lease_errors_.push_back(std::move(s)); }
  void FailHeartbeat(absl::Status s) {
    heartbeat_errors_.push_back(std::move(s));
  }
  void FailMetrics(absl::Status s) { metrics_errors_.push_back(std::move(s)); }
  void FailOutcome(absl::Status s) { outcome_errors_.push_back(std::move(s)); }
  void FailLogs(absl::Status s) { logs_errors_.push_back(std::move(s)); }

  // Every request received; `metrics`, `outcomes` and `logs` hold the
  // accepted ones.
  std::vector<v1::RegisterWorkerRequest> registers;
  std::vector<v1::LeaseTrialRequest> leases;
  std::vector<v1::HeartbeatRequest> heartbeats;
  std::vector<v1::ReportMetricsRequest> metric_calls, metrics;
  std::vector<v1::ReportOutcomeRequest> outcome_calls, outcomes;
  std::vector<v1::ReportLogsRequest> log_calls, logs;

 private:
  template <typename T>
  static absl::StatusOr<T> Next(std::deque<absl::Status>& errors,
                                const T& ok_value) {
    if (errors.empty()) return ok_value;
    absl::Status s = errors.front();
    errors.pop_front();
    return s;
  }

  v1::RegisterWorkerResponse register_default_;
  std::deque<v1::LeaseTrialResponse> assignments_;
  std::vector<v1::LeaseRef> revoke_next_;
  std::deque<absl::Status> register_errors_, lease_errors_, heartbeat_errors_,
      metrics_errors_, outcome_errors_, logs_errors_;
};

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_FAKE_COORDINATOR_CLIENT_H_
