// The seed GPT of DESIGN.md: token embedding + learned positions, pre-norm
// RMSNorm blocks with causal SDPA attention and a GELU MLP, final RMSNorm,
// untied LM head, no biases. Its parameters match common/flops.h exactly.
#ifndef ISOFLOP_TRAINER_MODEL_H_
#define ISOFLOP_TRAINER_MODEL_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "common/flops.h"

namespace isoflop::trainer {

class Gpt {
 public:
  // Parameters are drawn from the current default CPU generator (seed it
  // first) and moved to `device` in fp32 with requires_grad.
  Gpt(const ModelDims& dims, at::Device device);

  // Mean next-token cross entropy (fp32 scalar) of `inputs` (B, T) int64
  // against `targets` (B, T) int64. Runs under whatever autocast is active.
  at::Tensor Loss(const at::Tensor& inputs, const at::Tensor& targets) const;

  // Matmul weights (weight-decayed) and embeddings + norm gains (not).
  const std::vector<at::Tensor>& decay_params() const { return decay_; }
  const std::vector<at::Tensor>& no_decay_params() const { return no_decay_; }
  int64_t NumParams() const;

 private:
  struct Block {
    at::Tensor norm1, w_qkv, w_out, norm2, w_fc1, w_fc2;
  };
  at::Tensor Forward(const at::Tensor& inputs) const;  // (B, T) -> (B, T, V)

  ModelDims dims_;
  at::Tensor tok_emb_, pos_emb_, norm_f_, w_head_;
  std::vector<Block> blocks_;
  std::vector<at::Tensor> decay_, no_decay_;
};

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_MODEL_H_
