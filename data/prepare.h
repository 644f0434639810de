// `isoflop-data prepare`: a named source (data/sources.h) or text files ->
// a dataset directory (train.bin, val.bin, tokenizer.model, meta.json,
// documents.tsv; see common/token_file.h and docs/data-format.md).
//
// Documents are the unit: exact duplicates (same normalised text) are removed
// first, then the validation split takes whole documents in the order of
// their content hash (never by position) until it holds val_fraction of the
// bytes, so no document is in both splits. The dataset is written into
// OUT.tmp-XXXXXX and renamed to OUT only when complete.
#ifndef ISOFLOP_DATA_PREPARE_H_
#define ISOFLOP_DATA_PREPARE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "data/sources.h"

namespace isoflop::data {

struct PrepareOptions {
  std::string out_dir;
  std::vector<std::string> inputs;  // text files or folders; each file one
                                    // document. Empty: `source`.
  int vocab_size = 4096;
  double val_fraction = 0.05;
  int threads = 0;         // tokenizer training and encoding; 0: all cores
  std::string source;      // english, code, kjv; "" with no inputs: kjv
  int64_t max_bytes = 0;   // > 0: keep documents (by content hash) up to this
  std::string cache_dir;   // downloads; "": $XDG_CACHE_HOME or ~/.cache
  std::string source_dir;  // already-extracted packages (DIR/<package>/)
  // The tokenizer trains on at most this many bytes of training documents
  // (taken in content-hash order) and at most tokenizer_sentences lines.
  int64_t tokenizer_sample_bytes = int64_t{100} << 20;
  int64_t tokenizer_sentences = 2000000;
  Fetcher fetcher;  // set by tests; empty: from source_dir or cache_dir
};

// Writes the dataset into options.out_dir and prints progress and a summary
// to stderr. INVALID_ARGUMENT names the flag (or file) and the rule: unknown
// source, vocabulary out of range or larger than the data supports, input
// too small for a non-empty validation split, a binary file; NOT_FOUND for
// an unreadable file; FAILED_PRECONDITION when a package cannot be had.
// On failure nothing is left at out_dir (an existing dataset there is kept).
absl::Status Prepare(const PrepareOptions& options);

}  // namespace isoflop::data

#endif  // ISOFLOP_DATA_PREPARE_H_
