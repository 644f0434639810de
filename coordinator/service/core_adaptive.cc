// Core: the sweep's design step (docs/architecture.md §2.1): an
// adaptive grid's next trials from the planner (coordinator/sweep/
// adaptive.h), a fixed grid's design warnings. Called by RefreshSweep under
// write_mu_ whenever a trial of the sweep ends.
#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/service/core.h"
#include "coordinator/sweep/adaptive.h"
#include "coordinator/sweep/expand.h"
#include "coordinator/sweep/recipe.h"

namespace isoflop::coordinator {
namespace {

bool Ended(v1::TrialState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

// The budgets of a sweep all of whose trials have ended.
int FinishedBudgets(const SweepRecord& s) {
  std::set<double> all, open;
  for (const TrialRecord& t : s.trials) {
    all.insert(t.trial.spec().flops_budget());
    if (!Ended(t.trial.state())) open.insert(t.trial.spec().flops_budget());
  }
  return static_cast<int>(all.size() - open.size());
}

// One cell of `config` (resolved), made as ExpandSweep makes every cell:
// counts, steps, tokens and training from the config.
absl::StatusOr<v1::TrialSpec> MakeCell(const v1::SweepConfig& config,
                                       const std::string& sweep_id,
                                       int budget_index,
                                       const v1::ModelShape& shape) {
  v1::SweepConfig one = config;
  v1::Grid& g = *one.mutable_grid();
  g.clear_flops_budgets();
  g.add_flops_budgets(config.grid().flops_budgets(budget_index));
  g.clear_model_shapes();
  g.clear_n_targets();
  g.clear_d_models();
  *g.add_model_shapes() = shape;
  g.clear_adaptive();
  ASSIGN_OR_RETURN(ExpandedSweep e, ExpandSweep(one, sweep_id));
  return std::move(e.trials.front());
}

}  // namespace

bool Core::AdvanceDesign(const std::string& sweep_id) {
  v1::SweepConfig config;
  std::vector<v1::Trial> trials;
  size_t n_trials = 0;
  {
    absl::MutexLock lock(&mu_);
    SweepRecord* s = FindSweepLocked(sweep_id);
    if (s == nullptr || s->sweep.state() != v1::SWEEP_RUNNING) return true;
    const bool adaptive = s->sweep.config().grid().has_adaptive();
    if (adaptive) {
      // The planner waits while any trial runs: no copy needed.
      if (!std::all_of(
              s->trials.begin(), s->trials.end(),
              [](const TrialRecord& t) { return Ended(t.trial.state()); })) {
        return false;
      }
    } else {
      const int done = FinishedBudgets(*s);
      int& last = design_budgets_done_[sweep_id];
      if (done == last) return true;
      last = done;
    }
    config = s->sweep.config();
    trials.reserve(s->trials.size());
    for (const TrialRecord& t : s->trials) trials.push_back(t.trial);
    n_trials = s->trials.size();
  }
  if (!config.grid().has_adaptive()) {
    std::vector<std::string> warnings = FixedGridWarnings(config, trials);
    absl::MutexLock lock(&mu_);
    SweepRecord* s = FindSweepLocked(sweep_id);
    s->sweep.clear_design_warnings();
    for (std::string& w : warnings) s->sweep.add_design_warnings(std::move(w));
    return true;
  }
  const v1::ModelSpec model = config.model();
  // The config's shape rule (coordinator/sweep/recipe.h; its defaults when
  // unset).
  const v1::ShapeRule rule = ResolveShapeRule(config.grid().shape_rule());
  absl::StatusOr<AdaptivePlan> plan = PlanAdaptive(
      sweep_id, config, trials,
      [&model, &rule](double n) { return ShapeForParams(n, rule, model); },
      [&config, &sweep_id](int b, const v1::ModelShape& shape) {
        return MakeCell(config, sweep_id, b, shape);
      });
  std::vector<std::string> warnings;
  if (!plan.ok()) {
    // Nothing more can be placed: the sweep ends with what it has.
    warnings.push_back(
        absl::StrCat("adaptive grid stopped: ", plan.status().message()));
  } else {
    warnings = plan->warnings;
  }
  std::vector<TrialRecord> added;
  if (plan.ok() && plan->kind == AdaptivePlan::kAdd) {
    const int64_t now_ms = NowMs();
    for (v1::TrialSpec& spec : plan->trials) {
      TrialRecord t;
      t.ordinal = static_cast<int>(n_trials + added.size());
      *t.trial.mutable_spec() = std::move(spec);
      t.trial.set_state(v1::PENDING);
      t.trial.set_train_loss(std::nan(""));
      t.trial.set_val_loss(std::nan(""));
      t.trial.set_tokens_per_s(std::nan(""));
      t.trial.set_updated_unix_ms(now_ms);
      added.push_back(std::move(t));
    }
    if (!store_->AddTrials(sweep_id, added).ok()) {
      // A storage fault (docs/storage-faults.md): nothing was added; the
      // same plan is made and committed again by the next reaper tick.
      absl::MutexLock lock(&mu_);
      unplanned_sweeps_.insert(sweep_id);
      return false;
    }
  }
  absl::MutexLock lock(&mu_);
  SweepRecord* s = FindSweepLocked(sweep_id);
  s->sweep.clear_design_warnings();
  for (std::string& w : warnings) s->sweep.add_design_warnings(std::move(w));
  if (added.empty()) {
    return !plan.ok() || plan->kind == AdaptivePlan::kDone;
  }
  for (TrialRecord& t : added) s->trials.push_back(std::move(t));
  IndexLocked(*s);  // the vector may have moved
  return false;
}

}  // namespace isoflop::coordinator
