#include "analysis/flops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace isoflop::analysis {
namespace {

// Training FLOPs per parameter per token under 6ND: 2 forward, 4 backward.
constexpr double kSixNdFlopsPerParamToken = 6.0;

bool Usable(double v) { return std::isfinite(v) && v > 0; }

}  // namespace

double FlopsPerToken6N(double params) {
  return kSixNdFlopsPerParamToken * params;
}
double ComputeFromParamsTokens6N(double params, double tokens) {
  return FlopsPerToken6N(params) * tokens;
}
double TokensForCompute6N(double params, double flops) {
  return flops / FlopsPerToken6N(params);
}
double ParamsTokensProduct6N(double flops) {
  return flops / kSixNdFlopsPerParamToken;
}

FlopsModel FlopsModel::SixND() { return FlopsModel(); }

absl::StatusOr<FlopsModel> FlopsModel::Interpolated(
    std::vector<std::pair<double, double>> table) {
  if (table.empty()) {
    return absl::InvalidArgumentError(
        "flops_per_token: empty: the exact convention needs >= 1 (N, "
        "FLOPs/token) pair");
  }
  for (size_t i = 0; i < table.size(); ++i) {
    if (!Usable(table[i].first) || !Usable(table[i].second)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "flops_per_token[", i, "] = (N ", table[i].first, ", ",
          table[i].second, "): N and FLOPs/token must be finite and > 0"));
    }
  }
  std::sort(table.begin(), table.end());
  FlopsModel m;
  // Merge equal N (the same shape at several budgets) by geometric mean.
  for (size_t i = 0; i < table.size();) {
    size_t j = i;
    double sum = 0;
    for (; j < table.size() && table[j].first == table[i].first; ++j) {
      sum += std::log(table[j].second);
    }
    m.table_.emplace_back(std::log(table[i].first),
                          sum / static_cast<double>(j - i));
    i = j;
  }
  if (m.table_.size() >= 2) {
    double mx = 0, my = 0;
    for (const auto& [x, y] : m.table_) {
      mx += x;
      my += y;
    }
    const auto k = static_cast<double>(m.table_.size());
    mx /= k;
    my /= k;
    double sxy = 0, sxx = 0;
    for (const auto& [x, y] : m.table_) {
      sxy += (x - mx) * (y - my);
      sxx += (x - mx) * (x - mx);
    }
    m.slope_ = sxy / sxx;
  }
  return m;
}

double FlopsModel::LogSlope(double params) const {
  if (is_6nd()) return 1;
  const double x = std::log(params);
  if (x <= table_.front().first || x >= table_.back().first) return slope_;
  const auto hi = std::upper_bound(
      table_.begin(), table_.end(), x,
      [](double v, const std::pair<double, double>& p) { return v < p.first; });
  const auto lo = hi - 1;
  return (hi->second - lo->second) / (hi->first - lo->first);
}

std::string FlopsModel::Describe() const {
  if (is_6nd()) return "C = 6 N D (FLOPs/token = 6 N)";
  return absl::StrFormat(
      "C = D x FLOPs/token(N), FLOPs/token interpolated log-log through %d "
      "measured (N, C/D) pairs (N %.3g .. %.3g; extrapolated with slope %.3g)",
      static_cast<int>(table_.size()), std::exp(table_.front().first),
      std::exp(table_.back().first), slope_);
}

double FlopsPerToken(const FlopsModel& model, double params) {
  if (model.is_6nd()) return FlopsPerToken6N(params);
  const auto& t = model.table_;
  const double x = std::log(params);
  if (x <= t.front().first) {
    return std::exp(t.front().second + model.slope_ * (x - t.front().first));
  }
  if (x >= t.back().first) {
    return std::exp(t.back().second + model.slope_ * (x - t.back().first));
  }
  const auto hi = std::upper_bound(
      t.begin(), t.end(), x,
      [](double v, const std::pair<double, double>& p) { return v < p.first; });
  const auto lo = hi - 1;
  const double w = (x - lo->first) / (hi->first - lo->first);
  return std::exp(lo->second + w * (hi->second - lo->second));
}

double ComputeFromParamsTokens(const FlopsModel& model, double params,
                               double tokens) {
  return FlopsPerToken(model, params) * tokens;
}

double TokensForCompute(const FlopsModel& model, double params, double flops) {
  return flops / FlopsPerToken(model, params);
}

absl::StatusOr<FlopsModel> FlopsModelOf(const PointSet& set,
                                        bool non_embedding) {
  const bool exact = set.has_flops && set.has_tokens;
  if (non_embedding && !(exact && set.has_n_non_embedding)) {
    return absl::FailedPreconditionError(
        !set.has_n_non_embedding
            ? "no column 'n_non_embedding'"
            : "no exact FLOPs (needs both columns 'tokens' and 'flops')");
  }
  if (!exact || set.points.empty()) return FlopsModel::SixND();
  std::vector<std::pair<double, double>> table;
  table.reserve(set.points.size());
  for (const Point& p : set.points) {
    table.emplace_back(non_embedding ? p.n_non_embedding : p.n, p.flops / p.d);
  }
  return FlopsModel::Interpolated(std::move(table));
}

nlohmann::json FlopsModelToJson(const FlopsModel& model) {
  nlohmann::json out = {{"name", model.name()},
                        {"description", model.Describe()}};
  if (!model.is_6nd()) {
    nlohmann::json table = nlohmann::json::array();
    for (const auto& [x, y] : model.table()) {
      table.push_back({std::exp(x), std::exp(y)});
    }
    out["flops_per_token"] = table;
  }
  return out;
}

absl::StatusOr<FlopsModel> FlopsModelFromJson(const nlohmann::json& j) {
  if (j.is_null()) return FlopsModel::SixND();
  const auto name = j.is_object() ? j.find("name") : j.end();
  if (name == j.end() || !name->is_string() ||
      (*name != "6ND" && *name != "exact")) {
    return absl::InvalidArgumentError(
        "flops_convention.name: must be \"6ND\" or \"exact\"");
  }
  if (*name == "6ND") return FlopsModel::SixND();
  const auto table = j.find("flops_per_token");
  if (table == j.end() || !table->is_array()) {
    return absl::InvalidArgumentError(
        "flops_convention.flops_per_token: must be an array of [N, "
        "FLOPs/token] pairs");
  }
  std::vector<std::pair<double, double>> pairs;
  for (size_t i = 0; i < table->size(); ++i) {
    const nlohmann::json& row = (*table)[i];
    if (!row.is_array() || row.size() != 2 || !row[0].is_number() ||
        !row[1].is_number()) {
      return absl::InvalidArgumentError(
          absl::StrCat("flops_convention.flops_per_token[", i,
                       "]: must be a pair of numbers [N, FLOPs/token]"));
    }
    pairs.emplace_back(row[0].get<double>(), row[1].get<double>());
  }
  return FlopsModel::Interpolated(std::move(pairs));
}

ComputeOptimum ComputeOptimalUnder(const Approach3Fit& fit, double flops,
                                   const FlopsModel& model) {
  if (model.is_6nd()) return ComputeOptimalFor(fit, flops);
  const auto loss_at = [&](double log_n) {
    const double n = std::exp(log_n);
    const double d = TokensForCompute(model, n, flops);
    return fit.e + fit.a / std::pow(n, fit.alpha) +
           fit.b / std::pow(d, fit.beta);
  };
  // The 6ND optimum is a start within a factor FLOPs/token / 6N of the
  // answer; +-12 in log N (a factor 1.6e5) brackets it for any family.
  double centre = std::log(ComputeOptimalFor(fit, flops).n_opt);
  if (!std::isfinite(centre)) centre = std::log(std::sqrt(flops));
  constexpr int kScan = 480;
  constexpr double kHalfWidth = 12;
  const double step = 2 * kHalfWidth / kScan;
  int best = 0;
  double best_loss = std::numeric_limits<double>::infinity();
  for (int k = 0; k <= kScan; ++k) {
    const double l = loss_at(centre - kHalfWidth + step * k);
    if (l < best_loss) {
      best_loss = l;
      best = k;
    }
  }
  // Then bisection on the sign of dL/dlogN = -alpha A N^-alpha + beta B
  // D^-beta dlogF/dlogN within [best - 1, best + 1] steps: the first-order
  // condition gives N to full precision (the loss itself is flat there).
  const auto slope_at = [&](double log_n) {
    const double n = std::exp(log_n);
    const double d = TokensForCompute(model, n, flops);
    return -fit.alpha * fit.a / std::pow(n, fit.alpha) +
           fit.beta * fit.b / std::pow(d, fit.beta) * model.LogSlope(n);
  };
  double lo = centre - kHalfWidth + step * (best - 1);
  double hi = centre - kHalfWidth + step * (best + 1);
  for (int k = 0; k < 200 && hi - lo > 1e-15 * std::max(1.0, std::abs(lo));
       ++k) {
    const double mid = (lo + hi) / 2;
    (slope_at(mid) < 0 ? lo : hi) = mid;
  }
  ComputeOptimum o;
  o.flops = flops;
  o.n_opt = std::exp((lo + hi) / 2);
  o.d_opt = TokensForCompute(model, o.n_opt, flops);
  o.loss = fit.e + fit.a / std::pow(o.n_opt, fit.alpha) +
           fit.b / std::pow(o.d_opt, fit.beta);
  return o;
}

double ComputeForOptimalParams(const Approach3Fit& fit, double params,
                               const FlopsModel& model) {
  // d/dlogN of L(N, C / F(N)) = 0: alpha A N^-alpha = beta B D^-beta s, with
  // s = dlogF/dlogN; so D = (beta B s / (alpha A N^-alpha))^(1/beta).
  const double s = model.LogSlope(params);
  const double d = std::pow(
      fit.beta * fit.b * s / (fit.alpha * fit.a) * std::pow(params, fit.alpha),
      1 / fit.beta);
  return ComputeFromParamsTokens(model, params, d);
}

double OptimalParamsExponent(const Approach3Fit& fit, const FlopsModel& model,
                             double c_lo, double c_hi) {
  if (model.is_6nd() || !(c_hi > c_lo))
    return fit.beta / (fit.alpha + fit.beta);
  const double n_lo = ComputeOptimalUnder(fit, c_lo, model).n_opt;
  const double n_hi = ComputeOptimalUnder(fit, c_hi, model).n_opt;
  return std::log(n_hi / n_lo) / std::log(c_hi / c_lo);
}

std::vector<ExponentUnder> ExponentSensitivity(
    const PointSet& set, const std::vector<Point>& points,
    const Approach3Fit& primary, const Approach3Options& options) {
  double c_lo = std::numeric_limits<double>::infinity(), c_hi = 0;
  for (const Point& p : points) {
    c_lo = std::min(c_lo, p.flops);
    c_hi = std::max(c_hi, p.flops);
  }
  PointSet final_set = set;
  final_set.points = points;
  std::vector<ExponentUnder> rows;
  // N = n_total: the primary fit.
  const absl::StatusOr<FlopsModel> exact = FlopsModelOf(final_set);
  ExponentUnder total_exact{"n_total", "exact", std::nullopt, ""};
  if (exact.ok() && !exact->is_6nd()) {
    total_exact.a = OptimalParamsExponent(primary, *exact, c_lo, c_hi);
  } else {
    total_exact.reason = exact.ok() ? "not available (no 'flops' column)"
                                    : std::string(exact.status().message());
  }
  rows.push_back(total_exact);
  rows.push_back({"n_total", "6ND",
                  OptimalParamsExponent(primary, FlopsModel::SixND(), 0, 0),
                  ""});
  // N = n_non_embedding: a refit.
  ExponentUnder ne_exact{"n_non_embedding", "exact", std::nullopt, ""};
  ExponentUnder ne_6nd{"n_non_embedding", "6ND", std::nullopt, ""};
  if (!set.has_n_non_embedding) {
    ne_exact.reason = ne_6nd.reason =
        "not available (no 'n_non_embedding' column)";
  } else {
    std::vector<Observation> obs;
    obs.reserve(points.size());
    for (const Point& p : points) {
      obs.push_back({p.n_non_embedding, p.d, p.loss});
    }
    Approach3Options o = options;
    absl::StatusOr<std::vector<LogParams>> grid = StartsFromSpec("grid:2");
    o.starts = {ToLogParams(primary)};
    if (grid.ok()) o.starts.insert(o.starts.end(), grid->begin(), grid->end());
    const absl::StatusOr<Approach3Fit> refit = FitApproach3(obs, o);
    if (!refit.ok()) {
      ne_exact.reason = ne_6nd.reason =
          absl::StrCat("refit failed: ", refit.status().message());
    } else {
      ne_6nd.a = OptimalParamsExponent(*refit, FlopsModel::SixND(), 0, 0);
      const absl::StatusOr<FlopsModel> ne_model =
          FlopsModelOf(final_set, /*non_embedding=*/true);
      if (ne_model.ok()) {
        ne_exact.a = OptimalParamsExponent(*refit, *ne_model, c_lo, c_hi);
      } else {
        ne_exact.reason =
            absl::StrCat("not available (", ne_model.status().message(), ")");
      }
    }
  }
  rows.push_back(ne_exact);
  rows.push_back(ne_6nd);
  return rows;
}

std::string SensitivityText(const std::vector<ExponentUnder>& rows) {
  std::vector<std::string> parts;
  for (const ExponentUnder& r : rows) {
    const std::string label = absl::StrCat(
        "N ", r.n_convention == "n_total" ? "total" : "non-embedding", ", C ",
        r.flops_convention == "6ND" ? "= 6ND" : "exact");
    parts.push_back(r.a ? absl::StrFormat("%.3g (%s)", *r.a, label)
                        : absl::StrCat(label, ": ", r.reason));
  }
  return absl::StrCat("Sensitivity of the N_opt exponent a: ",
                      absl::StrJoin(parts, "; "));
}

nlohmann::json SensitivityToJson(const std::vector<ExponentUnder>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const ExponentUnder& r : rows) {
    nlohmann::json row = {{"n", r.n_convention}, {"flops", r.flops_convention}};
    if (r.a && std::isfinite(*r.a)) {
      row["a"] = *r.a;
    } else {
      row["a"] = nullptr;
      row["reason"] = r.a ? "not finite" : r.reason;
    }
    out.push_back(row);
  }
  return out;
}

}  // namespace isoflop::analysis
