#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cmath>
#include <type_traits>

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
    row_loss[row] =
        valid ? total.m + logf(total.s) - __bfloat162float(x[target]) : NAN;
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

// RMSNorm: lane l of a warp owns columns [8 (l + 32 k), +8) of its row for
// k < K (K = ceil(d / 256), a template argument so the arrays stay in
// registers).
constexpr int kNormWarps = 8;     // per block
constexpr int kNormBlocks = 264;  // backward grid: 2 per H100/H200 SM

struct Bf16x8 {
  float v[8];
  __device__ void Load(const __nv_bfloat16* p) {
    __nv_bfloat16 in[8];
    *reinterpret_cast<uint4*>(in) = *reinterpret_cast<const uint4*>(p);
    for (int k = 0; k < 8; ++k) v[k] = __bfloat162float(in[k]);
  }
  __device__ void Store(__nv_bfloat16* p) const {
    __nv_bfloat16 out[8];
    for (int k = 0; k < 8; ++k) out[k] = __float2bfloat16(v[k]);
    *reinterpret_cast<uint4*>(p) = *reinterpret_cast<uint4*>(out);
  }
};

__device__ float WarpSum(float v) {
  for (int off = 16; off > 0; off /= 2)
    v += __shfl_xor_sync(0xffffffff, v, off);
  return v;
}

template <int K>
__global__ void __launch_bounds__(kNormWarps * 32)
    RmsNormForwardKernel(const __nv_bfloat16* __restrict__ x,
                         const __nv_bfloat16* __restrict__ add,
                         __nv_bfloat16* __restrict__ sum,
                         const __nv_bfloat16* __restrict__ w, int64_t rows,
                         int64_t d, float eps, __nv_bfloat16* __restrict__ y,
                         float* __restrict__ rstd) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * int64_t{kNormWarps} + threadIdx.x / 32;
  if (row >= rows) return;
  Bf16x8 xs[K];
  float ss = 0;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t col = 8 * (lane + 32 * k);
    if (col < d) {
      xs[k].Load(x + row * d + col);
      if (add != nullptr) {  // sum = x + add, rounded to bf16 as stored
        Bf16x8 as;
        as.Load(add + row * d + col);
        for (int j = 0; j < 8; ++j)
          xs[k].v[j] = __bfloat162float(__float2bfloat16(xs[k].v[j] + as.v[j]));
        xs[k].Store(sum + row * d + col);
      }
      for (int j = 0; j < 8; ++j) ss += xs[k].v[j] * xs[k].v[j];
    }
  }
  const float r = rsqrtf(WarpSum(ss) / static_cast<float>(d) + eps);
  if (lane == 0) rstd[row] = r;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t col = 8 * (lane + 32 * k);
    if (col < d) {
      Bf16x8 ws;
      ws.Load(w + col);
      for (int j = 0; j < 8; ++j) xs[k].v[j] *= r * ws.v[j];
      xs[k].Store(y + row * d + col);
    }
  }
}

// dx = r (g - xhat mean(g xhat)), g = dy w, xhat = x r; dw = sum_rows dy xhat.
// Each warp walks rows with a grid stride, reads a row twice (the second time
// from L1/L2) so that only its dw stays in registers; the block's warps then
// add theirs into partials[blockIdx.x].
template <int K>
__global__ void __launch_bounds__(kNormWarps * 32)
    RmsNormBackwardKernel(const __nv_bfloat16* __restrict__ dy,
                          const __nv_bfloat16* __restrict__ dsum,
                          const __nv_bfloat16* __restrict__ x,
                          const __nv_bfloat16* __restrict__ w,
                          const float* __restrict__ rstd, int64_t rows,
                          int64_t d, __nv_bfloat16* __restrict__ dx,
                          float* __restrict__ partials) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float dw[K][8] = {};
  for (int64_t row = blockIdx.x * int64_t{kNormWarps} + warp; row < rows;
       row += int64_t{gridDim.x} * kNormWarps) {
    const float r = rstd[row];
    float dot = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t col = 8 * (lane + 32 * k);
      if (col < d) {
        Bf16x8 xs, gs, ws;
        xs.Load(x + row * d + col);
        gs.Load(dy + row * d + col);
        ws.Load(w + col);
        for (int j = 0; j < 8; ++j) dot += gs.v[j] * ws.v[j] * xs.v[j];
      }
    }
    const float mean = WarpSum(dot) * r / static_cast<float>(d);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t col = 8 * (lane + 32 * k);
      if (col < d) {
        Bf16x8 xs, gs, ws;
        xs.Load(x + row * d + col);
        gs.Load(dy + row * d + col);
        ws.Load(w + col);
        for (int j = 0; j < 8; ++j) {
          const float xhat = xs.v[j] * r;
          dw[k][j] += gs.v[j] * xhat;
          gs.v[j] = r * (gs.v[j] * ws.v[j] - xhat * mean);
        }
        if (dsum != nullptr) {  // the residual's own gradient
          Bf16x8 ds;
          ds.Load(dsum + row * d + col);
          for (int j = 0; j < 8; ++j) gs.v[j] += ds.v[j];
        }
        gs.Store(dx + row * d + col);
      }
    }
  }
  __shared__ float sum[kMaxNormDim];
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) sum[c] = 0;
  __syncthreads();
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t col = 8 * (lane + 32 * k);
    if (col < d)
      for (int j = 0; j < 8; ++j) atomicAdd(&sum[col + j], dw[k][j]);
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x)
    partials[blockIdx.x * d + c] = sum[c];
}

// dw[c] = sum over blocks of partials[b][c], in a fixed order.
__global__ void SumPartialsKernel(const float* __restrict__ partials,
                                  int blocks, int64_t d,
                                  __nv_bfloat16* __restrict__ dw) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= d) return;
  float s = 0;
  for (int b = 0; b < blocks; ++b) s += partials[b * d + c];
  dw[c] = __float2bfloat16(s);
}

// Calls f(std::integral_constant<int, K>) with the smallest K in {1, 2, 4, 8}
// that covers d columns.
template <typename F>
void WithChunks(int64_t d, F f) {
  if (d <= 256) {
    f(std::integral_constant<int, 1>());
  } else if (d <= 512) {
    f(std::integral_constant<int, 2>());
  } else if (d <= 1024) {
    f(std::integral_constant<int, 4>());
  } else {
    f(std::integral_constant<int, 8>());
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

void RmsNormForwardBf16(const void* x, const void* add, void* sum,
                        const void* w, int64_t rows, int64_t d, float eps,
                        void* y, float* rstd, void* stream) {
  if (rows == 0) return;
  const auto blocks =
      static_cast<unsigned>((rows + kNormWarps - 1) / kNormWarps);
  WithChunks(d, [&](auto k) {
    RmsNormForwardKernel<decltype(k)::value>
        <<<blocks, kNormWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(
            static_cast<const __nv_bfloat16*>(x),
            static_cast<const __nv_bfloat16*>(add),
            static_cast<__nv_bfloat16*>(sum),
            static_cast<const __nv_bfloat16*>(w), rows, d, eps,
            static_cast<__nv_bfloat16*>(y), rstd);
  });
}

int64_t RmsNormPartials(int64_t d) { return kNormBlocks * d; }

void RmsNormBackwardBf16(const void* dy, const void* dsum, const void* x,
                         const void* w, const float* rstd, int64_t rows,
                         int64_t d, void* dx, void* dw, float* partials,
                         void* stream) {
  auto* s = static_cast<cudaStream_t>(stream);
  WithChunks(d, [&](auto k) {
    RmsNormBackwardKernel<decltype(k)::value>
        <<<kNormBlocks, kNormWarps * 32, 0, s>>>(
            static_cast<const __nv_bfloat16*>(dy),
            static_cast<const __nv_bfloat16*>(dsum),
            static_cast<const __nv_bfloat16*>(x),
            static_cast<const __nv_bfloat16*>(w), rstd, rows, d,
            static_cast<__nv_bfloat16*>(dx), partials);
  });
  SumPartialsKernel<<<static_cast<unsigned>((d + 255) / 256), 256, 0, s>>>(
      partials, kNormBlocks, d, static_cast<__nv_bfloat16*>(dw));
}

}  // namespace isoflop::trainer::cuda
