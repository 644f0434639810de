// Checkpoint files: named byte blobs behind a header and a checksum, written
// atomically. No LibTorch here: the trainer turns its state into blobs.
//
// Layout (little-endian): magic "ISOFCKP1", uint32 version = 1, uint32
// n_blobs, uint64 config_fingerprint; then per blob uint32 name_bytes, name,
// uint64 data_bytes, data; then uint64 checksum of every byte before it.
#ifndef ISOFLOP_TRAINER_CHECKPOINT_H_
#define ISOFLOP_TRAINER_CHECKPOINT_H_

#include <cstdint>
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

// 64-bit checksum used by the format (also a fingerprint of config strings).
uint64_t Checksum64(std::span<const char> bytes, uint64_t seed = 0);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_CHECKPOINT_H_
