#include "analysis/bootstrap.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <optional>
#include <random>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace isoflop::analysis {
namespace {

absl::Status Validate(const BootstrapOptions& options) {
  if (options.resamples < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--bootstrap = ", options.resamples, ": must be >= 2 (or 0: none)"));
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.threads = ", options.threads, ": must be >= 0"));
  }
  return absl::OkStatus();
}

// Runs job(i) for i in [0, count) on `threads` threads; CANCELLED (the
// remaining jobs skipped) once *cancel turns true.
absl::Status ParallelFor(int count, int threads,
                         const std::atomic<bool>* cancel,
                         const std::function<void(int)>& job) {
  if (threads == 0) {
    threads =
        static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < std::min(threads, count); ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < count; i = next++) {
        if (cancel != nullptr && cancel->load()) break;
        job(i);
      }
    });
  }
  for (std::thread& t : pool) t.join();
  if (cancel != nullptr && cancel->load()) {
    return absl::CancelledError("bootstrap cancelled");
  }
  return absl::OkStatus();
}

std::mt19937_64 ResampleRng(uint64_t seed, int index) {
  std::seed_seq seq{static_cast<uint32_t>(seed),
                    static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(index)};
  return std::mt19937_64(seq);
}

double Quantile(const std::vector<double>& sorted, double q) {
  const double at = q * (sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(at));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (at - lo) * (sorted[hi] - sorted[lo]);
}

}  // namespace

absl::StatusOr<Approach3Bootstrap> BootstrapApproach3(
    const std::vector<Observation>& points, const Approach3Fit& full,
    const BootstrapOptions& options) {
  RETURN_IF_ERROR(Validate(options));
  const Approach3Options fit_options = {
      .huber_delta = full.huber_delta > 0 ? full.huber_delta : 1e-3,
      .threads = 1,
      .starts = {ToLogParams(full)}};
  std::vector<std::optional<Approach3Fit>> fits(options.resamples);
  std::vector<absl::Status> errors(options.resamples);
  RETURN_IF_ERROR(ParallelFor(
      options.resamples, options.threads, options.cancel, [&](int i) {
        std::mt19937_64 rng = ResampleRng(options.seed, i);
        std::uniform_int_distribution<size_t> pick(0, points.size() - 1);
        std::vector<Observation> resample(points.size());
        for (Observation& p : resample) p = points[pick(rng)];
        absl::StatusOr<Approach3Fit> fit = FitApproach3(resample, fit_options);
        if (fit.ok() && std::isfinite(fit->objective)) {
          fit->message.clear();
          fits[i] = std::move(*fit);
        } else {
          errors[i] = fit.status();
        }
      }));
  // A resample of too few points fails the same way as the full set would.
  for (const absl::Status& s : errors) {
    if (s.code() == absl::StatusCode::kInvalidArgument &&
        s.message().find("points[") != std::string::npos) {
      return s;
    }
  }
  Approach3Bootstrap out;
  for (auto& fit : fits) {
    if (fit.has_value()) {
      out.samples.push_back(std::move(*fit));
    } else {
      ++out.failed;
    }
  }
  return out;
}

absl::StatusOr<Approach2Bootstrap> BootstrapApproach2(
    const std::vector<Point>& points, const Grouping& grouping,
    const Approach2Options& fit_options, const BootstrapOptions& options) {
  RETURN_IF_ERROR(Validate(options));
  std::vector<std::optional<std::pair<PowerLaw, PowerLaw>>> fits(
      options.resamples);
  RETURN_IF_ERROR(ParallelFor(
      options.resamples, options.threads, options.cancel, [&](int i) {
        std::mt19937_64 rng = ResampleRng(options.seed, i);
        std::vector<Point> resample;
        Grouping regrouped;
        for (const BudgetGroup& group : grouping.groups) {
          BudgetGroup g{group.flops, {}};
          std::uniform_int_distribution<size_t> pick(0,
                                                     group.indices.size() - 1);
          for (size_t k = 0; k < group.indices.size(); ++k) {
            g.indices.push_back(static_cast<int>(resample.size()));
            resample.push_back(points[group.indices[pick(rng)]]);
          }
          regrouped.groups.push_back(std::move(g));
        }
        absl::StatusOr<Approach2Fit> fit =
            FitApproach2(resample, regrouped, fit_options);
        if (fit.ok()) fits[i] = std::make_pair(fit->n_opt, fit->d_opt);
      }));
  Approach2Bootstrap out;
  for (auto& fit : fits) {
    if (fit.has_value()) {
      out.samples.push_back(*fit);
    } else {
      ++out.failed;
    }
  }
  return out;
}

Interval Percentile95(std::vector<double> values) {
  // A resample whose law has no finite answer (e.g. inf loss) is left out;
  // NaN would also break the sort's ordering.
  values.erase(std::remove_if(values.begin(), values.end(),
                              [](double v) { return !std::isfinite(v); }),
               values.end());
  if (values.empty()) return {NAN, NAN};
  std::sort(values.begin(), values.end());
  return {Quantile(values, 0.025), Quantile(values, 0.975)};
}

std::map<std::string, Interval> Approach3Intervals(
    const std::vector<Approach3Fit>& samples) {
  std::map<std::string, std::vector<double>> values;
  for (const Approach3Fit& s : samples) {
    const double sum = s.alpha + s.beta;
    values["E"].push_back(s.e);
    values["A"].push_back(s.a);
    values["B"].push_back(s.b);
    values["alpha"].push_back(s.alpha);
    values["beta"].push_back(s.beta);
    values["a"].push_back(s.beta / sum);
    values["b"].push_back(s.alpha / sum);
    values["G"].push_back(std::pow(s.alpha * s.a / (s.beta * s.b), 1 / sum));
  }
  std::map<std::string, Interval> out;
  for (auto& [name, v] : values) out[name] = Percentile95(std::move(v));
  return out;
}

std::map<std::string, Interval> OptimumIntervals(
    const std::vector<Approach3Fit>& samples, double flops,
    const FlopsModel& model) {
  std::vector<double> n, d, loss;
  for (const Approach3Fit& s : samples) {
    const ComputeOptimum o = ComputeOptimalUnder(s, flops, model);
    n.push_back(o.n_opt);
    d.push_back(o.d_opt);
    loss.push_back(o.loss);
  }
  return {{"n_opt", Percentile95(n)},
          {"d_opt", Percentile95(d)},
          {"loss", Percentile95(loss)}};
}

}  // namespace isoflop::analysis
