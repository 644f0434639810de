// `isoflop data import`: runs `isoflop-data import`, which reads a
// researcher's own token files or text into a dataset directory (formats and
// refusals: docs/data-format.md §3). A separate program for the reason of
// cli/data_prepare.h.
#ifndef ISOFLOP_CLI_DATA_IMPORT_H_
#define ISOFLOP_CLI_DATA_IMPORT_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace isoflop::cli {

struct DataImportOptions {
  std::string format;  // nanogpt, llmc, npy, text, jsonl (isoflop-data checks)
  std::string name;    // dataset name: written to data_dir/name
  std::string data_dir;
  std::vector<std::string> inputs;
  std::string tokenizer;  // passed through when set
  std::optional<int64_t> vocab_size;
  std::optional<double> val_fraction;
};

// `isoflop-data import --format F --out DATA_DIR/NAME [...] INPUT...` as an
// argv (argv[0] = `tool`). INVALID_ARGUMENT if name is empty, contains '/' or
// starts with '.', or when there is no input.
absl::StatusOr<std::vector<std::string>> DataImportArgv(
    const std::filesystem::path& tool, const DataImportOptions& options);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_DATA_IMPORT_H_
