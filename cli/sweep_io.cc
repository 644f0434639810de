#include "cli/sweep_io.h"

#include <csv.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "analysis/points_io.h"
#include "cli/output.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace isoflop::cli {
namespace {

using json = nlohmann::json;

json Loss(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json ProtoJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(m, &text, options).ok()) {
    return json::object();
  }
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

// One CSV cell, quoted by libcsv where it must be (RFC 4180).
std::string Cell(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out(text.size() * 2 + 2, '\0');
  out.resize(csv_write(out.data(), out.size(), text.data(), text.size()));
  return out;
}

std::string Num(double v) { return std::isfinite(v) ? FullPrecision(v) : ""; }

bool MetricNameOk(const std::string& name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
         });
}

// Every point of one metric of one trial, page by page.
absl::StatusOr<v1::GetTrialMetricsResponse> FullCurve(
    CoordinatorApi& api, const std::string& trial_id, const std::string& name) {
  v1::GetTrialMetricsResponse all;
  v1::GetTrialMetricsRequest request;
  request.set_trial_id(trial_id);
  request.set_name(name);
  while (true) {
    ASSIGN_OR_RETURN(v1::GetTrialMetricsResponse page,
                     api.GetTrialMetrics(request));
    all.mutable_steps()->MergeFrom(page.steps());
    all.mutable_values()->MergeFrom(page.values());
    if (!page.more() || page.steps_size() == 0) break;
    request.set_after_step(page.next_after_step());
  }
  return all;
}

}  // namespace

absl::Status ImportSweepFile(const CommandContext& ctx,
                             const SweepImportOptions& options) {
  if (!MetricNameOk(options.curve_metric)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--curve-metric = '", options.curve_metric,
                     "': must be 1 to 64 of [a-z0-9_]"));
  }
  ASSIGN_OR_RETURN(const analysis::ColumnMap columns,
                   analysis::ParseColumnMap(options.columns));
  ASSIGN_OR_RETURN(const analysis::PointSet set,
                   analysis::ReadPoints(options.file, columns));
  if (set.points.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.file, ": no rows: nothing to import"));
  }
  v1::ImportSweepRequest request;
  request.set_name(options.name.empty()
                       ? std::filesystem::path(options.file).stem().string()
                       : options.name);
  request.set_id(options.id);
  request.set_dataset(options.dataset);
  const auto fill = [](const analysis::Point& p, v1::ImportedRun* run) {
    run->set_params(static_cast<uint64_t>(std::llround(p.n)));
    run->set_tokens(static_cast<uint64_t>(std::llround(p.d)));
    run->set_flops(p.flops);
    run->set_budget(p.budget);
    run->set_loss(p.loss);
    run->set_n_non_embedding(
        static_cast<uint64_t>(std::llround(p.n_non_embedding)));
  };
  if (set.has_curves) {
    std::map<std::string, std::vector<const analysis::Point*>> runs;
    for (const analysis::Point& p : set.points) runs[p.run].push_back(&p);
    for (auto& [name, rows] : runs) {
      std::sort(rows.begin(), rows.end(),
                [](const auto* a, const auto* b) { return a->step < b->step; });
      v1::ImportedRun* run = request.add_runs();
      run->set_run(name);
      fill(*rows.back(), run);
      run->set_curve_name(options.curve_metric);
      for (const analysis::Point* p : rows) {
        if (run->curve_steps_size() > 0 &&
            static_cast<int64_t>(p->step) <=
                run->curve_steps(run->curve_steps_size() - 1)) {
          return absl::InvalidArgumentError(absl::StrCat(
              options.file, ":", p->line, ": column 'step' = ", p->step,
              ": run '", name, "' has this step twice"));
        }
        run->add_curve_steps(static_cast<int64_t>(p->step));
        run->add_curve_values(p->loss);
      }
    }
  } else {
    for (const analysis::Point& p : set.points) {
      v1::ImportedRun* run = request.add_runs();
      run->set_run(p.run.empty() ? absl::StrCat("row-", p.line) : p.run);
      fill(p, run);
    }
  }
  *ctx.err << "import: " << request.runs_size() << " runs from " << options.file
           << "\n";
  ASSIGN_OR_RETURN(const v1::ImportSweepResponse imported,
                   ctx.api->ImportSweep(request));
  json out = {{"sweep_id", imported.sweep_id()},
              {"n_trials", imported.n_trials()},
              {"existed", imported.existed()}};
  if (options.wait) {
    const absl::Time deadline = ctx.clock->Now() + ctx.fit_grace;
    while (true) {
      ASSIGN_OR_RETURN(const v1::Sweep sweep,
                       ctx.api->GetSweep(imported.sweep_id()));
      if (sweep.has_fit() && sweep.fit().final()) {
        const v1::ScalingLawFit& f = sweep.fit();
        out["fit"] = {{"n_points", f.n_points()},
                      {"message", f.message()},
                      {"E", f.e()},
                      {"A", f.a()},
                      {"B", f.b()},
                      {"alpha", f.alpha()},
                      {"beta", f.beta()}};
        break;
      }
      if (ctx.clock->Now() >= deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("sweep ", imported.sweep_id(), ": no final fit after ",
                         absl::FormatDuration(ctx.fit_grace)));
      }
      ctx.sleep(ctx.poll_interval);
    }
  }
  if (ctx.format == Format::kJson) {
    *ctx.out << out.dump() << "\n";
    return absl::OkStatus();
  }
  *ctx.out << (imported.existed() ? "already imported: " : "imported ")
           << imported.n_trials() << " runs as sweep " << imported.sweep_id()
           << "\n";
  if (out.contains("fit")) {
    const json& f = out["fit"];
    *ctx.out << "fit: " << f["n_points"].get<int>() << " points";
    if (f["E"].get<double>() > 0) {
      *ctx.out << ", L = " << f["E"].get<double>() << " + "
               << f["A"].get<double>() << " / N^" << f["alpha"].get<double>()
               << " + " << f["B"].get<double>() << " / D^"
               << f["beta"].get<double>();
    }
    if (!f["message"].get<std::string>().empty()) {
      *ctx.out << " (" << f["message"].get<std::string>() << ")";
    }
    *ctx.out << "\n";
  }
  return absl::OkStatus();
}

absl::Status ExportSweep(const CommandContext& ctx,
                         const SweepExportOptions& options) {
  if (options.format != "csv" && options.format != "jsonl") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--format = '", options.format, "': must be csv or jsonl"));
  }
  for (const std::string& m : options.metrics) {
    if (!MetricNameOk(m)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--metric = '", m, "': must be 1 to 64 of [a-z0-9_]"));
    }
  }
  ASSIGN_OR_RETURN(const v1::Sweep sweep, ctx.api->GetSweep(options.sweep_id));
  std::unique_ptr<std::ofstream> file;
  std::ostream* out = ctx.out;
  if (options.out != "-") {
    file = std::make_unique<std::ofstream>(options.out,
                                           std::ios::binary | std::ios::trunc);
    if (!*file) {
      return absl::PermissionDeniedError(
          absl::StrCat("--out = '", options.out, "': cannot write"));
    }
    out = file.get();
  }
  const bool csv = options.format == "csv";
  if (csv) {
    *out << "run,state,params,tokens,budget,flops,d_model,n_layers,n_heads,"
            "lr,batch_sequences,context,val_loss,metric,step,value\n";
  } else {
    json counts = json::object();
    for (const auto& [state, n] : sweep.trial_counts()) counts[state] = n;
    *out << json{{"sweep",
                  {{"id", sweep.id()},
                   {"name", sweep.config().name()},
                   {"state", v1::SweepState_Name(sweep.state())},
                   {"paused", sweep.paused()},
                   {"imported", sweep.config().imported()},
                   {"trial_counts", counts},
                   {"config", ProtoJson(sweep.config())}}}}
                .dump()
         << "\n";
  }
  size_t points = 0;
  for (const v1::Trial& t : sweep.trials()) {
    const v1::TrialSpec& s = t.spec();
    std::map<std::string, v1::GetTrialMetricsResponse> curves;
    for (const std::string& m : options.metrics) {
      ASSIGN_OR_RETURN(curves[m], FullCurve(*ctx.api, s.trial_id(), m));
      points += static_cast<size_t>(curves[m].steps_size());
    }
    if (csv) {
      const std::string head = absl::StrJoin(
          {Cell(s.trial_id()), v1::TrialState_Name(t.state()),
           absl::StrCat(s.n_total()), absl::StrCat(s.tokens()),
           Num(s.flops_budget()), Num(s.flops()),
           absl::StrCat(s.shape().d_model()),
           absl::StrCat(s.shape().n_layers()),
           absl::StrCat(s.shape().n_heads()), Num(s.training().lr()),
           absl::StrCat(s.training().batch_sequences()),
           absl::StrCat(s.model().context()),
           t.state() == v1::SUCCEEDED ? Num(t.val_loss()) : std::string()},
          ",");
      bool any = false;
      for (const auto& [name, c] : curves) {
        for (int i = 0; i < c.steps_size(); ++i) {
          *out << head << "," << name << "," << c.steps(i) << ","
               << Num(c.values(i)) << "\n";
          any = true;
        }
      }
      if (!any) *out << head << ",,,\n";
      continue;
    }
    json jc = json::object();
    for (const auto& [name, c] : curves) {
      jc[name] = {
          {"steps",
           json(std::vector<int64_t>(c.steps().begin(), c.steps().end()))},
          {"values",
           json(std::vector<double>(c.values().begin(), c.values().end()))}};
    }
    *out << json{{"trial",
                  {{"id", s.trial_id()},
                   {"state", v1::TrialState_Name(t.state())},
                   {"attempt", t.attempt()},
                   {"step", t.step()},
                   {"val_loss", Loss(t.val_loss())},
                   {"train_loss", Loss(t.train_loss())},
                   {"tokens_per_s", Loss(t.tokens_per_s())},
                   {"error", t.error()},
                   {"spec", ProtoJson(s)},
                   {"curves", jc}}}}
                .dump()
         << "\n";
  }
  out->flush();
  if (file != nullptr) {
    file->close();
    if (!*file) {
      return absl::PermissionDeniedError(
          absl::StrCat("--out = '", options.out, "': write failed"));
    }
  }
  *ctx.err << "export: sweep " << sweep.id() << ": " << sweep.trials_size()
           << " trials, " << points << " curve points\n";
  return absl::OkStatus();
}

}  // namespace isoflop::cli
