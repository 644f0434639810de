// DashboardApi: the scaling-law page (IsoFLOP profiles, Approach-3 fit,
// compute-optimal frontier) and the calculator.
#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "analysis/approach3.h"
#include "analysis/bootstrap.h"
#include "analysis/flops_proto.h"
#include "common/status_macros.h"
#include "coordinator/http/dashboard_api.h"
#include "coordinator/http/sqlite_reader.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator::http {

using nlohmann::json;

bool FitParabola(const std::vector<std::pair<double, double>>& xy,
                 double coef[3]) {
  std::vector<double> xs;
  for (const auto& p : xy) xs.push_back(p.first);
  std::sort(xs.begin(), xs.end());
  if (std::unique(xs.begin(), xs.end()) - xs.begin() < 3) return false;
  // Centred and scaled x keeps the normal equations well conditioned.
  double mean = 0;
  for (const auto& p : xy) mean += p.first;
  mean /= static_cast<double>(xy.size());
  double s[5] = {0, 0, 0, 0, 0}, t[3] = {0, 0, 0};
  for (const auto& [x, y] : xy) {
    const double u = x - mean;
    double pow_u = 1;
    for (int k = 0; k < 5; ++k) {
      s[k] += pow_u;
      if (k < 3) t[k] += pow_u * y;
      pow_u *= u;
    }
  }
  // Solve [[s0 s1 s2][s1 s2 s3][s2 s3 s4]] q = t by Cramer's rule.
  auto det3 = [](double a, double b, double c, double d, double e, double f,
                 double g, double h, double i) {
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  };
  const double det = det3(s[0], s[1], s[2], s[1], s[2], s[3], s[2], s[3], s[4]);
  if (!(std::fabs(det) > 0)) return false;
  const double q0 =
      det3(t[0], s[1], s[2], t[1], s[2], s[3], t[2], s[3], s[4]) / det;
  const double q1 =
      det3(s[0], t[0], s[2], s[1], t[1], s[3], s[2], t[2], s[4]) / det;
  const double q2 =
      det3(s[0], s[1], t[0], s[1], s[2], t[1], s[2], s[3], t[2]) / det;
  // Back to y = c0 + c1 x + c2 x^2 with u = x - mean.
  coef[0] = q0 - q1 * mean + q2 * mean * mean;
  coef[1] = q1 - 2 * q2 * mean;
  coef[2] = q2;
  return true;
}

namespace {

struct LawPoint {
  std::string trial;
  double n, d, flops, loss;
};

json FitJson(const analysis::Approach3Fit& f, const std::string& message,
             bool provisional) {
  return {{"e", Num(f.e)},
          {"a", Num(f.a)},
          {"b", Num(f.b)},
          {"alpha", Num(f.alpha)},
          {"beta", Num(f.beta)},
          {"objective", Num(f.objective)},
          {"n_points", f.n_points},
          {"message", message},
          {"provisional", provisional},
          {"n_convention", "n_total"}};
}

// {name: [low, high]}, or null when there are none.
json Intervals(const google::protobuf::Map<std::string, v1::Interval>& ci95) {
  if (ci95.empty()) return nullptr;
  json out = json::object();
  for (const auto& [name, i] : ci95) out[name] = {Num(i.low()), Num(i.high())};
  return out;
}

// The stored fit's bootstrap: its size and the parameters' 95 % intervals.
json BootstrapJson(const v1::ScalingLawFit& f) {
  return {{"resamples", f.bootstrap_resamples()},
          {"failed", f.bootstrap_failed()},
          {"samples", f.approach3_samples_size()},
          {"seed", f.bootstrap_seed()},
          {"ci95", Intervals(f.ci95())},
          {"fit_seconds", f.fit_seconds()}};
}

analysis::Approach3Fit FromJson(const json& j) {
  analysis::Approach3Fit f;
  auto get = [&j](const char* k) {
    return j[k].is_number() ? j[k].get<double>() : std::nan("");
  };
  f.e = get("e");
  f.a = get("a");
  f.b = get("b");
  f.alpha = get("alpha");
  f.beta = get("beta");
  return f;
}

json BudgetProfiles(const std::vector<LawPoint>& points,
                    const analysis::FlopsModel& model) {
  std::map<double, std::vector<const LawPoint*>> by_budget;
  for (const LawPoint& p : points) by_budget[p.flops].push_back(&p);
  json budgets = json::array();
  for (const auto& [flops, members] : by_budget) {
    json b = {{"flops", flops},
              {"points", json::array()},
              {"parabola", nullptr},
              {"vertex", nullptr}};
    std::vector<std::pair<double, double>> xy;
    double lo = INFINITY, hi = -INFINITY;
    for (const LawPoint* p : members) {
      b["points"].push_back(
          {{"trial", p->trial}, {"n", p->n}, {"d", p->d}, {"loss", p->loss}});
      xy.emplace_back(std::log(p->n), p->loss);
      lo = std::min(lo, std::log(p->n));
      hi = std::max(hi, std::log(p->n));
    }
    double c[3];
    if (FitParabola(xy, c)) {
      b["parabola"] = {{"c0", c[0]},
                       {"c1", c[1]},
                       {"c2", c[2]},
                       {"ln_n_min", lo},
                       {"ln_n_max", hi}};
      if (c[2] > 0) {
        const double x = -c[1] / (2 * c[2]);
        const double n_opt = std::exp(x);
        b["vertex"] = {{"n", n_opt},
                       {"d", analysis::TokensForCompute(model, n_opt, flops)},
                       {"loss", c[0] + c[1] * x + c[2] * x * x},
                       {"inside", x >= lo && x <= hi}};
      }
    }
    budgets.push_back(std::move(b));
  }
  return budgets;
}

}  // namespace

absl::StatusOr<json> DashboardApi::Law(const std::string& sweep_id) {
  ASSIGN_OR_RETURN(Connection db, OpenReadOnly(db_path_));
  Statement known(db.get(), "SELECT state FROM sweeps WHERE id = ?");
  known.Bind(1, sweep_id);
  if (!known.Step()) {
    RETURN_IF_ERROR(known.status());
    return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, ": unknown"));
  }
  const std::string sweep_state = known.Text(0);
  std::vector<LawPoint> points;
  Statement s(db.get(),
              "SELECT id, n_total, tokens, flops_budget, val_loss FROM trials "
              "WHERE sweep_id = ? AND state = 'SUCCEEDED' AND val_loss IS NOT "
              "NULL ORDER BY flops_budget, n_total");
  s.Bind(1, sweep_id);
  std::string key;
  while (s.Step()) {
    points.push_back({s.Text(0), static_cast<double>(s.Int(1)),
                      static_cast<double>(s.Int(2)), s.Double(3), s.Double(4)});
    absl::StrAppend(&key, s.Text(0), ";");
  }
  RETURN_IF_ERROR(s.status());

  json fit = nullptr;
  json bootstrap = nullptr;
  std::vector<analysis::Approach3Fit> samples;
  analysis::FlopsModel flops_model = analysis::FlopsModel::SixND();
  Statement stored(db.get(), "SELECT fit FROM fits WHERE sweep_id = ?");
  stored.Bind(1, sweep_id);
  if (stored.Step()) {
    v1::ScalingLawFit f;
    f.ParseFromString(stored.Text(0));
    flops_model = analysis::FlopsModelFromProto(f.flops());
    if (f.alpha() > 0 && f.beta() > 0) {
      analysis::Approach3Fit a;
      a.e = f.e();
      a.a = f.a();
      a.b = f.b();
      a.alpha = f.alpha();
      a.beta = f.beta();
      a.objective = f.objective();
      a.n_points = static_cast<int>(f.n_points());
      fit = FitJson(a, f.message(), !f.final());
      for (const v1::Approach3Law& l : f.approach3_samples()) {
        analysis::Approach3Fit law;
        law.e = l.e();
        law.a = l.a();
        law.b = l.b();
        law.alpha = l.alpha();
        law.beta = l.beta();
        samples.push_back(law);
      }
      if (!samples.empty()) bootstrap = BootstrapJson(f);
    }
  }
  RETURN_IF_ERROR(stored.status());
  // A running sweep has no stored fit yet: fit the points so far (one
  // thread, so ingestion keeps a core), cached until a trial finishes.
  constexpr size_t kMaxProvisionalPoints = 2000;
  if (fit.is_null() && points.size() >= 5 &&
      points.size() <= kMaxProvisionalPoints) {
    absl::MutexLock lock(&fit_mu_);
    auto it = fit_cache_.find(sweep_id);
    if (it != fit_cache_.end() && it->second.first == key) {
      fit = it->second.second;
    } else {
      std::vector<analysis::Observation> obs;
      for (const LawPoint& p : points) obs.push_back({p.n, p.d, p.loss});
      analysis::Approach3Options options;
      options.threads = 1;
      absl::StatusOr<analysis::Approach3Fit> f =
          analysis::FitApproach3(obs, options);
      if (f.ok() && f->alpha > 0 && f->beta > 0) {
        fit = FitJson(*f, f->message, true);
        fit_cache_[sweep_id] = {key, fit};
      }
    }
  }

  json frontier = json::array();
  if (!fit.is_null() && !points.empty()) {
    const analysis::Approach3Fit f = FromJson(fit);
    double lo = INFINITY, hi = -INFINITY;
    for (const LawPoint& p : points) {
      lo = std::min(lo, p.flops);
      hi = std::max(hi, p.flops);
    }
    // From a tenth of the smallest budget to 10^4 x the largest.
    const double from = std::log10(lo) - 1, to = std::log10(hi) + 4;
    constexpr int kSteps = 40;
    for (int i = 0; i <= kSteps; ++i) {
      const double c = std::pow(10.0, from + (to - from) * i / kSteps);
      const analysis::ComputeOptimum o =
          analysis::ComputeOptimalUnder(f, c, flops_model);
      json row = {{"flops", c},
                  {"n_opt", Num(o.n_opt)},
                  {"d_opt", Num(o.d_opt)},
                  {"loss", Num(o.loss)}};
      if (!samples.empty()) {  // the bootstrap's 95 % band at this budget
        const std::map<std::string, analysis::Interval> band =
            analysis::OptimumIntervals(samples, c, flops_model);
        for (const char* k : {"n_opt", "d_opt", "loss"}) {
          row[absl::StrCat(k, "_low")] = Num(band.at(k).low);
          row[absl::StrCat(k, "_high")] = Num(band.at(k).high);
        }
      }
      frontier.push_back(std::move(row));
    }
  }
  json jpoints = json::array();
  for (const LawPoint& p : points) {
    jpoints.push_back({{"trial", p.trial},
                       {"n", p.n},
                       {"d", p.d},
                       {"flops", p.flops},
                       {"loss", p.loss}});
  }
  return json{{"sweep", sweep_id},
              {"state", sweep_state},
              {"points", std::move(jpoints)},
              {"budgets", BudgetProfiles(points, flops_model)},
              {"flops_convention", analysis::FlopsModelToJson(flops_model)},
              {"fit", std::move(fit)},
              {"frontier", std::move(frontier)},
              {"bootstrap", bootstrap},
              {"bootstrap_note",
               bootstrap.is_null()
                   ? "no bootstrap yet: 95% bands and intervals appear with "
                     "the final fit, when the sweep ends"
                   : ""}};
}

absl::StatusOr<json> DashboardApi::Optimal(const std::string& sweep_id,
                                           double flops) const {
  if (!(flops > 0) || !std::isfinite(flops)) {
    return absl::InvalidArgumentError(
        absl::StrCat("flops = ", flops, ": must be finite and > 0"));
  }
  v1::OptimalRequest request;
  request.set_flops(flops);
  request.set_sweep_id(sweep_id);
  ASSIGN_OR_RETURN(v1::OptimalResponse r, core_->Optimal(request));
  return json{
      {"sweep", sweep_id},
      {"flops", r.flops()},
      {"n_opt", Num(r.n_opt())},
      {"d_opt", Num(r.d_opt())},
      {"predicted_loss", Num(r.predicted_loss())},
      {"intervals", Intervals(r.ci95())},
      {"flops_convention", r.flops_convention()},
      {"flops_convention_description", r.flops_convention_description()},
      {"fit",
       {{"e", r.fit().e()},
        {"a", r.fit().a()},
        {"b", r.fit().b()},
        {"alpha", r.fit().alpha()},
        {"beta", r.fit().beta()},
        {"n_points", r.fit().n_points()}}}};
}

}  // namespace isoflop::coordinator::http
