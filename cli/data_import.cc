#include "cli/data_import.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace isoflop::cli {

namespace fs = std::filesystem;

absl::StatusOr<std::vector<std::string>> DataImportArgv(
    const fs::path& tool, const DataImportOptions& o) {
  if (o.name.empty() || o.name.find('/') != std::string::npos ||
      o.name.front() == '.') {
    return absl::InvalidArgumentError(absl::StrCat(
        "--name = \"", o.name,
        "\": must be a non-empty name without '/' and not starting with '.'"));
  }
  if (o.inputs.empty()) {
    return absl::InvalidArgumentError(
        "INPUT: at least one file (or folder, for text) is required");
  }
  std::vector<std::string> argv = {
      tool.string(), "import", "--format",
      o.format,      "--out",  (fs::path(o.data_dir) / o.name).string()};
  if (!o.tokenizer.empty())
    argv.insert(argv.end(), {"--tokenizer", o.tokenizer});
  if (o.vocab_size)
    argv.insert(argv.end(), {"--vocab-size", absl::StrCat(*o.vocab_size)});
  if (o.val_fraction) {
    argv.insert(argv.end(), {"--val-fraction", absl::StrCat(*o.val_fraction)});
  }
  argv.emplace_back("--");
  argv.insert(argv.end(), o.inputs.begin(), o.inputs.end());
  return argv;
}

}  // namespace isoflop::cli
