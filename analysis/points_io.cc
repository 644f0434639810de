// The CSV side reads through libcsv (Debian libcsv-dev, RFC 4180: quoted
// cells, doubled quotes, commas and newlines inside quotes), so that the
// quoted exports of W&B and MLflow read as they are (docs/fitting.md).
#include "analysis/points_io.h"

#include <csv.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "analysis/flops.h"
#include "common/status_macros.h"

namespace isoflop::analysis {
namespace {

// One CSV record: its cells (trimmed of blanks) and the line it starts on.
struct CsvRow {
  std::vector<std::string> cells;
  int line = 0;
};

// Splits `text` into records with libcsv. Blank records (every cell empty:
// empty or blank lines) are dropped. Returns INVALID_ARGUMENT naming the line
// of a malformed record (a quote inside an unquoted cell, an unterminated
// quoted cell).
absl::StatusOr<std::vector<CsvRow>> SplitCsv(absl::string_view text,
                                             const std::string& source) {
  struct State {
    std::vector<CsvRow> rows;
    CsvRow row;
    int line = 1;            // the line of the byte being fed
    bool in_record = false;  // a byte of the current record was fed
  } st;
  csv_parser parser;
  if (csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI) != 0) {
    return absl::ResourceExhaustedError("csv_init failed");
  }
  const auto on_cell = [](void* cell, size_t len, void* data) {
    auto* s = static_cast<State*>(data);
    s->row.cells.emplace_back(absl::StripAsciiWhitespace(absl::string_view(
        cell == nullptr ? "" : static_cast<const char*>(cell), len)));
  };
  const auto on_row = [](int, void* data) {
    auto* s = static_cast<State*>(data);
    const bool blank =
        std::all_of(s->row.cells.begin(), s->row.cells.end(),
                    [](const std::string& c) { return c.empty(); });
    if (!blank) s->rows.push_back(std::move(s->row));
    s->row = CsvRow{};
    s->in_record = false;
  };
  // Fed a byte at a time so that each record knows its first line (a quoted
  // cell may span lines); libcsv keeps its state between calls.
  for (const char c : text) {
    if (!st.in_record && c != '\n' && c != '\r') {
      st.in_record = true;
      st.row.line = st.line;
    }
    if (csv_parse(&parser, &c, 1, on_cell, on_row, &st) != 1) {
      const std::string why = csv_strerror(csv_error(&parser));
      csv_free(&parser);
      return absl::InvalidArgumentError(absl::StrCat(
          source, ":", st.in_record ? st.row.line : st.line, ": ", why));
    }
    if (c == '\n') ++st.line;
  }
  if (csv_fini(&parser, on_cell, on_row, &st) != 0) {
    const std::string why = csv_strerror(csv_error(&parser));
    csv_free(&parser);
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", st.row.line, ": ", why,
                     " (a quoted cell is not closed by the end of the file)"));
  }
  csv_free(&parser);
  return std::move(st.rows);
}

// Where a message points: "FILE:LINE: ".
std::string At(const std::string& source, int line) {
  return absl::StrCat(source, ":", line, ": ");
}

// `positive`: > 0; otherwise >= 0.
absl::StatusOr<double> ParseNumber(const std::string& where,
                                   const std::string& column,
                                   const std::string& cell, bool positive) {
  double v = 0;
  const char* end = cell.data() + cell.size();
  auto [ptr, ec] = std::from_chars(cell.data(), end, v);
  if (cell.empty() || ec != std::errc() || ptr != end || !std::isfinite(v) ||
      v < 0 || (positive && v == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "column '", column, "' = '", cell,
                     positive ? "': must be a finite number > 0"
                              : "': must be a finite number >= 0"));
  }
  return v;
}

// Column name -> index, from the header row.
absl::StatusOr<std::vector<std::string>> ParseHeader(
    const std::string& where, const std::vector<std::string>& header) {
  std::set<std::string> seen;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "header column ", i + 1, " has no name"));
    }
    if (!seen.insert(header[i]).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "column '", header[i], "' appears twice in the header"));
    }
  }
  RETURN_IF_ERROR(internal::CheckColumns(where, header));
  return header;
}

PointSet Finish(std::vector<Point> points, const std::set<std::string>& cols) {
  PointSet set;
  set.points = std::move(points);
  set.has_budget = cols.count("budget") > 0;
  set.has_curves = cols.count("step") > 0;
  set.has_tokens = cols.count("tokens") > 0;
  set.has_flops = cols.count("flops") > 0;
  set.has_n_non_embedding = cols.count("n_non_embedding") > 0;
  set.has_unique_tokens =
      cols.count("unique_tokens") > 0 || cols.count("epochs") > 0;
  return set;
}

// Where a relative disagreement between `epochs` and tokens /
// `unique_tokens` larger than this is refused.
constexpr double kEpochsTolerance = 0.01;

// The optional `unique_tokens` and `epochs` cells (p->d already set).
absl::Status ReadRepetition(const std::string& where,
                            const std::map<std::string, std::string>& cells,
                            Point* p) {
  const auto u = cells.find("unique_tokens");
  const auto e = cells.find("epochs");
  if (u != cells.end()) {
    ASSIGN_OR_RETURN(p->unique_tokens,
                     ParseNumber(where, "unique_tokens", u->second, true));
  }
  if (e != cells.end()) {
    ASSIGN_OR_RETURN(p->epochs, ParseNumber(where, "epochs", e->second, true));
  }
  if (u != cells.end() && e != cells.end()) {
    const double implied = p->d / p->unique_tokens;
    if (std::abs(implied - p->epochs) > kEpochsTolerance * p->epochs) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "column 'epochs' = '", e->second, "' but tokens / ",
          "unique_tokens = ", implied,
          ": must agree within 1 % (give one of the two columns)"));
    }
  } else if (u != cells.end()) {
    p->epochs = p->d / p->unique_tokens;
  } else if (e != cells.end()) {
    p->unique_tokens = p->d / p->epochs;
  }
  return absl::OkStatus();
}

}  // namespace

namespace internal {

absl::Status CheckColumns(const std::string& where,
                          const std::vector<std::string>& names) {
  const std::set<std::string> col(names.begin(), names.end());
  for (const char* required : {"params", "loss"}) {
    if (!col.count(required)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "missing column '", required,
                       "' (columns: ", absl::StrJoin(names, ","), ")"));
    }
  }
  if (!col.count("tokens") && !col.count("flops")) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, "missing column 'tokens' or 'flops': one is required"));
  }
  if (col.count("step") && !col.count("run")) {
    return absl::InvalidArgumentError(
        absl::StrCat(where,
                     "column 'step' without column 'run': training curves need "
                     "both"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Point> PointFromCells(
    const std::string& where, const std::map<std::string, std::string>& cells) {
  auto get = [&](const std::string& name) -> absl::StatusOr<double> {
    auto it = cells.find(name);
    if (it == cells.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "column '", name, "' is missing"));
    }
    return ParseNumber(where, name, it->second, name != "step");
  };
  Point p;
  ASSIGN_OR_RETURN(p.n, get("params"));
  ASSIGN_OR_RETURN(p.loss, get("loss"));
  const bool has_tokens = cells.count("tokens") > 0;
  const bool has_flops = cells.count("flops") > 0;
  if (has_tokens) {
    ASSIGN_OR_RETURN(p.d, get("tokens"));
  }
  if (has_flops) {
    ASSIGN_OR_RETURN(p.flops, get("flops"));
  }
  if (!has_tokens && !has_flops) {
    return absl::InvalidArgumentError(
        absl::StrCat(where,
                     "column 'tokens' and column 'flops' are missing: one is "
                     "required"));
  }
  if (!has_tokens) {
    p.d = TokensForCompute6N(p.n, p.flops);
    if (!std::isfinite(p.d) || p.d <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "column 'flops' = '", cells.at("flops"),
                       "' gives tokens = flops / (6 params) = ", p.d,
                       ": must be a finite number > 0"));
    }
  }
  if (!has_flops) {
    p.flops = ComputeFromParamsTokens6N(p.n, p.d);
    if (!std::isfinite(p.flops)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "column 'tokens' = '", cells.at("tokens"),
                       "' gives flops = 6 params tokens = ", p.flops,
                       ": must be a finite number > 0"));
    }
  }
  if (cells.count("budget")) {
    ASSIGN_OR_RETURN(p.budget, get("budget"));
  }
  if (cells.count("n_non_embedding")) {
    ASSIGN_OR_RETURN(p.n_non_embedding, get("n_non_embedding"));
  }
  if (cells.count("step")) {
    ASSIGN_OR_RETURN(p.step, get("step"));
  }
  RETURN_IF_ERROR(ReadRepetition(where, cells, &p));
  if (auto it = cells.find("run"); it != cells.end()) {
    if (it->second.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "column 'run' is empty: must name the run"));
    }
    p.run = it->second;
  }
  return p;
}

}  // namespace internal

absl::StatusOr<PointSet> ParsePointsCsv(const std::string& text,
                                        const std::string& source,
                                        const ColumnMap& columns) {
  absl::string_view body = text;
  if (absl::StartsWith(body, "\xEF\xBB\xBF")) body.remove_prefix(3);  // BOM
  ASSIGN_OR_RETURN(const std::vector<CsvRow> rows, SplitCsv(body, source));
  if (rows.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(At(source, 1), "empty: expected a header row"));
  }
  std::vector<std::string> names = rows[0].cells;
  if (!columns.empty()) {
    // A file column that has a mapped reader name is set aside; then the
    // mapped file columns take the reader's names.
    for (std::string& name : names) {
      if (columns.count(name) > 0) name = absl::StrCat(name, " (unmapped)");
    }
    for (const auto& [ours, theirs] : columns) {
      auto it = std::find(rows[0].cells.begin(), rows[0].cells.end(), theirs);
      if (it == rows[0].cells.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--column ", ours, "=", theirs, ": no column '",
                         theirs, "' in ", source));
      }
      names[static_cast<size_t>(it - rows[0].cells.begin())] = ours;
    }
  }
  ASSIGN_OR_RETURN(const std::vector<std::string> header,
                   ParseHeader(At(source, rows[0].line), names));
  // A `state` column (the trials.csv of `isoflop report`): only SUCCEEDED
  // rows with a loss are observations (the others, and a branched sweep's
  // trunks, have an empty loss cell there).
  const auto column = [&header](const char* name) {
    return static_cast<size_t>(std::find(header.begin(), header.end(), name) -
                               header.begin());
  };
  const size_t state_col = column("state");
  const size_t loss_col = column("loss");
  std::vector<Point> points;
  std::map<std::string, std::string> cells;
  for (size_t r = 1; r < rows.size(); ++r) {
    const int line_no = rows[r].line;
    const std::string where = At(source, line_no);
    const std::vector<std::string>& row = rows[r].cells;
    if (row.size() != header.size()) {
      const std::string detail =
          row.size() < header.size()
              ? absl::StrCat("column '", header[row.size()], "' is missing")
              : absl::StrCat("cell '", row[header.size()], "' has no column");
      return absl::InvalidArgumentError(
          absl::StrCat(where, row.size(), " cells, header has ", header.size(),
                       ": ", detail));
    }
    if (state_col < header.size() &&
        (row[state_col] != "SUCCEEDED" || row[loss_col].empty())) {
      continue;
    }
    for (size_t i = 0; i < header.size(); ++i) cells[header[i]] = row[i];
    ASSIGN_OR_RETURN(Point p, internal::PointFromCells(where, cells));
    p.line = line_no;
    points.push_back(std::move(p));
  }
  return Finish(std::move(points), {header.begin(), header.end()});
}

absl::StatusOr<PointSet> ParsePoints(const std::string& text,
                                     const std::string& source,
                                     const ColumnMap& columns) {
  size_t first = absl::StartsWith(text, "\xEF\xBB\xBF") ? 3 : 0;
  while (first < text.size() && absl::ascii_isspace(text[first])) ++first;
  if (first < text.size() && (text[first] == '[' || text[first] == '{')) {
    return ParsePointsJson(text, source, columns);
  }
  return ParsePointsCsv(text, source, columns);
}

absl::StatusOr<PointSet> ReadPoints(const std::string& path) {
  return ReadPoints(path, ColumnMap{});
}

absl::StatusOr<PointSet> ReadPoints(const std::string& path,
                                    const ColumnMap& columns) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return ParsePoints(text.str(), path, columns);
}

absl::StatusOr<ColumnMap> ParseColumnMap(
    const std::vector<std::string>& flags) {
  static const std::set<std::string> kNames = {
      "params",          "tokens", "flops", "loss",          "budget",
      "n_non_embedding", "step",   "run",   "unique_tokens", "epochs"};
  ColumnMap out;
  for (const std::string& flag : flags) {
    const size_t eq = flag.find('=');
    const std::string ours = flag.substr(0, eq);
    if (eq == std::string::npos || eq + 1 == flag.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--column = '", flag, "': must be NAME=FILE_COLUMN"));
    }
    if (!kNames.count(ours)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--column = '", flag, "': NAME must be one of ",
                       absl::StrJoin(kNames, ", ")));
    }
    if (!out.emplace(ours, flag.substr(eq + 1)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--column = '", flag, "': ", ours, " is mapped twice"));
    }
  }
  return out;
}

std::vector<Point> FinalPoints(const PointSet& set) {
  if (!set.has_curves) return set.points;
  std::map<std::string, const Point*> last;
  for (const Point& p : set.points) {
    const Point*& slot = last[p.run];
    if (slot == nullptr || p.step > slot->step) slot = &p;
  }
  std::vector<Point> out;
  for (const auto& [run, p] : last) out.push_back(*p);
  return out;
}

std::vector<Observation> ToObservations(const std::vector<Point>& points) {
  std::vector<Observation> out;
  out.reserve(points.size());
  for (const Point& p : points) out.push_back({p.n, p.d, p.loss});
  return out;
}

absl::StatusOr<std::vector<Observation>> ParseObservationsCsv(
    const std::string& text, const std::string& source) {
  ASSIGN_OR_RETURN(const PointSet set, ParsePointsCsv(text, source));
  return ToObservations(set.points);
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
