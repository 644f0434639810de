#include "analysis/approach3.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <random>
#include <thread>

#include "Eigen/Eigenvalues"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "analysis/flops.h"
#include "analysis/huber_log_loss.h"
#include "analysis/lbfgs.h"
#include "ceres/gradient_problem.h"
#include "ceres/gradient_problem_solver.h"

namespace isoflop::analysis {
namespace {

// Chinchilla's start grid (Hoffmann et al. 2022, appendix D.2), in the order
// of Params = (a, b, e, alpha, beta): its lower end, step and number of values.
struct GridAxis {
  const char* name;
  double lo, step;
  int count;
  double hi() const { return lo + step * (count - 1); }
};
constexpr GridAxis kGrid[kNumParams] = {{"a", 0, 5, 6},
                                        {"b", 0, 5, 6},
                                        {"e", -1, 0.5, 5},
                                        {"alpha", 0, 0.5, 5},
                                        {"beta", 0, 0.5, 5}};

// Starts whose objectives differ by at most this much count as the same best.
constexpr double kSameObjective = 1e-9;
// A Hessian with a larger condition number than this (or a non-positive
// eigenvalue) means the points do not pin the five parameters down.
constexpr double kIllConditioned = 1e12;
// Iteration caps: each start, then the best start's continuation. On noisy
// data whose optimum has E -> 0, most starts crawl down a flat valley; 500
// iterations per start and a long polish of the best find the same optimum
// (to 12+ digits) 2-5x faster than 2000 per start, at the cost of fewer
// crawling starts counted in n_starts_at_best.
constexpr int kMaxIterationsPerStart = 500;
constexpr int kMaxPolishIterations = 10000;
constexpr size_t kMaxPoints = 100000;

std::vector<Params> StartGrid() {
  std::vector<Params> grid;
  for (int ia = 0; ia < kGrid[0].count; ++ia)
    for (int ib = 0; ib < kGrid[1].count; ++ib)
      for (int ie = 0; ie < kGrid[2].count; ++ie)
        for (int ial = 0; ial < kGrid[3].count; ++ial)
          for (int ibe = 0; ibe < kGrid[4].count; ++ibe) {
            const int index[kNumParams] = {ia, ib, ie, ial, ibe};
            Params x;
            for (int k = 0; k < kNumParams; ++k) {
              x[k] = kGrid[k].lo + kGrid[k].step * index[k];
            }
            grid.push_back(x);
          }
  return grid;
}

std::vector<Params> SubGrid(int stride) {
  std::vector<Params> grid;
  for (const Params& x : StartGrid()) {
    bool keep = true;
    for (int k = 0; k < kNumParams; ++k) {
      const int index =
          static_cast<int>(std::lround((x[k] - kGrid[k].lo) / kGrid[k].step));
      keep = keep && (index % stride == 0 || index == kGrid[k].count - 1);
    }
    if (keep) grid.push_back(x);
  }
  return grid;
}

std::vector<Params> RandomStarts(int count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Params> starts(count);
  for (Params& x : starts) {
    for (int k = 0; k < kNumParams; ++k) {
      x[k] = std::uniform_real_distribution<double>(kGrid[k].lo,
                                                    kGrid[k].hi())(rng);
    }
  }
  return starts;
}

struct StartResult {
  Params x{};
  double objective = std::numeric_limits<double>::infinity();
  std::string termination;
};

// One L-BFGS descent (analysis/lbfgs.h).
StartResult Solve(const ceres::GradientProblem& problem, const Params& start,
                  int max_iterations) {
  const ceres::GradientProblemSolver::Options options =
      LbfgsOptions(max_iterations);
  StartResult r;
  r.x = start;
  ceres::GradientProblemSolver::Summary summary;
  ceres::Solve(options, problem, r.x.data(), &summary);
  if (std::isfinite(summary.final_cost)) r.objective = summary.final_cost;
  r.termination = summary.message;
  return r;
}

// Runs every start on `threads` threads; results are in grid order, so the
// outcome does not depend on scheduling. Each thread builds its own problem:
// ceres::GradientProblem::Evaluate writes to a scratch buffer inside the
// problem, so one problem must not be shared between threads.
std::vector<StartResult> SolveAll(const HuberLogLoss& loss,
                                  const std::vector<Params>& starts,
                                  int threads,
                                  const std::atomic<bool>* cancel) {
  std::vector<StartResult> results(starts.size());
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      const ceres::GradientProblem problem(new HuberLogLoss(loss));
      for (size_t i = next++; i < starts.size(); i = next++) {
        if (cancel != nullptr && cancel->load()) break;
        results[i] = Solve(problem, starts[i], kMaxIterationsPerStart);
      }
    });
  }
  for (std::thread& t : pool) t.join();
  return results;
}

// Continues the best start's descent with a larger iteration cap; keeps the
// start's own result if the continuation is no better.
StartResult Polish(const HuberLogLoss& loss, const StartResult& best) {
  const ceres::GradientProblem problem(new HuberLogLoss(loss));
  StartResult polished = Solve(problem, best.x, kMaxPolishIterations);
  if (!(polished.objective < best.objective)) return best;
  polished.termination =
      absl::StrCat(best.termination, "; polished: ", polished.termination);
  return polished;
}

absl::Status Validate(const std::vector<Observation>& points,
                      const Approach3Options& options) {
  if (points.size() < 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        "points: ", points.size(),
        " given: Approach 3 needs >= 5 points for its 5 parameters"));
  }
  if (points.size() > kMaxPoints) {
    return absl::InvalidArgumentError(absl::StrCat(
        "points: ", points.size(), " given: Approach 3 takes at most ",
        kMaxPoints, " (aggregate repeated runs or subsample)"));
  }
  if (!std::isfinite(options.huber_delta) || options.huber_delta <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.huber_delta = ", options.huber_delta,
                     ": must be finite and > 0"));
  }
  for (size_t i = 0; i < options.starts.size(); ++i) {
    for (double v : options.starts[i]) {
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "options.starts[", i, "] has ", v, ": must be finite"));
      }
    }
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.threads = ", options.threads,
                     ": must be >= 0 (0: hardware concurrency)"));
  }
  for (size_t i = 0; i < points.size(); ++i) {
    const std::pair<const char*, double> fields[] = {
        {"n", points[i].n}, {"d", points[i].d}, {"loss", points[i].loss}};
    for (const auto& [name, v] : fields) {
      if (!std::isfinite(v) || v <= 0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "points[%d].%s = %g: must be finite and > 0", i, name, v));
      }
    }
  }
  return absl::OkStatus();
}

// Names the fitted parameters at or beyond the start grid's range ("" if
// none): the grid did not bracket them, so a better optimum may lie outside.
std::string GridEdgeParams(const Params& x) {
  std::string names;
  for (int k = 0; k < kNumParams; ++k) {
    if (x[k] <= kGrid[k].lo || x[k] >= kGrid[k].hi()) {
      absl::StrAppend(&names, names.empty() ? "" : ", ", kGrid[k].name, " = ",
                      absl::StrFormat("%.6g", x[k]), " (grid ", kGrid[k].lo,
                      "..", kGrid[k].hi(), ")");
    }
  }
  return names;
}

// The Hessian's condition number at `x`; infinity when it is not positive
// definite (a flat or saddle direction: some parameter is not determined).
double ConditionNumber(const HuberLogLoss& loss, const Params& x) {
  const auto h = loss.Hessian(x);
  Eigen::Matrix<double, kNumParams, kNumParams> m;
  for (int i = 0; i < kNumParams; ++i)
    for (int j = 0; j < kNumParams; ++j) m(i, j) = h[i * kNumParams + j];
  const Eigen::SelfAdjointEigenSolver<decltype(m)> eigen(
      m, Eigen::EigenvaluesOnly);
  const auto& values = eigen.eigenvalues();  // ascending
  if (!(values(0) > 0)) return std::numeric_limits<double>::infinity();
  return values(kNumParams - 1) / values(0);
}

// Fills fit->on_grid_edge and fit->message (format: approach3.h).
void Diagnose(const HuberLogLoss& loss, const StartResult& best,
              Approach3Fit* fit) {
  const double condition = ConditionNumber(loss, best.x);
  fit->condition_number = condition;
  fit->ill_conditioned = !(condition <= kIllConditioned);
  fit->message = absl::StrCat(
      "best start: ", best.termination,
      absl::StrFormat("; Hessian condition number %.3g", condition));
  const std::string edge = GridEdgeParams(best.x);
  fit->on_grid_edge = !edge.empty();
  if (fit->on_grid_edge) {
    absl::StrAppend(&fit->message, "; warning: fitted ", edge,
                    " at or beyond the start grid's edge");
  }
  if (fit->ill_conditioned) {
    absl::StrAppend(&fit->message,
                    absl::StrFormat("; warning: ill-conditioned: Hessian "
                                    "condition number %.3g > %.0e: the points "
                                    "do not determine all five parameters",
                                    condition, kIllConditioned));
  }
  if (fit->alpha <= 0 || fit->beta <= 0) {
    absl::StrAppend(&fit->message,
                    "; warning: alpha or beta <= 0: the data do not show "
                    "loss falling with both N and D");
  }
}

}  // namespace

absl::StatusOr<Approach3Fit> FitApproach3(
    const std::vector<Observation>& points, const Approach3Options& options) {
  if (absl::Status s = Validate(points, options); !s.ok()) return s;
  const HuberLogLoss loss(points, options.huber_delta);
  const std::vector<Params> starts =
      options.starts.empty() ? StartGrid() : options.starts;
  const int threads =
      options.threads > 0
          ? options.threads
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::vector<StartResult> results =
      SolveAll(loss, starts, threads, options.cancel);
  if (options.cancel != nullptr && options.cancel->load()) {
    return absl::CancelledError("Approach 3 fit cancelled");
  }
  // The first of equal minima, so ties resolve by grid order.
  const StartResult& best =
      *std::min_element(results.begin(), results.end(),
                        [](const StartResult& x, const StartResult& y) {
                          return x.objective < y.objective;
                        });

  const StartResult polished = Polish(loss, best);
  Approach3Fit fit;
  fit.a = std::exp(polished.x[0]);
  fit.b = std::exp(polished.x[1]);
  fit.e = std::exp(polished.x[2]);
  fit.alpha = polished.x[3];
  fit.beta = polished.x[4];
  fit.objective = polished.objective;
  fit.huber_delta = options.huber_delta;
  fit.n_points = static_cast<int>(points.size());
  fit.n_starts = static_cast<int>(starts.size());
  fit.n_starts_at_best = static_cast<int>(
      std::count_if(results.begin(), results.end(), [&](const StartResult& r) {
        return r.objective - best.objective <= kSameObjective;
      }));
  Diagnose(loss, polished, &fit);
  return fit;
}

absl::StatusOr<std::vector<LogParams>> StartsFromSpec(const std::string& spec) {
  const std::vector<std::string> parts = absl::StrSplit(spec, ':');
  int count = 0;
  uint64_t seed = 1;
  if (parts[0] == "grid" && parts.size() == 1) return StartGrid();
  if (parts[0] == "grid" && parts.size() == 2 &&
      absl::SimpleAtoi(parts[1], &count) && count >= 1 && count <= 4) {
    return SubGrid(count);
  }
  if (parts[0] == "random" && (parts.size() == 2 || parts.size() == 3) &&
      absl::SimpleAtoi(parts[1], &count) && count >= 1 && count <= 1000000 &&
      (parts.size() == 2 || absl::SimpleAtoi(parts[2], &seed))) {
    return RandomStarts(count, seed);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--starts = '", spec,
      "': must be grid, grid:K (K in 1..4) or random:K[:SEED] (K in "
      "1..1000000)"));
}

LogParams ToLogParams(const Approach3Fit& fit) {
  return {std::log(fit.a), std::log(fit.b), std::log(fit.e), fit.alpha,
          fit.beta};
}

ComputeOptimum ComputeOptimalFor(const Approach3Fit& fit, double flops) {
  const double s = fit.alpha + fit.beta;
  const double g = std::pow(fit.alpha * fit.a / (fit.beta * fit.b), 1.0 / s);
  ComputeOptimum o;
  o.flops = flops;
  const double nd = ParamsTokensProduct6N(flops);  // N D = C / 6
  o.n_opt = g * std::pow(nd, fit.beta / s);
  o.d_opt = std::pow(nd, fit.alpha / s) / g;
  o.loss = fit.e + fit.a / std::pow(o.n_opt, fit.alpha) +
           fit.b / std::pow(o.d_opt, fit.beta);
  return o;
}

std::string FormatFit(const Approach3Fit& fit) {
  std::string out = absl::StrFormat(
      "L(N, D) = E + A/N^alpha + B/D^beta\n"
      "  E     = %.10g\n  A     = %.10g\n  B     = %.10g\n"
      "  alpha = %.10g\n  beta  = %.10g\n"
      "  objective %.6g (Huber, summed) over %d points; %d of %d starts "
      "reached the best\n",
      fit.e, fit.a, fit.b, fit.alpha, fit.beta, fit.objective, fit.n_points,
      fit.n_starts_at_best, fit.n_starts);
  for (absl::string_view line : absl::StrSplit(fit.message, "; ")) {
    if (!line.empty()) absl::StrAppend(&out, "  ", line, "\n");
  }
  return out;
}

}  // namespace isoflop::analysis
