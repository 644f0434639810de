#include "trainer/model_file.h"

#include <ATen/core/grad_mode.h>
#include <torch/cuda.h>

#include <array>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "trainer/checkpoint.h"

namespace isoflop::trainer {
namespace {

constexpr char kFormat[] = "isoflop-model-1";

std::span<const char> Bytes(const at::Tensor& t) {  // contiguous CPU
  return {static_cast<const char*>(t.data_ptr()), t.nbytes()};
}

std::span<const char> Bytes(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

absl::Status WriteModelFile(const std::string& path, const Gpt& model,
                            int64_t mup_base_width, at::ScalarType dtype) {
  if (dtype != at::kFloat && dtype != at::kBFloat16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model dtype = ", c10::toString(dtype), ": must be fp32 or bf16"));
  }
  const ModelDims& d = model.dims();
  const std::array<int64_t, 7> dims = {d.vocab_size,  d.context, d.d_model,
                                       d.n_layers,    d.n_heads, d.d_ff,
                                       mup_base_width};
  const std::string dtype_name = dtype == at::kFloat ? "fp32" : "bf16";
  // Parameters may be written by kernels on a side stream (the training step).
  if (model.params()[0].is_cuda()) torch::cuda::synchronize();
  std::vector<at::Tensor> keep;  // the CPU copies the blobs point into
  keep.reserve(model.params().size());
  std::vector<BlobView> blobs = {
      {"format", Bytes(std::string_view(kFormat))},
      {"dims", {reinterpret_cast<const char*>(dims.data()), sizeof dims}},
      {"dtype", Bytes(std::string_view(dtype_name))}};
  for (size_t i = 0; i < model.params().size(); ++i) {
    keep.push_back(model.params()[i].detach().to(at::kCPU, dtype).contiguous());
    blobs.push_back({absl::StrCat("param/", i), Bytes(keep.back())});
  }
  return WriteCheckpoint(path, kModelFileFingerprint, blobs);
}

absl::StatusOr<LoadedModel> ReadModelFile(const std::string& path,
                                          at::Device device,
                                          at::ScalarType dtype) {
  ASSIGN_OR_RETURN(const std::vector<Blob> read,
                   ReadCheckpoint(path, kModelFileFingerprint));
  std::map<std::string, const Blob*> by_name;
  for (const Blob& b : read) by_name[b.name] = &b;
  auto get = [&](const std::string& name,
                 size_t bytes) -> absl::StatusOr<const Blob*> {
    auto it = by_name.find(name);
    if (it == by_name.end() || it->second->bytes.size() != bytes) {
      return absl::DataLossError(absl::StrCat(
          "model file ", path, ": blob ", name, " missing or of the wrong size",
          it == by_name.end() ? ""
                              : absl::StrCat(" (", it->second->bytes.size(),
                                             " bytes, expected ", bytes, ")")));
    }
    return it->second;
  };
  auto text = [](const Blob* b) {
    return std::string(b->bytes.begin(), b->bytes.end());
  };
  ASSIGN_OR_RETURN(const Blob* format, get("format", sizeof kFormat - 1));
  if (text(format) != kFormat) {
    return absl::DataLossError(absl::StrCat("model file ", path, ": format ",
                                            text(format), ", expected ",
                                            kFormat));
  }
  std::array<int64_t, 7> dims{};
  ASSIGN_OR_RETURN(const Blob* dims_blob, get("dims", sizeof dims));
  std::memcpy(dims.data(), dims_blob->bytes.data(), sizeof dims);
  auto dtype_it = by_name.find("dtype");
  const std::string file_dtype =
      dtype_it == by_name.end() ? "" : text(dtype_it->second);
  if (file_dtype != "fp32" && file_dtype != "bf16") {
    return absl::DataLossError(absl::StrCat(
        "model file ", path, ": dtype \"", file_dtype, "\": not fp32 or bf16"));
  }
  LoadedModel m;
  m.dims = {dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]};
  m.mup_base_width = dims[6];
  m.file_dtype = file_dtype == "fp32" ? at::kFloat : at::kBFloat16;
  const ModelDims& d = m.dims;
  if (d.vocab_size < 1 || d.context < 1 || d.d_model < 1 || d.n_layers < 1 ||
      d.n_heads < 1 || d.d_ff < 1 || d.d_model % d.n_heads != 0 ||
      m.mup_base_width < 0) {
    return absl::DataLossError(
        absl::StrCat("model file ", path, ": dims ", d.vocab_size, "/",
                     d.context, "/", d.d_model, "/", d.n_layers, "/", d.n_heads,
                     "/", d.d_ff, " do not describe a model"));
  }
  m.model = std::make_unique<Gpt>(d, device, m.mup_base_width);
  at::NoGradGuard no_grad;
  const std::vector<at::Tensor>& params = m.model->params();
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor p = params[i];
    ASSIGN_OR_RETURN(const Blob* b, get(absl::StrCat("param/", i),
                                        static_cast<size_t>(p.numel()) *
                                            c10::elementSize(m.file_dtype)));
    at::Tensor cpu = at::empty(p.sizes(), at::TensorOptions(m.file_dtype));
    std::memcpy(cpu.data_ptr(), b->bytes.data(), b->bytes.size());
    p.set_requires_grad(false);
    p.set_data(cpu.to(device, dtype));
  }
  return m;
}

}  // namespace isoflop::trainer
