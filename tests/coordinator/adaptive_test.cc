// Adaptive grids (coordinator/sweep/adaptive.h): the pure planner, its
// wiring in the core, and the acceptance test of issue 21: a fake trainer
// whose loss follows a known law, driven through the core.
#include "coordinator/sweep/adaptive.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "analysis/power_law.h"
#include "common/fake_clock.h"
#include "common/flops.h"
#include "coordinator/service/core.h"
#include "coordinator/store/fake_trial_store.h"
#include "coordinator/sweep/expand.h"
#include "coordinator/sweep/recipe.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::SmallConfig;
using ::testing::HasSubstr;

// The law the fake trainer "measures" (Chinchilla's fitted constants,
// Hoffmann et al. 2022): L = E + A / N^a + B / D^b.
constexpr double kE = 1.69, kA = 406.4, kB = 410.7, kAlpha = 0.34, kBeta = 0.28;
double Law(double n, double d) {
  return kE + kA / std::pow(n, kAlpha) + kB / std::pow(d, kBeta);
}

// vocab 512, T 64, B 16; budgets over 2.4 decades; the first budget's three
// shapes lie well below its optimum.
v1::SweepConfig LawConfig(bool adaptive) {
  v1::SweepConfig c = SmallConfig();
  c.mutable_grid()->clear_flops_budgets();
  for (double b : {1e13, 4e13, 1.6e14, 6.4e14, 2.56e15}) {
    c.mutable_grid()->add_flops_budgets(b);
  }
  if (adaptive) c.mutable_grid()->mutable_adaptive();
  return c;
}

// The default shape rule's shapes (coordinator/sweep/recipe.h) at every
// width, as (ln N, ln FLOPs/token), N increasing.
std::vector<std::pair<double, double>> Family(const v1::ModelSpec& model) {
  const v1::ShapeRule rule = ResolveShapeRule(v1::ShapeRule());
  std::vector<std::pair<double, double>> family;
  for (uint32_t d = 16; d <= 2048; ++d) {
    absl::StatusOr<v1::ModelShape> s = ShapeForDModel(d, rule);
    if (!s.ok()) continue;
    const ParamCounts c =
        CountParams({model.vocab_size(), model.context(), s->d_model(),
                     s->n_layers(), s->n_heads(), s->d_ff()});
    const double log_n = std::log(static_cast<double>(c.n_total));
    if (family.empty() || log_n > family.back().first) {
      family.emplace_back(log_n, std::log(c.flops_per_token));
    }
  }
  return family;
}

// The true N_opt at `flops` along the shapes the core places:
// golden-section search over ln N of the law at D = C / FLOPs-per-token(N),
// FLOPs per token interpolated in log-log between the rule's shapes.
double TrueNOpt(const v1::ModelSpec& model, double flops) {
  // Every test here uses LawConfig's model: made once.
  static const std::vector<std::pair<double, double>> family = Family(model);
  const auto loss = [&](double log_n) {
    auto hi = std::lower_bound(family.begin(), family.end(),
                               std::make_pair(log_n, 0.0));
    if (hi == family.begin()) ++hi;
    if (hi == family.end()) --hi;
    const auto lo = hi - 1;
    const double w = (log_n - lo->first) / (hi->first - lo->first);
    const double log_fpt = lo->second + w * (hi->second - lo->second);
    return Law(std::exp(log_n), flops / std::exp(log_fpt));
  };
  double a = family.front().first, b = family.back().first;
  const double g = (std::sqrt(5.0) - 1) / 2;
  for (int i = 0; i < 200; ++i) {
    const double x1 = b - g * (b - a), x2 = a + g * (b - a);
    if (loss(x1) < loss(x2)) {
      b = x2;
    } else {
      a = x1;
    }
  }
  return std::exp((a + b) / 2);
}

// Runs the sweep to its end through the core: a simulated worker leases
// every trial and reports the law's loss at the trial's N and D.
class LawSweep {
 public:
  explicit LawSweep(TrialStore* store)
      : core_(std::make_unique<Core>(store, &clock_, CoreOptions{})) {
    v1::RegisterWorkerRequest r;
    r.set_worker_id("wk-a");
    r.mutable_resources()->set_cpu_slots(64);
    EXPECT_TRUE(core_->RegisterWorker(r).ok());
  }
  Core& core() { return *core_; }

  // Leases and finishes trials until none is left to lease (or `limit`
  // ran); returns how many ran.
  int RunAll() { return RunOne(1 << 30); }
  int RunOne(int limit) {
    int ran = 0;
    while (ran < limit) {
      v1::LeaseTrialRequest lr;
      lr.set_worker_id("wk-a");
      lr.set_free_cpu_slots(64);
      absl::StatusOr<v1::LeaseTrialResponse> lease = core_->LeaseTrial(lr);
      EXPECT_TRUE(lease.ok()) << lease.status();
      if (!lease.ok() || !lease->has_assignment()) return ran;
      v1::ReportOutcomeRequest out;
      out.set_worker_id("wk-a");
      out.mutable_lease()->set_trial_id(lease->spec().trial_id());
      out.mutable_lease()->set_attempt(lease->attempt());
      out.mutable_lease()->set_lease_epoch(lease->lease_epoch());
      out.set_outcome(v1::OUTCOME_SUCCEEDED);
      out.set_final_val_loss(Law(static_cast<double>(lease->spec().n_total()),
                                 static_cast<double>(lease->spec().tokens())));
      EXPECT_TRUE(core_->ReportOutcome(out).ok());
      ++ran;
    }
    return ran;
  }

 private:
  FakeClock clock_;
  std::unique_ptr<Core> core_;
};

struct SweepVerdict {
  bool every_budget_bracketed = true;
  double last_vertex = 0;
  double last_truth = 0;
  std::string detail;
};

// The acceptance check: every budget's minimum inside its sampled N range,
// and the last budget's parabola vertex within 10% of the true N_opt.
SweepVerdict Check(const v1::Sweep& sweep) {
  std::vector<v1::Trial> trials(sweep.trials().begin(), sweep.trials().end());
  const std::vector<BudgetProfile> profiles = FinishedProfiles(trials);
  SweepVerdict v;
  for (const BudgetProfile& p : profiles) {
    v.every_budget_bracketed &= p.bracketed;
    v.detail += "C=" + std::to_string(p.flops) + " N " +
                std::to_string(p.n_min) + ".." + std::to_string(p.n_max) +
                " argmin " + std::to_string(p.n_argmin) + " vertex " +
                std::to_string(p.n_vertex) + " truth " +
                std::to_string(TrueNOpt(sweep.config().model(), p.flops)) +
                "\n";
  }
  if (!profiles.empty()) {
    v.last_vertex = profiles.back().has_vertex ? profiles.back().n_vertex : 0;
    v.last_truth = TrueNOpt(sweep.config().model(), profiles.back().flops);
  }
  return v;
}

bool Converged(const SweepVerdict& v) {
  return v.every_budget_bracketed &&
         std::abs(v.last_vertex / v.last_truth - 1) <= 0.10;
}

TEST(AdaptiveGridAcceptance, ConvergesOnTheKnownOptimumAndBracketsEveryBudget) {
  FakeTrialStore store;
  LawSweep run(&store);
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = LawConfig(/*adaptive=*/true);
  absl::StatusOr<v1::SubmitSweepResponse> r = run.core().Submit(submit);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->n_trials(), 3u);  // the first budget only
  run.RunAll();
  const v1::Sweep sweep = run.core().GetSweep(r->sweep_id()).value();
  EXPECT_EQ(sweep.state(), v1::SWEEP_SUCCEEDED);
  const SweepVerdict v = Check(sweep);
  EXPECT_TRUE(v.every_budget_bracketed) << v.detail;
  EXPECT_NEAR(v.last_vertex / v.last_truth, 1.0, 0.10) << v.detail;
  EXPECT_THAT(sweep.design_warnings(), ::testing::IsEmpty());
  // Every budget ran, each trial after the first budget says why.
  std::map<double, int> per_budget;
  for (const v1::Trial& t : sweep.trials()) {
    ++per_budget[t.spec().flops_budget()];
    if (t.spec().flops_budget() > 1e13 || t.spec().extension() != 0) {
      EXPECT_FALSE(t.spec().reason().empty()) << t.spec().trial_id();
    }
  }
  EXPECT_EQ(per_budget.size(), 5u);
}

TEST(AdaptiveGridAcceptance, AFixedGridOfTheSameFirstBudgetFailsTheCheck) {
  FakeTrialStore store;
  LawSweep run(&store);
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = LawConfig(/*adaptive=*/false);
  absl::StatusOr<v1::SubmitSweepResponse> r = run.core().Submit(submit);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(run.RunAll(), 15);
  const v1::Sweep sweep = run.core().GetSweep(r->sweep_id()).value();
  const SweepVerdict v = Check(sweep);
  // Without the adaptive step the same check fails: the step matters.
  EXPECT_FALSE(Converged(v)) << v.detail;
  EXPECT_FALSE(v.every_budget_bracketed) << v.detail;
}

// ---- The planner alone.

// Cells as ExpandSweep makes them, as far as the planner reads them.
MakeTrialFn Cells(const v1::SweepConfig& c) {
  return [c](int b, const v1::ModelShape& shape) {
    v1::TrialSpec t;
    t.set_flops_budget(c.grid().flops_budgets(b));
    *t.mutable_shape() = shape;
    const int64_t d_ff = shape.d_ff() == 0 ? 4 * shape.d_model() : shape.d_ff();
    t.set_n_total(static_cast<uint64_t>(
        CountParams({c.model().vocab_size(), c.model().context(),
                     shape.d_model(), shape.n_layers(), shape.n_heads(), d_ff})
            .n_total));
    return absl::StatusOr<v1::TrialSpec>(t);
  };
}
ShapeFn Shapes(const v1::SweepConfig& c) {
  return [m = c.model()](double n) { return AspectRatioShape(n, m); };
}

// The first budget's trials as submitted, ended with loss = f(N).
std::vector<v1::Trial> FirstBudget(const v1::SweepConfig& c,
                                   const std::function<double(double)>& f) {
  absl::StatusOr<AdaptivePlan> p =
      PlanAdaptive("sw-t", c, {}, Shapes(c), Cells(c));
  EXPECT_TRUE(p.ok()) << p.status();
  std::vector<v1::Trial> out;
  for (const v1::TrialSpec& spec : p->trials) {
    v1::Trial t;
    *t.mutable_spec() = spec;
    t.set_state(v1::SUCCEEDED);
    t.set_val_loss(f(static_cast<double>(spec.n_total())));
    out.push_back(t);
  }
  return out;
}

// Ends `specs` with loss = f(N) and appends them to `trials`.
void Finish(const std::vector<v1::TrialSpec>& specs,
            const std::function<double(double)>& f,
            std::vector<v1::Trial>& trials) {
  for (const v1::TrialSpec& spec : specs) {
    v1::Trial t;
    *t.mutable_spec() = spec;
    t.set_state(v1::SUCCEEDED);
    t.set_val_loss(f(static_cast<double>(spec.n_total())));
    trials.push_back(t);
  }
}

// A parabola in log N with its vertex at `n_opt`.
std::function<double(double)> Bowl(double n_opt) {
  return [n_opt](double n) {
    const double x = std::log(n / n_opt);
    return 3 + 0.1 * x * x;
  };
}

TEST(PlanAdaptive, StartsWithTheConfigsShapesAtTheSmallestBudget) {
  v1::SweepConfig c = LawConfig(/*adaptive=*/true);
  std::reverse(c.mutable_grid()->mutable_flops_budgets()->begin(),
               c.mutable_grid()->mutable_flops_budgets()->end());
  absl::StatusOr<AdaptivePlan> p =
      PlanAdaptive("sw-t", c, {}, Shapes(c), Cells(c));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, AdaptivePlan::kAdd);
  ASSERT_EQ(p->trials.size(), 3u);
  for (const v1::TrialSpec& t : p->trials) EXPECT_EQ(t.flops_budget(), 1e13);
  EXPECT_EQ(p->trials[1].shape().d_model(), 48u);
}

TEST(PlanAdaptive, WaitsWhileATrialOfTheBudgetHasNotEnded) {
  const v1::SweepConfig c = LawConfig(/*adaptive=*/true);
  std::vector<v1::Trial> trials = FirstBudget(c, Bowl(1e5));
  trials[1].set_state(v1::RUNNING);
  absl::StatusOr<AdaptivePlan> p =
      PlanAdaptive("sw-t", c, trials, Shapes(c), Cells(c));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, AdaptivePlan::kWait);
  EXPECT_TRUE(p->trials.empty());
}

TEST(PlanAdaptive, ExtendsBelowAMinimumAtTheLowerEdgeTheSameWayEachTime) {
  const v1::SweepConfig c = LawConfig(/*adaptive=*/true);
  const std::vector<v1::Trial> trials = FirstBudget(c, Bowl(1e4));
  absl::StatusOr<AdaptivePlan> p =
      PlanAdaptive("sw-t", c, trials, Shapes(c), Cells(c));
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->kind, AdaptivePlan::kAdd);
  ASSERT_FALSE(p->trials.empty());
  for (const v1::TrialSpec& t : p->trials) {
    EXPECT_EQ(t.reason(), "extend below edge minimum");
    EXPECT_EQ(t.extension(), -1);
    EXPECT_EQ(t.flops_budget(), 1e13);
    EXPECT_LT(t.n_total(), trials[0].spec().n_total());
  }
  // Idempotent: the same trials give the same decision and ids.
  absl::StatusOr<AdaptivePlan> again =
      PlanAdaptive("sw-t", c, trials, Shapes(c), Cells(c));
  ASSERT_EQ(again->trials.size(), p->trials.size());
  for (size_t i = 0; i < p->trials.size(); ++i) {
    EXPECT_EQ(again->trials[i].trial_id(), p->trials[i].trial_id());
  }
}

TEST(PlanAdaptive, MovesOnWithAWarningAfterMaxExtensions) {
  v1::SweepConfig c = LawConfig(/*adaptive=*/true);
  c.mutable_grid()->mutable_adaptive()->set_max_extensions(1);
  // Far above every shape the rule makes near the first budget.
  const auto f = Bowl(1e12);
  std::vector<v1::Trial> trials = FirstBudget(c, f);
  absl::StatusOr<AdaptivePlan> p =
      PlanAdaptive("sw-t", c, trials, Shapes(c), Cells(c));
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->kind, AdaptivePlan::kAdd);
  EXPECT_EQ(p->trials.front().reason(), "extend above edge minimum");
  Finish(p->trials, f, trials);
  p = PlanAdaptive("sw-t", c, trials, Shapes(c), Cells(c));
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->kind, AdaptivePlan::kAdd);
  EXPECT_EQ(p->trials.front().flops_budget(), 4e13);
  EXPECT_THAT(p->trials.front().reason(), HasSubstr("no budget bracketed"));
  ASSERT_EQ(p->warnings.size(), 1u);
  EXPECT_THAT(p->warnings[0], HasSubstr("upper edge"));
  EXPECT_THAT(p->warnings[0], HasSubstr("after 1 extension(s)"));
}

TEST(PlanAdaptive, CentresTheNextBudgetOnTheBracketedVertex) {
  const v1::SweepConfig c = LawConfig(/*adaptive=*/true);
  // Inside the first budget's shapes (59.6K..218K).
  const double vertex = 1.1e5;
  std::vector<v1::Trial> trials = FirstBudget(c, Bowl(vertex));
  absl::StatusOr<AdaptivePlan> p =
      PlanAdaptive("sw-t", c, trials, Shapes(c), Cells(c));
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->kind, AdaptivePlan::kAdd);
  // One vertex: N_opt = vertex x (4e13 / 1e13)^0.5.
  const double predicted = vertex * 2;
  double lo = 1e300, hi = 0;
  for (const v1::TrialSpec& t : p->trials) {
    EXPECT_EQ(t.flops_budget(), 4e13);
    EXPECT_THAT(t.reason(), HasSubstr("centre on N_opt=220K"));
    lo = std::min(lo, static_cast<double>(t.n_total()));
    hi = std::max(hi, static_cast<double>(t.n_total()));
  }
  EXPECT_GE(p->trials.size(), 4u);
  EXPECT_LT(lo, predicted);
  EXPECT_GT(hi, predicted);
  EXPECT_GE(hi / lo, 4.0);  // span 8 on a discrete family of shapes
}

TEST(PlanAdaptive, IsDoneWhenTheLastBudgetHasEnded) {
  v1::SweepConfig c = LawConfig(/*adaptive=*/true);
  c.mutable_grid()->clear_flops_budgets();
  c.mutable_grid()->add_flops_budgets(1e13);
  const std::vector<v1::Trial> trials = FirstBudget(c, Bowl(1.1e5));
  absl::StatusOr<AdaptivePlan> p =
      PlanAdaptive("sw-t", c, trials, Shapes(c), Cells(c));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, AdaptivePlan::kDone);
  EXPECT_TRUE(p->warnings.empty());
}

TEST(ValidateAdaptiveGrid, NamesTheFieldValueAndRule) {
  v1::SweepConfig c = LawConfig(/*adaptive=*/true);
  c.mutable_grid()->mutable_adaptive()->set_span(1.5);
  const absl::Status s = ExpandSweep(c).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("grid.adaptive.span = 1.5"));
  EXPECT_THAT(s.message(), HasSubstr("[2, 1000]"));
}

TEST(FixedGridWarnings, NameABudgetWhoseShapesCannotBracketThePrediction) {
  const v1::SweepConfig c = LawConfig(/*adaptive=*/false);
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  std::vector<v1::Trial> trials;
  for (const v1::TrialSpec& spec : e->trials) {
    v1::Trial t;
    *t.mutable_spec() = spec;
    t.set_state(v1::PENDING);
    if (spec.flops_budget() == 1e13) {
      t.set_state(v1::SUCCEEDED);
      t.set_val_loss(Bowl(1.1e5)(static_cast<double>(spec.n_total())));
    }
    trials.push_back(t);
  }
  // Predicted 1.1e5 x 4^0.5 = 220K at 4e13: just past the shapes (218K);
  // further out at the larger budgets.
  const std::vector<std::string> w = FixedGridWarnings(c, trials);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_THAT(w[0], HasSubstr("budget 4e+13 (grid.flops_budgets[1])"));
  EXPECT_THAT(w[0], HasSubstr("predicted N_opt=220K"));
  EXPECT_THAT(w[0], HasSubstr("cannot bracket"));
  EXPECT_TRUE(FixedGridWarnings(LawConfig(/*adaptive=*/true), trials).empty());
}

// ---- The core.

TEST(AdaptiveGridCore, ARestartReplansTheSameTrialsOnce) {
  // Reference: the first budget ends through the core, which plans the
  // second.
  FakeTrialStore reference;
  std::string sweep_id;
  std::vector<std::string> want;
  {
    LawSweep run(&reference);
    v1::SubmitSweepRequest submit;
    *submit.mutable_config() = LawConfig(/*adaptive=*/true);
    sweep_id = run.core().Submit(submit).value().sweep_id();
    run.RunOne(3);
    const v1::Sweep sweep = run.core().GetSweep(sweep_id).value();
    for (const v1::Trial& t : sweep.trials()) {
      want.push_back(t.spec().trial_id());
    }
  }
  ASSERT_GT(want.size(), 3u);
  // The same, but the coordinator stops after the last outcome is stored
  // and before the plan is: the outcome written to the store directly.
  FakeTrialStore store;
  {
    LawSweep run(&store);
    v1::SubmitSweepRequest submit;
    *submit.mutable_config() = LawConfig(/*adaptive=*/true);
    ASSERT_EQ(run.core().Submit(submit).value().sweep_id(), sweep_id);
    run.RunOne(2);
  }
  std::vector<SweepRecord> all = store.LoadAll().value();
  ASSERT_EQ(all[0].trials.size(), 3u);
  TrialRecord last = all[0].trials[2];
  last.trial.set_state(v1::SUCCEEDED);
  last.trial.set_val_loss(Law(static_cast<double>(last.trial.spec().n_total()),
                              static_cast<double>(last.trial.spec().tokens())));
  ASSERT_TRUE(store.UpdateTrials({last}).ok());
  for (int restart = 0; restart < 2; ++restart) {
    FakeClock clock;
    Core core(&store, &clock, CoreOptions{});
    ASSERT_TRUE(core.Recover().ok());
    std::vector<std::string> got;
    const v1::Sweep sweep = core.GetSweep(sweep_id).value();
    for (const v1::Trial& t : sweep.trials()) {
      got.push_back(t.spec().trial_id());
    }
    EXPECT_EQ(got, want) << "restart " << restart;
    EXPECT_EQ(store.LoadAll()->at(0).trials.size(), want.size());
  }
}

// configs/demo-cpu.textproto (issue 21 point 6): an adaptive sweep of >= 4
// budgets over >= 1 decade, with a per-size lr, that the coordinator
// accepts; its first budget spans >= 4x of N.
TEST(DemoConfig, IsAnAdaptiveSweepOfFourBudgetsOverADecade) {
  std::ifstream in(ISOFLOP_DEMO_CONFIG);
  ASSERT_TRUE(in) << ISOFLOP_DEMO_CONFIG;
  const std::string text((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  v1::SweepConfig c;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &c));
  ASSERT_TRUE(c.grid().has_adaptive());
  EXPECT_TRUE(c.training().has_lr_rule());
  const auto& b = c.grid().flops_budgets();
  ASSERT_GE(b.size(), 4);
  EXPECT_GE(*std::max_element(b.begin(), b.end()) /
                *std::min_element(b.begin(), b.end()),
            10.0);
  absl::StatusOr<ExpandedSweep> e = ExpandSweep(c);
  ASSERT_TRUE(e.ok()) << e.status();
  const std::vector<v1::TrialSpec> first =
      FirstBudgetTrials(e->resolved, e->trials);
  double lo = 1e300, hi = 0;
  for (const v1::TrialSpec& t : first) {
    lo = std::min(lo, static_cast<double>(t.n_total()));
    hi = std::max(hi, static_cast<double>(t.n_total()));
  }
  EXPECT_GE(hi / lo, 4.0);
}

}  // namespace
}  // namespace isoflop::coordinator
