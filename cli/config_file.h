// Reading a sweep config (an isoflop.v1.SweepConfig in protobuf text format,
// see configs/*.textproto). Semantic validation (budgets, shapes, ...) is the
// coordinator's job at submit time; this layer only checks the syntax and the
// field names, with compiler-style positions (`sweep submit` also checks the
// limits a request must meet to be sent: ValidateSweepConfigLimits).
#ifndef ISOFLOP_CLI_CONFIG_FILE_H_
#define ISOFLOP_CLI_CONFIG_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "isoflop/v1/config.pb.h"

namespace isoflop::cli {

// Parses `text`. On a syntax error or an unknown field returns
// kInvalidArgument with the message "NAME:LINE:COL: <parser message>" (1-based
// line and column; the parser's message names the offending field).
absl::StatusOr<v1::SweepConfig> ParseSweepConfig(const std::string& text,
                                                 const std::string& name);

// Reads and parses the file at `path`: kNotFound if it cannot be read, else as
// ParseSweepConfig with NAME = path.
absl::StatusOr<v1::SweepConfig> LoadSweepConfig(const std::string& path);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_CONFIG_FILE_H_
