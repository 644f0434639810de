// Fuzzes the sweep-config boundary: text format parsing (the CLI's
// ParseSweepConfig) then validation and grid expansion (the coordinator's
// ExpandSweep). Refusals are expected; crashes, hangs and sanitizer reports
// are bugs. Grids larger than the fuzzer's memory budget are skipped, as the
// coordinator's own size limits would refuse them.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cli/config_file.h"
#include "coordinator/sweep/expand.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = isoflop::cli::ParseSweepConfig(text, "fuzz.textproto");
  if (!config.ok()) return 0;
  auto sweep = isoflop::coordinator::ExpandSweep(*config);
  if (sweep.ok() && sweep->trials.empty()) __builtin_trap();
  return 0;
}
