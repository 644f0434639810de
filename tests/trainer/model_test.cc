#include "trainer/model.h"

#include "common/flops.h"
#include "gtest/gtest.h"
#include "trainer/options.h"
#include "trainer/train.h"

namespace isoflop::trainer {
namespace {

TEST(Gpt, ParameterCountMatchesTheFlopConvention) {
  for (ModelDims dims :
       {ModelDims{512, 64, 48, 2, 4, 192}, ModelDims{1000, 32, 16, 1, 2, 64},
        ModelDims{10000, 256, 512, 4, 16, 2048}}) {
    Gpt model(dims, at::kCPU);
    EXPECT_EQ(model.NumParams(), CountParams(dims).n_total) << dims.d_model;
  }
}

TEST(Gpt, LossAtInitIsNearLogVocab) {
  Gpt model(ModelDims{256, 16, 32, 2, 4, 128}, at::kCPU);
  at::Tensor x = at::randint(0, 256, {4, 16}, at::kLong);
  const double loss = model.Loss(x, x).item<double>();
  EXPECT_NEAR(loss, std::log(256.0), 0.3);
}

TEST(LearningRate, WarmsUpLinearlyThenDecaysToTheFloor) {
  TrainOptions o;
  o.lr = 1e-2;
  o.min_lr_fraction = 0.1;
  o.steps = 100;
  o.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(LearningRate(o, 0), 1e-3);
  EXPECT_DOUBLE_EQ(LearningRate(o, 9), 1e-2);
  EXPECT_DOUBLE_EQ(LearningRate(o, 10), 1e-2);
  EXPECT_NEAR(LearningRate(o, 99), 1e-3, 1e-12);
  EXPECT_GT(LearningRate(o, 50), LearningRate(o, 60));
}

TEST(Validate, NamesTheFlagAndTheRule) {
  TrainOptions o{.data_dir = "x",
                 .vocab_size = 256,
                 .context = 16,
                 .d_model = 30,
                 .n_layers = 1,
                 .n_heads = 4,
                 .d_ff = 64,
                 .batch_sequences = 2,
                 .steps = 1};
  EXPECT_EQ(Validate(o).message(), "--n-heads = 4: must divide --d-model = 30");
  o.n_heads = 3;
  o.steps = 0;
  EXPECT_EQ(Validate(o).message(), "--steps = 0: must be >= 1");
  o.steps = 1;
  o.precision = "bf16";  // the working copy runs on CPU too
  EXPECT_TRUE(Validate(o).ok());
  o.precision = "bf16-autocast";
  EXPECT_EQ(Validate(o).message(),
            "--precision = bf16-autocast: needs --device cuda");
  o.precision = "bf8";
  EXPECT_EQ(
      Validate(o).message(),
      "--precision = bf8: must be auto, fp32, bf16, bf16-autocast or fp16");
}

}  // namespace
}  // namespace isoflop::trainer
