// The build without nvcc: the kernels are not compiled and Compiled() is
// false; trainer/model.cc then runs its ATen path, on CUDA too.
#include <cstdlib>

#include "trainer/cuda/kernels.h"

namespace isoflop::trainer::cuda {

bool Compiled() { return false; }

void SoftmaxCrossEntropyBf16(const void*, const int64_t*, int64_t, int64_t,
                             float, float*, void*, void*) {
  std::abort();  // unreachable: callers check Compiled()
}

}  // namespace isoflop::trainer::cuda
