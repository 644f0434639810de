// `isoflop data prepare`: runs the isoflop-data tool, which trains the
// tokenizer and writes a dataset. It is a separate program because Debian's
// SentencePiece cannot share a process with protobuf/gRPC (docs/architecture.md
// §1).
#ifndef ISOFLOP_CLI_DATA_PREPARE_H_
#define ISOFLOP_CLI_DATA_PREPARE_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace isoflop::cli {

struct DataPrepareOptions {
  std::string name;               // dataset name: written to data_dir/name
  std::string data_dir;           // dataset root
  std::optional<int> vocab_size;  // passed through when set
  std::optional<double> val_fraction;
  std::vector<std::string>
      inputs;  // text files; none: the tool's default corpus
  // Passed through when set; isoflop-data checks them (data/prepare.h).
  std::string source;  // english, code, kjv
  std::optional<int64_t> max_bytes;
  std::string cache_dir;   // downloaded packages
  std::string source_dir;  // already-extracted packages
  std::optional<int> threads;
};

// `isoflop-data prepare --out DATA_DIR/NAME [...]` as an argv (argv[0] =
// `tool`). kInvalidArgument if name is empty or contains '/'.
absl::StatusOr<std::vector<std::string>> DataPrepareArgv(
    const std::filesystem::path& tool, const DataPrepareOptions& options);

// `name` in the directory of `self` (this executable) if it exists there,
// else the first executable `name` on the colon-separated `path_env`.
// kNotFound naming both places otherwise.
absl::StatusOr<std::filesystem::path> FindCompanionBinary(
    const std::string& name, const std::filesystem::path& self,
    const std::string& path_env);

// Replaces this process with `argv` (execv). Returns only on failure, with
// kInternal and the strerror text.
absl::Status ExecReplacingProcess(const std::vector<std::string>& argv);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_DATA_PREPARE_H_
