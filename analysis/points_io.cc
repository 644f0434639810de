// A small CSV reader written by hand: Debian offers no CSV library for C++,
// and the format needed here (numbers, a header, no quoting) is simple.
#include "analysis/points_io.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace isoflop::analysis {
namespace {

std::vector<std::string> SplitRow(const std::string& line) {
  std::vector<std::string> cells = absl::StrSplit(line, ',');
  for (std::string& c : cells) {
    c = std::string(absl::StripAsciiWhitespace(c));
  }
  return cells;
}

absl::StatusOr<double> ParsePositive(const std::string& path, int line,
                                     const std::string& column,
                                     const std::string& cell) {
  double v = 0;
  const char* end = cell.data() + cell.size();
  auto [ptr, ec] = std::from_chars(cell.data(), end, v);
  if (cell.empty() || ec != std::errc() || ptr != end || !std::isfinite(v) ||
      v <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", line, ": column '", column, "' = '", cell,
                     "': must be a finite number > 0"));
  }
  return v;
}

}  // namespace

absl::StatusOr<std::vector<Observation>> ReadObservationsCsv(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string line;
  if (!std::getline(in, line)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":1: empty file: expected a header row"));
  }
  std::map<std::string, size_t> col;
  const std::vector<std::string> header = SplitRow(line);
  for (size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
  for (const char* required : {"params", "loss"}) {
    if (!col.count(required)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":1: missing column '", required, "' (header: ", line, ")"));
    }
  }
  if (!col.count("tokens") && !col.count("flops")) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ":1: missing column 'tokens' or 'flops': one is required"));
  }
  std::vector<Observation> points;
  for (int line_no = 2; std::getline(in, line); ++line_no) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::vector<std::string> cells = SplitRow(line);
    if (cells.size() != header.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": ", cells.size(),
                       " columns, header has ", header.size()));
    }
    auto get = [&](const std::string& name) -> absl::StatusOr<double> {
      return ParsePositive(path, line_no, name, cells[col.at(name)]);
    };
    Observation p;
    absl::StatusOr<double> v = get("params");
    if (!v.ok()) return v.status();
    p.n = *v;
    if (v = get("loss"); !v.ok()) return v.status();
    p.loss = *v;
    if (col.count("tokens")) {
      if (v = get("tokens"); !v.ok()) return v.status();
      p.d = *v;
    } else {
      if (v = get("flops"); !v.ok()) return v.status();
      p.d = *v / (6.0 * p.n);
    }
    points.push_back(p);
  }
  return points;
}

}  // namespace isoflop::analysis
