#include "cli/fit_command.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "analysis/constrained.h"
#include "analysis/fit_proto.h"
#include "analysis/fit_report.h"
#include "analysis/plot_svg.h"
#include "analysis/points_io.h"
#include "analysis/queries.h"
#include "analysis/verdict.h"
#include "common/readable.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace isoflop::cli {
namespace {

absl::StatusOr<analysis::FitRequest> ToRequest(const FitCommandOptions& o) {
  analysis::FitRequest r;
  if (o.approach == "all") {
    r.approaches = {1, 2, 3};
  } else if (o.approach == "1" || o.approach == "2" || o.approach == "3") {
    r.approaches = {o.approach[0] - '0'};
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--approach = '", o.approach, "': must be 1, 2, 3 or all"));
  }
  if (o.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads = ", o.threads, ": must be >= 0"));
  }
  if (o.bootstrap < 0 || o.bootstrap == 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--bootstrap = ", o.bootstrap, ": must be 0 (none) or >= 2"));
  }
  if (!(o.huber_delta > 0) || !std::isfinite(o.huber_delta)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--huber-delta = ", o.huber_delta, ": must be finite and > 0"));
  }
  ASSIGN_OR_RETURN(r.approach3.starts, analysis::StartsFromSpec(o.starts));
  r.approach3.huber_delta = o.huber_delta;
  r.approach3.threads = o.threads;
  r.approach2.weighted = o.weighted;
  r.envelope_points = o.envelope_points;
  r.budgets = o.budgets;
  r.budget_tolerance = o.budget_tolerance;
  r.bootstrap = o.bootstrap;
  r.seed = o.seed;
  r.query_flops = o.flops;
  r.rollout = o.rollout;
  r.sensitivity = r.approaches.count(3) > 0;
  if (o.form != "chinchilla" && o.form != "muennighoff" && o.form != "both") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--form = '", o.form, "': must be chinchilla, muennighoff or both"));
  }
  if (o.r_star != "fit" && o.r_star != "published") {
    return absl::InvalidArgumentError(
        absl::StrCat("--r-star = '", o.r_star, "': must be fit or published"));
  }
  if (o.form == "muennighoff") {
    // Approach 3 only gives the constrained fit a start.
    r.approaches = {3};
    r.bootstrap = 0;
    r.backtest = false;
    r.rollout = false;
    r.sensitivity = false;
    r.query_flops.clear();
  }
  return r;
}

analysis::ConstrainedRun FitMuennighoff(const FitCommandOptions& o,
                                        const analysis::FitReport& report) {
  return analysis::RunConstrained(
      report, {.published_constants = o.r_star == "published",
               .bootstrap = o.bootstrap,
               .seed = o.seed,
               .compare = o.form == "both"});
}

// The JSON of --form muennighoff / both (`base`: the Chinchilla report for
// both, else a small object).
void AddConstrainedJson(const analysis::ConstrainedRun& r,
                        nlohmann::json* out) {
  nlohmann::json& j = *out;
  if (!j.contains("reasons")) j["reasons"] = nlohmann::json::object();
  j["muennighoff"] = r.fit ? analysis::ConstrainedFitToJson(*r.fit, r.bootstrap)
                           : nlohmann::json(nullptr);
  if (!r.fit) j["reasons"]["muennighoff"] = r.reason;
}

std::string ConstrainedText(const analysis::ConstrainedRun& r, int digits) {
  return r.fit ? analysis::ConstrainedFitText(*r.fit, r.bootstrap, digits)
               : absl::StrCat("Muennighoff (data-constrained): not fitted: ",
                              r.reason, "\n");
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) {
    return absl::PermissionDeniedError(
        absl::StrCat("--plot = '", path, "': cannot write"));
  }
  return absl::OkStatus();
}

// The laws of a `fit --format json` file; `verdict` gets the verdict of
// approach `o.approach` (else the file's overall one) when the file has one.
absl::StatusOr<analysis::StoredFit> LoadFit(
    const OptimalCommandOptions& o, std::optional<analysis::Verdict>* verdict) {
  std::ifstream in(o.fit_file, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("--fit = '", o.fit_file, "': cannot open"));
  }
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json doc =
      nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--fit = '", o.fit_file,
        "': not JSON (expected `isoflop fit --format json` output)"));
  }
  const std::string key = o.approach == 2 ? "approach2" : "approach3";
  if (doc.is_object() && doc.contains(key) && doc[key].is_object() &&
      doc[key].contains("verdict")) {
    *verdict = analysis::VerdictFromJson(doc[key]["verdict"]);
  } else if (doc.is_object() && doc.contains("verdict")) {
    *verdict = analysis::VerdictFromJson(doc["verdict"]);
  }
  absl::StatusOr<analysis::StoredFit> fit = analysis::StoredFitFromJson(doc);
  if (!fit.ok()) {
    return absl::Status(fit.status().code(),
                        absl::StrCat(o.fit_file, ": ", fit.status().message()));
  }
  return fit;
}

// The coordinator's answer from a sweep's stored fit (the Optimal RPC; an
// empty sweep id lets the coordinator take the newest fitted sweep).
absl::StatusOr<analysis::Answer> AskCoordinator(
    const CommandContext& ctx, const OptimalCommandOptions& o,
    const analysis::Query& query, std::optional<analysis::Verdict>* verdict,
    std::string* source) {
  if (ctx.api == nullptr) {
    return absl::FailedPreconditionError("no --fit file and no coordinator");
  }
  v1::OptimalRequest request;
  request.set_sweep_id(o.sweep_id);
  request.set_approach(static_cast<uint32_t>(query.approach));
  switch (query.kind) {
    case analysis::QueryKind::kFlops:
      request.set_flops(query.value);
      break;
    case analysis::QueryKind::kParams:
      request.set_params(query.value);
      break;
    case analysis::QueryKind::kLoss:
      request.set_loss(query.value);
      break;
  }
  ASSIGN_OR_RETURN(const v1::OptimalResponse r, ctx.api->Optimal(request));
  *source = absl::StrCat("sweep ", r.sweep_id());
  *verdict = analysis::VerdictFromProto(query.approach == 2
                                            ? r.fit().approach2_verdict()
                                            : r.fit().approach3_verdict());
  analysis::Answer a;
  a.flops = r.flops();
  a.params = r.n_opt();
  a.tokens = r.d_opt();
  a.approach = static_cast<int>(r.approach());
  if (!r.flops_convention().empty()) {  // older coordinators: 6ND
    a.flops_convention = r.flops_convention();
    a.flops_description = r.flops_convention_description();
  } else if (a.approach == 3) {
    a.flops_description = analysis::FlopsModel::SixND().Describe();
  }
  if (a.approach == 3 && std::isfinite(r.predicted_loss())) {
    a.loss = r.predicted_loss();
  }
  for (const auto& [name, interval] : r.ci95()) {
    a.ci95[name] = {interval.low(), interval.high()};
  }
  return a;
}

// The interval of `name` as a ×/÷ factor around `v` (a scale: C, N, D) or
// low .. high (the loss); "" without one.
std::string Range(const analysis::Answer& a, const std::string& name, double v,
                  int digits) {
  auto it = a.ci95.find(name);
  if (it == a.ci95.end()) return "";
  return name == "loss"
             ? LinearInterval(it->second.low, it->second.high, digits)
             : FactorInterval(v, it->second.low, it->second.high, digits);
}

// OK to answer from a fit with `verdict` (nullopt: not judged), or the
// refusal of an unidentified one (exit code 3) unless --force.
absl::Status CheckVerdict(const CommandContext& ctx,
                          const OptimalCommandOptions& o,
                          const std::optional<analysis::Verdict>& verdict,
                          const std::string& source) {
  if (!verdict) {
    if (ctx.err != nullptr && ctx.format != Format::kJson) {
      *ctx.err << "note: " << source
               << "'s fit has no verdict (stored before verdicts): refit it "
                  "to have it judged\n";
    }
    return absl::OkStatus();
  }
  const std::string reasons = absl::StrJoin(verdict->reasons, "; ");
  if (verdict->level == analysis::VerdictLevel::kUnidentified && !o.force) {
    return UntrustedFitError(absl::StrCat(
        source, ": the Approach ", o.approach,
        " fit is unidentified: ", reasons,
        ". Its answers are not determined by the points; --force answers "
        "anyway"));
  }
  if (verdict->level != analysis::VerdictLevel::kOk && ctx.err != nullptr &&
      ctx.format != Format::kJson) {
    *ctx.err << "warning: " << source << ": the Approach " << o.approach
             << " fit is " << analysis::LevelName(verdict->level)
             << (o.force &&
                         verdict->level == analysis::VerdictLevel::kUnidentified
                     ? " (answered because of --force)"
                     : "")
             << ": " << reasons << "\n";
  }
  return absl::OkStatus();
}

// Points that hold one N (or one D) cannot determine a scaling law: every
// approach "fits" and answers N_opt = nan. Refused with the reason (exit 1)
// rather than printed; analysis::FitApproach3 keeps fitting such data with
// warnings (its callers decide).
absl::Status CheckDetermined(const FitCommandOptions& o,
                             const analysis::PointSet& set) {
  std::set<double> n, d;
  for (const analysis::Point& p : set.points) {
    n.insert(p.n);
    d.insert(p.d);
  }
  if (n.size() >= 2 && d.size() >= 2) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "--points = '", o.points, "': ", set.points.size(), " points with ",
      n.size(), " distinct N (params) and ", d.size(),
      " distinct D (tokens): a degenerate fit: a scaling law needs >= 2 "
      "distinct values of each"));
}

// An answer that is not finite and > 0 (N_opt = nan from a law with alpha
// + beta <= 0) is no answer: refused naming the budget and the law.
absl::Status CheckAnswers(const analysis::FitReport& report) {
  if (!report.approach3.fit) return absl::OkStatus();
  const auto usable = [](double v) { return std::isfinite(v) && v > 0; };
  for (size_t i = 0; i < report.request.query_flops.size(); ++i) {
    const double c = report.request.query_flops[i];
    const analysis::ComputeOptimum o = analysis::ComputeOptimalUnder(
        *report.approach3.fit, c, report.flops_model);
    if (!usable(o.n_opt) || !usable(o.d_opt)) {
      const analysis::FitVerdicts verdicts = analysis::JudgeFit(report);
      return absl::FailedPreconditionError(absl::StrFormat(
          "--flops[%d] = %g: the Approach 3 law (alpha %g, beta %g) answers "
          "N_opt = %g, D_opt = %g: a degenerate fit (%s); verdict %s: %s",
          i, c, report.approach3.fit->alpha, report.approach3.fit->beta,
          o.n_opt, o.d_opt, report.approach3.fit->message,
          analysis::LevelName(verdicts.approach3->level),
          absl::StrJoin(verdicts.approach3->reasons, "; ")));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FitPoints(const CommandContext& ctx,
                       const FitCommandOptions& options) {
  ASSIGN_OR_RETURN(const analysis::FitRequest request, ToRequest(options));
  ASSIGN_OR_RETURN(const analysis::ColumnMap columns,
                   analysis::ParseColumnMap(options.columns));
  ASSIGN_OR_RETURN(const analysis::PointSet set,
                   analysis::ReadPoints(options.points, columns));
  RETURN_IF_ERROR(CheckDetermined(options, set));
  if (request.bootstrap > 0 && ctx.err != nullptr) {
    *ctx.err << "fitting " << set.points.size() << " points with "
             << request.bootstrap << " bootstrap resamples...\n";
  }
  ASSIGN_OR_RETURN(const analysis::FitReport report,
                   analysis::RunFits(set, request));
  if (options.form == "muennighoff") {
    const analysis::ConstrainedRun r = FitMuennighoff(options, report);
    if (!r.fit) {
      return absl::FailedPreconditionError(
          absl::StrCat("--form muennighoff: ", r.reason));
    }
    if (ctx.format == Format::kJson) {
      nlohmann::json j = {{"form", "muennighoff"},
                          {"n_points", report.fit_points.size()}};
      AddConstrainedJson(r, &j);
      *ctx.out << j.dump() << "\n";
    } else {
      *ctx.out << ConstrainedText(r, ctx.digits);
    }
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(CheckAnswers(report));
  std::optional<analysis::ConstrainedRun> constrained;
  if (options.form == "both") constrained = FitMuennighoff(options, report);
  if (!options.plot.empty()) {
    ASSIGN_OR_RETURN(const std::string svg, analysis::PlotSvg(report));
    RETURN_IF_ERROR(WriteFile(options.plot, svg));
  }
  if (ctx.format == Format::kJson) {
    nlohmann::json j =
        analysis::ReportToJson(report, {.samples = options.samples});
    if (constrained) {
      j["form"] = "both";
      AddConstrainedJson(*constrained, &j);
      j["comparison"] =
          constrained->comparison
              ? analysis::ComparisonToJson(*constrained->comparison)
              : nlohmann::json(nullptr);
      if (!constrained->comparison) {
        j["reasons"]["comparison"] = constrained->comparison_reason;
      }
    }
    *ctx.out << j.dump() << "\n";
  } else {
    *ctx.out << analysis::ReportToText(report, ctx.digits);
    if (constrained) {
      *ctx.out << "\n" << ConstrainedText(*constrained, ctx.digits);
      *ctx.out << (constrained->comparison
                       ? analysis::ComparisonText(*constrained->comparison,
                                                  ctx.digits)
                       : absl::StrCat("Held-out comparison: none: ",
                                      constrained->comparison_reason, "\n"));
    }
    if (report.grouping.dropped > 0 && ctx.err != nullptr) {
      *ctx.err << "note: dropped " << report.grouping.dropped
               << " point(s) that fit no --budgets value within "
               << options.budget_tolerance << "\n";
    }
  }
  return absl::OkStatus();
}

absl::Status AnswerOptimal(const CommandContext& ctx,
                           const OptimalCommandOptions& options) {
  const int given = options.flops.has_value() + options.params.has_value() +
                    options.loss.has_value();
  if (given != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        given, " of --flops, --params, --loss given: give exactly one"));
  }
  // Checked before either path, so a coordinator is not asked for --flops 0.
  if (options.flops) {
    RETURN_IF_ERROR(analysis::CheckQueryValue("--flops", *options.flops));
  }
  if (options.params) {
    RETURN_IF_ERROR(analysis::CheckQueryValue("--params", *options.params));
  }
  if (options.loss) {
    RETURN_IF_ERROR(analysis::CheckQueryValue("--loss", *options.loss));
  }
  analysis::Query query;
  query.approach = options.approach;
  if (options.flops) query = {analysis::QueryKind::kFlops, *options.flops};
  if (options.params) query = {analysis::QueryKind::kParams, *options.params};
  if (options.loss) query = {analysis::QueryKind::kLoss, *options.loss};
  query.approach = options.approach;
  analysis::Answer a;
  std::optional<analysis::Verdict> verdict;
  std::string source = options.fit_file;
  if (options.fit_file.empty()) {
    ASSIGN_OR_RETURN(a, AskCoordinator(ctx, options, query, &verdict, &source));
    RETURN_IF_ERROR(CheckVerdict(ctx, options, verdict, source));
  } else {
    ASSIGN_OR_RETURN(const analysis::StoredFit fit, LoadFit(options, &verdict));
    // Judged before answering: an unidentified law may answer nothing at
    // all (N_opt = inf), and its reasons say why.
    RETURN_IF_ERROR(CheckVerdict(ctx, options, verdict, source));
    ASSIGN_OR_RETURN(a, analysis::AnswerQuery(fit, query));
  }
  if (ctx.format == Format::kJson) {
    nlohmann::json j = analysis::AnswerToJson(a);
    if (verdict) j["verdict"] = analysis::VerdictToJson(*verdict);
    *ctx.out << j.dump() << "\n";
    return absl::OkStatus();
  }
  const int digits = ctx.digits;
  *ctx.out << absl::StrFormat("Approach %d compute-optimal answer", a.approach)
           << (verdict ? absl::StrCat(" (verdict: ",
                                      analysis::LevelName(verdict->level), ")")
                       : "")
           << ":\n"
           << "  budget C = " << Sig(a.flops, digits) << " FLOPs"
           << Range(a, "flops", a.flops, digits) << "\n"
           << "  params N = " << Count(a.params, digits)
           << Range(a, "params", a.params, digits) << "\n"
           << "  tokens D = " << Count(a.tokens, digits)
           << Range(a, "tokens", a.tokens, digits) << "\n";
  if (a.loss) {
    *ctx.out << "  loss     = " << Sig(*a.loss, digits)
             << Range(a, "loss", *a.loss, digits) << "\n";
  }
  *ctx.out << "FLOP convention: " << a.flops_description << "\n";
  return absl::OkStatus();
}

}  // namespace isoflop::cli
