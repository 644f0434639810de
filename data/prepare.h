// `isoflop-data prepare`: text files (or the default KJV corpus) -> a dataset
// directory (train.bin, val.bin, tokenizer.model, meta.json; see
// common/token_file.h).
#ifndef ISOFLOP_DATA_PREPARE_H_
#define ISOFLOP_DATA_PREPARE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace isoflop::data {

struct PrepareOptions {
  std::string out_dir;
  std::vector<std::string> inputs;  // empty: the KJV from Debian's bible-kjv
  int vocab_size = 4096;
  double val_fraction = 0.05;
  int threads = 2;
};

// Writes the dataset into options.out_dir (created if missing) and prints a
// summary to stderr. INVALID_ARGUMENT names the flag and rule;
// FAILED_PRECONDITION when the default corpus's `bible` program is missing.
absl::Status Prepare(const PrepareOptions& options);

}  // namespace isoflop::data

#endif  // ISOFLOP_DATA_PREPARE_H_
