// `isoflop --version`'s line, kept out of main.cc: the generated header it
// reads (cli/version.cmake) changes with every commit, and so only this small
// file is recompiled and checked again by clang-tidy (scripts/tidy.py).
#ifndef ISOFLOP_CLI_VERSION_H_
#define ISOFLOP_CLI_VERSION_H_

#include <string>

namespace isoflop::cli {

// "isoflop VERSION (git COMMIT)": the project version and the commit built
// ("-dirty" when the tree had changes).
std::string VersionLine();

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_VERSION_H_
