// Core::ImportSweep: runs trained elsewhere as a fit-only sweep
// (docs/import-export.md).
#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/flops.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "coordinator/service/core.h"
#include "coordinator/service/metrics_read.h"
#include "coordinator/sweep/validate.h"

namespace isoflop::coordinator {
namespace {

constexpr int kMaxImportedRuns = 100000;

absl::Status InvalidRun(int i, const std::string& field,
                        const std::string& value, const std::string& rule) {
  return absl::InvalidArgumentError(
      absl::StrCat("runs[", i, "].", field, " = ", value, ": ", rule));
}

absl::Status ValidateRun(const v1::ImportedRun& r, int i) {
  if (r.run().empty() || r.run().size() > 200) {
    return InvalidRun(i, "run",
                      absl::StrCat("\"", r.run().substr(0, 200), "\""),
                      "must be 1 to 200 bytes (the run's name)");
  }
  if (r.params() == 0) {
    return InvalidRun(i, "params", "0", "must be > 0");
  }
  if (r.tokens() == 0) {
    return InvalidRun(i, "tokens", "0", "must be > 0");
  }
  if (!std::isfinite(r.loss()) || r.loss() <= 0) {
    return InvalidRun(i, "loss", absl::StrCat(r.loss()),
                      "must be finite and > 0");
  }
  if (!std::isfinite(r.flops()) || r.flops() < 0) {
    return InvalidRun(i, "flops", absl::StrCat(r.flops()),
                      "must be finite and >= 0 (0: 6 N D)");
  }
  if (!std::isfinite(r.budget()) || r.budget() < 0) {
    return InvalidRun(i, "budget", absl::StrCat(r.budget()),
                      "must be finite and >= 0 (0: none)");
  }
  if (r.curve_steps_size() != r.curve_values_size()) {
    return InvalidRun(i, "curve_values",
                      absl::StrCat(r.curve_values_size(), " values"),
                      absl::StrCat("must match curve_steps (",
                                   r.curve_steps_size(), " steps)"));
  }
  if (!r.curve_name().empty() && !MetricNameOk(r.curve_name())) {
    return InvalidRun(i, "curve_name",
                      absl::StrCat("\"", r.curve_name().substr(0, 64), "\""),
                      "must be 1 to 64 of [a-z0-9_]");
  }
  for (int k = 0; k < r.curve_steps_size(); ++k) {
    if (r.curve_steps(k) < 0 ||
        (k > 0 && r.curve_steps(k) <= r.curve_steps(k - 1))) {
      return InvalidRun(i, absl::StrCat("curve_steps[", k, "]"),
                        absl::StrCat(r.curve_steps(k)),
                        "must be >= 0 and ascending");
    }
    if (!std::isfinite(r.curve_values(k))) {
      return InvalidRun(i, absl::StrCat("curve_values[", k, "]"),
                        absl::StrCat(r.curve_values(k)), "must be finite");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateImport(const v1::ImportSweepRequest& req) {
  if (req.name().empty() || req.name().size() > 200) {
    return absl::InvalidArgumentError(absl::StrCat(
        "name = \"", req.name().substr(0, 200), "\": must be 1 to 200 bytes"));
  }
  if (!req.id().empty()) RETURN_IF_ERROR(ValidateSweepId(req.id()));
  if (req.dataset().size() > 140) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset = \"", req.dataset().substr(0, 140),
                     "...\": must be at most 140 bytes"));
  }
  if (req.runs_size() < 1 || req.runs_size() > kMaxImportedRuns) {
    return absl::InvalidArgumentError(absl::StrCat(
        "runs: ", req.runs_size(), " runs: must be 1 to ", kMaxImportedRuns));
  }
  std::set<std::string> names;
  for (int i = 0; i < req.runs_size(); ++i) {
    RETURN_IF_ERROR(ValidateRun(req.runs(i), i));
    if (!names.insert(req.runs(i).run()).second) {
      return InvalidRun(i, "run", absl::StrCat("\"", req.runs(i).run(), "\""),
                        "appears twice: run names must be unique");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::ImportSweepResponse> Core::ImportSweep(
    const v1::ImportSweepRequest& request) {
  RETURN_IF_ERROR(ValidateImport(request));
  v1::ImportSweepRequest canonical = request;
  canonical.clear_id();
  const std::string digest =
      StableHashHex(canonical.SerializeAsString());  // same runs, same id
  const std::string sweep_id =
      request.id().empty() ? MakeId("im", digest) : request.id();

  SweepRecord r;
  r.sweep.set_id(sweep_id);
  v1::SweepConfig& config = *r.sweep.mutable_config();
  config.set_name(request.name());
  config.set_imported(true);
  config.mutable_data()->set_dataset(request.dataset());
  std::set<double> budgets;
  for (const v1::ImportedRun& run : request.runs()) {
    if (run.budget() > 0) budgets.insert(run.budget());
  }
  for (double b : budgets) config.mutable_grid()->add_flops_budgets(b);
  r.sweep.set_state(v1::SWEEP_SUCCEEDED);
  r.sweep.set_created_unix_ms(NowMs());
  std::vector<std::vector<v1::MetricPoint>> curves;
  for (int i = 0; i < request.runs_size(); ++i) {
    const v1::ImportedRun& run = request.runs(i);
    TrialRecord t;
    t.ordinal = i;
    v1::TrialSpec& spec = *t.trial.mutable_spec();
    spec.set_sweep_id(sweep_id);
    spec.set_trial_id(MakeId("tr", absl::StrCat(sweep_id, "/", run.run())));
    spec.set_dataset(request.dataset());
    spec.set_n_total(run.params());
    spec.set_n_non_embedding(run.n_non_embedding());
    spec.set_tokens(run.tokens());
    const double tokens = static_cast<double>(run.tokens());
    const double flops = run.flops() > 0
                             ? run.flops()
                             : 6 * static_cast<double>(run.params()) * tokens;
    spec.set_flops(flops);
    spec.set_flops_per_token(flops / tokens);
    spec.set_flops_budget(run.budget());
    spec.set_reason(absl::StrCat("imported run \"", run.run(), "\""));
    const int64_t last_step = run.curve_steps_size() > 0
                                  ? run.curve_steps(run.curve_steps_size() - 1)
                                  : 0;
    spec.set_steps(static_cast<uint64_t>(last_step));
    t.trial.set_state(v1::SUCCEEDED);
    t.trial.set_attempt(1);
    t.trial.set_step(static_cast<uint64_t>(last_step));
    t.trial.set_val_loss(run.loss());
    const std::string curve_name =
        run.curve_name().empty() ? "train_loss" : run.curve_name();
    t.trial.set_train_loss(curve_name == "train_loss" &&
                                   run.curve_values_size() > 0
                               ? run.curve_values(run.curve_values_size() - 1)
                               : std::nan(""));
    t.trial.set_tokens_per_s(std::nan(""));
    t.trial.set_updated_unix_ms(r.sweep.created_unix_ms());
    std::vector<v1::MetricPoint> curve;
    for (int k = 0; k < run.curve_steps_size(); ++k) {
      v1::MetricPoint& p = curve.emplace_back();
      p.set_step(static_cast<uint64_t>(run.curve_steps(k)));
      p.set_name(curve_name);
      p.set_value(run.curve_values(k));
      p.set_unix_ms(r.sweep.created_unix_ms());
    }
    curves.push_back(std::move(curve));
    r.trials.push_back(std::move(t));
  }

  v1::ImportSweepResponse response;
  response.set_sweep_id(sweep_id);
  response.set_n_trials(static_cast<uint32_t>(r.trials.size()));
  absl::MutexLock write(&write_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (const SweepRecord* s = FindSweepLocked(sweep_id); s != nullptr) {
      // The same runs again (the id is their hash, or the same --id with
      // the same runs): nothing new. Otherwise the id is taken.
      const bool same =
          s->sweep.config().imported() &&
          s->sweep.config().name() == request.name() &&
          s->trials.size() == r.trials.size() &&
          std::equal(s->trials.begin(), s->trials.end(), r.trials.begin(),
                     [](const TrialRecord& a, const TrialRecord& b) {
                       return a.trial.spec().trial_id() ==
                                  b.trial.spec().trial_id() &&
                              a.trial.val_loss() == b.trial.val_loss();
                     });
      if (!same) {
        return absl::AlreadyExistsError(absl::StrCat(
            "id = \"", sweep_id, "\": sweep ", sweep_id, " (\"",
            s->sweep.config().name(),
            "\") exists with other runs; choose another id, or import "
            "without one"));
      }
      response.set_existed(true);
      return response;
    }
  }
  // Inserted as stored by Submit, then the results and curves; a crash in
  // between leaves a sweep whose trials recovery shows as they were stored.
  RETURN_IF_ERROR(store_->InsertSweep(r));
  RETURN_IF_ERROR(store_->UpdateTrials(r.trials));
  for (size_t i = 0; i < r.trials.size(); ++i) {
    if (curves[i].empty()) continue;
    RETURN_IF_ERROR(
        store_->InsertMetrics(r.trials[i].trial.spec().trial_id(), 1, curves[i])
            .status());
  }
  {
    absl::MutexLock lock(&mu_);
    sweeps_.push_back(std::move(r));
    IndexLocked(sweeps_.back());
  }
  fits_.Queue(sweep_id, /*final=*/true);
  return response;
}

}  // namespace isoflop::coordinator
