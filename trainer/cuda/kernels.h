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

// Token + position embedding of ids laid out (rows / t, t) with row stride
// ids_stride: out[r] (rows, d) bf16 = tok[id of r] + pos[r % t] (fp32 add
// rounded to bf16, as ATen's), NaN for an id outside [0, v); d % 8 == 0. One
// pass where ATen's gather and broadcast add take two.
void EmbeddingForwardBf16(const void* tok, const void* pos, const int64_t* ids,
                          int64_t ids_stride, int64_t rows, int64_t t,
                          int64_t d, int64_t v, void* out, void* stream);

// Embedding backward: dweight (v, d) bf16 = the rows of grad (n, d) bf16
// summed by their ids (laid out as above) in fp32 (`scratch`: v * d floats
// on the device), rows whose id is outside [0, v) dropped; d % 8 == 0. One
// pass of vector atomics where ATen sorts the ids (six kernels); the order
// of the fp32 sums, and so the last bit, varies from run to run.
void EmbeddingBackwardBf16(const void* grad, const int64_t* ids,
                           int64_t ids_stride, int64_t t, int64_t n, int64_t d,
                           int64_t v, float* scratch, void* dweight,
                           void* stream);

// Copies `count` bf16 tensors (srcs[i]: sizes[i] elements) one after the
// other into dst (bf16, or fp32 when dst_fp32) in one launch per 128 tensors:
// ATen's cat splits its grid evenly between its inputs, which leaves most
// blocks idle when the sizes differ 20-fold (embeddings beside gains): 0.077 ms
// for the seed model's 46 MB on the H200 where this takes 0.026. It also writes
// the fp32 sums of the squares of the elements, one per block
// (PackBf16Blocks(sizes, count) floats in block_sumsq; none when it is null),
// for StepScalars: the gradient norm costs no pass of its own. Returns false,
// writing nothing, unless every size % 8 == 0 and every pointer is 16-byte
// aligned.
int64_t PackBf16Blocks(const int64_t* sizes, int count);
bool PackBf16(const void* const* srcs, const int64_t* sizes, int count,
              void* dst, bool dst_fp32, float* block_sumsq, void* stream);

// The optimizer's bookkeeping from the global gradient norm, given as n
// partial sums of its square (device fp32; summed in a fixed order), in one
// launch where ATen's ops take nine: found_inf = !isfinite(norm), clip =
// min(1, 1 / (norm + 1e-6)), step += 1 and skipped += 0, or step += 0 and
// skipped += 1 when found_inf.
void StepScalars(const float* sumsq, int64_t n, float* found_inf, float* clip,
                 float* step, float* skipped, void* stream);

// One AdamW step (ATen's _fused_adamw_ math; amsgrad and maximize off) over
// n elements of one parameter group, reading the gradient `grad` (n: bf16,
// or fp32 when grad_is_fp32, as all-reduced under DDP) directly: with
// g = fp32(grad) * *clip,
//   param *= 1 - lr * weight_decay, exp_avg = beta1 exp_avg + (1 - beta1) g,
//   exp_avg_sq = beta2 exp_avg_sq + (1 - beta2) g^2,
//   param -= lr / (1 - beta1^step) * exp_avg /
//            (sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps),
// then writes the bf16 working copy work = bf16(param). `param`,
// `exp_avg`, `exp_avg_sq` (n fp32) and `work` (n bf16) are updated in place.
// `lr`, `step` (the step count, already counting this step), `clip` and
// `found_inf` are fp32 device scalars read by the kernel (no host sync: a
// CUDA graph can capture it); when *found_inf != 0 nothing is written.
// One pass, 4 elements a thread when every pointer is 16-byte (fp32) and
// 8-byte (bf16) aligned. `stream` is a cudaStream_t. The ATen glue is
// Trainer::FusedAdamWStep (trainer/train.cc).
void FusedAdamWBf16(float* param, const void* grad, bool grad_is_fp32,
                    float* exp_avg, float* exp_avg_sq, void* work, int64_t n,
                    const float* lr, const float* step, const float* clip,
                    const float* found_inf, double beta1, double beta2,
                    double weight_decay, double eps, void* stream);

}  // namespace isoflop::trainer::cuda

#endif  // ISOFLOP_TRAINER_CUDA_KERNELS_H_
