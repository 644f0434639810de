// FusedAdamWBf16 (trainer/cuda/kernels.h): one pass over each element of a
// parameter group. The math mirrors ATen's _fused_adamw_
// (aten/src/ATen/native/cuda/fused_adam_utils.cuh), including where it
// computes in double, so the two agree to an fp32 rounding.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "trainer/cuda/kernels.h"

namespace isoflop::trainer::cuda {
namespace {

constexpr int kAdamThreads = 256;
constexpr int64_t kMaxAdamBlocks = 4096;  // grid-stride beyond this

// Device scalars and constants shared by every element of a launch.
struct AdamArgs {
  const float* lr;
  const float* step;
  const float* clip;
  const float* found_inf;
  double beta1, beta2, weight_decay, eps;
};

// The per-launch constants of one element's update.
struct AdamStep {
  double lr;
  float clip, bias_correction2_sqrt, step_size;
};

// One element: ATen's expressions and types term for term (its constants
// are double, its opmath type fp32). Returns the new parameter.
__device__ __forceinline__ float ToFloat(__nv_bfloat16 g) {
  return __bfloat162float(g);
}
__device__ __forceinline__ float ToFloat(float g) { return g; }

template <typename G>
__device__ __forceinline__ float Update(float p, G g, float& m, float& v,
                                        const AdamArgs& a, const AdamStep& s) {
  // The clipped fp32 gradient of the unfused path: fp32(g) * clip.
  const float gf = __fmul_rn(ToFloat(g), s.clip);
  if (a.weight_decay != 0) p -= s.lr * a.weight_decay * p;
  m = a.beta1 * m + (1 - a.beta1) * gf;
  v = a.beta2 * v + (1 - a.beta2) * gf * gf;
  const float denom = (sqrtf(v) / s.bias_correction2_sqrt) + a.eps;
  p -= s.step_size * m / denom;
  return p;
}

// Four gradients from 8 (bf16) or 16 (fp32) aligned bytes.
struct Grad4 {
  float v[4];
  __device__ explicit Grad4(const __nv_bfloat16* p) {
    __nv_bfloat16 g[4];
    *reinterpret_cast<uint2*>(g) = *reinterpret_cast<const uint2*>(p);
    for (int j = 0; j < 4; ++j) v[j] = __bfloat162float(g[j]);
  }
  __device__ explicit Grad4(const float* p) {
    const float4 g = *reinterpret_cast<const float4*>(p);
    v[0] = g.x, v[1] = g.y, v[2] = g.z, v[3] = g.w;
  }
};

// kVec elements per thread per iteration: 4 (16-byte fp32 and 8-byte bf16
// accesses; every pointer aligned for them) or 1. The last n % kVec
// elements go to the first threads of block 0. G: the gradient's type,
// __nv_bfloat16 (the working copy's) or float (all-reduced under DDP).
template <int kVec, typename G>
__global__ void __launch_bounds__(kAdamThreads)
    FusedAdamWKernel(float* __restrict__ param, const G* __restrict__ grad,
                     float* __restrict__ exp_avg,
                     float* __restrict__ exp_avg_sq,
                     __nv_bfloat16* __restrict__ work, int64_t n, AdamArgs a) {
  // ATen skips the whole update; the working copy then stays as it was too.
  if (*a.found_inf != 0.f) return;
  AdamStep s;
  s.lr = *a.lr;
  s.clip = *a.clip;
  // As ATen: bias corrections in double, then fp32.
  const double step = *a.step;
  const float bias_correction1 = static_cast<float>(1 - pow(a.beta1, step));
  s.bias_correction2_sqrt = static_cast<float>(sqrt(1 - pow(a.beta2, step)));
  s.step_size = static_cast<float>(s.lr / bias_correction1);
  const int64_t chunks = n / kVec;
  const int64_t stride = int64_t{gridDim.x} * kAdamThreads;
  for (int64_t c = blockIdx.x * int64_t{kAdamThreads} + threadIdx.x; c < chunks;
       c += stride) {
    if constexpr (kVec == 4) {
      float4 p = reinterpret_cast<const float4*>(param)[c];
      float4 m = reinterpret_cast<const float4*>(exp_avg)[c];
      float4 v = reinterpret_cast<const float4*>(exp_avg_sq)[c];
      const Grad4 g(grad + 4 * c);
      __nv_bfloat16 w[4];
      p.x = Update(p.x, g.v[0], m.x, v.x, a, s);
      p.y = Update(p.y, g.v[1], m.y, v.y, a, s);
      p.z = Update(p.z, g.v[2], m.z, v.z, a, s);
      p.w = Update(p.w, g.v[3], m.w, v.w, a, s);
      w[0] = __float2bfloat16_rn(p.x);
      w[1] = __float2bfloat16_rn(p.y);
      w[2] = __float2bfloat16_rn(p.z);
      w[3] = __float2bfloat16_rn(p.w);
      reinterpret_cast<float4*>(param)[c] = p;
      reinterpret_cast<float4*>(exp_avg)[c] = m;
      reinterpret_cast<float4*>(exp_avg_sq)[c] = v;
      reinterpret_cast<uint2*>(work)[c] = *reinterpret_cast<const uint2*>(w);
    } else {
      static_assert(kVec == 1);
      param[c] = Update(param[c], grad[c], exp_avg[c], exp_avg_sq[c], a, s);
      work[c] = __float2bfloat16_rn(param[c]);
    }
  }
  const int64_t tail = chunks * kVec + threadIdx.x;
  if (blockIdx.x == 0 && tail < n) {
    param[tail] =
        Update(param[tail], grad[tail], exp_avg[tail], exp_avg_sq[tail], a, s);
    work[tail] = __float2bfloat16_rn(param[tail]);
  }
}

bool Aligned(const void* p, uintptr_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

template <int kVec, typename G>
void LaunchAdamW(float* param, const G* grad, float* exp_avg, float* exp_avg_sq,
                 __nv_bfloat16* work, int64_t n, const AdamArgs& a,
                 cudaStream_t stream) {
  // At least one block: it also owns the tail of n % kVec < kThreads.
  const int64_t chunks = n / kVec;
  const auto blocks = static_cast<unsigned>(std::clamp<int64_t>(
      (chunks + kAdamThreads - 1) / kAdamThreads, 1, kMaxAdamBlocks));
  FusedAdamWKernel<kVec, G><<<blocks, kAdamThreads, 0, stream>>>(
      param, grad, exp_avg, exp_avg_sq, work, n, a);
}

}  // namespace

void FusedAdamWBf16(float* param, const void* grad, bool grad_is_fp32,
                    float* exp_avg, float* exp_avg_sq, void* work, int64_t n,
                    const float* lr, const float* step, const float* clip,
                    const float* found_inf, double beta1, double beta2,
                    double weight_decay, double eps, void* stream) {
  if (n <= 0) return;
  auto* w = static_cast<__nv_bfloat16*>(work);
  auto* s = static_cast<cudaStream_t>(stream);
  const AdamArgs a{lr, step, clip, found_inf, beta1, beta2, weight_decay, eps};
  auto launch = [&](const auto* g, uintptr_t grad_align) {
    if (Aligned(param, 16) && Aligned(exp_avg, 16) && Aligned(exp_avg_sq, 16) &&
        Aligned(g, grad_align) && Aligned(w, 8)) {
      LaunchAdamW<4>(param, g, exp_avg, exp_avg_sq, w, n, a, s);
    } else {
      LaunchAdamW<1>(param, g, exp_avg, exp_avg_sq, w, n, a, s);
    }
  };
  if (grad_is_fp32) {
    launch(static_cast<const float*>(grad), 16);
  } else {
    launch(static_cast<const __nv_bfloat16*>(grad), 8);
  }
}

}  // namespace isoflop::trainer::cuda
