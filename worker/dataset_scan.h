// The datasets a worker holds: each DATA/<name>/ under its --data-dir with a
// train.bin and a meta.json (written by `isoflop data prepare`/`synth`,
// data/prepare.cc, data/synth.cc; layout in common/token_file.h). Only
// meta.json is read (cheap enough to rescan every few seconds); the worker
// reports the result to the coordinator (RegisterWorker, Heartbeat), which
// checks submitted sweeps against it (docs/architecture.md §2 "Datasets").
#ifndef ISOFLOP_WORKER_DATASET_SCAN_H_
#define ISOFLOP_WORKER_DATASET_SCAN_H_

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::worker {

// The coordinator takes at most this many per report
// (coordinator/service/dataset_check.h kMaxWorkerDatasets); the others, by
// name, are skipped.
inline constexpr size_t kMaxReportedDatasets = 1024;

// What one scan found: the usable datasets by name, and one line per
// directory skipped ("DATA/x: meta.json: train_tokens = -3: must be an
// integer >= 1"), by path.
struct DatasetScan {
  std::vector<v1::WorkerDataset> datasets;
  std::vector<std::string> skipped;
};

// Parses one meta.json's text for the dataset `name`: vocab_size (integer
// >= 2, < 2^32), train_tokens (integer >= 1), val_tokens (integer >= 0) are
// required; documents and bytes (integers >= 0) are read when present.
// INVALID_ARGUMENT naming the key, its value and the rule otherwise.
absl::StatusOr<v1::WorkerDataset> ParseDatasetMeta(const std::string& name,
                                                   const std::string& json);

// Every subdirectory of `data_dir` whose name is a dataset name (1 to 140
// printable ASCII bytes, no '/', not starting with '.') holding train.bin and
// a valid meta.json; the others with a file in them are in `skipped` with
// the reason. An unreadable or missing `data_dir` gives no datasets and one
// skipped line.
DatasetScan ScanDatasets(const std::filesystem::path& data_dir);

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_DATASET_SCAN_H_
