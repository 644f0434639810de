#include "cli/completion.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace isoflop::cli {
namespace {

std::vector<const CLI::App*> Subcommands(const CLI::App& app) {
  return app.get_subcommands(
      [](const CLI::App* sub) { return !sub->get_disabled(); });
}

const CLI::App* FindSubcommand(const CLI::App& app, const std::string& name) {
  for (const CLI::App* sub : Subcommands(app)) {
    if (sub->get_name() == name) return sub;
  }
  return nullptr;
}

// "isoflop sweep list": the command's words from the root.
std::string CommandPath(const CLI::App& app) {
  std::vector<std::string> words;
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) {
    words.push_back(a->get_name());
  }
  std::reverse(words.begin(), words.end());
  return absl::StrJoin(words, " ");
}

// The flags ("--state", "-f") of `app` alone.
std::vector<std::string> OwnFlags(const CLI::App& app) {
  std::vector<std::string> flags;
  for (const CLI::Option* opt : app.get_options()) {
    if (!opt->nonpositional()) continue;
    for (const std::string& l : opt->get_lnames()) flags.push_back("--" + l);
    for (const std::string& s : opt->get_snames()) flags.push_back("-" + s);
  }
  return flags;
}

// The option named `flag` of `app` or of the parents it falls through to.
const CLI::Option* FindFlag(const CLI::App& app, const std::string& flag) {
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) {
    if (const CLI::Option* opt = a->get_option_no_throw(flag); opt != nullptr) {
      return opt;
    }
    if (!a->get_fallthrough()) break;
  }
  return nullptr;
}

std::vector<std::string> ReachableFlags(const CLI::App& app) {
  std::vector<std::string> flags;
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) {
    for (std::string& flag : OwnFlags(*a)) {
      if (std::find(flags.begin(), flags.end(), flag) == flags.end()) {
        flags.push_back(std::move(flag));
      }
    }
    if (!a->get_fallthrough()) break;
  }
  return flags;
}

bool HasPositionals(const CLI::App& app) {
  for (const CLI::Option* opt : app.get_options()) {
    if (!opt->nonpositional()) return true;
  }
  return false;
}

std::string Quoted(const std::vector<std::string>& words) {
  std::vector<std::string> quoted;
  quoted.reserve(words.size());
  for (const std::string& w : words)
    quoted.push_back(absl::StrCat("'", w, "'"));
  return absl::StrJoin(quoted, ", ");
}

std::string Suggestion(const std::vector<std::string>& near) {
  if (near.empty()) return "";
  return absl::StrCat("; did you mean ", near.size() > 1 ? "one of " : "",
                      Quoted(near), "?");
}

// One `case` arm per command of the tree: "sweep list) words=...;;".
void AppendCases(const CLI::App& app, const std::string& key,
                 std::string* out) {
  std::vector<std::string> words;
  for (const CLI::App* sub : Subcommands(app)) words.push_back(sub->get_name());
  std::vector<std::string> flags = ReachableFlags(app);
  words.insert(words.end(), flags.begin(), flags.end());
  absl::StrAppend(out, "    '", key, "') words='", absl::StrJoin(words, " "),
                  "' ;;\n");
  for (const CLI::App* sub : Subcommands(app)) {
    AppendCases(
        *sub,
        key.empty() ? sub->get_name() : absl::StrCat(key, " ", sub->get_name()),
        out);
  }
}

// Flags of the tree that take a value (their next word is not a command).
void CollectValueFlags(const CLI::App& app, std::vector<std::string>* out) {
  for (const CLI::Option* opt : app.get_options()) {
    if (!opt->nonpositional() || opt->get_expected_max() == 0) continue;
    for (const std::string& l : opt->get_lnames()) out->push_back("--" + l);
    for (const std::string& s : opt->get_snames()) out->push_back("-" + s);
  }
  for (const CLI::App* sub : Subcommands(app)) CollectValueFlags(*sub, out);
}

// "sweep", "sweep list", ...: every command's words below the root.
void CollectPaths(const CLI::App& app, const std::string& key,
                  std::vector<std::string>* out) {
  for (const CLI::App* sub : Subcommands(app)) {
    std::string path =
        key.empty() ? sub->get_name() : absl::StrCat(key, " ", sub->get_name());
    out->push_back(path);
    CollectPaths(*sub, path, out);
  }
}

}  // namespace

int EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<int> row(b.size() + 1);
  std::iota(row.begin(), row.end(), 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diagonal = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::vector<std::string> NearestWords(
    absl::string_view word, const std::vector<std::string>& candidates) {
  const int limit = std::max<int>(2, static_cast<int>(word.size()) / 3);
  std::vector<std::pair<int, size_t>> near;  // (distance, index)
  for (size_t i = 0; i < candidates.size(); ++i) {
    const int d = EditDistance(word, candidates[i]);
    const bool prefix =
        word.size() >= 2 && absl::StartsWith(candidates[i], word);
    if (d <= limit || prefix) near.emplace_back(prefix ? 0 : d, i);
  }
  std::stable_sort(near.begin(), near.end(), [](const auto& x, const auto& y) {
    return x.first < y.first;
  });
  std::vector<std::string> out;
  for (const auto& [d, i] : near) {
    if (out.size() == 3) break;
    if (std::find(out.begin(), out.end(), candidates[i]) == out.end()) {
      out.push_back(candidates[i]);
    }
  }
  return out;
}

absl::Status CheckCommandLine(const CLI::App& app,
                              const std::vector<std::string>& args) {
  const CLI::App* current = &app;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") break;  // the rest are positionals
    if (arg.size() > 1 && arg[0] == '-' &&
        !(std::isdigit(static_cast<unsigned char>(arg[1])) || arg[1] == '.')) {
      std::string name = arg.substr(0, arg.find('='));
      const bool inline_value = name.size() != arg.size();
      if (name.size() > 2 && name[1] != '-') name = name.substr(0, 2);  // -fx
      const CLI::Option* opt = FindFlag(*current, name);
      if (opt == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unknown flag '", name, "' for '", CommandPath(*current), "'",
            Suggestion(NearestWords(name, ReachableFlags(*current))), " (",
            CommandPath(*current), " --help lists them)"));
      }
      if (opt == current->get_help_ptr() || opt == app.get_help_ptr()) {
        return absl::OkStatus();  // --help: nothing after it matters
      }
      if (!inline_value && opt->get_expected_max() > 0) {
        if (opt->get_items_expected_max() > 1) {
          while (i + 1 < args.size() &&
                 (args[i + 1].empty() || args[i + 1][0] != '-')) {
            ++i;
          }
        } else {
          ++i;  // its value
        }
      }
      continue;
    }
    if (const CLI::App* sub = FindSubcommand(*current, arg); sub != nullptr) {
      current = sub;
      continue;
    }
    // A word where only a command can stand.
    if (current->get_require_subcommand_min() > 0 &&
        !HasPositionals(*current)) {
      std::vector<std::string> names;
      for (const CLI::App* sub : Subcommands(*current)) {
        names.push_back(sub->get_name());
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown command '", arg, "' for '", CommandPath(*current), "'",
          Suggestion(NearestWords(arg, names)), " (", CommandPath(*current),
          " --help lists them)"));
    }
  }
  return absl::OkStatus();
}

std::string BashCompletionScript(const CLI::App& app) {
  std::vector<std::string> value_flags;
  CollectValueFlags(app, &value_flags);
  std::sort(value_flags.begin(), value_flags.end());
  value_flags.erase(std::unique(value_flags.begin(), value_flags.end()),
                    value_flags.end());
  std::string cases;
  AppendCases(app, "", &cases);
  std::vector<std::string> paths;
  CollectPaths(app, "", &paths);
  const std::string name = app.get_name().empty() ? "isoflop" : app.get_name();
  return absl::StrCat(
      "# bash completion for ", name, ", generated by `", name,
      " completion bash` from its command tree.\n", "# Load it with: source <(",
      name, " completion bash)   (or save it as\n",
      "# ~/.local/share/bash-completion/completions/", name, ")\n", "_", name,
      "_complete() {\n",
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" key='' word words i\n",
      "  local value_flags=' ", absl::StrJoin(value_flags, " "), " '\n",
      "  local paths='|", absl::StrJoin(paths, "|"), "|'\n",
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n",
      "    word=\"${COMP_WORDS[i]}\"\n", "    if [[ \"$word\" == -* ]]; then\n",
      "      [[ \"$word\" != *=* && \"$value_flags\" == *\" $word \"* ]] && "
      "((i++))\n",
      "      continue\n", "    fi\n",
      "    [[ \"$paths\" == *\"|${key:+$key }$word|\"* ]] && "
      "key=\"${key:+$key }$word\"\n",
      "  done\n", "  case \"$key\" in\n", cases, "    *) words='' ;;\n",
      "  esac\n", "  if [[ \"$cur\" != -* ]]; then\n",
      "    local w commands=''\n",
      "    for w in $words; do [[ \"$w\" != -* ]] && commands+=\"$w \"; done\n",
      "    [[ -n \"$commands\" ]] && words=\"$commands\"\n", "  fi\n",
      "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n",
      "  if [[ ${#COMPREPLY[@]} -eq 0 && \"$cur\" != -* ]]; then\n",
      "    COMPREPLY=($(compgen -f -- \"$cur\"))\n", "  fi\n", "}\n",
      "complete -o default -F _", name, "_complete ", name, "\n");
}

std::string ZshCompletionScript(const CLI::App& app) {
  return absl::StrCat(
      "# zsh completion: the bash script through zsh's bashcompinit.\n"
      "autoload -U +X compinit && compinit\n"
      "autoload -U +X bashcompinit && bashcompinit\n",
      BashCompletionScript(app));
}

}  // namespace isoflop::cli
