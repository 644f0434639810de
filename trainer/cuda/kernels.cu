#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cmath>

#include "trainer/cuda/kernels.h"

namespace isoflop::trainer::cuda {
namespace {

constexpr int kThreads = 512;

// Running (max, sum of exp(x - max)) of a soft-max, merged associatively.
struct MaxSum {
  float m, s;
};

__device__ MaxSum Merge(MaxSum a, MaxSum b) {
  if (a.m < b.m) {
    const MaxSum t = a;
    a = b;
    b = t;
  }
  if (b.m == -INFINITY) return a;
  return {a.m, a.s + b.s * __expf(b.m - a.m)};
}

__device__ MaxSum Add(MaxSum a, float x) { return Merge(a, MaxSum{x, 1.f}); }

__device__ MaxSum BlockReduce(MaxSum v) {
  __shared__ MaxSum warp_results[kThreads / 32];
  for (int off = 16; off > 0; off /= 2) {
    v = Merge(v, MaxSum{__shfl_xor_sync(0xffffffff, v.m, off),
                        __shfl_xor_sync(0xffffffff, v.s, off)});
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_results[warp] = v;
  __syncthreads();
  v = lane < kThreads / 32 ? warp_results[lane] : MaxSum{-INFINITY, 0.f};
  for (int off = 16; off > 0; off /= 2) {
    v = Merge(v, MaxSum{__shfl_xor_sync(0xffffffff, v.m, off),
                        __shfl_xor_sync(0xffffffff, v.s, off)});
  }
  return v;  // every thread holds the row's result
}

// kVec bf16 per load: 8 (16 bytes) when v % 8 == 0, else 1.
template <int kVec>
__global__ void __launch_bounds__(kThreads)
    SoftmaxCrossEntropyKernel(const __nv_bfloat16* __restrict__ logits,
                              const int64_t* __restrict__ targets, int64_t v,
                              float grad_scale, float* __restrict__ row_loss,
                              __nv_bfloat16* __restrict__ grad) {
  const int64_t row = blockIdx.x;
  const __nv_bfloat16* x = logits + row * v;
  const int64_t chunks = v / kVec;
  MaxSum acc{-INFINITY, 0.f};
  for (int64_t c = threadIdx.x; c < chunks; c += kThreads) {
    __nv_bfloat16 in[kVec];
    if constexpr (kVec == 8) {
      *reinterpret_cast<uint4*>(in) = reinterpret_cast<const uint4*>(x)[c];
    } else {
      in[0] = x[c];
    }
    for (int k = 0; k < kVec; ++k) acc = Add(acc, __bfloat162float(in[k]));
  }
  const MaxSum total = BlockReduce(acc);
  const int64_t target = targets[row];
  const bool valid = target >= 0 && target < v;
  if (threadIdx.x == 0) {
    row_loss[row] = valid ? total.m + logf(total.s) -
                                __bfloat162float(x[target])
                          : NAN;
  }
  if (grad == nullptr) return;
  const float inv = 1.f / total.s;
  __nv_bfloat16* g = grad + row * v;
  for (int64_t c = threadIdx.x; c < chunks; c += kThreads) {
    __nv_bfloat16 in[kVec], out[kVec];
    if constexpr (kVec == 8) {
      *reinterpret_cast<uint4*>(in) = reinterpret_cast<const uint4*>(x)[c];
    } else {
      in[0] = x[c];
    }
    for (int k = 0; k < kVec; ++k) {
      float p = __expf(__bfloat162float(in[k]) - total.m) * inv;
      if (c * kVec + k == target) p -= 1.f;
      out[k] = __float2bfloat16(p * grad_scale);
    }
    if constexpr (kVec == 8) {
      reinterpret_cast<uint4*>(g)[c] = *reinterpret_cast<uint4*>(out);
    } else {
      g[c] = out[0];
    }
  }
}

}  // namespace

bool Compiled() { return true; }

void SoftmaxCrossEntropyBf16(const void* logits, const int64_t* targets,
                             int64_t n, int64_t v, float grad_scale,
                             float* row_loss, void* grad, void* stream) {
  if (n == 0) return;
  auto* s = static_cast<cudaStream_t>(stream);
  const auto* x = static_cast<const __nv_bfloat16*>(logits);
  auto* g = static_cast<__nv_bfloat16*>(grad);
  if (v % 8 == 0) {
    SoftmaxCrossEntropyKernel<8>
        <<<n, kThreads, 0, s>>>(x, targets, v, grad_scale, row_loss, g);
  } else {
    SoftmaxCrossEntropyKernel<1>
        <<<n, kThreads, 0, s>>>(x, targets, v, grad_scale, row_loss, g);
  }
}

}  // namespace isoflop::trainer::cuda
