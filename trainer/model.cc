#include "trainer/model.h"

#include <ATen/cuda/CUDAContext.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <map>
#include <tuple>
#include <utility>

#include "trainer/cuda/gelu_gemm.h"
#include "trainer/cuda/kernels.h"

namespace isoflop::trainer {

namespace {

constexpr double kInitStd = 0.02;
constexpr double kNormEps = 1e-6;

bool UseFusedLoss(const at::Tensor& logits, bool legacy_loss) {
  return cuda::Compiled() && logits.is_cuda() &&
         logits.scalar_type() == at::kBFloat16 && logits.is_contiguous() &&
         !legacy_loss;
}

bool Aligned16(const at::Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

// A tensor the kernels can read: contiguous, 16-byte aligned.
at::Tensor Prepared(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return Aligned16(c) ? c : c.clone();
}

// bf16 RMSNorm on CUDA through trainer/cuda/ (one kernel each way; ATen's
// bf16 backward spends most of its time in a slow weight-gradient
// reduction), with the block's residual add fused in when `add` is given:
// outputs (sum = x + add, RMSNorm(sum) * w), or (RMSNorm(x) * w) alone.
struct FusedRmsNorm : torch::autograd::Function<FusedRmsNorm> {
  static torch::autograd::variable_list forward(
      torch::autograd::AutogradContext* ctx, const at::Tensor& x,
      const at::Tensor& add, const at::Tensor& w, double eps) {
    const int64_t d = w.size(0), rows = x.numel() / d;
    const bool fused_add = add.numel() > 0;  // else an empty placeholder
    const at::Tensor xc = Prepared(x), ac = fused_add ? Prepared(add) : add;
    const at::Tensor sum = fused_add ? at::empty_like(xc) : xc;
    at::Tensor y = at::empty_like(xc);
    at::Tensor rstd = at::empty({rows}, x.options().dtype(at::kFloat));
    cuda::RmsNormForwardBf16(xc.data_ptr(), fused_add ? ac.data_ptr() : nullptr,
                             fused_add ? sum.data_ptr() : nullptr, w.data_ptr(),
                             rows, d, static_cast<float>(eps), y.data_ptr(),
                             rstd.data_ptr<float>(),
                             at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({sum, w, rstd});
    ctx->saved_data["fused_add"] = fused_add;
    ctx->set_materialize_grads(false);
    if (fused_add) return {sum, y};
    return {y};
  }
  static torch::autograd::variable_list backward(
      torch::autograd::AutogradContext* ctx,
      torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &rstd = saved[2];
    const bool fused_add = ctx->saved_data["fused_add"].toBool();
    const int64_t d = w.size(0), rows = x.numel() / d;
    at::Tensor dsum = fused_add && grad_out[0].defined() ? Prepared(grad_out[0])
                                                         : at::Tensor();
    const at::Tensor& dy_in = grad_out[fused_add ? 1 : 0];
    at::Tensor dy = dy_in.defined() ? Prepared(dy_in) : at::zeros_like(x);
    at::Tensor dx = at::empty_like(x), dw = at::empty_like(w);
    at::Tensor partials = at::empty({cuda::RmsNormPartials(d)}, rstd.options());
    cuda::RmsNormBackwardBf16(
        dy.data_ptr(), dsum.defined() ? dsum.data_ptr() : nullptr, x.data_ptr(),
        w.data_ptr(), rstd.data_ptr<float>(), rows, d, dx.data_ptr(),
        dw.data_ptr(), partials.data_ptr<float>(),
        at::cuda::getCurrentCUDAStream().stream());
    return {dx, fused_add ? dx : at::Tensor(), dw, at::Tensor()};
  }
};

bool UseFusedNorm(const at::Tensor& x, const at::Tensor& w, bool legacy_norm) {
  const int64_t d = w.size(0);
  return cuda::Compiled() && x.is_cuda() && x.scalar_type() == at::kBFloat16 &&
         w.scalar_type() == at::kBFloat16 && w.is_contiguous() &&
         Aligned16(w) && d % 8 == 0 && d <= cuda::kMaxNormDim && !legacy_norm;
}

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w, bool legacy_norm) {
  if (UseFusedNorm(x, w, legacy_norm))
    return FusedRmsNorm::apply(x, x.new_empty({0}), w,
                               kNormEps)[0];  // autograd needs defined inputs
  return at::rms_norm(x, {w.size(0)}, w, kNormEps);
}

// (x + add, RMSNorm(x + add) * w): a residual add and the next norm.
std::pair<at::Tensor, at::Tensor> AddRmsNorm(const at::Tensor& x,
                                             const at::Tensor& add,
                                             const at::Tensor& w,
                                             bool legacy_norm) {
  if (UseFusedNorm(x, w, legacy_norm) && add.scalar_type() == at::kBFloat16 &&
      add.sizes() == x.sizes()) {
    torch::autograd::variable_list out =
        FusedRmsNorm::apply(x, add, w, kNormEps);
    return {out[0], out[1]};
  }
  at::Tensor sum = x + add;
  return {sum, at::rms_norm(sum, {w.size(0)}, w, kNormEps)};
}

// Token + learned position embedding (B, T) -> (B, T, d) in one CUDA kernel
// each way (bf16): the forward gathers and adds in one pass; the backward
// sums the token rows with vector atomics where ATen's embedding_dense_-
// backward sorts the ids, and the positions' gradient is a sum over the
// batch. ids may be a strided view (the batch's (B, T + 1) windows).
struct TokPosEmbedding : torch::autograd::Function<TokPosEmbedding> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx,
                            const at::Tensor& tok, const at::Tensor& pos,
                            const at::Tensor& ids) {
    const int64_t b = ids.size(0), t = ids.size(1), d = tok.size(1);
    at::Tensor out = at::empty({b, t, d}, tok.options());
    cuda::EmbeddingForwardBf16(tok.data_ptr(), pos.data_ptr(),
                               ids.data_ptr<int64_t>(), ids.stride(0), b * t, t,
                               d, tok.size(0), out.data_ptr(),
                               at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({ids});
    ctx->saved_data["vocab"] = tok.size(0);
    ctx->saved_data["context"] = pos.size(0);
    return out;
  }
  static torch::autograd::variable_list backward(
      torch::autograd::AutogradContext* ctx,
      torch::autograd::variable_list grad_out) {
    const at::Tensor ids = ctx->get_saved_variables()[0];
    const int64_t v = ctx->saved_data["vocab"].toInt();
    const int64_t context = ctx->saved_data["context"].toInt();
    const at::Tensor g = Prepared(grad_out[0]);
    const int64_t t = ids.size(1), d = g.size(-1);
    at::Tensor dtok = at::empty({v, d}, g.options());
    at::Tensor scratch = at::empty({v, d}, g.options().dtype(at::kFloat));
    cuda::EmbeddingBackwardBf16(g.data_ptr(), ids.data_ptr<int64_t>(),
                                ids.stride(0), t, ids.numel(), d, v,
                                scratch.data_ptr<float>(), dtok.data_ptr(),
                                at::cuda::getCurrentCUDAStream().stream());
    at::Tensor dpos = g.view({-1, t, d}).sum(0);
    if (t < context) {
      dpos = at::constant_pad_nd(dpos, {0, 0, 0, context - t});
    }
    return {dtok, dpos, at::Tensor()};
  }
};

// x = tok[inputs] + pos[0, T) for the forward of (B, T) inputs.
at::Tensor Embed(const at::Tensor& tok, const at::Tensor& pos,
                 const at::Tensor& inputs, bool legacy_embedding) {
  const int64_t t = inputs.size(1);
  if (cuda::Compiled() && tok.is_cuda() && tok.scalar_type() == at::kBFloat16 &&
      pos.scalar_type() == at::kBFloat16 && tok.is_contiguous() &&
      pos.is_contiguous() && inputs.scalar_type() == at::kLong &&
      inputs.dim() == 2 && inputs.stride(1) == 1 && tok.size(1) % 8 == 0 &&
      Aligned16(tok) && Aligned16(pos) && !legacy_embedding)
    return TokPosEmbedding::apply(tok, pos, inputs);
  return at::embedding(tok, inputs) + pos.narrow(0, 0, t);
}

cuda::LtContext CurrentLt() {
  return {at::cuda::getCurrentCUDABlasLtHandle(),
          at::cuda::getCUDABlasLtWorkspace(),
          at::cuda::getCUDABlasLtWorkspaceSize(),
          at::cuda::getCurrentCUDAStream().stream(),
          at::cuda::current_device()};
}

bool UseFusedMlp(const at::Tensor& h, const at::Tensor& w1,
                 const at::Tensor& w2, bool legacy_gelu) {
  return cuda::Compiled() && h.is_cuda() && h.scalar_type() == at::kBFloat16 &&
         w1.scalar_type() == at::kBFloat16 &&
         w2.scalar_type() == at::kBFloat16 && w1.is_contiguous() &&
         w2.is_contiguous() && !legacy_gelu;
}

// gelu_tanh(h w1^T) w2^T with the GELU and its gradient in the matmuls'
// cuBLASLt epilogues (trainer/cuda/gelu_gemm.h); each falls back to ATen
// when cuBLASLt declines. Saves what autograd would: h, the pre-activation
// and the activation.
struct GeluMlp : torch::autograd::Function<GeluMlp> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx,
                            const at::Tensor& h, const at::Tensor& w1,
                            const at::Tensor& w2, bool needs_grad) {
    const int64_t d = h.size(-1), f = w1.size(0);
    const at::Tensor x = Prepared(h).view({-1, d});
    const int64_t rows = x.size(0);
    at::Tensor a = at::empty({rows, f}, x.options());
    at::Tensor pre = needs_grad ? at::empty_like(a) : at::Tensor();
    if (!cuda::LinearGelu(CurrentLt(), x.data_ptr(), w1.data_ptr(), rows, d, f,
                          a.data_ptr(),
                          needs_grad ? pre.data_ptr() : nullptr)) {
      at::Tensor p = at::mm(x, w1.t());
      a = at::gelu(p, "tanh");
      if (needs_grad) pre = p;
    }
    if (needs_grad) ctx->save_for_backward({x, w1, w2, a, pre});
    std::vector<int64_t> sizes = h.sizes().vec();
    sizes.back() = w2.size(0);
    return at::mm(a, w2.t()).view(sizes);
  }
  static torch::autograd::variable_list backward(
      torch::autograd::AutogradContext* ctx,
      torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w1 = saved[1], &w2 = saved[2],
                     &a = saved[3], &pre = saved[4];
    const int64_t d = w2.size(0), f = w1.size(0), rows = x.size(0);
    const at::Tensor dy = Prepared(grad_out[0]).view({rows, d});
    at::Tensor dpre = at::empty_like(pre);
    if (!cuda::LinearGeluBackward(CurrentLt(), dy.data_ptr(), w2.data_ptr(),
                                  pre.data_ptr(), rows, d, f,
                                  dpre.data_ptr())) {
      dpre = at::gelu_backward(at::mm(dy, w2), pre, "tanh");
    }
    return {at::mm(dpre, w1).view(grad_out[0].sizes()), at::mm(dpre.t(), x),
            at::mm(dy.t(), a), at::Tensor()};
  }
};

at::Tensor Param(at::Tensor cpu, at::Device device) {
  return cpu.to(device).set_requires_grad(true);
}

at::Tensor Normal(int64_t rows, int64_t cols, double std, at::Device device) {
  return Param(at::randn({rows, cols}, at::kFloat) * std, device);
}

at::Tensor Ones(int64_t n, at::Device device) {
  return Param(at::ones({n}, at::kFloat), device);
}

// Soft-max cross entropy of logits (N, V) in their own dtype against targets
// (N). bf16/fp32: the forward computes the soft-max p in the logits' dtype
// once (fp32 accumulation inside the kernel) and keeps it for backward, the
// loss being mean(-log p[target]) in fp32; the backward is (p - onehot) * g /
// N in place on p (no second soft-max). fp16 (p[target] may underflow) and
// --legacy loss: fp32 log-soft-max forward (not kept) and the
// soft-max recomputed from the saved logits in backward.
// bf16 on CUDA with the kernels compiled: one fused kernel gives the loss and,
// when a backward will follow, the finished gradient (scaled by known_grad
// / N), which backward returns as is.
struct SoftmaxCrossEntropy : torch::autograd::Function<SoftmaxCrossEntropy> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx,
                            const at::Tensor& logits, const at::Tensor& targets,
                            std::optional<double> known_grad,
                            bool legacy_loss) {
    ctx->saved_data["known_grad"] = known_grad ? *known_grad : -1.0;
    ctx->saved_data["fused"] = false;
    if (UseFusedLoss(logits, legacy_loss)) {
      ctx->saved_data["fused"] = true;
      const int64_t n = logits.size(0);
      at::Tensor row_loss = at::empty({n}, logits.options().dtype(at::kFloat));
      at::Tensor grad;
      if (logits.requires_grad()) grad = at::empty_like(logits);
      cuda::SoftmaxCrossEntropyBf16(
          logits.data_ptr(), targets.contiguous().data_ptr<int64_t>(), n,
          logits.size(1),
          static_cast<float>((known_grad ? *known_grad : 1.0) /
                             static_cast<double>(n)),
          row_loss.data_ptr<float>(),
          grad.defined() ? grad.data_ptr() : nullptr,
          at::cuda::getCurrentCUDAStream().stream());
      ctx->save_for_backward({grad});
      return row_loss.mean();
    }
    const bool keep_softmax = logits.scalar_type() != at::kHalf && !legacy_loss;
    ctx->saved_data["keep_softmax"] = keep_softmax;
    if (keep_softmax) {
      at::Tensor p = at::_softmax(logits, 1, /*half_to_float=*/false);
      ctx->save_for_backward({p, targets});
      return p.gather(1, targets.unsqueeze(1))
          .to(at::kFloat)
          .clamp_min(1e-38)
          .log()
          .mean()
          .neg();
    }
    at::Tensor logp =
        at::log_softmax(logits, 1, at::kFloat);  // (N, V) fp32, not kept
    ctx->save_for_backward({logits, targets});
    return logp.gather(1, targets.unsqueeze(1)).mean().neg();
  }
  static torch::autograd::variable_list backward(
      torch::autograd::AutogradContext* ctx,
      torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    if (ctx->saved_data["fused"].toBool()) {
      if (ctx->saved_data["known_grad"].toDouble() >= 0)
        return {saved[0], at::Tensor(), at::Tensor(), at::Tensor()};
      return {saved[0] * grad_out[0], at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const at::Tensor& targets = saved[1];
    at::Tensor g = ctx->saved_data["keep_softmax"].toBool()
                       ? saved[0]  // p, updated in place (used once)
                       : at::_softmax(saved[0], 1, /*half_to_float=*/false);
    g.scatter_add_(1, targets.unsqueeze(1),
                   at::full({g.size(0), 1}, -1.0, g.options()));
    const double n = static_cast<double>(g.size(0));
    const double known = ctx->saved_data["known_grad"].toDouble();
    if (known >= 0) {
      g.mul_(known / n);
    } else {
      g.mul_(grad_out[0] / n);
    }
    return {g, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

Gpt::Gpt(const ModelDims& dims, at::Device device, int64_t mup_base_width,
         const LegacyPaths& legacy)
    : dims_(dims), legacy_(legacy) {
  const int64_t d = dims.d_model;
  mup_ = mup_base_width > 0;
  width_mult_ =
      mup_ ? static_cast<double>(d) / static_cast<double>(mup_base_width) : 1.0;
  const double hidden_std = kInitStd / std::sqrt(width_mult_);
  // GPT-2 style: residual projections scaled by 1/sqrt(2L).
  const double proj_std = hidden_std / std::sqrt(2.0 * dims.n_layers);
  tok_emb_ = Normal(dims.vocab_size, d, kInitStd, device);
  pos_emb_ = Normal(dims.context, d, kInitStd, device);
  ParamGroup hidden{
      .params = {}, .lr_scale = 1.0 / width_mult_, .weight_decay = true};
  ParamGroup head{.params = {}, .lr_scale = 1.0, .weight_decay = true};
  ParamGroup plain{
      .params = {tok_emb_, pos_emb_}, .lr_scale = 1.0, .weight_decay = false};
  for (int64_t l = 0; l < dims.n_layers; ++l) {
    Block b{.norm1 = Ones(d, device),
            .w_qkv = Normal(3 * d, d, hidden_std, device),
            .w_out = Normal(d, d, proj_std, device),
            .norm2 = Ones(d, device),
            .w_fc1 = Normal(dims.d_ff, d, hidden_std, device),
            .w_fc2 = Normal(d, dims.d_ff, proj_std, device)};
    hidden.params.insert(hidden.params.end(),
                         {b.w_qkv, b.w_out, b.w_fc1, b.w_fc2});
    plain.params.insert(plain.params.end(), {b.norm1, b.norm2});
    blocks_.push_back(std::move(b));
  }
  norm_f_ = Ones(d, device);
  w_head_ = Normal(dims.vocab_size, d, kInitStd, device);
  head.params.push_back(w_head_);
  plain.params.push_back(norm_f_);
  if (mup_) {
    groups_ = {std::move(hidden), std::move(head), std::move(plain)};
  } else {  // one decayed group: one fused AdamW launch fewer
    hidden.params.push_back(w_head_);
    hidden.lr_scale = 1.0;
    groups_ = {std::move(hidden), std::move(plain)};
  }
  for (const ParamGroup& g : groups_)
    all_.insert(all_.end(), g.params.begin(), g.params.end());
}

Gpt Gpt::WithParams(const std::vector<at::Tensor>& params) const {
  std::map<const c10::TensorImpl*, at::Tensor> swap;
  for (size_t i = 0; i < all_.size(); ++i) {
    TORCH_CHECK(params.at(i).sizes() == all_[i].sizes(), "param ", i);
    swap[all_[i].unsafeGetTensorImpl()] = params[i];
  }
  Gpt g = *this;
  auto rebind = [&](at::Tensor& t) { t = swap.at(t.unsafeGetTensorImpl()); };
  for (at::Tensor* t : {&g.tok_emb_, &g.pos_emb_, &g.norm_f_, &g.w_head_})
    rebind(*t);
  for (Block& b : g.blocks_) {
    for (at::Tensor* t :
         {&b.norm1, &b.w_qkv, &b.w_out, &b.norm2, &b.w_fc1, &b.w_fc2})
      rebind(*t);
  }
  for (ParamGroup& group : g.groups_)
    for (at::Tensor& t : group.params) rebind(t);
  for (at::Tensor& t : g.all_) rebind(t);
  return g;
}

int64_t Gpt::NumParams() const {
  int64_t n = 0;
  for (const at::Tensor& p : all_) n += p.numel();
  return n;
}

std::optional<double> Gpt::AttentionScale() const {
  const int64_t head_dim = dims_.d_model / dims_.n_heads;
  return mup_ ? std::optional<double>(8.0 / static_cast<double>(head_dim))
              : std::nullopt;
}

std::pair<at::Tensor, at::Tensor> Gpt::Mlp(const Block& b, const at::Tensor& x,
                                           const at::Tensor& attn) const {
  auto [sum, h] = AddRmsNorm(x, attn, b.norm2, legacy_.norm);
  if (UseFusedMlp(h, b.w_fc1, b.w_fc2, legacy_.gelu)) {
    const bool needs_grad = at::GradMode::is_enabled() &&
                            (h.requires_grad() || b.w_fc1.requires_grad() ||
                             b.w_fc2.requires_grad());
    return {sum, GeluMlp::apply(h, b.w_fc1, b.w_fc2, needs_grad)};
  }
  return {sum, at::linear(at::gelu(at::linear(h, b.w_fc1), "tanh"), b.w_fc2)};
}

at::Tensor Gpt::Head(const at::Tensor& x, const at::Tensor& mlp) const {
  at::Tensor h = AddRmsNorm(x, mlp, norm_f_, legacy_.norm).second;
  if (mup_) h = h * (1.0 / width_mult_);
  return at::linear(h, w_head_);
}

std::pair<at::Tensor, at::Tensor> Gpt::Norm1(const Block& b,
                                             const at::Tensor& x,
                                             const at::Tensor& mlp) const {
  if (!mlp.defined()) {
    return {x, RmsNorm(x, b.norm1, legacy_.norm)};  // the first block
  }
  return AddRmsNorm(x, mlp, b.norm1, legacy_.norm);
}

at::Tensor Gpt::Forward(const at::Tensor& inputs, KvCache* cache,
                        int64_t slot) const {
  const int64_t batch = inputs.size(0), t = inputs.size(1), d = dims_.d_model;
  const int64_t heads = dims_.n_heads, head_dim = d / heads;
  const std::optional<double> scale = AttentionScale();
  at::Tensor x =
      Embed(tok_emb_, pos_emb_, inputs, legacy_.embedding);  // (B, T, d)
  at::Tensor mlp;  // the last block's MLP output, not yet added to x
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const Block& b = blocks_[l];
    at::Tensor h;
    std::tie(x, h) = Norm1(b, x, mlp);
    // (B, T, 3d) -> 3 x (B, H, T, hd). Unbinding dim 2 of (B, T, 3, H, hd)
    // makes the backward one stack straight into the (B, T, 3d) layout of the
    // matmul's gradient; unbinding after a permute to (3, B, H, T, hd) costs a
    // stack plus a permuting copy (--legacy qkv).
    at::Tensor qkv5 =
        at::linear(h, b.w_qkv).view({batch, t, 3, heads, head_dim});
    std::vector<at::Tensor> qkv;
    if (legacy_.qkv) {
      qkv = qkv5.permute({2, 0, 3, 1, 4}).unbind(0);
    } else {
      qkv = qkv5.unbind(2);
      for (at::Tensor& u : qkv) u = u.transpose(1, 2);
    }
    if (cache != nullptr) {  // (1, H, T, hd) -> positions [0, T) of the slot
      cache->k[l][slot].narrow(1, 0, t).copy_(qkv[1][0]);
      cache->v[l][slot].narrow(1, 0, t).copy_(qkv[2][0]);
    }
    at::Tensor y =
        at::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], {}, 0.0,
                                         /*is_causal=*/true, scale);
    y = y.transpose(1, 2).reshape({batch, t, d});  // (B, T, d)
    std::tie(x, mlp) = Mlp(b, x, at::linear(y, b.w_out));
  }
  return Head(x, mlp);  // (B, T, V)
}

at::Tensor Gpt::Logits(const at::Tensor& inputs) const {
  return Forward(inputs);
}

Gpt::KvCache Gpt::NewKvCache(int64_t slots) const {
  const int64_t heads = dims_.n_heads, head_dim = dims_.d_model / heads;
  KvCache cache;
  for (size_t l = 0; l < blocks_.size(); ++l) {
    cache.k.push_back(at::zeros({slots, heads, dims_.context, head_dim},
                                tok_emb_.options().requires_grad(false)));
    cache.v.push_back(at::zeros_like(cache.k.back()));
  }
  return cache;
}

at::Tensor Gpt::Prefill(const at::Tensor& prompt, KvCache& cache,
                        int64_t slot) const {
  const int64_t p = prompt.size(0);
  return Forward(prompt.view({1, p}), &cache, slot)[0][p - 1];  // (V)
}

at::Tensor Gpt::Decode(const at::Tensor& tokens, const at::Tensor& positions,
                       KvCache& cache) const {
  const int64_t s = tokens.size(0), d = dims_.d_model, t = dims_.context;
  const int64_t heads = dims_.n_heads, head_dim = d / heads;
  at::Tensor x =
      (at::embedding(tok_emb_, tokens) + at::embedding(pos_emb_, positions))
          .view({s, 1, d});  // (S, 1, d)
  // Slot s attends to its positions <= positions[s]: (S, 1, 1, T) bool.
  const at::Tensor visible = (at::arange(t, positions.options()).view({1, t}) <=
                              positions.view({s, 1}))
                                 .view({s, 1, 1, t});
  const at::Tensor index =
      positions.view({s, 1, 1, 1}).expand({s, heads, 1, head_dim});
  at::Tensor mlp;
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const Block& b = blocks_[l];
    at::Tensor h;
    std::tie(x, h) = Norm1(b, x, mlp);
    std::vector<at::Tensor> qkv =
        at::linear(h, b.w_qkv).view({s, 1, 3, heads, head_dim}).unbind(2);
    for (at::Tensor& u : qkv) u = u.transpose(1, 2);  // (S, H, 1, hd)
    cache.k[l].scatter_(2, index, qkv[1]);
    cache.v[l].scatter_(2, index, qkv[2]);
    at::Tensor y = at::scaled_dot_product_attention(
        qkv[0], cache.k[l], cache.v[l], visible, 0.0,
        /*is_causal=*/false, AttentionScale());
    y = y.transpose(1, 2).reshape({s, 1, d});
    std::tie(x, mlp) = Mlp(b, x, at::linear(y, b.w_out));
  }
  return Head(x, mlp).view({s, dims_.vocab_size});  // (S, V)
}

at::Tensor Gpt::Loss(const at::Tensor& inputs, const at::Tensor& targets,
                     std::optional<double> known_grad) const {
  at::Tensor logits =
      Forward(inputs).reshape({-1, dims_.vocab_size});  // (B*T, V)
  return SoftmaxCrossEntropy::apply(logits, targets.reshape({-1}), known_grad,
                                    legacy_.loss);
}

}  // namespace isoflop::trainer
