// Compute-optimal questions answered from a stored fit (the JSON of
// fit_report.h): the best model for a budget, the best budget for a model
// size, the cheapest budget that reaches a loss.
#ifndef ISOFLOP_ANALYSIS_QUERIES_H_
#define ISOFLOP_ANALYSIS_QUERIES_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "analysis/approach3.h"
#include "analysis/bootstrap.h"
#include "analysis/flops.h"
#include "analysis/power_law.h"
#include "nlohmann/json.hpp"

namespace isoflop::analysis {

// The laws a fit file holds, with their bootstrap samples when it has them.
struct StoredFit {
  std::optional<Approach3Fit> approach3;
  std::vector<Approach3Fit> approach3_samples;
  std::optional<std::pair<PowerLaw, PowerLaw>> approach2;  // N_opt, D_opt
  std::vector<std::pair<PowerLaw, PowerLaw>> approach2_samples;
  // The FLOP convention the fit's points were measured in: Approach 3
  // answers convert C <-> (N, D) with it (analysis/flops.h).
  FlopsModel flops_model = FlopsModel::SixND();
};

// Reads the object printed by `isoflop fit --format json` (its
// "flops_convention"; absent: 6ND).
// INVALID_ARGUMENT naming the key ("approach3.alpha: must be a number")
// when a present approach lacks a field or has a non-finite one.
absl::StatusOr<StoredFit> StoredFitFromJson(const nlohmann::json& report);

enum class QueryKind { kFlops, kParams, kLoss };

struct Query {
  QueryKind kind = QueryKind::kFlops;
  double value = 0;  // C, N or L
  int approach = 3;  // 2 or 3
};

struct Answer {
  double flops = 0, params = 0, tokens = 0;
  std::optional<double> loss;  // Approach 3 only
  int approach = 3;
  std::string flops_convention = "6ND";  // FlopsModel::name() of the answer
  std::string flops_description;         // FlopsModel::Describe()
  std::map<std::string, Interval> ci95;  // "flops", "params", "tokens",
                                         // "loss"; empty without samples
};

// OK when `value` (of the flag named `flag`: "--flops") is finite, > 0 and a
// normal double (>= 2.2e-308); INVALID_ARGUMENT naming the flag otherwise.
absl::Status CheckQueryValue(const std::string& flag, double value);

// kFlops: N_opt(C), D_opt(C). kParams: the budget whose optimum is this N,
// and its D. kLoss (Approach 3 only): the cheapest budget whose optimum
// reaches loss L (under 6ND in closed form: at the optimum alpha A N^-alpha =
// beta B D^-beta, so L - E = A N^-alpha (1 + alpha / beta); under an exact
// model by bisection on log C). Approach 3 converts with fit.flops_model
// (ComputeOptimalUnder), so ComputeFromParamsTokens(model, N, D) = C.
// INVALID_ARGUMENT if the value is not finite and > 0 or approach is not 2 or
// 3; FAILED_PRECONDITION if the fit lacks the approach, for kLoss with Approach
// 2 (no loss model), or when L <= E (unreachable: names E); OUT_OF_RANGE when
// the answer is not finite and > 0 (a value far outside the fitted range: C =
// 5e-324 gives N = 0), naming the flag.
absl::StatusOr<Answer> AnswerQuery(const StoredFit& fit, const Query& query);

// {flops, params, tokens, loss, approach, flops_convention,
// flops_convention_description[, ci95]} at full precision.
nlohmann::json AnswerToJson(const Answer& answer);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_QUERIES_H_
