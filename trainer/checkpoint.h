// Checkpoint files: named byte blobs behind a header and a checksum, written
// atomically. No LibTorch here: the trainer turns its state into blobs.
//
// Layout (little-endian): magic "ISOFCKP1", uint32 version = 1, uint32
// n_blobs, uint64 config_fingerprint; then per blob uint32 name_bytes, name,
// uint64 data_bytes, data; then uint64 checksum of every byte before it.
#ifndef ISOFLOP_TRAINER_CHECKPOINT_H_
#define ISOFLOP_TRAINER_CHECKPOINT_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace isoflop::trainer {

struct BlobView {  // borrowed: the bytes outlive the WriteCheckpoint call
  std::string name;
  std::span<const char> bytes;
};

struct Blob {
  std::string name;
  std::vector<char> bytes;
};

// Writes `blobs` to `path` through `path`.tmp, fsync and rename, so a reader
// sees the old file or the new one, never a torn one. INTERNAL on I/O errors.
absl::Status WriteCheckpoint(const std::string& path,
                             uint64_t config_fingerprint,
                             const std::vector<BlobView>& blobs);

// Reads and verifies a checkpoint. NOT_FOUND if `path` does not exist;
// DATA_LOSS naming the file and the defect (bad magic or version, truncated,
// checksum mismatch); FAILED_PRECONDITION if it was written for another
// configuration. Nothing is returned unless the whole file verified.
absl::StatusOr<std::vector<Blob>> ReadCheckpoint(const std::string& path,
                                                 uint64_t config_fingerprint);

// ---- Fenced checkpoint directories (issue 18 "split brain"; docs/faults.md).
// Each attempt of a trial writes DIR/checkpoint.<epoch>.bin, epoch being its
// lease epoch (epoch 0, a run outside a sweep: DIR/checkpoint.bin). DIR/fence
// holds the newest epoch that claimed DIR. Claims, checks and commits each
// hold an exclusive flock on DIR/fence, so a stale attempt's commit and a
// newer attempt's claim never interleave: once the newer attempt has claimed
// DIR, no older attempt renames a checkpoint into it, and an older attempt
// never writes the newer one's file in any case (the names differ).

// The checkpoint file name of `epoch` (no directory).
std::string CheckpointFileName(uint64_t epoch);

// Claims `dir` for `epoch`: ABORTED naming both epochs if a newer epoch
// claimed it; else records `epoch` (epoch 0 records nothing). UNAVAILABLE if
// the fence lock stays taken for 10 s; INTERNAL on I/O errors.
absl::Status ClaimCheckpointDir(const std::string& dir, uint64_t epoch);

// OK while no epoch newer than `epoch` has claimed `dir`, else ABORTED.
absl::Status CheckCheckpointFence(const std::string& dir, uint64_t epoch);

// Writes the checkpoint of `epoch` into `dir` (a temporary file, fsync);
// then, under the fence lock, ABORTED (and the temporary file removed) if a
// newer epoch has claimed `dir`, or the error `may_commit` (if set) returns;
// else renames it into place and removes the checkpoints of older epochs
// (superseded). INTERNAL on I/O errors.
absl::Status WriteFencedCheckpoint(
    const std::string& dir, uint64_t epoch, uint64_t config_fingerprint,
    const std::vector<BlobView>& blobs,
    const std::function<absl::Status()>& may_commit = nullptr);

// ---- Kept checkpoints of a trunk (docs/architecture.md "Trunks and
// branches"): DIR/kept.<step>.bin, the state after `step` steps, written by
// the trunk's --save-at-steps and read by its branches (--init-from), which
// may run on other workers mounting the same checkpoint root. Never
// superseded by a later checkpoint; the worker that ran the last branch
// needing one deletes it (worker/agent.cc).

// The kept checkpoint file name of `step` (no directory).
std::string KeptCheckpointFileName(int64_t step);

// The step of a kept checkpoint file name, or -1 for another file.
int64_t KeptStepOf(const std::string& file_name);

// Writes DIR/kept.<step>.bin as WriteFencedCheckpoint writes its file: under
// the fence lock, ABORTED if a newer epoch claimed `dir` or `may_commit`
// refuses; removes nothing.
absl::Status WriteKeptCheckpoint(
    const std::string& dir, uint64_t epoch, int64_t step,
    uint64_t config_fingerprint, const std::vector<BlobView>& blobs,
    const std::function<absl::Status()>& may_commit = nullptr);

// The checkpoint files in `dir` an attempt of `epoch` may resume from: those
// of epochs <= `epoch`, newest epoch first (full paths).
std::vector<std::string> ResumeCandidates(const std::string& dir,
                                          uint64_t epoch);

// 64-bit checksum used by the format (also a fingerprint of config strings).
uint64_t Checksum64(std::span<const char> bytes, uint64_t seed = 0);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_CHECKPOINT_H_
