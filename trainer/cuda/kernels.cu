#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
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

// The 8 bf16 of a 16-byte chunk, kept packed in 4 registers until used.
__device__ uint4 Load16(const __nv_bfloat16* p) {
  return *reinterpret_cast<const uint4*>(p);
}

__device__ void Store16(__nv_bfloat16* p, uint4 u) {
  *reinterpret_cast<uint4*>(p) = u;
}

__device__ void Unpack(uint4 u, float (&f)[8]) {
  const auto* h = reinterpret_cast<const __nv_bfloat162*>(&u);
  for (int i = 0; i < 4; ++i) {
    const float2 p = __bfloat1622float2(h[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

// Rounds to nearest even, as __float2bfloat16 does.
__device__ uint4 Pack(const float (&f)[8]) {
  uint4 u;
  auto* h = reinterpret_cast<__nv_bfloat162*>(&u);
  for (int i = 0; i < 4; ++i)
    h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
  return u;
}

// The row-in-registers cross entropy (v % 8 == 0): thread t of the block
// holds the 16-byte chunks t + blockDim.x * k (k < kRowChunks) of its row, so
// that the row is read from memory once; the host picks blockDim.x (a
// multiple of 32, at most kRowThreads) with blockDim.x * kRowChunks * 8 >= v.
// 8 chunks (32 registers) per thread rather than 4 on twice the threads:
// fewer threads pay the per-thread overhead (~32 registers), so more rows fit
// on an SM (64 registers a thread: v = 10000 runs 6 blocks of 160 threads per
// SM, v = 32000 2 of 512, v = 50304 1 of 800).
constexpr int kRowThreads = 1024;
constexpr int kRowChunks = 8;
constexpr float kLog2e = 1.4426950408889634f;
// Four bf16 -inf: what a chunk past the row's end holds (no effect on the max,
// exp gives 0).
constexpr unsigned kNegInfPair = 0xff80ff80u;
static_assert(kRowThreads * kRowChunks * 8 == kMaxRowInRegistersV);

// 2^x in one MUFU instruction (what __expf is built on), so that exp(x - m)
// costs one FFMA plus this.
__device__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// op over the block of blockDim.x (a multiple of 32) threads, every thread
// getting the result; `warp_partials` is 32 floats of shared memory used by
// this call alone, `identity` op's neutral element.
template <typename Op>
__device__ float BlockAllReduce(float v, float* warp_partials, Op op,
                                float identity) {
  for (int off = 16; off > 0; off /= 2)
    v = op(v, __shfl_xor_sync(0xffffffff, v, off));
  const unsigned lane = threadIdx.x % 32;
  if (lane == 0) warp_partials[threadIdx.x / 32] = v;
  __syncthreads();
  v = lane < blockDim.x / 32 ? warp_partials[lane] : identity;
  for (int off = 16; off > 0; off /= 2)
    v = op(v, __shfl_xor_sync(0xffffffff, v, off));
  return v;
}

__global__ void __launch_bounds__(kRowThreads)
    SoftmaxCrossEntropyRowKernel(const __nv_bfloat16* __restrict__ logits,
                                 const int64_t* __restrict__ targets, int v,
                                 float grad_scale, float* __restrict__ row_loss,
                                 __nv_bfloat16* __restrict__ grad) {
  __shared__ float warp_max[32], warp_sum[32];
  const int64_t row = blockIdx.x;
  const int chunks = v / 8;
  const __nv_bfloat16* x = logits + row * v;
  const int64_t target = targets[row];
  const bool valid = target >= 0 && target < v;
  uint4 in[kRowChunks];
#pragma unroll
  for (int k = 0; k < kRowChunks; ++k) {
    const int c = static_cast<int>(threadIdx.x + blockDim.x * k);
    in[k] = c < chunks ? Load16(x + 8 * c)
                       : make_uint4(kNegInfPair, kNegInfPair, kNegInfPair,
                                    kNegInfPair);
  }
  // Thread 0 writes the loss: its load of the target's logit overlaps the
  // row's.
  float target_logit = 0;
  if (threadIdx.x == 0 && valid) target_logit = __bfloat162float(x[target]);
  // The max in bf16 pairs: exact, and half the instructions.
  __nv_bfloat162 m2 = __float2bfloat162_rn(-INFINITY);
#pragma unroll
  for (int k = 0; k < kRowChunks; ++k) {
    const auto* h = reinterpret_cast<const __nv_bfloat162*>(&in[k]);
    for (int i = 0; i < 4; ++i) m2 = __hmax2(m2, h[i]);
  }
  const float m = BlockAllReduce(
      fmaxf(__low2float(m2), __high2float(m2)), warp_max,
      [](float a, float b) { return fmaxf(a, b); }, -INFINITY);
  // exp(x - m) = 2^(x log2(e) - m log2(e)).
  const float m_log2e = m * kLog2e;
  float s = 0;
#pragma unroll
  for (int k = 0; k < kRowChunks; ++k) {
    float f[8];
    Unpack(in[k], f);
    for (int j = 0; j < 8; ++j) s += Exp2(fmaf(f[j], kLog2e, -m_log2e));
  }
  s = BlockAllReduce(
      s, warp_sum, [](float a, float b) { return a + b; }, 0.f);
  if (threadIdx.x == 0)
    row_loss[row] = valid ? m + logf(s) - target_logit : NAN;
  if (grad == nullptr) return;
  const float inv = 1.f / s;
  const int target_col = valid ? static_cast<int>(target) : -1;
  __nv_bfloat16* g = grad + row * v;
#pragma unroll
  for (int k = 0; k < kRowChunks; ++k) {
    const int c = static_cast<int>(threadIdx.x + blockDim.x * k);
    if (c < chunks) {
      const int target_j = target_col - 8 * c;  // in [0, 8) if in this chunk
      float f[8];
      Unpack(in[k], f);
      for (int j = 0; j < 8; ++j) {
        float p = Exp2(fmaf(f[j], kLog2e, -m_log2e)) * inv;
        if (j == target_j) p -= 1.f;
        f[j] = p * grad_scale;
      }
      Store16(g + 8 * c, Pack(f));
    }
  }
}

// RMSNorm: lane l of a warp owns columns [8 (l + 32 k), +8) of its row for
// k < K (K = ceil(d / 256), a template argument so the arrays stay in
// registers).
constexpr int kNormWarps = 8;  // per block
constexpr int kSms = 132;      // H100 SXM, H200

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
  // w is loaded with the row, off the path after the reduction.
  uint4 xs[K], ws[K];
  float ss = 0;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t col = 8 * (lane + 32 * k);
    if (col < d) {
      xs[k] = Load16(x + row * d + col);
      ws[k] = Load16(w + col);
      float f[8];
      Unpack(xs[k], f);
      if (add != nullptr) {  // sum = x + add, rounded to bf16 as stored
        float a[8];
        Unpack(Load16(add + row * d + col), a);
        for (int j = 0; j < 8; ++j) f[j] += a[j];
        xs[k] = Pack(f);
        Store16(sum + row * d + col, xs[k]);
        Unpack(xs[k], f);
      }
      for (int j = 0; j < 8; ++j) ss += f[j] * f[j];
    }
  }
  const float r = rsqrtf(WarpSum(ss) / static_cast<float>(d) + eps);
  if (lane == 0) rstd[row] = r;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t col = 8 * (lane + 32 * k);
    if (col < d) {
      float f[8], wf[8];
      Unpack(xs[k], f);
      Unpack(ws[k], wf);
      for (int j = 0; j < 8; ++j) f[j] *= r * wf[j];
      Store16(y + row * d + col, Pack(f));
    }
  }
}

// Blocks per SM of the backward, its grid being kSms times that: it keeps a
// row's x, dy and dsum in registers (12 per 8 columns) besides dw (8 per 8
// columns), so fewer blocks fit as K grows (the most that fit without spills);
// each warp's loads of a whole row are in flight together.
template <int K>
constexpr int kBackwardBlocksPerSm = K == 1   ? 6
                                     : K == 2 ? 4
                                     : K == 4 ? 2
                                              : 1;

// dx = r (g - xhat mean(g xhat)), g = dy w, xhat = x r; dw = sum_rows dy xhat.
// Each warp walks rows with a grid stride, reading each row once into
// registers (dsum along with the rest, so its latency overlaps theirs; w,
// the same for every row, is read from L1 where it is used) and adding to its
// dw, which stays in registers; the block's warps then add theirs into
// partials[blockIdx.x].
template <int K>
__global__ void __launch_bounds__(kNormWarps * 32, kBackwardBlocksPerSm<K>)
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
    uint4 xs[K], gs[K], ds[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t col = 8 * (lane + 32 * k);
      if (col < d) {
        xs[k] = Load16(x + row * d + col);
        gs[k] = Load16(dy + row * d + col);
        if (dsum != nullptr) ds[k] = Load16(dsum + row * d + col);
      }
    }
    float dot = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t col = 8 * (lane + 32 * k);
      if (col < d) {
        float xf[8], gf[8], wf[8];
        Unpack(xs[k], xf);
        Unpack(gs[k], gf);
        Unpack(Load16(w + col), wf);
        for (int j = 0; j < 8; ++j) dot += gf[j] * wf[j] * xf[j];
      }
    }
    const float mean = WarpSum(dot) * r / static_cast<float>(d);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t col = 8 * (lane + 32 * k);
      if (col < d) {
        float xf[8], gf[8], wf[8];
        Unpack(xs[k], xf);
        Unpack(gs[k], gf);
        Unpack(Load16(w + col), wf);
        for (int j = 0; j < 8; ++j) {
          const float xhat = xf[j] * r;
          dw[k][j] += gf[j] * xhat;
          gf[j] = r * (gf[j] * wf[j] - xhat * mean);
        }
        if (dsum != nullptr) {  // the residual's own gradient
          float df[8];
          Unpack(ds[k], df);
          for (int j = 0; j < 8; ++j) gf[j] += df[j];
        }
        Store16(dx + row * d + col, Pack(gf));
      }
    }
  }
  // The block's 8 warps' dw, summed in a fixed order through shared memory
  // without atomics (shared float atomics with 8 warps on the same columns
  // kept the L1 pipe busy for most of the kernel: 19 of 22 us at 4096 x 512).
  // Warps 4-7 store theirs, warps 0-3 add theirs to them, then each column's
  // 4 slots are summed.
  constexpr int kCols = K * 256;
  __shared__ float4 part[kNormWarps / 2][kCols / 4];
  auto slot = [&](int k) {
    return &part[warp % (kNormWarps / 2)][2 * (lane + 32 * k)];
  };
  if (warp >= kNormWarps / 2) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      float4* p = slot(k);
      p[0] = make_float4(dw[k][0], dw[k][1], dw[k][2], dw[k][3]);
      p[1] = make_float4(dw[k][4], dw[k][5], dw[k][6], dw[k][7]);
    }
  }
  __syncthreads();
  if (warp < kNormWarps / 2) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      float4* p = slot(k);
      const float4 a = p[0], b = p[1];
      p[0] = make_float4(a.x + dw[k][0], a.y + dw[k][1], a.z + dw[k][2],
                         a.w + dw[k][3]);
      p[1] = make_float4(b.x + dw[k][4], b.y + dw[k][5], b.z + dw[k][6],
                         b.w + dw[k][7]);
    }
  }
  __syncthreads();
  const float* sum = reinterpret_cast<const float*>(part);
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    float s = 0;
    for (int u = 0; u < kNormWarps / 2; ++u) s += sum[u * kCols + c];
    partials[blockIdx.x * d + c] = s;
  }
}

// dw[c] = sum over blocks of partials[b][c], in a fixed order: block i sums
// columns [32 i, +32), warp u of it the partials b = u, u + kSumWarps, ...,
// then lane l of warp 0 the warps' sums of its column (many loads in flight,
// where one thread per column walking all blocks waited on each in turn).
constexpr int kSumWarps = 32;

__global__ void __launch_bounds__(kSumWarps * 32)
    SumPartialsKernel(const float* __restrict__ partials, int blocks, int64_t d,
                      __nv_bfloat16* __restrict__ dw) {
  __shared__ float warp_sums[kSumWarps][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t c = blockIdx.x * int64_t{32} + lane;
  float s = 0;
  if (c < d)
    for (int b = warp; b < blocks; b += kSumWarps) s += partials[b * d + c];
  warp_sums[warp][lane] = s;
  __syncthreads();
  if (warp != 0 || c >= d) return;
  s = 0;
  for (int u = 0; u < kSumWarps; ++u) s += warp_sums[u][lane];
  dw[c] = __float2bfloat16(s);
}

// The id of row `row` of (rows / t, t) ids laid out with row stride
// ids_stride: the one layout rule of both embedding kernels.
__device__ int64_t IdOfRow(const int64_t* ids, int64_t ids_stride, int64_t t,
                           int64_t row) {
  return ids[(row / t) * ids_stride + row % t];
}

// Embedding backward, a warp per gradient row: its 8-column chunks added
// into the fp32 scratch row of its id (16-byte vector atomics on sm_90).
__global__ void __launch_bounds__(kNormWarps * 32)
    EmbeddingScatterKernel(const __nv_bfloat16* __restrict__ grad,
                           const int64_t* __restrict__ ids, int64_t ids_stride,
                           int64_t t, int64_t n, int64_t d, int64_t v,
                           float* __restrict__ scratch) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * int64_t{kNormWarps} + threadIdx.x / 32;
  if (row >= n) return;
  const int64_t id = IdOfRow(ids, ids_stride, t, row);
  if (id < 0 || id >= v) return;
  for (int64_t col = 8 * lane; col < d; col += 8 * 32) {
    float f[8];
    Unpack(Load16(grad + row * d + col), f);
    float* dst = scratch + id * d + col;
#if __CUDA_ARCH__ >= 900
    atomicAdd(reinterpret_cast<float4*>(dst),
              make_float4(f[0], f[1], f[2], f[3]));
    atomicAdd(reinterpret_cast<float4*>(dst + 4),
              make_float4(f[4], f[5], f[6], f[7]));
#else
    for (int j = 0; j < 8; ++j) atomicAdd(dst + j, f[j]);
#endif
  }
}

// out[r] = tok[id of r] + pos[r % t], a warp per row.
__global__ void __launch_bounds__(kNormWarps * 32)
    EmbeddingForwardKernel(const __nv_bfloat16* __restrict__ tok,
                           const __nv_bfloat16* __restrict__ pos,
                           const int64_t* __restrict__ ids, int64_t ids_stride,
                           int64_t rows, int64_t t, int64_t d, int64_t v,
                           __nv_bfloat16* __restrict__ out) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * int64_t{kNormWarps} + threadIdx.x / 32;
  if (row >= rows) return;
  const int64_t id = IdOfRow(ids, ids_stride, t, row);
  const bool valid = id >= 0 && id < v;
  for (int64_t col = 8 * lane; col < d; col += 8 * 32) {
    float a[8], b[8];
    Unpack(Load16(pos + (row % t) * d + col), b);
    if (valid) Unpack(Load16(tok + id * d + col), a);
    for (int j = 0; j < 8; ++j) a[j] = valid ? a[j] + b[j] : NAN;
    Store16(out + row * d + col, Pack(a));
  }
}

// out = bf16(in), 8 elements per thread (n % 8 == 0).
__global__ void CastToBf16Kernel(const float* __restrict__ in, int64_t n,
                                 __nv_bfloat16* __restrict__ out) {
  const int64_t i = 8 * (blockIdx.x * int64_t{blockDim.x} + threadIdx.x);
  if (i >= n) return;
  const float4 a = *reinterpret_cast<const float4*>(in + i);
  const float4 b = *reinterpret_cast<const float4*>(in + i + 4);
  const float f[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
  Store16(out + i, Pack(f));
}

// PackBf16: up to kPackChunk tensors per launch, by value.
constexpr int kPackChunk = 128;
struct PackArgs {
  const __nv_bfloat16* src[kPackChunk];
  int64_t end[kPackChunk];  // exclusive prefix sums of the sizes
  int count;
};

// Thread t copies elements [8 t, 8 t + 8) of the concatenation: it finds
// its tensor by bisection over the ends (sizes % 8 == 0: a chunk never
// straddles two tensors), and writes them as bf16 or (kToFp32) fp32. Block b
// also writes the fp32 sum of the squares of its elements to block_sumsq[b]
// unless block_sumsq is null.
constexpr int kPackThreads = 256;
template <bool kToFp32>
__global__ void __launch_bounds__(kPackThreads)
    PackBf16Kernel(PackArgs a, void* __restrict__ dst,
                   float* __restrict__ block_sumsq) {
  const int64_t e = 8 * (blockIdx.x * int64_t{kPackThreads} + threadIdx.x);
  float sq = 0;
  if (e < a.end[a.count - 1]) {
    int lo = 0, hi = a.count - 1;  // the first i with end[i] > e
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (a.end[mid] > e) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    const int64_t begin = lo == 0 ? 0 : a.end[lo - 1];
    const uint4 chunk = Load16(a.src[lo] + (e - begin));
    float f[8];
    Unpack(chunk, f);
    if constexpr (kToFp32) {
      auto* out = reinterpret_cast<float4*>(static_cast<float*>(dst) + e);
      out[0] = make_float4(f[0], f[1], f[2], f[3]);
      out[1] = make_float4(f[4], f[5], f[6], f[7]);
    } else {
      Store16(static_cast<__nv_bfloat16*>(dst) + e, chunk);
    }
    for (int j = 0; j < 8; ++j) sq += f[j] * f[j];
  }
  if (block_sumsq == nullptr) return;  // uniform over the block
  __shared__ float warp_sums[32];
  sq = BlockAllReduce(
      sq, warp_sums, [](float x, float y) { return x + y; }, 0.f);
  if (threadIdx.x == 0) block_sumsq[blockIdx.x] = sq;
}

// The optimizer's per-step scalars from the squared gradient norm's n
// partial sums, summed in a fixed order by one block.
constexpr int kScalarThreads = 1024;
__global__ void __launch_bounds__(kScalarThreads)
    StepScalarsKernel(const float* __restrict__ sumsq, int64_t n,
                      float* found_inf, float* clip, float* step,
                      float* skipped) {
  float s = 0;
  for (int64_t i = threadIdx.x; i < n; i += kScalarThreads) s += sumsq[i];
  __shared__ float warp_sums[32];
  s = BlockAllReduce(
      s, warp_sums, [](float x, float y) { return x + y; }, 0.f);
  if (threadIdx.x != 0) return;
  const float norm = sqrtf(s);
  const bool bad = !isfinite(norm);
  *found_inf = bad ? 1.f : 0.f;
  *clip = fminf(1.f, 1.f / (norm + 1e-6f));
  *step += bad ? 0.f : 1.f;
  *skipped += bad ? 1.f : 0.f;
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

int BackwardBlocks(int64_t d) {
  int blocks = 0;
  WithChunks(d, [&](auto k) {
    blocks = kSms * kBackwardBlocksPerSm<decltype(k)::value>;
  });
  return blocks;
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
  if (v % 8 != 0) {
    SoftmaxCrossEntropyKernel<1>
        <<<n, kThreads, 0, s>>>(x, targets, v, grad_scale, row_loss, g);
  } else if (0 < v && v <= kMaxRowInRegistersV) {
    // Whole warps of kRowChunks chunks each.
    constexpr int64_t kPerWarp = 32 * kRowChunks * 8;
    const auto threads =
        static_cast<unsigned>((v + kPerWarp - 1) / kPerWarp * 32);
    SoftmaxCrossEntropyRowKernel<<<n, threads, 0, s>>>(
        x, targets, static_cast<int>(v), grad_scale, row_loss, g);
  } else {
    SoftmaxCrossEntropyKernel<8>
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

int64_t RmsNormPartials(int64_t d) { return BackwardBlocks(d) * d; }

void RmsNormBackwardBf16(const void* dy, const void* dsum, const void* x,
                         const void* w, const float* rstd, int64_t rows,
                         int64_t d, void* dx, void* dw, float* partials,
                         void* stream) {
  auto* s = static_cast<cudaStream_t>(stream);
  const int blocks = BackwardBlocks(d);
  WithChunks(d, [&](auto k) {
    RmsNormBackwardKernel<decltype(k)::value>
        <<<blocks, kNormWarps * 32, 0, s>>>(
            static_cast<const __nv_bfloat16*>(dy),
            static_cast<const __nv_bfloat16*>(dsum),
            static_cast<const __nv_bfloat16*>(x),
            static_cast<const __nv_bfloat16*>(w), rstd, rows, d,
            static_cast<__nv_bfloat16*>(dx), partials);
  });
  SumPartialsKernel<<<static_cast<unsigned>((d + 31) / 32), kSumWarps * 32, 0,
                      s>>>(partials, blocks, d,
                           static_cast<__nv_bfloat16*>(dw));
}

void EmbeddingForwardBf16(const void* tok, const void* pos, const int64_t* ids,
                          int64_t ids_stride, int64_t rows, int64_t t,
                          int64_t d, int64_t v, void* out, void* stream) {
  if (rows == 0) return;
  EmbeddingForwardKernel<<<
      static_cast<unsigned>((rows + kNormWarps - 1) / kNormWarps),
      kNormWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<const __nv_bfloat16*>(tok),
      static_cast<const __nv_bfloat16*>(pos), ids, ids_stride, rows, t, d, v,
      static_cast<__nv_bfloat16*>(out));
}

void EmbeddingBackwardBf16(const void* grad, const int64_t* ids,
                           int64_t ids_stride, int64_t t, int64_t n, int64_t d,
                           int64_t v, float* scratch, void* dweight,
                           void* stream) {
  auto* s = static_cast<cudaStream_t>(stream);
  cudaMemsetAsync(scratch, 0, static_cast<size_t>(v * d) * sizeof(float), s);
  if (n > 0) {
    EmbeddingScatterKernel<<<static_cast<unsigned>((n + kNormWarps - 1) /
                                                   kNormWarps),
                             kNormWarps * 32, 0, s>>>(
        static_cast<const __nv_bfloat16*>(grad), ids, ids_stride, t, n, d, v,
        scratch);
  }
  const int64_t chunks = v * d / 8;
  CastToBf16Kernel<<<static_cast<unsigned>((chunks + 255) / 256), 256, 0, s>>>(
      scratch, v * d, static_cast<__nv_bfloat16*>(dweight));
}

int64_t PackBf16Blocks(const int64_t* sizes, int count) {
  int64_t blocks = 0;
  for (int first = 0; first < count; first += kPackChunk) {
    int64_t total = 0;
    for (int i = first; i < std::min(count, first + kPackChunk); ++i)
      total += sizes[i];
    blocks += (total / 8 + kPackThreads - 1) / kPackThreads;
  }
  return blocks;
}

bool PackBf16(const void* const* srcs, const int64_t* sizes, int count,
              void* dst, bool dst_fp32, float* block_sumsq, void* stream) {
  for (int i = 0; i < count; ++i) {
    if (sizes[i] % 8 != 0 || reinterpret_cast<uintptr_t>(srcs[i]) % 16 != 0)
      return false;
  }
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0) return false;
  auto* out = static_cast<char*>(dst);
  const int64_t elem = dst_fp32 ? 4 : 2;
  for (int first = 0; first < count; first += kPackChunk) {
    PackArgs a{};
    a.count = std::min(kPackChunk, count - first);
    int64_t total = 0;
    for (int i = 0; i < a.count; ++i) {
      a.src[i] = static_cast<const __nv_bfloat16*>(srcs[first + i]);
      total += sizes[first + i];
      a.end[i] = total;
    }
    const int64_t blocks = (total / 8 + kPackThreads - 1) / kPackThreads;
    if (blocks > 0) {
      const auto grid = static_cast<unsigned>(blocks);
      const auto s = static_cast<cudaStream_t>(stream);
      if (dst_fp32) {
        PackBf16Kernel<true><<<grid, kPackThreads, 0, s>>>(a, out, block_sumsq);
      } else {
        PackBf16Kernel<false>
            <<<grid, kPackThreads, 0, s>>>(a, out, block_sumsq);
      }
    }
    out += total * elem;
    if (block_sumsq != nullptr) block_sumsq += blocks;
  }
  return true;
}

void StepScalars(const float* sumsq, int64_t n, float* found_inf, float* clip,
                 float* step, float* skipped, void* stream) {
  StepScalarsKernel<<<1, kScalarThreads, 0,
                      static_cast<cudaStream_t>(stream)>>>(sumsq, n, found_inf,
                                                           clip, step, skipped);
}

}  // namespace isoflop::trainer::cuda
