#include "cli/version.h"

#include "absl/strings/str_cat.h"
#include "cli/isoflop_version.h"

namespace isoflop::cli {

std::string VersionLine() {
  return absl::StrCat("isoflop ", ISOFLOP_VERSION, " (git ", ISOFLOP_GIT_COMMIT,
                      ")");
}

}  // namespace isoflop::cli
