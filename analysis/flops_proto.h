// The wire form of analysis/flops.h (v1::FlopConvention,
// v1::ExponentSensitivity in proto/isoflop/v1/service.proto), one conversion
// for the coordinator, its HTTP API and `isoflop report`. Header-only: the
// analysis library itself has no proto dependency; include this only from
// targets that link isoflop_proto.
#ifndef ISOFLOP_ANALYSIS_FLOPS_PROTO_H_
#define ISOFLOP_ANALYSIS_FLOPS_PROTO_H_

#include <cmath>
#include <utility>
#include <vector>

#include "analysis/flops.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::analysis {

inline void FlopsModelToProto(const FlopsModel& m, v1::FlopConvention* out) {
  out->Clear();
  out->set_name(m.name());
  out->set_description(m.Describe());
  for (const auto& [log_n, log_f] : m.table()) {
    out->add_n(std::exp(log_n));
    out->add_flops_per_token(std::exp(log_f));
  }
}

// Unset or malformed (a fit stored before the convention was): 6ND.
inline FlopsModel FlopsModelFromProto(const v1::FlopConvention& c) {
  if (c.name() != "exact" || c.n_size() != c.flops_per_token_size()) {
    return FlopsModel::SixND();
  }
  std::vector<std::pair<double, double>> table;
  table.reserve(static_cast<size_t>(c.n_size()));
  for (int i = 0; i < c.n_size(); ++i) {
    table.emplace_back(c.n(i), c.flops_per_token(i));
  }
  absl::StatusOr<FlopsModel> m = FlopsModel::Interpolated(std::move(table));
  return m.ok() ? *std::move(m) : FlopsModel::SixND();
}

inline void SensitivityToProto(
    const std::vector<ExponentUnder>& rows,
    google::protobuf::RepeatedPtrField<v1::ExponentSensitivity>* out) {
  out->Clear();
  for (const ExponentUnder& row : rows) {
    v1::ExponentSensitivity* s = out->Add();
    s->set_n_convention(row.n_convention);
    s->set_flops_convention(row.flops_convention);
    s->set_a(row.a ? *row.a : std::nan(""));
    s->set_reason(row.reason);
  }
}

inline std::vector<ExponentUnder> SensitivityFromProto(
    const google::protobuf::RepeatedPtrField<v1::ExponentSensitivity>& rows) {
  std::vector<ExponentUnder> out;
  for (const v1::ExponentSensitivity& s : rows) {
    ExponentUnder row{s.n_convention(), s.flops_convention(), std::nullopt,
                      s.reason()};
    if (std::isfinite(s.a())) row.a = s.a();
    out.push_back(row);
  }
  return out;
}

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_FLOPS_PROTO_H_
