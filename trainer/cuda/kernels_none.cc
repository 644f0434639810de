// The build without nvcc: the kernels are not compiled and Compiled() is
// false; trainer/model.cc then runs its ATen path, on CUDA too.
#include <cstdlib>

#include "trainer/cuda/gelu_gemm.h"
#include "trainer/cuda/kernels.h"

namespace isoflop::trainer::cuda {

bool Compiled() { return false; }

int64_t PackBf16Blocks(const int64_t*, int) { return 0; }

bool PackBf16(const void* const*, const int64_t*, int, void*, bool, float*,
              void*) {
  return false;
}

void StepScalars(const float*, int64_t, float*, float*, float*, float*, void*) {
  std::abort();
}

void EmbeddingForwardBf16(const void*, const void*, const int64_t*, int64_t,
                          int64_t, int64_t, int64_t, int64_t, void*, void*) {
  std::abort();
}

void EmbeddingBackwardBf16(const void*, const int64_t*, int64_t, int64_t,
                           int64_t, int64_t, int64_t, float*, void*, void*) {
  std::abort();
}

// No cuBLASLt call without the kernels: the callers take their ATen path.
bool LinearGelu(const LtContext&, const void*, const void*, int64_t, int64_t,
                int64_t, void*, void*) {
  return false;
}

bool LinearGeluBackward(const LtContext&, const void*, const void*, const void*,
                        int64_t, int64_t, int64_t, void*) {
  return false;
}

void SoftmaxCrossEntropyBf16(const void*, const int64_t*, int64_t, int64_t,
                             float, float*, void*, void*) {
  std::abort();  // unreachable: callers check Compiled()
}

void RmsNormForwardBf16(const void*, const void*, void*, const void*, int64_t,
                        int64_t, float, void*, float*, void*) {
  std::abort();
}

int64_t RmsNormPartials(int64_t) { std::abort(); }

void RmsNormBackwardBf16(const void*, const void*, const void*, const void*,
                         const float*, int64_t, int64_t, void*, void*, float*,
                         void*) {
  std::abort();
}

void FusedAdamWBf16(float*, const void*, bool, float*, float*, void*, int64_t,
                    const float*, const float*, const float*, const float*,
                    double, double, double, double, void*) {
  std::abort();
}

}  // namespace isoflop::trainer::cuda
