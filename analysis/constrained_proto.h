// The data-constrained fit (analysis/constrained.h) in a stored fit:
// ScalingLawFit fields 50-53 (proto/isoflop/v1/service.proto).
#ifndef ISOFLOP_ANALYSIS_CONSTRAINED_PROTO_H_
#define ISOFLOP_ANALYSIS_CONSTRAINED_PROTO_H_

#include "analysis/constrained.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::analysis {

// Sets `out`'s muennighoff (or muennighoff_message) and form_comparison (or
// form_comparison_message, when the run was asked to compare).
void ConstrainedRunToProto(const ConstrainedRun& run, v1::ScalingLawFit* out);

// The stored law (no fit statistics).
ConstrainedLaw ConstrainedLawFromProto(const v1::DataConstrainedLaw& law);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_CONSTRAINED_PROTO_H_
