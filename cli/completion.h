// What the CLI derives from its own command tree (CLI11's App): the bash and
// zsh completion scripts of `isoflop completion bash|zsh`, and the check of a
// command line before CLI11 parses it, so that an unknown command or flag is
// named with the nearest known ones ("did you mean ...") instead of CLI11's
// "A subcommand is required" (issue 24, point 5; README.md "Shell
// completion").
#ifndef ISOFLOP_CLI_COMPLETION_H_
#define ISOFLOP_CLI_COMPLETION_H_

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace isoflop::cli {

// Levenshtein distance of two byte strings.
int EditDistance(absl::string_view a, absl::string_view b);

// The candidates nearest to `word` (at most 3, nearest first, ties in the
// candidates' order): those within max(2, |word| / 3) edits, or of which
// `word` is a prefix. Empty when none is near.
std::vector<std::string> NearestWords(
    absl::string_view word, const std::vector<std::string>& candidates);

// Checks argv's commands and flags against `app`'s tree before parsing:
// INVALID_ARGUMENT "unknown command 'frob' for 'isoflop sweep'; did you mean
// 'submit'? (isoflop sweep --help lists them)" for a word where a subcommand
// is required, or "unknown flag '--stat' for 'isoflop sweep list'; did you
// mean '--state'?" for a flag that neither the command nor its parents have.
// OK otherwise (CLI11 then parses and reports anything else).
absl::Status CheckCommandLine(const CLI::App& app,
                              const std::vector<std::string>& args);

// A bash script that completes `app`'s subcommands and flags at every level
// (source it, or put it in ~/.local/share/bash-completion/completions/
// isoflop). Generated from the tree, so it never goes stale.
std::string BashCompletionScript(const CLI::App& app);
// The same for zsh, through zsh's bashcompinit.
std::string ZshCompletionScript(const CLI::App& app);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_COMPLETION_H_
