// Everything `isoflop fit` computes from one set of points (Approaches 1, 2
// and 3, bootstrap intervals, compute-optimal answers at queried budgets),
// and its two renderings: a table for people and one JSON object for
// programs (read back by queries.h).
#ifndef ISOFLOP_ANALYSIS_FIT_REPORT_H_
#define ISOFLOP_ANALYSIS_FIT_REPORT_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "analysis/approach1.h"
#include "analysis/approach2.h"
#include "analysis/approach3.h"
#include "analysis/backtest.h"
#include "analysis/bootstrap.h"
#include "analysis/budgets.h"
#include "analysis/flops.h"
#include "analysis/points_io.h"
#include "nlohmann/json.hpp"

namespace isoflop::analysis {

struct FitRequest {
  std::set<int> approaches = {1, 2, 3};
  Approach3Options approach3;
  Approach2Options approach2;
  int envelope_points = 1500;
  std::vector<double> budgets;    // --budgets; empty: budget column or flops
  double budget_tolerance = 0.1;  // relative
  int bootstrap = 0;              // resamples; 0: none
  uint64_t seed = 1;
  std::vector<double> query_flops;  // budgets to answer (with intervals)
  // Approach 3 refitted without the largest budget, predicting it
  // (analysis/backtest.h); costs one more Approach 3 fit.
  bool backtest = true;
  // Also the rollout: a refit per budget after the first (costs one fit
  // each).
  bool rollout = false;
  // Refit with N non-embedding and C = 6ND vs exact (flops.h
  // ExponentSensitivity; a second Approach 3 fit when the points have
  // n_non_embedding).
  bool sensitivity = false;
  // Set (and true): Approach 3 and the bootstraps stop early and RunFits
  // returns CANCELLED.
  const std::atomic<bool>* cancel = nullptr;
};

// An approach's result, or why there is none.
template <typename Fit, typename Boot>
struct ApproachResult {
  std::optional<Fit> fit;
  std::optional<Boot> bootstrap;
  std::string reason;  // set when !fit: "not requested", or the fit's error
};

struct FitReport {
  FitRequest request;
  int n_points = 0;               // rows read
  std::vector<Point> fit_points;  // used by Approaches 2, 3 (FinalPoints)
  Grouping grouping;
  // The points' FLOP convention (flops.h FlopsModelOf): every C <-> (N, D)
  // conversion of the answers uses it.
  FlopsModel flops_model = FlopsModel::SixND();
  std::vector<ExponentUnder> sensitivity;  // empty unless requested
  ApproachResult<Approach1Fit, int> approach1;
  ApproachResult<Approach2Fit, Approach2Bootstrap> approach2;
  ApproachResult<Approach3Fit, Approach3Bootstrap> approach3;
  std::optional<Backtest> backtest;  // when requested and possible
  std::string backtest_reason;       // why not, when requested
  std::vector<Backtest> rollout;     // when requested
};

// Runs the requested approaches. INVALID_ARGUMENT for a bad request (a
// budget list, tolerance, envelope count, bootstrap count or --approach
// value, naming the flag); an approach that cannot run on these points is
// not an error: its result carries the reason. FAILED_PRECONDITION joining
// the reasons when no requested approach produced a fit.
absl::StatusOr<FitReport> RunFits(const PointSet& set,
                                  const FitRequest& request);

struct ReportJsonOptions {
  // Keep the bootstrap samples ("bootstrap": {"samples": [...]}, `fit
  // --samples`) so `isoflop optimal --fit` can give intervals at any
  // budget; without them the object stays small.
  bool samples = false;
};

// The JSON object of the report (issue 5, "Output"; docs/fitting.md):
// "verdict" ({"level", "reasons"}, analysis/verdict.h), n_points,
// approach1, approach2, approach3 (null when absent, with its reason in
// "reasons"; each with its own "verdict"), "backtest" (null when none, its
// reason in reasons.backtest) and "rollout" when requested, every double at
// full precision (17 significant digits), failed bootstrap refits counted.
nlohmann::json ReportToJson(const FitReport& report,
                            const ReportJsonOptions& options = {});

// The same for people: the verdict and its reasons first, then one block
// per approach with the intervals beside the estimates (scale parameters as
// ×/÷ factors), the backtest, numbers to `digits` significant figures and
// counts with K/M/B/T (analysis/readable.h).
std::string ReportToText(const FitReport& report, int digits = 3);

// The convention and sensitivity parts of both renderings (separate so the
// rest of the report can change around them): sets "flops_convention" and,
// when computed, "sensitivity" in `out`; the text's closing lines.
void AddFlopsConvention(const FitReport& report, nlohmann::json* out);
std::string FlopsConventionLines(const FitReport& report);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_FIT_REPORT_H_
