// A small CSV reader written by hand: Debian 12 packages no CSV library for
// C++, and the format needed here (a header, numbers, no quoting) is simple.
#include "analysis/points_io.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace isoflop::analysis {
namespace {

std::vector<std::string> SplitRow(std::string_view line) {
  std::vector<std::string> cells =
      absl::StrSplit(absl::string_view(line.data(), line.size()), ',');
  for (std::string& c : cells) c = std::string(absl::StripAsciiWhitespace(c));
  return cells;
}

// Where a message points: "FILE:LINE: ".
std::string At(const std::string& source, int line) {
  return absl::StrCat(source, ":", line, ": ");
}

absl::StatusOr<double> ParsePositive(const std::string& where,
                                     const std::string& column,
                                     const std::string& cell) {
  double v = 0;
  const char* end = cell.data() + cell.size();
  auto [ptr, ec] = std::from_chars(cell.data(), end, v);
  if (cell.empty() || ec != std::errc() || ptr != end || !std::isfinite(v) ||
      v <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "column '", column, "' = '", cell,
                     "': must be a finite number > 0"));
  }
  return v;
}

// Column name -> index, from the header row. Refuses empty and repeated
// names and a missing required column.
absl::StatusOr<std::map<std::string, size_t>> ParseHeader(
    const std::string& where, const std::vector<std::string>& header) {
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "header column ", i + 1, " has no name"));
    }
    if (!col.emplace(header[i], i).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "column '", header[i], "' appears twice in the header"));
    }
  }
  for (const char* required : {"params", "loss"}) {
    if (!col.count(required)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "missing column '", required,
                       "' (header: ", absl::StrJoin(header, ","), ")"));
    }
  }
  if (!col.count("tokens") && !col.count("flops")) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, "missing column 'tokens' or 'flops': one is required"));
  }
  return col;
}

absl::StatusOr<Observation> ParseRow(const std::string& where,
                                     const std::vector<std::string>& header,
                                     const std::map<std::string, size_t>& col,
                                     const std::vector<std::string>& cells) {
  if (cells.size() != header.size()) {
    const std::string detail =
        cells.size() < header.size()
            ? absl::StrCat("column '", header[cells.size()], "' is missing")
            : absl::StrCat("cell '", cells[header.size()], "' has no column");
    return absl::InvalidArgumentError(
        absl::StrCat(where, cells.size(), " cells, header has ", header.size(),
                     ": ", detail));
  }
  auto get = [&](const std::string& name) {
    return ParsePositive(where, name, cells[col.at(name)]);
  };
  Observation p;
  ASSIGN_OR_RETURN(p.n, get("params"));
  ASSIGN_OR_RETURN(p.loss, get("loss"));
  if (col.count("tokens")) {
    ASSIGN_OR_RETURN(p.d, get("tokens"));
  } else {
    ASSIGN_OR_RETURN(const double flops, get("flops"));
    p.d = flops / (6.0 * p.n);
    if (!std::isfinite(p.d) || p.d <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "column 'flops' = '", cells[col.at("flops")],
                       "' gives tokens = flops / (6 params) = ", p.d,
                       ": must be a finite number > 0"));
    }
  }
  return p;
}

}  // namespace

absl::StatusOr<std::vector<Observation>> ParseObservationsCsv(
    const std::string& text, const std::string& source) {
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || absl::StripAsciiWhitespace(line).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(At(source, 1), "empty: expected a header row"));
  }
  if (absl::StartsWith(line, "\xEF\xBB\xBF")) line.erase(0, 3);  // UTF-8 BOM
  const std::vector<std::string> header = SplitRow(line);
  ASSIGN_OR_RETURN(const auto col, ParseHeader(At(source, 1), header));
  std::vector<Observation> points;
  for (int line_no = 2; std::getline(in, line); ++line_no) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    ASSIGN_OR_RETURN(Observation p, ParseRow(At(source, line_no), header, col,
                                             SplitRow(line)));
    points.push_back(p);
  }
  return points;
}

absl::StatusOr<std::vector<Observation>> ReadObservationsCsv(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return ParseObservationsCsv(text.str(), path);
}

}  // namespace isoflop::analysis
