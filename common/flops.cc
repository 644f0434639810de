#include "common/flops.h"

namespace isoflop {

ParamCounts CountParams(const ModelDims& m) {
  const int64_t d = m.d_model;
  const int64_t per_layer_matmul = 4 * d * d + 2 * d * m.d_ff;
  ParamCounts c;
  c.n_matmul = m.n_layers * per_layer_matmul + d * m.vocab_size;
  const int64_t embedding = m.vocab_size * d + m.context * d;
  const int64_t norms = m.n_layers * 2 * d + d;
  c.n_total = c.n_matmul + embedding + norms;
  c.n_non_embedding = c.n_total - embedding;
  c.flops_per_token = 6.0 * static_cast<double>(c.n_matmul) +
                      12.0 * static_cast<double>(m.n_layers * d * m.context);
  return c;
}

double TrialCompute(double flops_per_token, double tokens) {
  return flops_per_token * tokens;
}

std::string FlopConventionText() {
  return "FLOPs/token = 6*N_matmul + 12*L*d_model*T (all Linear weights incl. "
         "LM head; attention not halved for causality; no recompute)";
}

}  // namespace isoflop
