// The JSON half of points_io.h: each object becomes named text cells, so
// both formats share one validation (internal::PointFromCells).
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "analysis/points_io.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace isoflop::analysis {
namespace {

constexpr const char* kColumns[] = {
    "params",          "tokens", "flops", "loss",   "budget",
    "n_non_embedding", "step",   "run",   "epochs", "unique_tokens"};

// A cell's text: numbers at full precision (read back exactly), strings as
// they are; anything else is refused. Null means "absent".
absl::StatusOr<std::string> CellText(const std::string& where,
                                     const std::string& key,
                                     const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return absl::StrCat(v.get<int64_t>());
  if (v.is_number()) return absl::StrFormat("%.17g", v.get<double>());
  return absl::InvalidArgumentError(
      absl::StrCat(where, "column '", key, "' = ", v.dump(),
                   ": must be a number or a numeric string"));
}

}  // namespace

absl::StatusOr<PointSet> ParsePointsJson(const std::string& text,
                                         const std::string& source,
                                         const ColumnMap& columns) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not valid JSON: expected an array of objects"));
  }
  if (!doc.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": JSON ", doc.type_name(), ": expected an array of objects"));
  }
  PointSet set;
  set.has_budget = set.has_curves = !doc.empty();
  std::vector<std::string> first_columns;
  for (size_t i = 0; i < doc.size(); ++i) {
    const std::string where = absl::StrCat(source, ": [", i, "]: ");
    if (!doc[i].is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "JSON ", doc[i].type_name(), ": expected an object"));
    }
    std::map<std::string, std::string> cells;
    std::vector<std::string> names;
    for (const char* key : kColumns) {
      const auto mapped = columns.find(key);
      const std::string file_key =
          mapped == columns.end() ? std::string(key) : mapped->second;
      if (i == 0 && mapped != columns.end() && !doc[i].contains(file_key)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--column ", key, "=", file_key, ": no key '",
                         file_key, "' in ", source, " [0]"));
      }
      auto it = doc[i].find(file_key);
      if (it == doc[i].end() || it->is_null()) continue;
      ASSIGN_OR_RETURN(cells[key], CellText(where, key, *it));
      names.push_back(key);
    }
    RETURN_IF_ERROR(internal::CheckColumns(where, names));
    if (i == 0) first_columns = names;
    if (names != first_columns) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "has columns ", absl::StrJoin(names, ","), " but [0] has ",
          absl::StrJoin(first_columns, ","), ": every object needs the same"));
    }
    ASSIGN_OR_RETURN(Point p, internal::PointFromCells(where, cells));
    p.line = static_cast<int>(i);
    set.has_budget = set.has_budget && cells.count("budget") > 0;
    set.has_curves = set.has_curves && cells.count("step") > 0;
    set.has_tokens = cells.count("tokens") > 0;  // same columns in every row
    set.has_flops = cells.count("flops") > 0;
    set.has_n_non_embedding = cells.count("n_non_embedding") > 0;
    set.has_unique_tokens =
        cells.count("unique_tokens") > 0 || cells.count("epochs") > 0;
    set.points.push_back(std::move(p));
  }
  return set;
}

}  // namespace isoflop::analysis
