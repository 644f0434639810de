// Timing probe of the RMSNorm kernels beside a copy of the same bytes (not
// built by CMake; session 4 used it with variants of the backward kernel to
// find its shared-atomics bottleneck, bench/results/h200-2026-12-02-trainer-
// issue6c.md):
//   nvcc -arch=sm_90 -std=c++20 -O3 -I. bench/gpu/norm_probe.cu -o /tmp/np &&
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
  cudaMalloc(&partials, 4 * RmsNormPartials(d));
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
      "fwd(add) %6.1f  copy3 %6.1f  empty %5.1f  (%.1f MB)\n",
      static_cast<long>(rows), static_cast<long>(d), blocks, full, kernel, sum,
      fwd, copy, empty, 8.0 * n / 1e6);
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
