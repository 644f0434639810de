#include "trainer/model.h"

#include <cmath>

namespace isoflop::trainer {
namespace {

constexpr double kInitStd = 0.02;
constexpr double kNormEps = 1e-6;

at::Tensor Param(at::Tensor cpu, at::Device device) {
  return cpu.to(device).set_requires_grad(true);
}

at::Tensor Normal(int64_t rows, int64_t cols, double std, at::Device device) {
  return Param(at::randn({rows, cols}, at::kFloat) * std, device);
}

at::Tensor Ones(int64_t n, at::Device device) {
  return Param(at::ones({n}, at::kFloat), device);
}

}  // namespace

Gpt::Gpt(const ModelDims& dims, at::Device device) : dims_(dims) {
  const int64_t d = dims.d_model;
  // GPT-2 style: residual projections scaled by 1/sqrt(2L).
  const double proj_std = kInitStd / std::sqrt(2.0 * dims.n_layers);
  tok_emb_ = Normal(dims.vocab_size, d, kInitStd, device);
  pos_emb_ = Normal(dims.context, d, kInitStd, device);
  no_decay_ = {tok_emb_, pos_emb_};
  for (int64_t l = 0; l < dims.n_layers; ++l) {
    Block b{.norm1 = Ones(d, device),
            .w_qkv = Normal(3 * d, d, kInitStd, device),
            .w_out = Normal(d, d, proj_std, device),
            .norm2 = Ones(d, device),
            .w_fc1 = Normal(dims.d_ff, d, kInitStd, device),
            .w_fc2 = Normal(d, dims.d_ff, proj_std, device)};
    decay_.insert(decay_.end(), {b.w_qkv, b.w_out, b.w_fc1, b.w_fc2});
    no_decay_.insert(no_decay_.end(), {b.norm1, b.norm2});
    blocks_.push_back(std::move(b));
  }
  norm_f_ = Ones(d, device);
  w_head_ = Normal(dims.vocab_size, d, kInitStd, device);
  decay_.push_back(w_head_);
  no_decay_.push_back(norm_f_);
}

int64_t Gpt::NumParams() const {
  int64_t n = 0;
  for (const auto* group : {&decay_, &no_decay_}) {
    for (const at::Tensor& p : *group) n += p.numel();
  }
  return n;
}

at::Tensor Gpt::Forward(const at::Tensor& inputs) const {
  const int64_t batch = inputs.size(0), t = inputs.size(1), d = dims_.d_model;
  const int64_t heads = dims_.n_heads, head_dim = d / heads;
  at::Tensor x = at::embedding(tok_emb_, inputs) +
                 pos_emb_.narrow(0, 0, t);  // (B, T, d)
  for (const Block& b : blocks_) {
    at::Tensor h = at::rms_norm(x, {d}, b.norm1, kNormEps);
    // (B, T, 3d) -> 3 x (B, H, T, hd)
    std::vector<at::Tensor> qkv =
        at::linear(h, b.w_qkv).view({batch, t, 3, heads, head_dim}).permute(
            {2, 0, 3, 1, 4}).unbind(0);
    at::Tensor y = at::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], {},
                                                    0.0, /*is_causal=*/true);
    y = y.transpose(1, 2).reshape({batch, t, d});  // (B, T, d)
    x = x + at::linear(y, b.w_out);
    h = at::rms_norm(x, {d}, b.norm2, kNormEps);
    x = x + at::linear(at::gelu(at::linear(h, b.w_fc1), "tanh"), b.w_fc2);
  }
  x = at::rms_norm(x, {d}, norm_f_, kNormEps);
  return at::linear(x, w_head_);  // (B, T, V)
}

at::Tensor Gpt::Loss(const at::Tensor& inputs, const at::Tensor& targets) const {
  at::Tensor logits = Forward(inputs);
  return at::cross_entropy_loss(logits.reshape({-1, dims_.vocab_size}).to(at::kFloat),
                                targets.reshape({-1}));
}

}  // namespace isoflop::trainer
