// The figure of `isoflop fit --plot out.svg`, written by hand as SVG (no
// Python or plotting library at run time).
#ifndef ISOFLOP_ANALYSIS_PLOT_SVG_H_
#define ISOFLOP_ANALYSIS_PLOT_SVG_H_

#include <string>

#include "absl/status/statusor.h"
#include "analysis/fit_report.h"

namespace isoflop::analysis {

// Two panels. Left: loss against N (log axis) for each IsoFLOP budget, the
// points, the Approach-2 parabolas with their vertices and, dashed, the
// Approach-3 law along each budget. Right: N against C (log-log): contours
// of the Approach-3 loss, its compute-optimal frontier N_opt(C) with the 95 %
// bootstrap band, the Approach-2 vertices and power law, and Approach 1's
// law. FAILED_PRECONDITION when the report has neither Approach 2 nor 3.
absl::StatusOr<std::string> PlotSvg(const FitReport& report);

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_PLOT_SVG_H_
