#include "cli/fit_command.h"

#include <vector>

#include "analysis/approach3.h"
#include "analysis/points_io.h"
#include "common/status_macros.h"

namespace isoflop::cli {
namespace {

v1::ScalingLawFit ToProto(const analysis::Approach3Fit& fit) {
  v1::ScalingLawFit out;
  out.set_e(fit.e);
  out.set_a(fit.a);
  out.set_b(fit.b);
  out.set_alpha(fit.alpha);
  out.set_beta(fit.beta);
  out.set_objective(fit.objective);
  out.set_n_points(static_cast<uint32_t>(fit.n_points));
  out.set_n_starts(static_cast<uint32_t>(fit.n_starts));
  out.set_n_starts_at_best(static_cast<uint32_t>(fit.n_starts_at_best));
  out.set_on_grid_edge(fit.on_grid_edge);
  out.set_message(fit.message);
  out.set_n_convention("N as given in the CSV");
  return out;
}

}  // namespace

absl::Status FitPoints(const CommandContext& ctx, const std::string& csv_path, double flops) {
  ASSIGN_OR_RETURN(std::vector<analysis::Observation> points,
                   analysis::ReadObservationsCsv(csv_path));
  ASSIGN_OR_RETURN(analysis::Approach3Fit fit, analysis::FitApproach3(points));
  v1::OptimalResponse result;
  *result.mutable_fit() = ToProto(fit);
  if (flops > 0) {
    analysis::ComputeOptimum optimum = analysis::ComputeOptimalFor(fit, flops);
    result.set_flops(optimum.flops);
    result.set_n_opt(optimum.n_opt);
    result.set_d_opt(optimum.d_opt);
    result.set_predicted_loss(optimum.loss);
  }
  if (ctx.format == Format::kJson) {
    *ctx.out << (flops > 0 ? ToJson(result) : ToJson(result.fit())) << "\n";
    return absl::OkStatus();
  }
  *ctx.out << FitText(result.fit());
  if (flops > 0) *ctx.out << OptimalText(result);
  return absl::OkStatus();
}

}  // namespace isoflop::cli
