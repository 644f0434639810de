// Reading observations for offline fits (`isoflop fit --points FILE`): CSV
// with a header row, or a JSON array of objects, as exported from W&B,
// MLflow or a spreadsheet.
#ifndef ISOFLOP_ANALYSIS_POINTS_IO_H_
#define ISOFLOP_ANALYSIS_POINTS_IO_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "analysis/approach3.h"

namespace isoflop::analysis {

// One row. N = params, D = tokens, C = flops; a missing one of D and C
// follows from C = 6 N D (analysis/flops.h).
struct Point {
  double n = 0, d = 0, flops = 0, loss = 0;
  double n_non_embedding = 0;  // `n_non_embedding` column; 0 when absent
  double budget = 0;  // `budget` column (IsoFLOP profile); 0 when absent
  double step = -1;   // `step` column (training curves); -1 when absent
  std::string run;    // `run` column (training curves); empty when absent
  // Data repetition (analysis/constrained.h): the unique tokens the run's
  // dataset holds and D / unique_tokens; 0 when absent. Either column gives
  // the other.
  double unique_tokens = 0;
  double epochs = 0;
  int line = 0;  // CSV line number, or JSON array index
};

struct PointSet {
  std::vector<Point> points;
  bool has_budget = false;  // every point has a budget
  bool has_curves = false;  // every point has a step and a run
  bool has_tokens = false;  // a `tokens` column
  bool has_flops = false;   // a `flops` column (with `tokens`: the exact C)
  bool has_n_non_embedding = false;  // every point has one
  bool has_unique_tokens = false;    // a `unique_tokens` or `epochs` column
};

// Column rules, for both formats: `params` and `loss` are required, plus
// `tokens` or `flops` or both (both: C is the measured compute, and
// analysis/flops.h interpolates FLOPs/token from C / D; one: the other
// follows from C = 6 N D); `budget` and `n_non_embedding` (> 0) are optional;
// `unique_tokens` and `epochs` (> 0; optional: either gives the other through
// epochs = tokens / unique_tokens, and both must agree within 1 %); `step`
// (finite,
// >= 0) needs `run` (non-empty text; alone it only labels the rows). Other
// columns are ignored. Numbers must be finite and > 0 (except step).
//
// CSV (RFC 4180, read with libcsv): a header row, columns by name (any
// order); cells may be quoted ("a,b", doubled quotes, newlines inside
// quotes), as W&B and MLflow export them; cells trimmed of blanks; blank
// lines skipped; UTF-8 byte-order mark and CRLF accepted. With a `state`
// column (the trials.csv of `isoflop report`), only rows whose state is
// SUCCEEDED and whose loss cell is not empty are points; the others are
// skipped. A malformed record (a quote inside an unquoted cell, a quoted
// cell never closed) is refused naming the line where it starts.
// JSON: an array of objects whose values are numbers or numeric strings
// (run: a string or a number); a key missing or null counts as a missing cell.
//
// Returns NOT_FOUND if the file cannot be opened, and INVALID_ARGUMENT
// naming the place and the column of the first problem: "PATH:LINE: column
// 'loss' = 'abc': must be a finite number > 0" for CSV, "PATH: [3]: ..."
// (0-based array index) for JSON, or a missing, unnamed or repeated column.
// Zero rows is not an error here (the fits say how many they need).
absl::StatusOr<PointSet> ReadPoints(const std::string& path);

// The file's own names for the reader's columns, for exports whose headers
// differ (W&B: "summary/val_loss"; MLflow: "metrics.val_loss"): reader name
// -> the file's column name (CSV header cell or JSON key). A file column that
// already has a reader's name which is mapped elsewhere is ignored.
using ColumnMap = std::map<std::string, std::string>;

// Parses `--column NAME=FILE_COLUMN` flags: NAME one of params, tokens,
// flops, loss, budget, n_non_embedding, step, run, unique_tokens, epochs;
// FILE_COLUMN non-empty; each NAME once. INVALID_ARGUMENT naming the flag.
absl::StatusOr<ColumnMap> ParseColumnMap(const std::vector<std::string>& flags);

// As ReadPoints, with the file's columns renamed by `columns`;
// INVALID_ARGUMENT when a mapped column is not in the file ("--column
// loss=val/loss: no column 'val/loss' in PATH").
absl::StatusOr<PointSet> ReadPoints(const std::string& path,
                                    const ColumnMap& columns);

// As ReadPoints, on the text of a file (JSON when its first non-blank
// character is '[' or '{'); `source` names it in messages.
absl::StatusOr<PointSet> ParsePoints(const std::string& text,
                                     const std::string& source,
                                     const ColumnMap& columns = {});
absl::StatusOr<PointSet> ParsePointsCsv(const std::string& text,
                                        const std::string& source,
                                        const ColumnMap& columns = {});
absl::StatusOr<PointSet> ParsePointsJson(const std::string& text,
                                         const std::string& source,
                                         const ColumnMap& columns = {});

// The points Approaches 2 and 3 use: every point, or, for training curves,
// the last step of each run (its final loss).
std::vector<Point> FinalPoints(const PointSet& set);
std::vector<Observation> ToObservations(const std::vector<Point>& points);

// CSV only, (N, D, loss) only: the walking skeleton's API, kept for callers.
absl::StatusOr<std::vector<Observation>> ReadObservationsCsv(
    const std::string& path);
absl::StatusOr<std::vector<Observation>> ParseObservationsCsv(
    const std::string& text, const std::string& source);

namespace internal {
// Shared by the CSV and JSON readers: builds a point from named cells
// (column -> text; absent columns are not in `cells`). `where` prefixes
// messages. The caller has checked the header with CheckColumns.
absl::StatusOr<Point> PointFromCells(
    const std::string& where, const std::map<std::string, std::string>& cells);
// Refuses a set of column names that lacks a required column or has step
// without run (or the reverse).
absl::Status CheckColumns(const std::string& where,
                          const std::vector<std::string>& names);
}  // namespace internal

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_POINTS_IO_H_
