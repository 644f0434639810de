#include "analysis/approach1.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "analysis/flops.h"
#include "common/status_macros.h"

namespace isoflop::analysis {
namespace {

struct Curve {
  double n = 0;
  std::vector<std::pair<double, double>> log_c_loss;  // ascending log C
};

// Loss of `curve` at log C = x by linear interpolation; NaN outside it.
double LossAt(const Curve& curve, double x) {
  const auto& v = curve.log_c_loss;
  if (v.empty() || x < v.front().first || x > v.back().first) return NAN;
  auto hi = std::lower_bound(v.begin(), v.end(), x,
                             [](const std::pair<double, double>& p,
                                double key) { return p.first < key; });
  if (hi == v.begin()) return hi->second;
  auto lo = hi - 1;
  if (hi == v.end() || hi->first == lo->first) return lo->second;
  const double t = (x - lo->first) / (hi->first - lo->first);
  return lo->second + t * (hi->second - lo->second);
}

}  // namespace

absl::StatusOr<Approach1Fit> FitApproach1(const PointSet& set,
                                          int envelope_points) {
  if (envelope_points < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--envelope-points = ", envelope_points, ": must be >= 2"));
  }
  if (!set.has_curves || set.points.empty()) {
    return absl::FailedPreconditionError(
        "no training curves: Approach 1 needs columns 'step' and 'run'");
  }
  std::map<std::string, Curve> curves;
  double lo = INFINITY, hi = -INFINITY;
  for (const Point& p : set.points) {
    Curve& curve = curves[p.run];
    if (curve.n != 0 && curve.n != p.n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "run '", p.run, "' has params ", curve.n, " and ", p.n,
          " (line or index ", p.line, "): one run is one model size"));
    }
    curve.n = p.n;
    curve.log_c_loss.emplace_back(std::log(p.flops), p.loss);
    lo = std::min(lo, p.flops);
    hi = std::max(hi, p.flops);
  }
  for (auto& [name, curve] : curves) {
    std::sort(curve.log_c_loss.begin(), curve.log_c_loss.end());
  }
  const absl::StatusOr<FlopsModel> model = FlopsModelOf(set);
  if (!model.ok()) return model.status();
  Approach1Fit fit;
  fit.n_runs = static_cast<int>(curves.size());
  std::set<double> sizes;
  std::vector<double> c, n, d;
  for (int k = 0; k < envelope_points; ++k) {
    const double x = std::log(lo) +
                     (std::log(hi) - std::log(lo)) * k / (envelope_points - 1);
    EnvelopePoint best{std::exp(x), 0, INFINITY};
    for (const auto& [name, curve] : curves) {
      const double loss = LossAt(curve, x);
      if (loss < best.loss) best = {best.flops, curve.n, loss};
    }
    if (best.n == 0) continue;
    fit.envelope.push_back(best);
    sizes.insert(best.n);
    c.push_back(best.flops);
    n.push_back(best.n);
    d.push_back(TokensForCompute(*model, best.n, best.flops));
  }
  if (sizes.size() < 2) {
    return absl::FailedPreconditionError(
        absl::StrCat("Approach 1: the envelope holds ", sizes.size(),
                     " model size(s): N_opt(C) needs >= 2"));
  }
  ASSIGN_OR_RETURN(fit.n_opt, FitPowerLaw(c, n));
  ASSIGN_OR_RETURN(fit.d_opt, FitPowerLaw(c, d));
  return fit;
}

}  // namespace isoflop::analysis
