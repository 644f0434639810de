// Muennighoff et al. 2023's data-constrained scaling law ("Scaling
// Data-Constrained Language Models", arXiv:2305.16264), fitted beside
// Chinchilla's (docs/fitting.md, "Data-constrained fits"):
//
//   L(N, D, U_D) = E + A / N'^alpha + B / D'^beta
//   D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)),  R_D = D / U_D - 1
//   N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)),  R_N = N / U_N - 1
//
// with U_D the unique tokens a run saw (min(unique tokens, D)) and U_N =
// min(N, N_opt(U_D)), N_opt(D) = G (D G)^(beta / alpha), G = (alpha A /
// (beta B))^(1 / (alpha + beta)): the parameters compute-optimal for U_D
// under the law itself, as in the authors' reference code
// (github.com/huggingface/datablations, README.md, "Parametric Fit", commit
// 13701315). With no repetition (R_D = 0) and no excess parameters (R_N = 0)
// the law is Chinchilla's.
#ifndef ISOFLOP_ANALYSIS_CONSTRAINED_H_
#define ISOFLOP_ANALYSIS_CONSTRAINED_H_

#include <array>
#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "analysis/approach3.h"
#include "analysis/bootstrap.h"
#include "analysis/fit_report.h"
#include "analysis/points_io.h"
#include "nlohmann/json.hpp"

namespace isoflop::analysis {

// The published constants (datablations README.md, "Parametric Fit": fitted
// on the paper's ~400 runs; the paper rounds them to 15.4 and 5.3).
inline constexpr double kPublishedRDStar = 15.387756;
inline constexpr double kPublishedRNStar = 5.309743;
// A point repeats data when D > U_D by more than this relative margin.
inline constexpr double kRepeatTolerance = 1e-9;

struct ConstrainedObservation {
  double n = 0;              // parameters
  double d = 0;              // training tokens (with repeats)
  double unique_tokens = 0;  // unique tokens available; 0: all D unique
  double loss = 0;
  // Unique tokens seen: min(unique_tokens, d), or d when unique_tokens is 0.
  double UniqueSeen() const;
  // d / UniqueSeen(): 1 without repetition.
  double Epochs() const;
};

// The points' (n, d, unique_tokens, loss); unique_tokens 0 where a point
// has none (all its tokens unique).
std::vector<ConstrainedObservation> ToConstrainedObservations(
    const std::vector<Point>& points);

struct ConstrainedLaw {
  double e = 0, a = 0, b = 0, alpha = 0, beta = 0;  // E, A, B (not logs)
  double rd_star = kPublishedRDStar;
  double rn_star = kPublishedRNStar;
};

// The solver's coordinates: (ln A, ln B, ln E, alpha, beta, ln R_D*,
// ln R_N*).
using ConstrainedParams = std::array<double, 7>;

struct ConstrainedOptions {
  double huber_delta = 1e-3;  // on log-loss residuals, as Approach 3
  int threads = 0;            // 0: hardware concurrency
  // Fixed constants (nullopt: fitted). kPublishedRDStar / kPublishedRNStar
  // are the published values.
  std::optional<double> rd_star, rn_star;
  // Starts of (a, b, e, alpha, beta) (empty: StartsFromSpec("grid:2"), 243
  // starts), each with R_D*, R_N* at their fixed or published values.
  std::vector<LogParams> law_starts;
  // When set: also its optimum with every pair of R_D*, R_N* in {2, 5, 15,
  // 40} (the fitted ones; fixed ones keep their value).
  std::optional<Approach3Fit> chinchilla;
  // Non-empty: exactly these starts (the bootstrap and the held-out
  // refits pass the full fit's optimum); fixed constants override theirs.
  std::vector<ConstrainedParams> starts;
  const std::atomic<bool>* cancel = nullptr;
};

struct ConstrainedFit {
  ConstrainedLaw law;
  bool rd_star_fitted = false, rn_star_fitted = false;
  int n_points = 0;
  int repeated_points = 0;  // points with D > U_D
  int over_4_epochs = 0;    // points with D / U_D > 4
  double max_epochs = 1;
  int excess_param_points = 0;  // points with N > N_opt(U_D) at the optimum
  double objective = 0;         // summed Huber loss
  int n_starts = 0, n_starts_at_best = 0;
  double condition_number = 0;   // of the free parameters' Hessian
  bool ill_conditioned = false;  // > 1e12 or not positive definite
  double huber_delta = 0;
  // "; "-joined: Ceres's termination, the condition number, then warnings
  // (ill-conditioned; a fitted R* at a bound of its plausible range; R_N*
  // fitted with no point having excess parameters).
  std::string message;
};

// The law's loss at one point (the formula above).
double ConstrainedLoss(const ConstrainedLaw& law,
                       const ConstrainedObservation& point);
// N_opt(U_D) of the law (U_N's cap).
double ComputeOptimalParamsForTokens(const ConstrainedLaw& law, double tokens);

// Fits the law by minimising the summed Huber loss of log-loss residuals
// (as FitApproach3) with Ceres L-BFGS and automatic derivatives from every
// start (options), keeping the best and polishing it. INVALID_ARGUMENT for
// a point whose n, d or loss is not finite and > 0, a negative or
// non-finite unique_tokens, fewer points than free parameters + 1, a fixed
// constant not finite and > 0, or bad options (as FitApproach3).
// FAILED_PRECONDITION when no point repeats data (all epochs <= 1): R_D = 0
// everywhere, the form reduces to Chinchilla's in D and R_D* is not
// identified: fit Chinchilla's form instead. Thread-safe.
absl::StatusOr<ConstrainedFit> FitConstrained(
    const std::vector<ConstrainedObservation>& points,
    const ConstrainedOptions& options = {});

struct ConstrainedBootstrap {
  std::vector<ConstrainedLaw> samples;
  int failed = 0;
};

// Resamples the points with replacement and refits from `full`'s optimum
// (the same fixed constants as `fit_options`), as BootstrapApproach3.
absl::StatusOr<ConstrainedBootstrap> BootstrapConstrained(
    const std::vector<ConstrainedObservation>& points,
    const ConstrainedFit& full, const ConstrainedOptions& fit_options,
    const BootstrapOptions& options);

// 95 % intervals of "E", "A", "B", "alpha", "beta", "rd_star", "rn_star".
std::map<std::string, Interval> ConstrainedIntervals(
    const std::vector<ConstrainedLaw>& samples);

// Held-out comparison of the two forms by leave-one-budget-out
// cross-validation: each budget group is left out in turn, both forms are
// refitted on the others (each from its full fit's optimum) and predict the
// held-out points; the error is the mean of |predicted - observed| /
// observed over every held-out point.
struct FormComparison {
  int folds = 0;   // budgets left out (refits that failed are skipped)
  int points = 0;  // held-out points scored
  double chinchilla_error = 0, muennighoff_error = 0;
  std::string better;  // "chinchilla" or "muennighoff" (lower error)
};

// `group[i]` is point i's budget group (-1: in none, never held out).
// FAILED_PRECONDITION with fewer than 3 groups or when no fold could be
// refitted by both forms.
absl::StatusOr<FormComparison> CompareForms(
    const std::vector<ConstrainedObservation>& points,
    const std::vector<int>& group, const Approach3Fit& chinchilla,
    const ConstrainedFit& muennighoff, const ConstrainedOptions& options);

// The data-constrained fit of a report's points (FinalPoints), with its
// bootstrap and its comparison with the report's Approach 3, or why not:
// what `isoflop fit --form` and the coordinator's final fit compute.
struct ConstrainedRunOptions {
  bool published_constants = false;  // fix R_D*, R_N* (else fitted)
  int bootstrap = 0;                 // resamples; 0: none
  uint64_t seed = 1;
  bool compare = true;  // CompareForms over the report's budget groups
};
struct ConstrainedRun {
  std::optional<ConstrainedFit> fit;
  std::optional<ConstrainedBootstrap> bootstrap;
  std::optional<FormComparison> comparison;
  std::string reason;             // why no fit
  std::string comparison_reason;  // why no comparison (when asked)
};
// Starts: the report's Approach 3 starts (FitRequest.approach3; empty:
// grid:2) and its optimum; its Huber delta, threads and cancel flag.
ConstrainedRun RunConstrained(const FitReport& report,
                              const ConstrainedRunOptions& options);

// {"E", "A", "B", "alpha", "beta", "rd_star", "rn_star", "rd_star_fitted",
// "rn_star_fitted", "points", "repeated_points", "over_4_epochs",
// "max_epochs", "excess_param_points", "objective", "starts",
// "starts_at_best", "condition_number", "message"[, "ci95",
// "bootstrap_failed"]}; doubles at full precision.
nlohmann::json ConstrainedFitToJson(
    const ConstrainedFit& fit,
    const std::optional<ConstrainedBootstrap>& bootstrap);
// {"method": "leave-one-budget-out", "folds", "points", "chinchilla_error",
// "muennighoff_error", "better"}.
nlohmann::json ComparisonToJson(const FormComparison& comparison);

// The law, its constants (fitted with intervals, or fixed "published"),
// the repetition counts and the message's warnings, to `digits` figures.
std::string ConstrainedFitText(
    const ConstrainedFit& fit,
    const std::optional<ConstrainedBootstrap>& bootstrap, int digits);
std::string ComparisonText(const FormComparison& comparison, int digits);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_CONSTRAINED_H_
