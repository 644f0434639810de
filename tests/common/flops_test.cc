#include "common/flops.h"

#include "gtest/gtest.h"

namespace isoflop {
namespace {

TEST(CountParams, SeedModelMatchesHandCount) {
  // Seed model: vocab 10000, T 256, d 512, L 4, d_ff 2048.
  ModelDims dims{.vocab_size = 10000,
                 .context = 256,
                 .d_model = 512,
                 .n_layers = 4,
                 .n_heads = 16,
                 .d_ff = 2048};
  ParamCounts c = CountParams(dims);
  const int64_t per_layer = int64_t{4} * 512 * 512 + int64_t{2} * 512 * 2048;
  const int64_t embeddings = int64_t{10000} * 512 + int64_t{256} * 512;
  EXPECT_EQ(c.n_matmul, 4 * per_layer + int64_t{512} * 10000);
  EXPECT_EQ(c.n_total, c.n_matmul + embeddings + int64_t{4} * 2 * 512 + 512);
  EXPECT_EQ(c.n_non_embedding, c.n_total - embeddings);
  EXPECT_DOUBLE_EQ(c.flops_per_token, 6.0 * c.n_matmul + 12.0 * 4 * 512 * 256);
}

}  // namespace
}  // namespace isoflop
