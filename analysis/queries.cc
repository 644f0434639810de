#include "analysis/queries.h"

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace isoflop::analysis {
namespace {

using Json = nlohmann::json;

absl::StatusOr<double> Field(const Json& object, const std::string& where,
                             const std::string& key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number() ||
      !std::isfinite(it->get<double>())) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".", key, ": must be a finite number"));
  }
  return it->get<double>();
}

// Rows of "bootstrap.samples" with `width` finite numbers each.
absl::StatusOr<std::vector<std::vector<double>>> Samples(
    const Json& object, const std::string& where, size_t width) {
  std::vector<std::vector<double>> rows;
  auto boot = object.find("bootstrap");
  if (boot == object.end() || !boot->is_object()) return rows;
  auto samples = boot->find("samples");
  if (samples == boot->end() || !samples->is_array()) return rows;
  for (size_t i = 0; i < samples->size(); ++i) {
    const Json& row = (*samples)[i];
    std::vector<double> values;
    for (size_t k = 0; row.is_array() && k < row.size(); ++k) {
      if (row[k].is_number()) values.push_back(row[k].get<double>());
    }
    if (values.size() != width) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".bootstrap.samples[", i, "]: must be ", width, " numbers"));
    }
    rows.push_back(std::move(values));
  }
  return rows;
}

// The cheapest C whose optimum under `model` reaches `loss` (> E): the
// optimal loss falls as C grows; bisection on log C from the 6ND answer.
double ComputeForLoss(const Approach3Fit& law, double loss,
                      const FlopsModel& model, double guess) {
  double lo = std::log(guess) - 1, hi = std::log(guess) + 1;
  const auto reached = [&](double log_c) {
    return ComputeOptimalUnder(law, std::exp(log_c), model).loss <= loss;
  };
  for (int k = 0; k < 200 && reached(lo); ++k) lo -= 2;
  for (int k = 0; k < 200 && !reached(hi); ++k) hi += 2;
  for (int k = 0; k < 200 && hi - lo > 1e-12; ++k) {
    const double mid = (lo + hi) / 2;
    (reached(mid) ? hi : lo) = mid;
  }
  return std::exp(hi);
}

// One law's answer (no intervals).
absl::StatusOr<Answer> Approach3Answer(const Approach3Fit& law,
                                       const FlopsModel& model,
                                       const Query& q) {
  double flops = q.value;
  if (q.kind == QueryKind::kParams) {
    flops = ComputeForOptimalParams(law, q.value, model);
  } else if (q.kind == QueryKind::kLoss) {
    if (!(q.value > law.e)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "--loss = %.10g: unreachable: the fitted law's floor is E = %.10g "
          "(loss must be > E)",
          q.value, law.e));
    }
    const double n = std::pow(
        law.a * (1 + law.alpha / law.beta) / (q.value - law.e), 1 / law.alpha);
    flops = ComputeForOptimalParams(law, n, FlopsModel::SixND());
    if (!model.is_6nd() && std::isfinite(flops) && flops > 0) {
      flops = ComputeForLoss(law, q.value, model, flops);
    }
  }
  const ComputeOptimum o = ComputeOptimalUnder(law, flops, model);
  Answer a;
  a.flops = flops;
  a.params = o.n_opt;
  a.tokens = o.d_opt;
  a.loss = o.loss;
  a.approach = 3;
  return a;
}

absl::StatusOr<Answer> Approach2Answer(const std::pair<PowerLaw, PowerLaw>& law,
                                       const Query& q) {
  if (q.kind == QueryKind::kLoss) {
    return absl::FailedPreconditionError(
        "--loss needs --approach 3: Approach 2 has no loss model");
  }
  const double flops =
      q.kind == QueryKind::kFlops
          ? q.value
          : std::pow(q.value / law.first.coef, 1 / law.first.exponent);
  Answer a;
  a.flops = flops;
  a.params = law.first(flops);
  a.tokens = law.second(flops);
  a.approach = 2;
  return a;
}

}  // namespace

absl::StatusOr<StoredFit> StoredFitFromJson(const Json& report) {
  if (!report.is_object()) {
    return absl::InvalidArgumentError(
        "fit file: must be the JSON object of `isoflop fit --format json`");
  }
  StoredFit fit;
  if (auto it = report.find("approach3");
      it != report.end() && !it->is_null()) {
    double v[5];
    const char* names[] = {"E", "A", "B", "alpha", "beta"};
    for (int k = 0; k < 5; ++k) {
      ASSIGN_OR_RETURN(v[k], Field(*it, "approach3", names[k]));
    }
    fit.approach3 = LawWith(v[0], v[1], v[2], v[3], v[4]);
    ASSIGN_OR_RETURN(const auto rows, Samples(*it, "approach3", 5));
    for (const auto& r : rows) {
      fit.approach3_samples.push_back(LawWith(r[0], r[1], r[2], r[3], r[4]));
    }
  }
  if (auto it = report.find("approach2");
      it != report.end() && !it->is_null()) {
    double v[4];
    const char* names[] = {"n_opt_coef", "n_opt_exponent", "d_opt_coef",
                           "d_opt_exponent"};
    for (int k = 0; k < 4; ++k) {
      ASSIGN_OR_RETURN(v[k], Field(*it, "approach2", names[k]));
    }
    fit.approach2 = {{v[0], v[1]}, {v[2], v[3]}};
    ASSIGN_OR_RETURN(const auto rows, Samples(*it, "approach2", 4));
    for (const auto& r : rows) {
      fit.approach2_samples.push_back({{r[0], r[1]}, {r[2], r[3]}});
    }
  }
  if (!fit.approach3 && !fit.approach2) {
    return absl::InvalidArgumentError(
        "fit file: has neither approach3 nor approach2");
  }
  auto convention = report.find("flops_convention");
  absl::StatusOr<FlopsModel> model = FlopsModelFromJson(
      convention == report.end() ? Json(nullptr) : *convention);
  if (!model.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("fit file: ", model.status().message()));
  }
  fit.flops_model = *std::move(model);
  return fit;
}

absl::Status CheckQueryValue(const std::string& flag, double value) {
  if (!std::isfinite(value) || value <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " = ", value, ": must be finite and > 0"));
  }
  if (value < std::numeric_limits<double>::min()) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " = ", value, ": must be >= ", std::numeric_limits<double>::min(),
        " (a normal double; this one is subnormal)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Answer> AnswerQuery(const StoredFit& fit, const Query& query) {
  const char* flag = query.kind == QueryKind::kFlops    ? "--flops"
                     : query.kind == QueryKind::kParams ? "--params"
                                                        : "--loss";
  RETURN_IF_ERROR(CheckQueryValue(flag, query.value));
  if (query.approach != 2 && query.approach != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--approach = ", query.approach, ": must be 2 or 3 for queries"));
  }
  if ((query.approach == 3 && !fit.approach3) ||
      (query.approach == 2 && !fit.approach2)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the fit has no Approach ", query.approach,
                     " result (see its \"reasons\")"));
  }
  Answer answer;
  std::vector<Answer> samples;
  if (query.approach == 3) {
    ASSIGN_OR_RETURN(answer,
                     Approach3Answer(*fit.approach3, fit.flops_model, query));
    for (const Approach3Fit& s : fit.approach3_samples) {
      absl::StatusOr<Answer> a = Approach3Answer(s, fit.flops_model, query);
      if (a.ok()) samples.push_back(*a);  // a sample whose E >= L: skipped
    }
  } else {
    ASSIGN_OR_RETURN(answer, Approach2Answer(*fit.approach2, query));
    for (const auto& s : fit.approach2_samples) {
      samples.push_back(*Approach2Answer(s, query));
    }
  }
  answer.flops_convention = query.approach == 3 ? fit.flops_model.name()
                                                : "as the Approach 2 budgets";
  answer.flops_description =
      query.approach == 3
          ? fit.flops_model.Describe()
          : "C of the IsoFLOP budgets the Approach 2 power laws were fitted on";
  // A value far outside the fitted range (C = 5e-324) gives N = 0 or an
  // infinite D or loss: no answer, said so.
  const auto usable = [](double v) { return std::isfinite(v) && v > 0; };
  if (!usable(answer.flops) || !usable(answer.params) ||
      !usable(answer.tokens) || (answer.loss && !std::isfinite(*answer.loss))) {
    return absl::OutOfRangeError(
        absl::StrCat(flag, " = ", query.value, ": outside what the Approach ",
                     query.approach, " law can answer (C = ", answer.flops,
                     ", N = ", answer.params, ", D = ", answer.tokens,
                     answer.loss ? absl::StrCat(", loss = ", *answer.loss) : "",
                     "; each must be finite and > 0)"));
  }
  if (!samples.empty()) {
    std::vector<double> c, n, d, l;
    for (const Answer& s : samples) {
      c.push_back(s.flops);
      n.push_back(s.params);
      d.push_back(s.tokens);
      if (s.loss) l.push_back(*s.loss);
    }
    if (query.kind != QueryKind::kFlops) answer.ci95["flops"] = Percentile95(c);
    answer.ci95["params"] = Percentile95(n);
    answer.ci95["tokens"] = Percentile95(d);
    if (!l.empty() && query.kind != QueryKind::kLoss) {
      answer.ci95["loss"] = Percentile95(l);
    }
  }
  return answer;
}

Json AnswerToJson(const Answer& answer) {
  Json out = {{"flops", answer.flops},
              {"params", answer.params},
              {"tokens", answer.tokens},
              {"loss", answer.loss ? Json(*answer.loss) : Json(nullptr)},
              {"approach", answer.approach},
              {"flops_convention", answer.flops_convention},
              {"flops_convention_description", answer.flops_description}};
  if (!answer.ci95.empty()) {
    Json ci = Json::object();
    for (const auto& [name, i] : answer.ci95) ci[name] = {i.low, i.high};
    out["ci95"] = ci;
  }
  return out;
}

}  // namespace isoflop::analysis
