// TrialReader: the read side of the coordinator's store (docs/architecture.md
// §3), the queries the dashboard's JSON API (coordinator/http/) asks, as
// plain structs. Every SQL statement of the coordinator lives in
// coordinator/store/; SqliteTrialStore and FakeTrialStore implement this
// interface next to TrialStore and the conformance suite
// (tests/coordinator/trial_store_test.cc) holds both to it.
#ifndef ISOFLOP_COORDINATOR_STORE_TRIAL_READER_H_
#define ISOFLOP_COORDINATOR_STORE_TRIAL_READER_H_

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

// A sweep with its trials counted per state.
struct SweepSummary {
  std::string id, name, state;  // state: a SweepState name
  int64_t created_unix_ms = 0;
  bool paused = false;
  bool has_fit = false;  // a fit is stored (StoreFit)
  v1::SweepConfig config;
  std::map<std::string, int64_t> counts;  // TrialState name -> trials
  double best_val_loss = std::nan("");    // of the succeeded trials
};

// A trial as the dashboard lists it. step, train_loss and tokens_per_s are
// the current attempt's latest metric points when it has any (the core
// stores progress only as metric points), else the trial's stored fields.
struct TrialRow {
  std::string id;
  int64_t ordinal = 0;
  v1::TrialSpec spec;
  std::string state;  // a TrialState name
  uint32_t attempt = 0;
  std::string worker_id;
  int64_t step = 0;
  double train_loss = std::nan(""), val_loss = std::nan("");
  double tokens_per_s = std::nan("");
  int64_t updated_unix_ms = 0;
  std::string error;
};

struct TrialPageQuery {
  int offset = 0;                // >= 0
  int limit = 100;               // >= 1
  std::string sort = "ordinal";  // ordinal|n|d|flops|state|attempt|loss|
                                 // tokens_per_s|worker|updated (loss: val_loss,
                                 // else the stored train_loss); unknown
                                 // values are INVALID_ARGUMENT naming sort
  bool descending = false;  // unknown values last either way; ties by ordinal
  std::string state;        // "" or a TrialState name
  std::string search;       // "" or a substring of the trial or worker id
};

struct TrialPage {
  int64_t total = 0;  // trials matching state and search
  std::vector<TrialRow> rows;
};

// Which trial and attempt, for reading its points.
struct TrialRef {
  std::string id, sweep_id, state, worker_id;
  uint32_t attempt = 0;
  // From the trial's TrialSpec (n_total, tokens, steps, flops_budget,
  // flops_per_token): what a curve's x axis in tokens or FLOPs and its
  // colour by budget and size come from (dashboards/API.md, /curves).
  int64_t n_total = 0, tokens = 0, steps = 0;
  double flops_budget = 0, flops_per_token = 0;
};

// A metric's (step, value) points, by step.
using CurvePoints = std::vector<std::pair<int64_t, double>>;

struct WorkerRow {
  std::string id, hostname;
  uint32_t gpus = 0, cpu_slots = 0;
  int64_t registered_unix_ms = 0, last_heartbeat_unix_ms = 0;
  bool draining = false;
};

// One attempt of a trial as the attempts table holds it (StartAttempt,
// EndAttempt): ended_unix_ms 0 and outcome "" while it runs.
struct AttemptRow {
  uint32_t attempt = 0;
  std::string worker_id;
  uint64_t lease_epoch = 0;
  int64_t started_unix_ms = 0, ended_unix_ms = 0;
  std::string outcome;  // "OUTCOME_SUCCEEDED", "LEASE_EXPIRED", ...
  int exit_code = 0;
  std::string message;
  // The attempt's latest tokens_per_s point still stored (a later attempt's
  // point at the same step replaces it); NaN when none.
  double tokens_per_s = std::nan("");
};

// One trial with its sweep and every recorded attempt (the trial page).
struct TrialDetail {
  std::string sweep_id;
  TrialRow row;
  std::vector<AttemptRow> attempts;  // by attempt number
};

// A succeeded trial with a validation loss: a point of the scaling law.
struct LawPoint {
  std::string trial;
  double n = 0, d = 0, flops = 0, loss = 0;  // n_total, tokens, its budget
  // TrialSpec.unique_tokens and epochs (D / unique_tokens): the data
  // repetition a data-constrained law reads; 0 when not known.
  double unique_tokens = 0, epochs = 0;
};

// Every method is thread-safe and reads committed data only. UNAVAILABLE
// when the store cannot be read.
class TrialReader {
 public:
  virtual ~TrialReader() = default;

  // Sweeps in creation order (then id); `only` non-empty: that sweep alone
  // (none when unknown).
  virtual absl::StatusOr<std::vector<SweepSummary>> ReadSweeps(
      const std::string& only) = 0;
  // One page of a sweep's trials, filtered and sorted as `q` says.
  virtual absl::StatusOr<TrialPage> ReadTrialPage(const std::string& sweep_id,
                                                  const TrialPageQuery& q) = 0;
  // The trials of `sweep_id` named in `ids`, in that order (unknown ones
  // skipped).
  virtual absl::StatusOr<std::vector<TrialRef>> ReadTrialsById(
      const std::string& sweep_id, const std::vector<std::string>& ids) = 0;
  // LEASED or RUNNING trials of `sweep_id` ("": of every sweep) by ordinal,
  // at most `limit` (0: all).
  virtual absl::StatusOr<std::vector<TrialRef>> ReadRunningTrials(
      const std::string& sweep_id, int64_t limit) = 0;
  // The sweep's trials that were ever leased, the latest updated first (then
  // by ordinal), at most `limit`.
  virtual absl::StatusOr<std::vector<TrialRef>> ReadNewestTrials(
      const std::string& sweep_id, int64_t limit) = 0;
  // Metric `name` of `trial` past `since_step` (-1: all), one point per
  // step from attempts up to trial.attempt: the store keeps the latest
  // attempt's point of each step, so a resumed trial keeps its history. A
  // poller's since_step reads only the rows past it (an index range); a
  // live trial's whole curve may be served from what an earlier call read
  // plus the rows since.
  virtual absl::StatusOr<CurvePoints> ReadCurve(const TrialRef& trial,
                                                const std::string& name,
                                                int64_t since_step) = 0;
  // One trial by id with its attempts; nullopt when unknown.
  virtual absl::StatusOr<std::optional<TrialDetail>> ReadTrial(
      const std::string& trial_id) = 0;
  // Every registered worker, by id.
  virtual absl::StatusOr<std::vector<WorkerRow>> ReadWorkers() = 0;
  // The sweep's succeeded trials with a val_loss, by budget then N.
  virtual absl::StatusOr<std::vector<LawPoint>> ReadLawPoints(
      const std::string& sweep_id) = 0;
  // The sweep's stored fit (StoreFit), nullopt when none.
  virtual absl::StatusOr<std::optional<v1::ScalingLawFit>> ReadFit(
      const std::string& sweep_id) = 0;
  // A number that changes whenever a write has committed since the last
  // call read it (answer caches key on it); -1 when it cannot be read.
  virtual int64_t DataVersion() = 0;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_STORE_TRIAL_READER_H_
