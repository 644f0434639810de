// model.bin: the final weights of a trained Gpt and what rebuilds it, in the
// checkpoint format of checkpoint.h (header, named blobs, checksum, written
// atomically) with config_fingerprint kModelFileFingerprint, so a
// checkpoint.bin passed as a model is refused rather than misread.
//
// Blobs: "format" = "isoflop-model-1"; "dims" = 7 little-endian int64
// (vocab_size, context, d_model, n_layers, n_heads, d_ff, mup_base_width);
// "dtype" = "bf16" or "fp32"; "param/<i>" for i < Gpt::params().size(): the
// i-th parameter in that order, row-major, in "dtype".
#ifndef ISOFLOP_TRAINER_MODEL_FILE_H_
#define ISOFLOP_TRAINER_MODEL_FILE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/flops.h"
#include "trainer/model.h"

namespace isoflop::trainer {

inline constexpr char kModelFileName[] = "model.bin";
inline constexpr uint64_t kModelFileFingerprint = 0x69736f666d6f6431;

// Writes the parameters of `model` to `path` in `dtype` (kBFloat16: half the
// bytes, what the trainer writes by default; kFloat: bitwise). INVALID_ARGUMENT
// for another dtype; INTERNAL on I/O errors. Syncs the model's device.
absl::Status WriteModelFile(const std::string& path, const Gpt& model,
                            int64_t mup_base_width, at::ScalarType dtype);

struct LoadedModel {
  ModelDims dims;
  int64_t mup_base_width = 0;
  at::ScalarType file_dtype = at::kFloat;
  std::unique_ptr<Gpt> model;  // parameters on the device, in the asked dtype
};

// Reads `path` and rebuilds the model on `device` with parameters in `dtype`
// (kFloat or kBFloat16; they no longer require grad). NOT_FOUND if missing;
// DATA_LOSS for a torn or corrupt file or a missing or mis-sized blob;
// FAILED_PRECONDITION for a file that is not a model file (e.g. a training
// checkpoint).
absl::StatusOr<LoadedModel> ReadModelFile(const std::string& path,
                                          at::Device device,
                                          at::ScalarType dtype);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_MODEL_FILE_H_
