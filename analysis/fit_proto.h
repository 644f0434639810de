// The one conversion between a stored fit (v1::ScalingLawFit, what the
// coordinator keeps and serves) and analysis/'s types, used by the
// coordinator's fits and queries, its HTTP API and `isoflop report`. A field
// added to the fit is converted here, once. isoflop_analysis itself has no
// proto dependency; this file is its own library (isoflop_fit_proto).
#ifndef ISOFLOP_ANALYSIS_FIT_PROTO_H_
#define ISOFLOP_ANALYSIS_FIT_PROTO_H_

#include <utility>

#include "analysis/approach3.h"
#include "analysis/fit_report.h"
#include "analysis/power_law.h"
#include "analysis/queries.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::analysis {

// A law's five parameters (no fit statistics).
Approach3Fit LawFromProto(const v1::Approach3Law& law);
v1::Approach3Law LawToProto(const Approach3Fit& law);
// N_opt(C), D_opt(C).
std::pair<PowerLaw, PowerLaw> Approach2FromProto(const v1::Approach2Law& law);
v1::Approach2Law Approach2ToProto(const std::pair<PowerLaw, PowerLaw>& law);

// Whether the fit has a usable Approach-3 law (E, A, B, alpha, beta > 0 but
// E; a fit that could not be made has zeros).
bool HasApproach3(const v1::ScalingLawFit& fit);
// The fit's Approach-3 law with the statistics the proto keeps (objective,
// n_points, starts, grid edge, message).
Approach3Fit Approach3FromProto(const v1::ScalingLawFit& fit);
// The fit's bootstrap samples of the Approach-3 law.
std::vector<Approach3Fit> Approach3Samples(const v1::ScalingLawFit& fit);
// Every law of the fit with its samples, as analysis/queries.h answers from.
StoredFit StoredFitFromProto(const v1::ScalingLawFit& fit);

// The results of RunFits into `out` (laws, statistics, messages, bootstrap
// samples and 95 % intervals, resamples and seed as `report.request` asked);
// an approach without a fit leaves its reason in the message. n_points,
// final, n_convention and fit_seconds are the caller's.
void FitReportToProto(const FitReport& report, v1::ScalingLawFit* out);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_FIT_PROTO_H_
