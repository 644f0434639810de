// Hand-written CUDA kernels of the training step, behind a plain C++ API (raw
// pointers and a stream: no LibTorch headers, so nvcc compiles them in
// seconds). The ATen glue and the CPU reference are in trainer/model.cc;
// tests/trainer/kernel_check.cc compares the two on the GPU (label gpu).
// Written by hand because no dependency has them: ATen's soft-max + gather +
// scatter + scale make three passes over the (N, V) logits where one will do.
#ifndef ISOFLOP_TRAINER_CUDA_KERNELS_H_
#define ISOFLOP_TRAINER_CUDA_KERNELS_H_

#include <cstdint>

namespace isoflop::trainer::cuda {

// True when this build compiled the kernels (CMake found nvcc).
bool Compiled();

// Soft-max cross entropy of `logits` (n, v) bf16 row-major against
// `targets` (n,) int64, in fp32: row_loss[i] = logsumexp(logits[i]) -
// logits[i][targets[i]] (NaN when a target is outside [0, v)). When `grad`
// (n, v) bf16 is not null, also grad = (softmax(logits) - onehot) *
// grad_scale, the gradient of grad_scale * sum(row_loss). One block per row:
// when v % 8 == 0 and v <= kMaxRowInRegistersV the row is read once into
// registers, else twice (the second time from L2); one write. `stream` is a
// cudaStream_t.
constexpr int64_t kMaxRowInRegistersV = 65536;
void SoftmaxCrossEntropyBf16(const void* logits, const int64_t* targets,
                             int64_t n, int64_t v, float grad_scale,
                             float* row_loss, void* grad, void* stream);

// RMSNorm of `x` (rows, d) bf16 with gain `w` (d) bf16, fp32 inside:
// y = x * rstd * w, rstd[i] = 1 / sqrt(mean(x[i]^2) + eps) (kept for the
// backward). With `add` (rows, d) not null, the residual add of a pre-norm
// block is fused in: sum = bf16(x + add) is written and normalised instead
// of x. d % 8 == 0 and d <= kMaxNormDim. One warp per row.
constexpr int64_t kMaxNormDim = 2048;
void RmsNormForwardBf16(const void* x, const void* add, void* sum,
                        const void* w, int64_t rows, int64_t d, float eps,
                        void* y, float* rstd, void* stream);

// Its backward from dy (rows, d) bf16: dx (rows, d) bf16 and dw (d) bf16,
// in one read of the rows plus a sum of per-block partials of dw
// (`partials`: RmsNormPartials(d) floats of scratch on the device). `x` is
// what was normalised (the sum when fused); with `dsum` not null, the
// gradient arriving at that sum is added to dx (the residual's own path).
int64_t RmsNormPartials(int64_t d);
void RmsNormBackwardBf16(const void* dy, const void* dsum, const void* x,
                         const void* w, const float* rstd, int64_t rows,
                         int64_t d, void* dx, void* dw, float* partials,
                         void* stream);

// Embedding backward: dweight (v, d) bf16 = the rows of grad (n, d) bf16
// summed by ids (n,) int64 in fp32 (`scratch`: v * d floats on the device),
// rows whose id is outside [0, v) dropped; d % 8 == 0. One pass of vector
// atomics where ATen sorts the ids (six kernels); the order of the fp32 sums,
// and so the last bit, varies from run to run.
void EmbeddingBackwardBf16(const void* grad, const int64_t* ids, int64_t n,
                           int64_t d, int64_t v, float* scratch,
                           void* dweight, void* stream);

}  // namespace isoflop::trainer::cuda

#endif  // ISOFLOP_TRAINER_CUDA_KERNELS_H_
