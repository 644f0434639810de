#include "cli/context_file.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace isoflop::cli {
namespace {

using nlohmann::json;

absl::Status Bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

}  // namespace

std::string ContextFilePath(
    const std::function<std::optional<std::string>(const char*)>& getenv) {
  auto set = [&getenv](const char* name) -> std::optional<std::string> {
    std::optional<std::string> v = getenv(name);
    if (v.has_value() && v->empty()) return std::nullopt;
    return v;
  };
  if (auto v = set("ISOFLOP_CONFIG")) return *v;
  if (auto v = set("XDG_CONFIG_HOME")) return *v + "/isoflop/config.json";
  return set("HOME").value_or(".") + "/.config/isoflop/config.json";
}

absl::Status ValidateContextName(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 64 &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) ||
                           c == '_' || c == '.' || c == '-';
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("context name '", name,
                   "': must be 1 to 64 characters of [A-Za-z0-9_.-]"));
}

absl::StatusOr<ContextFile> LoadContextFile(const std::string& path) {
  ContextFile file;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return file;
  std::ifstream in(path);
  if (!in) return Bad(path, "cannot read the context file");
  std::stringstream text;
  text << in.rdbuf();
  json doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Bad(path, "not a JSON object (see README.md, \"Contexts\")");
  }
  for (const auto& [key, value] : doc.items()) {
    if (key == "current") {
      if (!value.is_string()) return Bad(path, "current: must be a string");
      file.current = value.get<std::string>();
    } else if (key == "contexts") {
      if (!value.is_object()) return Bad(path, "contexts: must be an object");
      for (const auto& [name, entry] : value.items()) {
        if (absl::Status s = ValidateContextName(name); !s.ok()) {
          return Bad(path, absl::StrCat("contexts: ", s.message()));
        }
        if (!entry.is_object()) {
          return Bad(path,
                     absl::StrCat("contexts.", name, ": must be an object"));
        }
        ConnectionContext c;
        for (const auto& [field, v] : entry.items()) {
          std::string* target = field == "address"      ? &c.address
                                : field == "token_file" ? &c.token_file
                                : field == "http"       ? &c.http
                                : field == "tls_ca"     ? &c.tls_ca
                                                        : nullptr;
          const std::string where = absl::StrCat("contexts.", name, ".", field);
          if (target == nullptr) {
            return Bad(path, absl::StrCat(where,
                                          ": unknown key (known: address, "
                                          "token_file, http, tls_ca)"));
          }
          if (!v.is_string()) return Bad(path, where + ": must be a string");
          *target = v.get<std::string>();
        }
        file.contexts[name] = c;
      }
    } else {
      return Bad(path,
                 absl::StrCat(key, ": unknown key (known: current, contexts)"));
    }
  }
  if (!file.current.empty() && !file.contexts.contains(file.current)) {
    return Bad(path, absl::StrCat("current = '", file.current,
                                  "': no context of that name"));
  }
  return file;
}

std::string ContextFileJson(const ContextFile& file) {
  json doc = {{"current", file.current}, {"contexts", json::object()}};
  for (const auto& [name, c] : file.contexts) {
    doc["contexts"][name] = {{"address", c.address},
                             {"token_file", c.token_file},
                             {"http", c.http},
                             {"tls_ca", c.tls_ca}};
  }
  return doc.dump(2) + "\n";
}

absl::Status SaveContextFile(const std::string& path, const ContextFile& file) {
  const std::filesystem::path p(path);
  std::error_code ec;
  if (p.has_parent_path())
    std::filesystem::create_directories(p.parent_path(), ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(p.parent_path().string(),
                     ": cannot create the folder: ", ec.message()));
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << ContextFileJson(file);
    if (!out) {
      return absl::PermissionDeniedError(
          absl::StrCat(tmp, ": cannot write the context file"));
    }
  }
  ::chmod(tmp.c_str(), 0600);  // it names token files
  std::filesystem::rename(tmp, p, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat(
        path, ": cannot replace the context file: ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace isoflop::cli
