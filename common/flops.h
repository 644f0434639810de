// The FLOP and parameter convention of isoflop, stated once
// (docs/architecture.md §4):
//   N_matmul        = all Linear weights: per layer 4·d² (qkv + out) + 2·d·d_ff
//                     (MLP), plus the untied LM head d·V.
//   N_embedding     = token (V·d) + learned positions (T·d).
//   N_total         = N_matmul + N_embedding + norm gains (2·d per layer + d).
//   N_non_embedding = N_total − N_embedding.
//   FLOPs/token     = 6·N_matmul + 12·L·d·T  (attention not halved for
//                     causality; no recompute).
// The trainer's model (trainer/model.h) must have exactly these parameters; a
// test checks it.
#ifndef ISOFLOP_COMMON_FLOPS_H_
#define ISOFLOP_COMMON_FLOPS_H_

#include <cstdint>
#include <string>

namespace isoflop {

struct ModelDims {
  int64_t vocab_size = 0;
  int64_t context = 0;
  int64_t d_model = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t d_ff = 0;  // already resolved (never 0)
};

struct ParamCounts {
  int64_t n_total = 0;
  int64_t n_non_embedding = 0;
  int64_t n_matmul = 0;
  double flops_per_token = 0;  // training (forward + backward)
};

ParamCounts CountParams(const ModelDims& dims);

// A trial's actual training compute C = tokens x FLOPs/token: the C it is
// stored, fitted and answered with (analysis/flops.h converts the rest).
double TrialCompute(double flops_per_token, double tokens);

// One line naming the convention, printed with every result.
std::string FlopConventionText();

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_FLOPS_H_
