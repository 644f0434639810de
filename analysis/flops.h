// FLOPs <-> (N, D): every conversion between a compute budget C, a parameter
// count N and a token count D that the analysis makes, one named function
// each (docs/architecture.md §4). Two conventions:
//  - "6ND": C = 6 N D (Kaplan et al. 2020, Chinchilla); what a points file
//    without a `flops` column and the published laws use.
//  - "exact": FLOPs/token as a function of N, interpolated log-log through
//    (N, C / D) pairs measured on the model family: the trials of a sweep
//    (whose FLOPs/token is common/flops.h's 6 N_matmul + 12 L d T) or the
//    rows of a points file with both `tokens` and `flops`. C = D FLOPs/token.
// No other file multiplies or divides by 6 to convert FLOPs.
#ifndef ISOFLOP_ANALYSIS_FLOPS_H_
#define ISOFLOP_ANALYSIS_FLOPS_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "analysis/approach3.h"
#include "analysis/points_io.h"
#include "nlohmann/json.hpp"

namespace isoflop::analysis {

// ---------------------------------------------------------------- C = 6ND

// 6 N: training FLOPs per token of an N-parameter model under 6ND.
double FlopsPerToken6N(double params);
// C = 6 N D.
double ComputeFromParamsTokens6N(double params, double tokens);
// D = C / (6 N).
double TokensForCompute6N(double params, double flops);
// N D = C / 6: the product a compute budget fixes under 6ND (the closed form
// of ComputeOptimalFor).
double ParamsTokensProduct6N(double flops);

// ---------------------------------------------------------------- a model

// FLOPs per token as a function of N for one model family.
class FlopsModel {
 public:
  // C = 6 N D.
  static FlopsModel SixND();
  // Log-log interpolation through `table`'s (N, FLOPs/token) pairs (any
  // order; pairs with equal N are merged by their geometric mean); beyond the
  // smallest and largest N, the line of a least-squares fit of log FLOPs/token
  // on log N over all the pairs (its slope, through the end pair: continuous).
  // One distinct N: FLOPs/token proportional to N through it. INVALID_ARGUMENT
  // naming the pair ("flops_per_token[3] = (N 0, 7e6): ...") unless every
  // value is finite and > 0, or when the table is empty.
  static absl::StatusOr<FlopsModel> Interpolated(
      std::vector<std::pair<double, double>> table);

  bool is_6nd() const { return table_.empty(); }
  // The merged (N, FLOPs/token) nodes, ascending N; empty for 6ND.
  const std::vector<std::pair<double, double>>& table() const { return table_; }
  // d log(FLOPs/token) / d log N at N: 1 for 6ND.
  double LogSlope(double params) const;
  // "6ND" or "exact".
  std::string name() const { return is_6nd() ? "6ND" : "exact"; }
  // One sentence naming the convention, printed beside every C.
  std::string Describe() const;

 private:
  std::vector<std::pair<double, double>> table_;  // log N, log FLOPs/token
  double slope_ = 1;                              // beyond the ends
  friend double FlopsPerToken(const FlopsModel&, double);
};

// The convention of a points file: "exact" through its rows' (params,
// flops / tokens) when it has both a `tokens` and a `flops` column, 6ND
// otherwise. `non_embedding`: through (n_non_embedding, flops / tokens)
// instead (FAILED_PRECONDITION without that column or without exact FLOPs).
absl::StatusOr<FlopsModel> FlopsModelOf(const PointSet& set,
                                        bool non_embedding = false);

// FLOPs/token of an N-parameter model of the family.
double FlopsPerToken(const FlopsModel& model, double params);
// C = D FLOPs/token(N).
double ComputeFromParamsTokens(const FlopsModel& model, double params,
                               double tokens);
// D = C / FLOPs/token(N).
double TokensForCompute(const FlopsModel& model, double params, double flops);

// {"name": "6ND"|"exact", "description": ..., "flops_per_token": [[N, F],
// ...]} (the table only for "exact"), read back by FlopsModelFromJson.
nlohmann::json FlopsModelToJson(const FlopsModel& model);
// Null or absent (a fit file written before the convention was stored):
// 6ND. INVALID_ARGUMENT naming the key for anything else malformed.
absl::StatusOr<FlopsModel> FlopsModelFromJson(const nlohmann::json& j);

// ---------------------------------------------------------------- optima

// The compute-optimal (N, D) of an Approach 3 law for budget C under
// `model`: minimises L(N, D) over D FLOPs/token(N) = C. 6ND: the closed form
// ComputeOptimalFor. Otherwise a search over log N (a scan of +-12 around the
// 6ND optimum, then bisection on the first-order condition), and D =
// TokensForCompute, so
// that ComputeFromParamsTokens(model, n_opt, d_opt) = C to rounding. Same
// caveats as ComputeOptimalFor for a degenerate law.
ComputeOptimum ComputeOptimalUnder(const Approach3Fit& fit, double flops,
                                   const FlopsModel& model);

// The budget whose compute-optimal N is `params` under `model` (at the
// optimum alpha A N^-alpha = beta B D^-beta dlogF/dlogN).
double ComputeForOptimalParams(const Approach3Fit& fit, double params,
                               const FlopsModel& model);

// ---------------------------------------------------------------- sensitivity

// One refit choice of the sensitivity line: which N, which C.
struct ExponentUnder {
  std::string n_convention;      // "n_total" or "n_non_embedding"
  std::string flops_convention;  // "6ND" or "exact"
  // N_opt exponent a: d log N_opt / d log C between the smallest and largest
  // budget (beta / (alpha + beta) under 6ND). Unset with `reason` when the
  // choice cannot be made (no such N counts, no exact FLOPs, refit failed).
  std::optional<double> a;
  std::string reason;
};

// The N_opt exponent between budgets c_lo and c_hi under `model` (the log-log
// slope of ComputeOptimalUnder's N_opt).
double OptimalParamsExponent(const Approach3Fit& fit, const FlopsModel& model,
                             double c_lo, double c_hi);

// The sensitivity line: the N_opt exponent under N = n_total and
// n_non_embedding, C = exact and 6ND. `primary` is the Approach 3 fit of
// `points` with N = n_total; the n_non_embedding rows refit Approach 3 with
// `options` (starts: the primary's optimum and grid:2). The exponent is taken
// between the smallest and the largest C of the points.
std::vector<ExponentUnder> ExponentSensitivity(const PointSet& set,
                                               const std::vector<Point>& points,
                                               const Approach3Fit& primary,
                                               const Approach3Options& options);

// "N_opt exponent a: 0.498 (N total, C exact), 0.51 (N total, C = 6ND), ..."
std::string SensitivityText(const std::vector<ExponentUnder>& rows);
nlohmann::json SensitivityToJson(const std::vector<ExponentUnder>& rows);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_FLOPS_H_
