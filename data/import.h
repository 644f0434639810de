// `isoflop-data import`: a researcher's own data -> a dataset directory the
// workers read (train.bin, val.bin, meta.json and, for text, the tokenizer),
// as `prepare` writes it. The formats, split rules and refusals are in
// docs/data-format.md §3.
#ifndef ISOFLOP_DATA_IMPORT_H_
#define ISOFLOP_DATA_IMPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace isoflop::data {

// The smallest split the trainer can use: --context + 2 ids at context 1.
inline constexpr int64_t kMinSplitTokens = 3;

struct ImportOptions {
  std::string format;               // nanogpt, llmc, npy, text or jsonl
  std::string out_dir;              // DATA/NAME; must not exist yet
  std::vector<std::string> inputs;  // files (text: files or folders)
  std::string tokenizer;            // text/jsonl: a SentencePiece .model
  int64_t vocab_size = 0;  // 0: from the data (ids) or 8192 (a new BPE)
  double val_fraction = 0.05;
  int threads = 2;  // tokenizer training
};

struct ImportSummary {
  int64_t train_tokens = 0, val_tokens = 0;
  int64_t vocab_size = 0;
  std::string token_dtype;  // "uint16" or "uint32"
  std::string split;        // how validation was chosen, in words
  int64_t documents = 0, val_documents = 0;  // text/jsonl
  int64_t bytes = 0;                         // text/jsonl: bytes of text read
  int64_t val_bytes = 0;  // of them in validation documents (bits per byte)
  std::vector<std::string> notes;  // said to the user, and in meta
};

// Writes the dataset to a temporary directory beside options.out_dir and
// renames it into place when complete; on any error nothing is left.
// INVALID_ARGUMENT names the flag or input file and the rule; NOT_FOUND for
// an input that cannot be opened; ALREADY_EXISTS when out_dir exists.
absl::StatusOr<ImportSummary> Import(const ImportOptions& options);

// The summary as one JSON object (also written as meta.json's import fields).
std::string ImportSummaryJson(const ImportSummary& summary);

}  // namespace isoflop::data

#endif  // ISOFLOP_DATA_IMPORT_H_
