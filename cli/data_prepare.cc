#include "cli/data_prepare.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace isoflop::cli {

namespace fs = std::filesystem;

absl::StatusOr<std::vector<std::string>> DataPrepareArgv(
    const fs::path& tool, const DataPrepareOptions& options) {
  if (options.name.empty() || options.name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--name = \"", options.name,
                     "\": must be a non-empty name without '/'"));
  }
  std::vector<std::string> argv = {
      tool.string(), "prepare", "--out",
      (fs::path(options.data_dir) / options.name).string()};
  if (options.vocab_size) {
    argv.insert(argv.end(),
                {"--vocab-size", absl::StrCat(*options.vocab_size)});
  }
  if (options.val_fraction) {
    argv.insert(argv.end(),
                {"--val-fraction", absl::StrCat(*options.val_fraction)});
  }
  for (const std::string& input : options.inputs)
    argv.insert(argv.end(), {"--input", input});
  if (!options.source.empty())
    argv.insert(argv.end(), {"--source", options.source});
  if (options.max_bytes) {
    argv.insert(argv.end(), {"--max-bytes", absl::StrCat(*options.max_bytes)});
  }
  if (!options.cache_dir.empty())
    argv.insert(argv.end(), {"--cache-dir", options.cache_dir});
  if (!options.source_dir.empty())
    argv.insert(argv.end(), {"--source-dir", options.source_dir});
  if (options.threads)
    argv.insert(argv.end(), {"--threads", absl::StrCat(*options.threads)});
  return argv;
}

absl::StatusOr<fs::path> FindCompanionBinary(const std::string& name,
                                             const fs::path& self,
                                             const std::string& path_env) {
  fs::path sibling = self.parent_path() / name;
  if (access(sibling.c_str(), X_OK) == 0) return sibling;
  for (absl::string_view dir :
       absl::StrSplit(path_env, ':', absl::SkipEmpty())) {
    fs::path candidate = fs::path(std::string(dir)) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(
      absl::StrCat(name, " not found next to ", self.string(),
                   " nor on PATH; build it (scripts/setup.sh) first"));
}

absl::Status ExecReplacingProcess(const std::vector<std::string>& argv) {
  std::vector<std::string> storage = argv;
  std::vector<char*> args;
  args.reserve(storage.size() + 1);
  for (std::string& s : storage) args.push_back(s.data());
  args.push_back(nullptr);
  execv(args[0], args.data());
  return absl::InternalError(
      absl::StrCat("exec ", argv[0], ": ", std::strerror(errno)));
}

}  // namespace isoflop::cli
