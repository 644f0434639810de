// Timing probe of the RMSNorm backward's parts (not built by CMake):
//   nvcc -arch=sm_90 -std=c++20 -O3 -I. bench/norm_probe.cu -o /tmp/np &&
//   /tmp/np
#include <cstdio>
#include <vector>

#include "trainer/cuda/kernels.cu"

namespace isoflop::trainer::cuda {
namespace {

// The bandwidth floor: read three bf16 arrays, write one.
__global__ void Copy3(const uint4* a, const uint4* b, const uint4* c, uint4* o,
                      int64_t n16) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n16;
       i += int64_t{gridDim.x} * blockDim.x) {
    uint4 x = a[i], y = b[i], z = c[i];
    o[i] = make_uint4(x.x ^ y.x ^ z.x, x.y ^ y.y ^ z.y, x.z ^ y.z ^ z.z,
                      x.w ^ y.w ^ z.w);
  }
}

__global__ void Empty() {}

template <int K>
__global__ void __launch_bounds__(kNormWarps * 32, kBackwardBlocksPerSm<K>)
    BwdNoEpi(const __nv_bfloat16* __restrict__ dy,
             const __nv_bfloat16* __restrict__ dsum,
             const __nv_bfloat16* __restrict__ x,
             const __nv_bfloat16* __restrict__ w,
             const float* __restrict__ rstd, int64_t rows, int64_t d,
             __nv_bfloat16* __restrict__ dx, float* __restrict__ partials) {
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
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t col = 8 * (lane + 32 * k);
    if (col < d)
      for (int j = 0; j < 8; ++j)
        partials[(blockIdx.x * int64_t{kNormWarps} + warp) * d + col + j] =
            dw[k][j];
  }
}

template <int K>
__global__ void __launch_bounds__(kNormWarps * 32)
    BwdFree(const __nv_bfloat16* __restrict__ dy,
            const __nv_bfloat16* __restrict__ dsum,
            const __nv_bfloat16* __restrict__ x,
            const __nv_bfloat16* __restrict__ w, const float* __restrict__ rstd,
            int64_t rows, int64_t d, __nv_bfloat16* __restrict__ dx,
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

template <typename F>
float Time(F f) {
  for (int i = 0; i < 20; ++i) f();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a);
  constexpr int kReps = 200;
  for (int i = 0; i < kReps; ++i) f();
  cudaEventRecord(b);
  cudaEventSynchronize(b);
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  return 1000 * ms / kReps;  // microseconds
}

void Probe(int64_t rows, int64_t d) {
  const int64_t n = rows * d;
  __nv_bfloat16 *x, *dy, *ds, *dx, *w, *dw;
  float *rstd, *partials;
  cudaMalloc(&x, 2 * n);
  cudaMalloc(&dy, 2 * n);
  cudaMalloc(&ds, 2 * n);
  cudaMalloc(&dx, 2 * n);
  cudaMalloc(&w, 2 * d);
  cudaMalloc(&dw, 2 * d);
  cudaMalloc(&rstd, 4 * rows);
  cudaMalloc(&partials, 4 * (RmsNormPartials(d) * 64 + rows * d));
  cudaMemset(x, 0, 2 * n);
  cudaMemset(dy, 0, 2 * n);
  cudaMemset(ds, 0, 2 * n);
  cudaMemset(w, 0, 2 * d);
  cudaMemset(rstd, 0, 4 * rows);
  const int blocks = BackwardBlocks(d);
  float full = Time([&] {
    RmsNormBackwardBf16(dy, ds, x, w, rstd, rows, d, dx, dw, partials, nullptr);
  });
  float kernel = 0, sum = 0;
  WithChunks(d, [&](auto k) {
    kernel = Time([&] {
      RmsNormBackwardKernel<decltype(k)::value><<<blocks, kNormWarps * 32>>>(
          dy, ds, x, w, rstd, rows, d, dx, partials);
    });
  });
  float noepi = 0, onerow = 0, freeb = 0;
  const auto rows_blocks =
      static_cast<unsigned>((rows + kNormWarps - 1) / kNormWarps);
  WithChunks(d, [&](auto k) {
    noepi = Time([&] {
      BwdNoEpi<decltype(k)::value><<<blocks, kNormWarps * 32>>>(
          dy, ds, x, w, rstd, rows, d, dx, partials);
    });
    onerow = Time([&] {
      RmsNormBackwardKernel<decltype(k)::value>
          <<<rows_blocks, kNormWarps * 32>>>(dy, ds, x, w, rstd, rows, d, dx,
                                             partials);
    });
    freeb = Time([&] {
      BwdFree<decltype(k)::value><<<blocks / 2, kNormWarps * 32>>>(
          dy, ds, x, w, rstd, rows, d, dx, partials);
    });
  });
  sum = Time([&] {
    SumPartialsKernel<<<static_cast<unsigned>((d + 31) / 32), kSumWarps * 32>>>(
        partials, blocks, d, dw);
  });
  float fwd = 0;
  WithChunks(d, [&](auto k) {
    fwd = Time([&] {
      RmsNormForwardKernel<decltype(k)::value>
          <<<static_cast<unsigned>((rows + kNormWarps - 1) / kNormWarps),
             kNormWarps * 32>>>(x, ds, dx, w, rows, d, 1e-6f, dy, rstd);
    });
  });
  const float copy = Time([&] {
    Copy3<<<1056, 256>>>(reinterpret_cast<const uint4*>(x),
                         reinterpret_cast<const uint4*>(dy),
                         reinterpret_cast<const uint4*>(ds),
                         reinterpret_cast<uint4*>(dx), n / 8);
  });
  const float empty = Time([&] { Empty<<<blocks, 256>>>(); });
  std::printf(
      "%6ldx%-5ld blocks %4d  full %6.1f us  kernel %6.1f  sum %5.1f  "
      "fwd(add) %6.1f  copy3 %6.1f  empty %5.1f  (%.1f MB)  noepi %6.1f  "
      "onerow %6.1f  free/2 %6.1f\n",
      static_cast<long>(rows), static_cast<long>(d), blocks, full, kernel, sum,
      fwd, copy, empty, 8.0 * n / 1e6, noepi, onerow, freeb);
  cudaFree(x);
  cudaFree(dy);
  cudaFree(ds);
  cudaFree(dx);
  cudaFree(w);
  cudaFree(dw);
  cudaFree(rstd);
  cudaFree(partials);
}

}  // namespace
}  // namespace isoflop::trainer::cuda

int main() {
  using isoflop::trainer::cuda::Probe;
  for (auto [r, d] : std::vector<std::pair<int64_t, int64_t>>{
           {4096, 512}, {16384, 512}, {32768, 1024}, {333, 2048}, {1000, 96}})
    Probe(r, d);
  const cudaError_t e = cudaDeviceSynchronize();
  std::printf("%s\n", cudaGetErrorString(e));
}
