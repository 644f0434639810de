// The MLP's two GELU matmuls through cuBLASLt epilogues, so that the GELU and
// its gradient cost no pass of their own over the (rows, d_ff) activations:
//   forward   a = gelu_tanh(x w^T), pre = x w^T kept for the backward
//             (CUBLASLT_EPILOGUE_GELU_AUX; GELU alone without a backward),
//   backward  dpre = (dy w2) * gelu_tanh'(pre)   (CUBLASLT_EPILOGUE_DGELU).
// Written against cuBLASLt directly because ATen has no such op with a
// backward (`_addmm_activation` is forward only and needs a bias). Plain
// pointers, like kernels.h, so that this compiles without LibTorch headers.
// Row-major bf16 matrices, 16-byte aligned, k and n multiples of 8. Each call
// returns false when it cannot run (no kernels compiled, a shape cuBLASLt
// refuses, no algorithm) and the caller computes the same thing with ATen.
#ifndef ISOFLOP_TRAINER_CUDA_GELU_GEMM_H_
#define ISOFLOP_TRAINER_CUDA_GELU_GEMM_H_

#include <cstddef>
#include <cstdint>

namespace isoflop::trainer::cuda {

// What cuBLASLt runs with, from ATen (at::cuda::getCurrentCUDABlasLtHandle,
// getCUDABlasLtWorkspace(Size), the current stream and device).
struct LtContext {
  void* handle;
  void* workspace;
  size_t workspace_bytes;
  void* stream;
  int device;
};

// x (rows, k), w (n, k): a = gelu(x w^T) (rows, n) and, when `pre` is not
// null, pre = x w^T (rows, n).
bool LinearGelu(const LtContext& lt, const void* x, const void* w, int64_t rows,
                int64_t k, int64_t n, void* a, void* pre);

// dy (rows, k), w (k, n), pre (rows, n): dpre = (dy w) * gelu'(pre).
bool LinearGeluBackward(const LtContext& lt, const void* dy, const void* w,
                        const void* pre, int64_t rows, int64_t k, int64_t n,
                        void* dpre);

}  // namespace isoflop::trainer::cuda

#endif  // ISOFLOP_TRAINER_CUDA_GELU_GEMM_H_
