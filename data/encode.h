// `isoflop-data encode`: text -> token ids with a dataset's tokenizer, for
// prompts (`isoflop trial sample`) and evaluation text (`isoflop trial eval`).
#ifndef ISOFLOP_DATA_ENCODE_H_
#define ISOFLOP_DATA_ENCODE_H_

#include <string>

#include "absl/status/status.h"

namespace isoflop::data {

struct EncodeOptions {
  std::string dataset;  // directory holding tokenizer.model
  std::string text;     // one prompt: ids to stdout, no end-of-sentence id
  std::string input;    // a text file: each line encoded as `prepare` does,
  std::string out;      // ... into this token file
};

// With `text`: prints the ids comma-separated on one line. With `input` and
// `out`: writes the token file and prints one JSON line {"tokens", "lines",
// "bytes"} (bytes: the input's size, for bits per byte). INVALID_ARGUMENT
// names the flag and rule; NOT_FOUND for a missing dataset or input.
absl::Status Encode(const EncodeOptions& options);

}  // namespace isoflop::data

#endif  // ISOFLOP_DATA_ENCODE_H_
