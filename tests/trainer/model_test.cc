#include "trainer/model.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <vector>

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
                 .steps = 1,
                 .lr = 1e-3,
                 .min_lr_fraction = 0.1,
                 .weight_decay = 0.1,
                 .beta2 = 0.95,
                 .warmup_steps = 0,
                 .schedule = "cosine",
                 .eval_every = 0,
                 .eval_batches = 8,
                 .precision = "fp32",
                 .threads = 1};
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

TEST(Validate, RefusesAnUnknownZeroStageAndZeroWithFp16) {
  TrainOptions o{.data_dir = "x",
                 .vocab_size = 256,
                 .context = 16,
                 .d_model = 32,
                 .n_layers = 1,
                 .n_heads = 4,
                 .d_ff = 64,
                 .batch_sequences = 2,
                 .steps = 1,
                 .lr = 1e-3,
                 .min_lr_fraction = 0.1,
                 .weight_decay = 0.1,
                 .beta2 = 0.95,
                 .warmup_steps = 0,
                 .schedule = "cosine",
                 .eval_every = 0,
                 .eval_batches = 8,
                 .precision = "fp32",
                 .threads = 1,
                 .zero_stage = 1};
  EXPECT_TRUE(Validate(o).ok());
  o.zero_stage = 2;
  EXPECT_EQ(Validate(o).message(), "--zero-stage = 2: must be 0 (off) or 1");
  o.zero_stage = 1;
  o.device = "cuda";
  o.precision = "fp16";
  EXPECT_EQ(Validate(o).message(),
            "--zero-stage = 1: not with --precision fp16 (the loss scaler's "
            "inf/NaN check is not sharded); use bf16 or fp32");
}

// Options built in code (not from flags) name the first trial value left
// unset: the trainer applies no default to them.
TEST(Validate, NamesAnUnsetTrialValue) {
  TrainOptions o{.data_dir = "x",
                 .vocab_size = 256,
                 .context = 16,
                 .d_model = 32,
                 .n_layers = 1,
                 .n_heads = 4,
                 .d_ff = 64,
                 .batch_sequences = 2,
                 .steps = 1};
  EXPECT_EQ(Validate(o).message(),
            "--lr: required (the trainer applies no default)");
  o.lr = 1e-3;
  o.schedule = "cosine";
  o.warmup_steps = 0;
  o.min_lr_fraction = 0.1;
  o.weight_decay = 0.1;
  EXPECT_EQ(Validate(o).message(),
            "--beta2: required (the trainer applies no default)");
  o.beta2 = 0.95;
  o.eval_every = 0;
  o.eval_batches = 8;
  o.precision = "fp32";
  EXPECT_EQ(Validate(o).message(),
            "--threads: required (the trainer applies no default)");
  o.threads = 1;
  EXPECT_TRUE(Validate(o).ok());
}

TEST(ParseLegacy, ReadsTheListAndNamesAnUnknownEntry) {
  absl::StatusOr<LegacyPaths> l = ParseLegacy("qkv,adamw");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_TRUE(l->qkv && l->adamw);
  EXPECT_FALSE(l->loss || l->norm || l->gelu || l->embedding);
  EXPECT_FALSE(ParseLegacy("").value().loss);
  EXPECT_EQ(ParseLegacy("loss,fast").status().message(),
            "--legacy = loss,fast: unknown entry \"fast\" (must be a "
            "comma-separated list of qkv, loss, norm, gelu, embedding, adamw)");
}

// The legacy loss (LegacyPaths::loss) is the fp32 log-soft-max; the default
// keeps the soft-max in the logits' dtype. On bf16 logits the two differ by
// bf16 rounding, and each matches its own reference.
TEST(Gpt, LegacyLossIsTheFp32LogSoftmax) {
  const ModelDims dims{256, 16, 32, 2, 4, 128};
  torch::manual_seed(3);
  const Gpt fp32(dims, at::kCPU);
  std::vector<at::Tensor> params;
  for (const at::Tensor& p : fp32.params())
    params.push_back(p.detach().to(at::kBFloat16));
  const Gpt fused = fp32.WithParams(params);
  const Gpt legacy =
      Gpt(dims, at::kCPU, 0, LegacyPaths{.loss = true}).WithParams(params);
  EXPECT_TRUE(legacy.legacy().loss);
  EXPECT_FALSE(fused.legacy().loss);
  const at::Tensor x = at::randint(0, 256, {8, 16}, at::kLong);
  const at::Tensor y = at::randint(0, 256, {8, 16}, at::kLong);
  at::NoGradGuard no_grad;
  const at::Tensor logits = fused.Logits(x).reshape({-1, 256});
  const at::Tensor target = y.reshape({-1, 1});
  const double want_legacy = -at::log_softmax(logits, 1, at::kFloat)
                                  .gather(1, target)
                                  .mean()
                                  .item<double>();
  const double want_fused = -at::_softmax(logits, 1, false)
                                 .gather(1, target)
                                 .to(at::kFloat)
                                 .clamp_min(1e-38)
                                 .log()
                                 .mean()
                                 .item<double>();
  const double got_fused = fused.Loss(x, y).item<double>();
  const double got_legacy = legacy.Loss(x, y).item<double>();
  EXPECT_DOUBLE_EQ(got_legacy, want_legacy);
  EXPECT_DOUBLE_EQ(got_fused, want_fused);
  EXPECT_NE(got_fused, got_legacy);
}

}  // namespace
}  // namespace isoflop::trainer
