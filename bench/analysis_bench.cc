// Times of the scaling-law fits (label bench; never asserted): the
// 4500-start Approach-3 fit on Epoch AI's 240 Chinchilla points and on 2000
// synthetic points, and 1000 bootstrap refits of the 240-point fit. Run:
//   build/tests/analysis/analysis_bench  (figures in bench/results/)
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "analysis/approach3.h"
#include "analysis/bootstrap.h"
#include "analysis/points_io.h"
#include "benchmark/benchmark.h"

namespace isoflop::analysis {
namespace {

// Epoch AI's protocol: drop the 5 highest-loss points (240 remain).
std::vector<Observation> EpochPoints() {
  auto set = ReadPoints(std::string(ISOFLOP_TESTDATA_DIR) +
                        "/epoch_chinchilla_svg_extracted.csv");
  std::vector<double> losses;
  for (const Point& p : set->points) losses.push_back(p.loss);
  std::sort(losses.begin(), losses.end());
  std::vector<Observation> kept;
  for (const Point& p : set->points) {
    if (p.loss < losses[losses.size() - 5]) kept.push_back({p.n, p.d, p.loss});
  }
  return kept;
}

// `count` points of the Chinchilla law with 1 % noise, N 1e7..1e10.
std::vector<Observation> SyntheticPoints(int count) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> log_n(std::log(1e7), std::log(1e10));
  std::uniform_real_distribution<double> log_ratio(std::log(5.0),
                                                   std::log(200.0));
  std::normal_distribution<double> noise(0, 0.01);
  std::vector<Observation> points;
  for (int i = 0; i < count; ++i) {
    const double n = std::exp(log_n(rng)), d = n * std::exp(log_ratio(rng));
    const double loss =
        1.69 + 406.4 / std::pow(n, 0.34) + 410.7 / std::pow(d, 0.28);
    points.push_back({n, d, loss * std::exp(noise(rng))});
  }
  return points;
}

void BM_Approach3Grid(benchmark::State& state,
                      const std::vector<Observation>& points) {
  for (auto _ : state) {
    auto fit = FitApproach3(points);
    benchmark::DoNotOptimize(fit);
  }
  state.counters["points"] = points.size();
  state.counters["starts"] = 4500;
}

void BM_Bootstrap1000(benchmark::State& state) {
  const std::vector<Observation> points = EpochPoints();
  const Approach3Fit full = *FitApproach3(points);
  for (auto _ : state) {
    auto boot = BootstrapApproach3(points, full, {.resamples = 1000});
    benchmark::DoNotOptimize(boot);
  }
}

BENCHMARK_CAPTURE(BM_Approach3Grid, epoch_240_points, EpochPoints())
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Approach3Grid, synthetic_2000_points,
                  SyntheticPoints(2000))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Bootstrap1000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace isoflop::analysis

BENCHMARK_MAIN();
