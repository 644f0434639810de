// Sweep configs at the boundary: every rule names the field, the value and
// the rule ("grid.flops_budgets[1] = -1: must be > 0"), so a user can fix the
// file from the message alone.
#ifndef ISOFLOP_COORDINATOR_SWEEP_VALIDATE_H_
#define ISOFLOP_COORDINATOR_SWEEP_VALIDATE_H_

#include <string>

#include "absl/status/status.h"
#include "isoflop/v1/config.pb.h"

namespace isoflop::coordinator {

// Limits that keep one sweep's expansion bounded (and a maximal valid
// SubmitSweepRequest a few KiB, far below gRPC's 4 MiB message limit): at most
// kMaxBudgets budgets, kMaxShapes shapes and kMaxTrials budgets x shapes.
inline constexpr int kMaxBudgets = 100;
inline constexpr int kMaxShapes = 200;
inline constexpr int kMaxTrials = 10000;

// OK, or INVALID_ARGUMENT for the first broken rule, checked in the order of
// the fields in config.proto. Rules that need the FLOP arithmetic (a budget
// too small for one optimizer step) are checked by ExpandSweep. Pure.
absl::Status ValidateSweepConfig(const v1::SweepConfig& config);

// The rules a client checks before sending a config (cli/commands.cc): the
// grid's size limits and the printable-UTF-8 rule of name and data.dataset
// (common/text.h). Broken, they would fail in transport with no field named
// (gRPC's message limit; protobuf refuses a string field that is not UTF-8).
// The same messages as ValidateSweepConfig, which checks them too. Pure.
absl::Status ValidateSweepConfigLimits(const v1::SweepConfig& config);

// OK for a client-chosen sweep id (SubmitSweepRequest.id): 1 to 64 of
// [A-Za-z0-9_.-], starting with a letter or digit (ids appear in URLs, file
// names and logs). INVALID_ARGUMENT naming `id` otherwise. Pure.
absl::Status ValidateSweepId(const std::string& id);

// The message of a rule violation: "<field> = <value>: <rule>".
absl::Status InvalidField(const std::string& field, const std::string& value,
                          const std::string& rule);

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SWEEP_VALIDATE_H_
