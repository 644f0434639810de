// The coordinator's side of the workers' dataset reports
// (docs/architecture.md §2 "Datasets"): the check of a report at the RPC
// boundary, and what a sweep's data.dataset and model.vocab_size meet among
// the live workers: accepted (and its unique tokens), held PENDING with a
// reason, or refused. Pure functions over LeaseTable's view.
#ifndef ISOFLOP_COORDINATOR_SERVICE_DATASET_CHECK_H_
#define ISOFLOP_COORDINATOR_SERVICE_DATASET_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/service/lease_table.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

// At most this many datasets per report.
inline constexpr int kMaxWorkerDatasets = 1024;

// INVALID_ARGUMENT naming the field (datasets[i].name, ...), its value and
// the rule: names as data.dataset allows them (1 to 140 printable ASCII
// bytes, no '/', not starting with '.') and distinct; vocab_size >= 2;
// train_tokens >= 1; at most kMaxWorkerDatasets.
absl::Status ValidateWorkerDatasets(
    const google::protobuf::RepeatedPtrField<v1::WorkerDataset>& datasets);

struct SweepDataCheck {
  // Not OK: refuse the sweep at submit (FAILED_PRECONDITION: no live worker
  // holds the dataset; INVALID_ARGUMENT: the holders' vocabulary differs),
  // naming the field, the value and which workers hold which datasets.
  absl::Status refusal;
  // Non-empty: no live worker may run the sweep's trials now, and why
  // ("waiting for a worker that holds dataset X (no worker is live)"); set
  // with a refusal too (its message), for a sweep already submitted.
  std::string pending_reason;
  // The dataset's training tokens as a live holder with the right
  // vocabulary reported them (the first by worker id); 0 when none did.
  uint64_t unique_tokens = 0;
};

// What `dataset` with `vocab_size` meets among `live` (LeaseTable::
// LiveWorkerDatasets). A worker may run the trials when it is not draining
// and holds the dataset with that vocabulary, or reported no inventory (then
// nothing is refused: it may hold it). No live worker: pending, not refused.
SweepDataCheck CheckSweepData(
    const std::string& dataset, uint32_t vocab_size,
    const std::vector<LeaseTable::LiveDatasets>& live);

// unique_tokens and epochs (tokens / unique_tokens) of `spec` from
// `unique_tokens` when it is > 0 and the spec has none yet; returns whether
// it set them.
bool FillDataRepetition(uint64_t unique_tokens, v1::TrialSpec& spec);

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_DATASET_CHECK_H_
