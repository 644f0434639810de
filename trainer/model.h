// The seed GPT (trainer/README.md): token embedding + learned positions,
// pre-norm RMSNorm blocks with causal SDPA attention and a GELU MLP, final
// RMSNorm, untied LM head, no biases. Its parameters match common/flops.h
// exactly.
#ifndef ISOFLOP_TRAINER_MODEL_H_
#define ISOFLOP_TRAINER_MODEL_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "common/flops.h"
#include "trainer/options.h"

namespace isoflop::trainer {

// One optimizer group: one fused AdamW call with lr * lr_scale.
struct ParamGroup {
  std::vector<at::Tensor> params;
  double lr_scale = 1;
  bool weight_decay = false;
};

class Gpt {
 public:
  // Parameters are drawn from the current default CPU generator (seed it
  // first) and moved to `device` in fp32 with requires_grad. mup_base_width >
  // 0 turns on µP (trainer/README.md) with width multiplier m =
  // d_model / mup_base_width: hidden init std / sqrt(m), hidden LR / m,
  // logits / m, attention scale 8 / head_dim (= 1/sqrt(head_dim) at 64).
  // `legacy` switches the listed fused pieces back to ATen (--legacy,
  // trainer/options.h); the model keeps it, and WithParams copies it.
  Gpt(const ModelDims& dims, at::Device device, int64_t mup_base_width = 0,
      const LegacyPaths& legacy = {});

  // Mean next-token cross entropy (fp32 scalar) of `inputs` (B, T) int64
  // against `targets` (B, T) int64. Runs under whatever autocast is active;
  // the loss reads the logits in their dtype (fused soft-max cross entropy:
  // no fp32 copy of the logits is kept for backward). `known_grad`: the
  // caller promises that the gradient arriving at the loss in backward is
  // this constant (e.g. 1/grad_accum), so it is applied as a host scalar
  // instead of a device tensor (a 3x faster elementwise pass); nullopt: use
  // the incoming gradient tensor (fp16 loss scaling).
  at::Tensor Loss(const at::Tensor& inputs, const at::Tensor& targets,
                  std::optional<double> known_grad = std::nullopt) const;

  // Logits (B, T, V) of `inputs` (B, T) int64, T <= context: the forward of
  // Loss without the loss, recomputed in full (no cache). In the dtype of the
  // parameters (or of the active autocast).
  at::Tensor Logits(const at::Tensor& inputs) const;

  // Keys and values of up to `context` positions for each of `slots`
  // sequences, one (S, H, T, head_dim) tensor per layer. Owned by the caller;
  // Prefill and Decode write into it in place (its addresses never change, so
  // a captured Decode keeps working).
  struct KvCache {
    std::vector<at::Tensor> k, v;
  };
  // A zeroed cache in the dtype and on the device of the parameters.
  KvCache NewKvCache(int64_t slots) const;

  // Runs `prompt` (P,) int64, 1 <= P <= context, as one causal sequence,
  // writes its keys and values to positions [0, P) of `slot` and returns the
  // logits (V) of its last position. Exactly the computation of Logits.
  at::Tensor Prefill(const at::Tensor& prompt, KvCache& cache,
                     int64_t slot) const;

  // One decode step of every slot: `tokens` (S,) int64 at `positions` (S,)
  // int64, each < context. Writes each slot's key and value at its position,
  // attends to the positions <= it and returns the logits (S, V). Static
  // shapes and no host sync, so a CUDA graph can capture it. A slot with no
  // sequence computes garbage that touches no other slot.
  at::Tensor Decode(const at::Tensor& tokens, const at::Tensor& positions,
                    KvCache& cache) const;

  const ModelDims& dims() const { return dims_; }

  // Hidden matmuls (decayed, µP-scaled LR), LM head (decayed), embeddings and
  // norm gains (not decayed). Every parameter is in exactly one group.
  const std::vector<ParamGroup>& groups() const { return groups_; }
  // All parameters in a fixed order (checkpoints, gradient buckets).
  const std::vector<at::Tensor>& params() const { return all_; }
  int64_t NumParams() const;
  const LegacyPaths& legacy() const { return legacy_; }

  // The same model computing with `params` (one per params(), same shapes, in
  // any dtype) in place of its own: the trainer's bf16 working copy of the
  // fp32 master weights. Groups and params() then hold `params`.
  Gpt WithParams(const std::vector<at::Tensor>& params) const;

 private:
  struct Block {
    at::Tensor norm1, w_qkv, w_out, norm2, w_fc1, w_fc2;
  };
  // (B, T) -> (B, T, V). With a cache (B = 1), also writes the keys and
  // values of positions [0, T) of `slot`.
  at::Tensor Forward(const at::Tensor& inputs, KvCache* cache = nullptr,
                     int64_t slot = 0) const;
  std::optional<double> AttentionScale() const;
  // The residual stream is x + the last MLP output `mlp` (undefined before
  // the first block): each add is fused into the norm that follows it.
  // (x + mlp, norm1(x + mlp)).
  std::pair<at::Tensor, at::Tensor> Norm1(const Block& b, const at::Tensor& x,
                                          const at::Tensor& mlp) const;
  // (x + attn, MLP(norm2(x + attn))).
  std::pair<at::Tensor, at::Tensor> Mlp(const Block& b, const at::Tensor& x,
                                        const at::Tensor& attn) const;
  // Final norm of x + mlp, µP scale, LM head.
  at::Tensor Head(const at::Tensor& x, const at::Tensor& mlp) const;

  ModelDims dims_;
  LegacyPaths legacy_;
  double width_mult_ = 1;
  bool mup_ = false;
  at::Tensor tok_emb_, pos_emb_, norm_f_, w_head_;
  std::vector<Block> blocks_;
  std::vector<ParamGroup> groups_;
  std::vector<at::Tensor> all_;
};

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_MODEL_H_
