#include "analysis/approach3.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <limits>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ceres/autodiff_first_order_function.h"
#include "ceres/gradient_problem.h"
#include "ceres/gradient_problem_solver.h"

namespace isoflop::analysis {
namespace {

constexpr int kParams = 5;  // x = (a, b, e, alpha, beta)

// Chinchilla's objective over log-space parameters (autodiff'd by Ceres).
class HuberLogLoss {
 public:
  HuberLogLoss(const std::vector<Observation>& points, double delta)
      : delta_(delta) {
    for (const Observation& p : points) {
      log_n_.push_back(std::log(p.n));
      log_d_.push_back(std::log(p.d));
      log_l_.push_back(std::log(p.loss));
    }
  }

  template <typename T>
  bool operator()(const T* x, T* cost) const {
    using std::abs, std::exp, std::log, std::max;
    const T& a = x[0];
    const T& b = x[1];
    const T& e = x[2];
    const T& alpha = x[3];
    const T& beta = x[4];
    *cost = T(0);
    for (size_t i = 0; i < log_n_.size(); ++i) {
      const T t1 = a - alpha * log_n_[i];
      const T t2 = b - beta * log_d_[i];
      const T m = max(max(t1, t2), e);  // stable log-sum-exp
      const T lse = m + log(exp(t1 - m) + exp(t2 - m) + exp(e - m));
      const T r = lse - log_l_[i];
      const T ar = abs(r);
      *cost += ar <= delta_ ? T(0.5) * r * r : delta_ * (ar - T(0.5 * delta_));
    }
    return true;
  }

 private:
  double delta_;
  std::vector<double> log_n_, log_d_, log_l_;
};

struct StartResult {
  std::array<double, kParams> x{};
  double objective = std::numeric_limits<double>::infinity();
  std::string termination;
};

std::vector<std::array<double, kParams>> ChinchillaGrid() {
  std::vector<std::array<double, kParams>> grid;
  for (int ia = 0; ia <= 5; ++ia)
    for (int ib = 0; ib <= 5; ++ib)
      for (int ie = 0; ie <= 4; ++ie)
        for (int ial = 0; ial <= 4; ++ial)
          for (int ibe = 0; ibe <= 4; ++ibe)
            grid.push_back({5.0 * ia, 5.0 * ib, -1.0 + 0.5 * ie, 0.5 * ial,
                            0.5 * ibe});
  return grid;
}

StartResult Solve(const std::vector<Observation>& points, double delta,
                  const std::array<double, kParams>& start) {
  ceres::GradientProblem problem(
      new ceres::AutoDiffFirstOrderFunction<HuberLogLoss, kParams>(
          new HuberLogLoss(points, delta)));
  ceres::GradientProblemSolver::Options options;
  options.line_search_direction_type = ceres::LBFGS;
  options.max_num_iterations = 2000;
  options.function_tolerance = 1e-15;
  options.gradient_tolerance = 1e-12;
  options.parameter_tolerance = 1e-12;
  options.logging_type = ceres::SILENT;
  StartResult r;
  r.x = start;
  ceres::GradientProblemSolver::Summary summary;
  ceres::Solve(options, problem, r.x.data(), &summary);
  r.objective = std::isfinite(summary.final_cost) ? summary.final_cost
                                                  : r.objective;
  r.termination = summary.message;
  return r;
}

absl::Status Validate(const std::vector<Observation>& points) {
  if (points.size() < 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        "points: ", points.size(),
        " given: Approach 3 needs >= 5 points for its 5 parameters"));
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

}  // namespace

absl::StatusOr<Approach3Fit> FitApproach3(
    const std::vector<Observation>& points, const Approach3Options& options) {
  if (absl::Status s = Validate(points); !s.ok()) return s;
  const auto grid = ChinchillaGrid();
  std::vector<StartResult> results(grid.size());
  std::atomic<size_t> next{0};
  int threads = options.threads > 0
                    ? options.threads
                    : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < grid.size(); i = next++) {
        results[i] = Solve(points, options.huber_delta, grid[i]);
      }
    });
  }
  for (std::thread& t : pool) t.join();

  const StartResult& best = *std::min_element(
      results.begin(), results.end(),
      [](const StartResult& x, const StartResult& y) {
        return x.objective < y.objective;
      });
  Approach3Fit fit;
  fit.a = std::exp(best.x[0]);
  fit.b = std::exp(best.x[1]);
  fit.e = std::exp(best.x[2]);
  fit.alpha = best.x[3];
  fit.beta = best.x[4];
  fit.objective = best.objective;
  fit.n_points = static_cast<int>(points.size());
  fit.n_starts = static_cast<int>(grid.size());
  for (const StartResult& r : results) {
    if (r.objective - best.objective <= 1e-9) ++fit.n_starts_at_best;
  }
  fit.on_grid_edge = best.x[0] <= 0 || best.x[0] >= 25 || best.x[1] <= 0 ||
                     best.x[1] >= 25 || best.x[2] <= -1 || best.x[2] >= 1 ||
                     best.x[3] <= 0 || best.x[3] >= 2 || best.x[4] <= 0 ||
                     best.x[4] >= 2;
  fit.message = best.termination;
  if (fit.on_grid_edge) {
    absl::StrAppend(&fit.message,
                    "; warning: the optimum lies on or outside the edge of "
                    "the start grid");
  }
  if (fit.alpha <= 0 || fit.beta <= 0) {
    absl::StrAppend(&fit.message,
                    "; warning: alpha or beta <= 0: the data do not show "
                    "loss falling with both N and D");
  }
  return fit;
}

ComputeOptimum ComputeOptimalFor(const Approach3Fit& fit, double flops) {
  const double s = fit.alpha + fit.beta;
  const double g =
      std::pow(fit.alpha * fit.a / (fit.beta * fit.b), 1.0 / s);
  ComputeOptimum o;
  o.flops = flops;
  o.n_opt = g * std::pow(flops / 6.0, fit.beta / s);
  o.d_opt = std::pow(flops / 6.0, fit.alpha / s) / g;
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
  if (!fit.message.empty()) absl::StrAppend(&out, "  ", fit.message, "\n");
  return out;
}

}  // namespace isoflop::analysis
