#include "analysis/constrained.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <thread>

#include "Eigen/Eigenvalues"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "analysis/lbfgs.h"
#include "ceres/autodiff_first_order_function.h"
#include "ceres/gradient_problem.h"
#include "ceres/gradient_problem_solver.h"
#include "ceres/manifold.h"
#include "common/readable.h"
#include "common/status_macros.h"

namespace isoflop::analysis {
namespace {

constexpr int kParams = 7;
constexpr int kRdIndex = 5, kRnIndex = 6;
constexpr double kSameObjective = 1e-9;
constexpr double kIllConditioned = 1e12;
constexpr int kMaxIterationsPerStart = 500;
constexpr int kMaxPolishIterations = 10000;
// Starting values of a fitted R* beside the Chinchilla optimum.
constexpr double kRStarStarts[] = {2, 5, 15, 40};
// A fitted R* outside this range is at a bound of what the points can say
// (R* -> 0: repetition worthless; R* -> inf: repeats as good as new).
constexpr double kRStarLow = 0.05, kRStarHigh = 1e4;

// Per-point data that do not depend on the law.
struct Prepared {
  std::vector<double> ln_n, ln_u, r_d, ln_l;
};

Prepared Prepare(const std::vector<ConstrainedObservation>& points) {
  Prepared p;
  for (const ConstrainedObservation& o : points) {
    const double u = o.UniqueSeen();
    p.ln_n.push_back(std::log(o.n));
    p.ln_u.push_back(std::log(u));
    p.r_d.push_back(std::max(o.d / u - 1, 0.0));
    p.ln_l.push_back(std::log(o.loss));
  }
  return p;
}

// ln L of the law at x (ConstrainedParams) for one point; see constrained.h.
// U_N is capped at N_opt(U_D) only where alpha, beta > 0 (elsewhere N_opt
// is not defined and U_N = N).
template <typename T>
T LogPredicted(const T* x, double ln_n, double ln_u, double r_d) {
  using std::exp;
  using std::log;
  const T& a = x[0];
  const T& b = x[1];
  const T& e = x[2];
  const T& alpha = x[3];
  const T& beta = x[4];
  const T rd_star = exp(x[kRdIndex]);
  const T rn_star = exp(x[kRnIndex]);
  T ln_un = T(ln_n);
  if (alpha > 0.0 && beta > 0.0) {
    const T cap = (beta * ln_u + log(alpha) - log(beta) + a - b) / alpha;
    if (cap < ln_un) ln_un = cap;
  }
  const T r_n = exp(T(ln_n) - ln_un) - 1.0;
  const T ln_n_eff = ln_un + log(1.0 + rn_star * (1.0 - exp(-r_n / rn_star)));
  const T ln_d_eff =
      T(ln_u) + log(1.0 + rd_star * (1.0 - exp(-T(r_d) / rd_star)));
  const T u1 = a - alpha * ln_n_eff;
  const T u2 = b - beta * ln_d_eff;
  T m = e;
  if (u1 > m) m = u1;
  if (u2 > m) m = u2;
  return m + log(exp(u1 - m) + exp(u2 - m) + exp(e - m));
}

// Whether a cost and (for a Jet) every derivative is finite: Ceres's line
// search aborts (a CHECK) on a finite value with a non-finite gradient.
bool AllFinite(double v) { return std::isfinite(v); }
template <int N>
bool AllFinite(const ceres::Jet<double, N>& v) {
  return std::isfinite(v.a) && v.v.allFinite();
}

struct Objective {
  Prepared data;
  double delta = 1e-3;
  template <typename T>
  bool operator()(const T* x, T* cost) const {
    using std::abs;
    T sum = T(0.0);
    for (size_t i = 0; i < data.ln_n.size(); ++i) {
      const T r = LogPredicted(x, data.ln_n[i], data.ln_u[i], data.r_d[i]) -
                  data.ln_l[i];
      const T ar = abs(r);
      sum += ar <= delta ? 0.5 * r * r : delta * (ar - 0.5 * delta);
    }
    *cost = sum;
    return AllFinite(sum);
  }
};

using ObjectiveFunction = ceres::AutoDiffFirstOrderFunction<Objective, kParams>;

std::vector<int> FixedIndices(const ConstrainedOptions& o) {
  std::vector<int> fixed;
  if (o.rd_star) fixed.push_back(kRdIndex);
  if (o.rn_star) fixed.push_back(kRnIndex);
  return fixed;
}

std::unique_ptr<ceres::GradientProblem> MakeProblem(
    const Objective& objective, const std::vector<int>& fixed) {
  auto* function = new ObjectiveFunction(new Objective(objective));
  if (fixed.empty()) return std::make_unique<ceres::GradientProblem>(function);
  return std::make_unique<ceres::GradientProblem>(
      function, new ceres::SubsetManifold(kParams, fixed));
}

struct StartResult {
  ConstrainedParams x{};
  double objective = std::numeric_limits<double>::infinity();
  std::string termination;
};

// One L-BFGS descent, with Approach 3's settings (approach3.cc's Solve).
StartResult Solve(const ceres::GradientProblem& problem,
                  const ConstrainedParams& start, int max_iterations) {
  const ceres::GradientProblemSolver::Options options =
      LbfgsOptions(max_iterations);
  StartResult r;
  r.x = start;
  ceres::GradientProblemSolver::Summary summary;
  ceres::Solve(options, problem, r.x.data(), &summary);
  r.termination = summary.message;
  // The cost re-evaluated at the solution: a start where the objective
  // cannot be evaluated ends as a FAILURE whose final_cost is not the
  // objective's value.
  double cost = 0;
  if (summary.termination_type != ceres::FAILURE &&
      problem.function()->Evaluate(r.x.data(), &cost, nullptr) &&
      std::isfinite(cost)) {
    r.objective = cost;
  }
  return r;
}

int ThreadCount(int threads) {
  return threads > 0 ? threads
                     : static_cast<int>(
                           std::max(1u, std::thread::hardware_concurrency()));
}

// Runs job(i) for i in [0, count) on `threads` threads.
void ParallelFor(int count, int threads, const std::atomic<bool>* cancel,
                 const std::function<void(int)>& job) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < std::min(ThreadCount(threads), count); ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < count; i = next++) {
        if (cancel != nullptr && cancel->load()) break;
        job(i);
      }
    });
  }
  for (std::thread& t : pool) t.join();
}

std::vector<ConstrainedParams> BuildStarts(const ConstrainedOptions& o) {
  const double rd = std::log(o.rd_star.value_or(kPublishedRDStar));
  const double rn = std::log(o.rn_star.value_or(kPublishedRNStar));
  std::vector<ConstrainedParams> starts = o.starts;
  if (starts.empty()) {
    std::vector<LogParams> law = o.law_starts;
    if (law.empty()) law = *StartsFromSpec("grid:2");
    for (const LogParams& l : law) {
      starts.push_back({l[0], l[1], l[2], l[3], l[4], rd, rn});
    }
    if (o.chinchilla) {
      const LogParams c = ToLogParams(*o.chinchilla);
      for (double sd : kRStarStarts) {
        for (double sn : kRStarStarts) {
          starts.push_back({c[0], c[1], c[2], c[3], c[4],
                            o.rd_star ? rd : std::log(sd),
                            o.rn_star ? rn : std::log(sn)});
          if (o.rn_star) break;
        }
        if (o.rd_star) break;
      }
    }
  }
  for (ConstrainedParams& s : starts) {
    if (o.rd_star) s[kRdIndex] = rd;
    if (o.rn_star) s[kRnIndex] = rn;
  }
  return starts;
}

// Enough points for the free parameters.
absl::Status CheckCount(const std::vector<ConstrainedObservation>& points,
                        const ConstrainedOptions& o) {
  const int free_params = kParams - static_cast<int>(FixedIndices(o).size());
  if (static_cast<int>(points.size()) <= free_params) {
    return absl::InvalidArgumentError(absl::StrCat(
        "points: ", points.size(), " given: Muennighoff's form with ",
        free_params, " free parameters needs >= ", free_params + 1));
  }
  return absl::OkStatus();
}

// Every field and option (the count apart: CheckCount).
absl::Status Validate(const std::vector<ConstrainedObservation>& points,
                      const ConstrainedOptions& o) {
  for (const auto& [name, v] :
       {std::pair<const char*, std::optional<double>>{"rd_star", o.rd_star},
        {"rn_star", o.rn_star}}) {
    if (v && !(std::isfinite(*v) && *v > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "options.", name, " = ", *v, ": must be finite and > 0"));
    }
  }
  if (!std::isfinite(o.huber_delta) || o.huber_delta <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.huber_delta = ", o.huber_delta, ": must be finite and > 0"));
  }
  if (o.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.threads = ", o.threads, ": must be >= 0"));
  }
  for (size_t i = 0; i < points.size(); ++i) {
    const ConstrainedObservation& p = points[i];
    const std::pair<const char*, double> fields[] = {
        {"n", p.n}, {"d", p.d}, {"loss", p.loss}};
    for (const auto& [name, v] : fields) {
      if (!std::isfinite(v) || v <= 0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "points[%d].%s = %g: must be finite and > 0", i, name, v));
      }
    }
    if (!std::isfinite(p.unique_tokens) || p.unique_tokens < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "points[%d].unique_tokens = %g: must be finite and >= 0 (0: all "
          "tokens unique)",
          i, p.unique_tokens));
    }
  }
  return absl::OkStatus();
}

ConstrainedLaw LawOf(const ConstrainedParams& x) {
  ConstrainedLaw law;
  law.a = std::exp(x[0]);
  law.b = std::exp(x[1]);
  law.e = std::exp(x[2]);
  law.alpha = x[3];
  law.beta = x[4];
  law.rd_star = std::exp(x[kRdIndex]);
  law.rn_star = std::exp(x[kRnIndex]);
  return law;
}

ConstrainedParams ParamsOf(const ConstrainedLaw& law) {
  return {
      std::log(law.a), std::log(law.b),       std::log(law.e),      law.alpha,
      law.beta,        std::log(law.rd_star), std::log(law.rn_star)};
}

// The free parameters' Hessian condition number (central differences of
// the exact gradient); infinity when not positive definite.
double ConditionNumber(const ceres::GradientProblem& problem,
                       const ConstrainedParams& x,
                       const std::vector<int>& fixed) {
  std::vector<int> free;
  for (int k = 0; k < kParams; ++k) {
    if (std::find(fixed.begin(), fixed.end(), k) == fixed.end()) {
      free.push_back(k);
    }
  }
  const int m = static_cast<int>(free.size());
  Eigen::MatrixXd h(m, m);
  // The problem's gradient is in the manifold's tangent space; evaluate the
  // full function instead.
  const ObjectiveFunction& f =
      static_cast<const ObjectiveFunction&>(*problem.function());
  for (int j = 0; j < m; ++j) {
    const double step = 1e-6 * std::max(1.0, std::abs(x[free[j]]));
    ConstrainedParams plus = x, minus = x;
    plus[free[j]] += step;
    minus[free[j]] -= step;
    std::array<double, kParams> gp{}, gm{};
    double unused = 0;
    if (!f.Evaluate(plus.data(), &unused, gp.data()) ||
        !f.Evaluate(minus.data(), &unused, gm.data())) {
      return std::numeric_limits<double>::infinity();
    }
    for (int i = 0; i < m; ++i) {
      h(i, j) = (gp[free[i]] - gm[free[i]]) / (2 * step);
    }
  }
  const Eigen::MatrixXd sym = 0.5 * (h + h.transpose());
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(
      sym, Eigen::EigenvaluesOnly);
  const auto& values = eigen.eigenvalues();
  if (!(values(0) > 0)) return std::numeric_limits<double>::infinity();
  return values(m - 1) / values(0);
}

// Fits from `starts`; the best polished. Validated inputs.
struct Solved {
  StartResult best;
  int at_best = 0;
  double condition = 0;
};

absl::StatusOr<Solved> SolveStarts(
    const std::vector<ConstrainedObservation>& points,
    const ConstrainedOptions& o, const std::vector<ConstrainedParams>& starts,
    bool diagnose) {
  if (starts.empty()) {
    return absl::InvalidArgumentError("options.starts: none to fit from");
  }
  const Objective objective{Prepare(points), o.huber_delta};
  const std::vector<int> fixed = FixedIndices(o);
  std::vector<StartResult> results(starts.size());
  const int threads =
      std::min(ThreadCount(o.threads), static_cast<int>(starts.size()));
  std::vector<std::unique_ptr<ceres::GradientProblem>> problems;
  for (int t = 0; t < threads; ++t) {
    problems.push_back(MakeProblem(objective, fixed));
  }
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (size_t i = next++; i < starts.size(); i = next++) {
        if (o.cancel != nullptr && o.cancel->load()) break;
        results[i] = Solve(*problems[t], starts[i], kMaxIterationsPerStart);
      }
    });
  }
  for (std::thread& t : pool) t.join();
  if (o.cancel != nullptr && o.cancel->load()) {
    return absl::CancelledError("Muennighoff fit cancelled");
  }
  const StartResult& best =
      *std::min_element(results.begin(), results.end(),
                        [](const StartResult& x, const StartResult& y) {
                          return x.objective < y.objective;
                        });
  if (!std::isfinite(best.objective)) {
    return absl::InternalError(
        "Muennighoff fit: no start reached a finite objective");
  }
  Solved out;
  out.best = best;
  StartResult polished = Solve(*problems[0], best.x, kMaxPolishIterations);
  if (polished.objective < best.objective) {
    polished.termination =
        absl::StrCat(best.termination, "; polished: ", polished.termination);
    out.best = polished;
  }
  out.at_best = static_cast<int>(
      std::count_if(results.begin(), results.end(), [&](const StartResult& r) {
        return r.objective - best.objective <= kSameObjective;
      }));
  if (diagnose)
    out.condition = ConditionNumber(*problems[0], out.best.x, fixed);
  return out;
}

}  // namespace

double ConstrainedObservation::UniqueSeen() const {
  return unique_tokens > 0 ? std::min(unique_tokens, d) : d;
}

double ConstrainedObservation::Epochs() const { return d / UniqueSeen(); }

std::vector<ConstrainedObservation> ToConstrainedObservations(
    const std::vector<Point>& points) {
  std::vector<ConstrainedObservation> out;
  out.reserve(points.size());
  for (const Point& p : points) {
    out.push_back({p.n, p.d, p.unique_tokens, p.loss});
  }
  return out;
}

double ComputeOptimalParamsForTokens(const ConstrainedLaw& law, double tokens) {
  const double g = std::pow(law.alpha * law.a / (law.beta * law.b),
                            1 / (law.alpha + law.beta));
  return std::pow(tokens * g, law.beta / law.alpha) * g;
}

double ConstrainedLoss(const ConstrainedLaw& law,
                       const ConstrainedObservation& point) {
  const ConstrainedParams x = ParamsOf(law);
  const double u = point.UniqueSeen();
  return std::exp(LogPredicted(x.data(), std::log(point.n), std::log(u),
                               std::max(point.d / u - 1, 0.0)));
}

absl::StatusOr<ConstrainedFit> FitConstrained(
    const std::vector<ConstrainedObservation>& points,
    const ConstrainedOptions& options) {
  RETURN_IF_ERROR(Validate(points, options));
  ConstrainedFit fit;
  fit.n_points = static_cast<int>(points.size());
  for (const ConstrainedObservation& p : points) {
    const double epochs = p.Epochs();
    fit.max_epochs = std::max(fit.max_epochs, epochs);
    fit.repeated_points += epochs > 1 + kRepeatTolerance;
    fit.over_4_epochs += epochs > 4;
  }
  if (fit.repeated_points == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no point repeats data (all ", points.size(),
        " train for <= 1 epoch of their unique tokens): R_D = 0 for every "
        "point, so Muennighoff's form reduces to Chinchilla's in D and R_D* "
        "is not identified; use the Chinchilla fit (fit --form chinchilla), "
        "or give the points' unique_tokens or epochs"));
  }
  RETURN_IF_ERROR(CheckCount(points, options));
  const std::vector<ConstrainedParams> starts = BuildStarts(options);
  ASSIGN_OR_RETURN(const Solved solved,
                   SolveStarts(points, options, starts, /*diagnose=*/true));
  fit.law = LawOf(solved.best.x);
  fit.rd_star_fitted = !options.rd_star;
  fit.rn_star_fitted = !options.rn_star;
  if (options.rd_star) fit.law.rd_star = *options.rd_star;  // exactly
  if (options.rn_star) fit.law.rn_star = *options.rn_star;
  fit.objective = solved.best.objective;
  fit.n_starts = static_cast<int>(starts.size());
  fit.n_starts_at_best = solved.at_best;
  fit.huber_delta = options.huber_delta;
  fit.condition_number = solved.condition;
  fit.ill_conditioned = !(solved.condition <= kIllConditioned);
  if (fit.law.alpha > 0 && fit.law.beta > 0) {
    for (const ConstrainedObservation& p : points) {
      fit.excess_param_points +=
          p.n > ComputeOptimalParamsForTokens(fit.law, p.UniqueSeen());
    }
  }
  fit.message = absl::StrCat(
      "best start: ", solved.best.termination,
      absl::StrFormat("; Hessian condition number %.3g", solved.condition));
  if (fit.ill_conditioned) {
    absl::StrAppend(&fit.message,
                    absl::StrFormat("; warning: ill-conditioned: Hessian "
                                    "condition number %.3g > %.0e: the points "
                                    "do not determine every free parameter",
                                    solved.condition, kIllConditioned));
  }
  for (const auto& [fitted, name, v] :
       {std::tuple<bool, const char*, double>{fit.rd_star_fitted, "R_D*",
                                              fit.law.rd_star},
        {fit.rn_star_fitted, "R_N*", fit.law.rn_star}}) {
    if (fitted && (v < kRStarLow || v > kRStarHigh)) {
      absl::StrAppend(&fit.message,
                      absl::StrFormat("; warning: fitted %s = %.3g is outside "
                                      "%g..%g: the points do not bound it",
                                      name, v, kRStarLow, kRStarHigh));
    }
  }
  if (fit.rn_star_fitted && fit.excess_param_points == 0) {
    absl::StrAppend(&fit.message,
                    "; warning: R_N* fitted but no point has more parameters "
                    "than compute-optimal for its unique tokens: R_N* is not "
                    "identified (fix it at the published value)");
  }
  if (fit.law.alpha <= 0 || fit.law.beta <= 0) {
    absl::StrAppend(&fit.message,
                    "; warning: alpha or beta <= 0: the data do not show "
                    "loss falling with both N and D");
  }
  return fit;
}

absl::StatusOr<ConstrainedBootstrap> BootstrapConstrained(
    const std::vector<ConstrainedObservation>& points,
    const ConstrainedFit& full, const ConstrainedOptions& fit_options,
    const BootstrapOptions& options) {
  if (options.resamples < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--bootstrap = ", options.resamples, ": must be >= 2 (or 0: none)"));
  }
  RETURN_IF_ERROR(Validate(points, fit_options));
  RETURN_IF_ERROR(CheckCount(points, fit_options));
  ConstrainedOptions refit = fit_options;
  refit.threads = 1;
  refit.starts = {ParamsOf(full.law)};
  refit.chinchilla.reset();
  std::vector<std::optional<ConstrainedLaw>> laws(
      static_cast<size_t>(options.resamples));
  ParallelFor(options.resamples, options.threads, options.cancel, [&](int i) {
    std::seed_seq seq{static_cast<uint32_t>(options.seed),
                      static_cast<uint32_t>(options.seed >> 32),
                      static_cast<uint32_t>(i)};
    std::mt19937_64 rng(seq);
    std::uniform_int_distribution<size_t> pick(0, points.size() - 1);
    std::vector<ConstrainedObservation> sample(points.size());
    for (ConstrainedObservation& s : sample) s = points[pick(rng)];
    absl::StatusOr<Solved> solved =
        SolveStarts(sample, refit, refit.starts, /*diagnose=*/false);
    if (solved.ok()) laws[static_cast<size_t>(i)] = LawOf(solved->best.x);
  });
  if (options.cancel != nullptr && options.cancel->load()) {
    return absl::CancelledError("bootstrap cancelled");
  }
  ConstrainedBootstrap out;
  for (const auto& law : laws) {
    if (law) {
      out.samples.push_back(*law);
    } else {
      ++out.failed;
    }
  }
  return out;
}

std::map<std::string, Interval> ConstrainedIntervals(
    const std::vector<ConstrainedLaw>& samples) {
  std::map<std::string, std::vector<double>> values;
  for (const ConstrainedLaw& s : samples) {
    values["E"].push_back(s.e);
    values["A"].push_back(s.a);
    values["B"].push_back(s.b);
    values["alpha"].push_back(s.alpha);
    values["beta"].push_back(s.beta);
    values["rd_star"].push_back(s.rd_star);
    values["rn_star"].push_back(s.rn_star);
  }
  std::map<std::string, Interval> out;
  for (auto& [name, v] : values) out[name] = Percentile95(std::move(v));
  return out;
}

absl::StatusOr<FormComparison> CompareForms(
    const std::vector<ConstrainedObservation>& points,
    const std::vector<int>& group, const Approach3Fit& chinchilla,
    const ConstrainedFit& muennighoff, const ConstrainedOptions& options) {
  std::set<int> groups;
  for (int g : group) {
    if (g >= 0) groups.insert(g);
  }
  if (groups.size() < 3) {
    return absl::FailedPreconditionError(absl::StrCat(
        groups.size(),
        " budget(s): leave-one-budget-out needs >= 3 (give a budget column or "
        "--budgets)"));
  }
  FormComparison out;
  double sum_c = 0, sum_m = 0;
  for (int held : groups) {
    std::vector<ConstrainedObservation> train, test;
    for (size_t i = 0; i < points.size(); ++i) {
      (group[i] == held ? test : train).push_back(points[i]);
    }
    std::vector<Observation> train3;
    for (const ConstrainedObservation& p : train) {
      train3.push_back({p.n, p.d, p.loss});
    }
    const absl::StatusOr<Approach3Fit> c =
        FitApproach3(train3, {.huber_delta = chinchilla.huber_delta > 0
                                                 ? chinchilla.huber_delta
                                                 : options.huber_delta,
                              .threads = 1,
                              .starts = {ToLogParams(chinchilla)}});
    ConstrainedOptions refit = options;
    refit.threads = 1;
    refit.chinchilla.reset();
    refit.starts = {ParamsOf(muennighoff.law)};
    const absl::StatusOr<ConstrainedFit> m = FitConstrained(train, refit);
    if (!c.ok() || !m.ok()) continue;  // too few points, or no repetition
    ++out.folds;
    for (const ConstrainedObservation& p : test) {
      const double pc =
          c->e + c->a / std::pow(p.n, c->alpha) + c->b / std::pow(p.d, c->beta);
      const double pm = ConstrainedLoss(m->law, p);
      sum_c += std::abs(pc - p.loss) / p.loss;
      sum_m += std::abs(pm - p.loss) / p.loss;
      ++out.points;
    }
  }
  if (out.folds == 0 || out.points == 0) {
    return absl::FailedPreconditionError(
        "no budget left out could be refitted by both forms (too few points "
        "or no repeated data in the rest)");
  }
  out.chinchilla_error = sum_c / out.points;
  out.muennighoff_error = sum_m / out.points;
  out.better = out.muennighoff_error < out.chinchilla_error ? "muennighoff"
                                                            : "chinchilla";
  return out;
}

ConstrainedRun RunConstrained(const FitReport& report,
                              const ConstrainedRunOptions& run) {
  ConstrainedRun out;
  const std::vector<ConstrainedObservation> points =
      ToConstrainedObservations(report.fit_points);
  ConstrainedOptions options;
  options.huber_delta = report.request.approach3.huber_delta;
  options.threads = report.request.approach3.threads;
  options.law_starts = report.request.approach3.starts;
  options.chinchilla = report.approach3.fit;
  options.cancel = report.request.cancel;
  if (run.published_constants) {
    options.rd_star = kPublishedRDStar;
    options.rn_star = kPublishedRNStar;
  }
  absl::StatusOr<ConstrainedFit> fit = FitConstrained(points, options);
  if (!fit.ok()) {
    out.reason = std::string(fit.status().message());
    return out;
  }
  out.fit = *fit;
  if (run.bootstrap > 0) {
    absl::StatusOr<ConstrainedBootstrap> boot =
        BootstrapConstrained(points, *fit, options,
                             {.resamples = run.bootstrap,
                              .seed = run.seed,
                              .threads = options.threads,
                              .cancel = options.cancel});
    if (boot.ok()) out.bootstrap = *boot;
  }
  if (!run.compare) return out;
  if (!report.approach3.fit) {
    out.comparison_reason =
        absl::StrCat("no Approach 3 fit: ", report.approach3.reason);
    return out;
  }
  std::vector<int> group(points.size(), -1);
  for (size_t g = 0; g < report.grouping.groups.size(); ++g) {
    for (int i : report.grouping.groups[g].indices) {
      group[static_cast<size_t>(i)] = static_cast<int>(g);
    }
  }
  absl::StatusOr<FormComparison> comparison =
      CompareForms(points, group, *report.approach3.fit, *fit, options);
  if (comparison.ok()) {
    out.comparison = *comparison;
  } else {
    out.comparison_reason = std::string(comparison.status().message());
  }
  return out;
}

nlohmann::json ConstrainedFitToJson(
    const ConstrainedFit& fit,
    const std::optional<ConstrainedBootstrap>& bootstrap) {
  nlohmann::json j = {
      {"E", fit.law.e},
      {"A", fit.law.a},
      {"B", fit.law.b},
      {"alpha", fit.law.alpha},
      {"beta", fit.law.beta},
      {"rd_star", fit.law.rd_star},
      {"rn_star", fit.law.rn_star},
      {"rd_star_fitted", fit.rd_star_fitted},
      {"rn_star_fitted", fit.rn_star_fitted},
      {"points", fit.n_points},
      {"repeated_points", fit.repeated_points},
      {"over_4_epochs", fit.over_4_epochs},
      {"max_epochs", fit.max_epochs},
      {"excess_param_points", fit.excess_param_points},
      {"objective", fit.objective},
      {"starts", fit.n_starts},
      {"starts_at_best", fit.n_starts_at_best},
      {"condition_number", std::isfinite(fit.condition_number)
                               ? nlohmann::json(fit.condition_number)
                               : nlohmann::json(nullptr)},
      {"message", fit.message}};
  if (bootstrap) {
    nlohmann::json ci = nlohmann::json::object();
    for (const auto& [name, iv] : ConstrainedIntervals(bootstrap->samples)) {
      ci[name] = {iv.low, iv.high};
    }
    j["ci95"] = ci;
    j["bootstrap_failed"] = bootstrap->failed;
  }
  return j;
}

nlohmann::json ComparisonToJson(const FormComparison& c) {
  return {{"method", "leave-one-budget-out"},
          {"folds", c.folds},
          {"points", c.points},
          {"chinchilla_error", c.chinchilla_error},
          {"muennighoff_error", c.muennighoff_error},
          {"better", c.better}};
}

std::string ConstrainedFitText(
    const ConstrainedFit& fit,
    const std::optional<ConstrainedBootstrap>& bootstrap, int digits) {
  std::map<std::string, Interval> ci;
  if (bootstrap) ci = ConstrainedIntervals(bootstrap->samples);
  const auto scale = [&](const char* name, double v) {
    auto it = ci.find(name);
    return it == ci.end()
               ? Sig(v, digits)
               : absl::StrCat(Sig(v, digits),
                              FactorInterval(v, it->second.low, it->second.high,
                                             digits));
  };
  const auto linear = [&](const char* name, double v) {
    auto it = ci.find(name);
    return it == ci.end()
               ? Sig(v, digits)
               : absl::StrCat(
                     Sig(v, digits),
                     LinearInterval(it->second.low, it->second.high, digits));
  };
  std::string out = absl::StrCat(
      "Muennighoff (data-constrained): L = E + A/N'^alpha + B/D'^beta\n"
      "  D' = U_D (1 + R_D* (1 - exp(-R_D/R_D*))), R_D = D/U_D - 1\n"
      "  N' = U_N (1 + R_N* (1 - exp(-R_N/R_N*))), R_N = N/U_N - 1, "
      "U_N = min(N, N_opt(U_D))\n",
      "  E     = ", linear("E", fit.law.e), "\n",
      "  A     = ", scale("A", fit.law.a), "\n",
      "  B     = ", scale("B", fit.law.b), "\n",
      "  alpha = ", linear("alpha", fit.law.alpha), "\n",
      "  beta  = ", linear("beta", fit.law.beta), "\n", "  R_D*  = ",
      fit.rd_star_fitted
          ? linear("rd_star", fit.law.rd_star)
          : absl::StrCat(Sig(fit.law.rd_star, digits), " (fixed)"),
      "\n", "  R_N*  = ",
      fit.rn_star_fitted
          ? linear("rn_star", fit.law.rn_star)
          : absl::StrCat(Sig(fit.law.rn_star, digits), " (fixed)"),
      "\n",
      absl::StrFormat("  %d of %d points repeat data (%d over 4 epochs, at "
                      "most %s); %d have excess parameters\n",
                      fit.repeated_points, fit.n_points, fit.over_4_epochs,
                      Sig(fit.max_epochs, digits), fit.excess_param_points));
  if (bootstrap) {
    absl::StrAppend(&out, "  bootstrap: ", bootstrap->samples.size(),
                    " refits, ", bootstrap->failed, " failed\n");
  }
  for (absl::string_view line : absl::StrSplit(fit.message, "; ")) {
    if (absl::StartsWith(line, "warning")) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  }
  return out;
}

std::string ComparisonText(const FormComparison& c, int digits) {
  return absl::StrCat(
      "Held-out error (leave-one-budget-out, ", c.folds, " budgets, ", c.points,
      " points; mean |predicted - observed| / observed):\n", "  chinchilla  ",
      Sig(100 * c.chinchilla_error, digits), "%\n", "  muennighoff ",
      Sig(100 * c.muennighoff_error, digits), "%\n", "  ", c.better,
      " fits better\n");
}

}  // namespace isoflop::analysis
