#include "data/prepare.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/token_file.h"
#include "data/sentencepiece_bpe.h"

namespace isoflop::data {
namespace {

namespace fs = std::filesystem;

// The King James Bible as one verse per line (31,102), verse numbers stripped.
absl::StatusOr<std::vector<std::string>> ReadKjv() {
  FILE* p = popen("bible -l0 gen1:1-rev22:21 2>/dev/null", "r");
  std::vector<std::string> lines;
  if (p != nullptr) {
    char buf[8192];
    while (std::fgets(buf, sizeof(buf), p) != nullptr) {
      // Verses are "  <number> <text>"; headings ("Genesis 1", "1 Samuel 1")
      // start in the first column and are skipped.
      if (buf[0] != ' ') continue;
      absl::string_view s = absl::StripAsciiWhitespace(buf);
      if (s.empty() || !absl::ascii_isdigit(s[0])) continue;
      while (!s.empty() && absl::ascii_isdigit(s[0])) s.remove_prefix(1);
      lines.emplace_back(absl::StripAsciiWhitespace(s));
    }
    pclose(p);
  }
  if (lines.size() < 30000) {
    return absl::FailedPreconditionError(
        "the default corpus needs the `bible` program of Debian's bible-kjv "
        "package (apt-get install bible-kjv), or pass --input FILE");
  }
  return lines;
}

absl::StatusOr<std::vector<std::string>> ReadInputs(
    const std::vector<std::string>& inputs) {
  std::vector<std::string> lines;
  for (const std::string& path : inputs) {
    std::ifstream in(path);
    if (!in)
      return absl::NotFoundError(
          absl::StrCat("--input ", path, ": cannot open"));
    for (std::string line; std::getline(in, line);) {
      absl::string_view s = absl::StripAsciiWhitespace(line);
      if (!s.empty()) lines.emplace_back(s);
    }
  }
  if (lines.empty())
    return absl::InvalidArgumentError("--input: no text in the given files");
  return lines;
}

absl::Status WriteLines(const std::string& path,
                        const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const std::string& l : lines) out << l << '\n';
  return out ? absl::OkStatus()
             : absl::InternalError(absl::StrCat(path, ": write failed"));
}

absl::Status Validate(const PrepareOptions& o) {
  if (o.out_dir.empty()) return absl::InvalidArgumentError("--out: required");
  if (o.vocab_size < 64 || o.vocab_size > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--vocab-size = ", o.vocab_size,
                     ": must be in [64, 65535] (uint16 ids)"));
  }
  if (!(o.val_fraction > 0 && o.val_fraction < 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--val-fraction = ", o.val_fraction, ": must be in (0, 0.5)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Prepare(const PrepareOptions& o) {
  RETURN_IF_ERROR(Validate(o));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> lines;
  if (o.inputs.empty()) {
    ASSIGN_OR_RETURN(lines, ReadKjv());
  } else {
    ASSIGN_OR_RETURN(lines, ReadInputs(o.inputs));
  }
  fs::create_directories(o.out_dir);
  const std::string corpus = (fs::path(o.out_dir) / "corpus.txt").string();
  RETURN_IF_ERROR(WriteLines(corpus, lines));
  const std::string prefix = (fs::path(o.out_dir) / "tokenizer").string();
  if (std::string err = TrainBpe(corpus, prefix, o.vocab_size, o.threads);
      !err.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sentencepiece training: ", err));
  }
  BpeEncoder encoder(prefix + ".model");
  if (!encoder.error().empty()) return absl::InternalError(encoder.error());
  // Blocks of 64 lines: every k-th block goes to validation, so both splits
  // sample the whole corpus.
  const auto k = static_cast<size_t>(std::lround(1.0 / o.val_fraction));
  std::vector<int> train_ids, val_ids;
  for (size_t i = 0; i < lines.size(); ++i) {
    encoder.EncodeLine(lines[i], (i / 64) % k == k - 1 ? &val_ids : &train_ids);
  }
  fs::remove(corpus);
  auto to_u16 = [](const std::vector<int>& ids) {
    return std::vector<uint16_t>(ids.begin(), ids.end());
  };
  const fs::path dir(o.out_dir);
  RETURN_IF_ERROR(WriteTokenFile((dir / "train.bin").string(), o.vocab_size,
                                 to_u16(train_ids)));
  RETURN_IF_ERROR(WriteTokenFile((dir / "val.bin").string(), o.vocab_size,
                                 to_u16(val_ids)));
  const std::string source =
      o.inputs.empty() ? "kjv (Debian bible-kjv)" : "files";
  std::ofstream((dir / "meta.json").string()) << absl::StrFormat(
      "{\"vocab_size\": %d, \"train_tokens\": %d, \"val_tokens\": %d, "
      "\"source\": \"%s\", \"lines\": %d, \"tokenizer\": "
      "\"sentencepiece-bpe\"}\n",
      o.vocab_size, train_ids.size(), val_ids.size(), source, lines.size());
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  std::fprintf(stderr,
               "isoflop-data: %s: %zu lines -> %zu train + %zu val tokens, "
               "vocab %d, %.1f s\n",
               o.out_dir.c_str(), lines.size(), train_ids.size(),
               val_ids.size(), o.vocab_size, s);
  return absl::OkStatus();
}

}  // namespace isoflop::data
