// `isoflop-data synth`: a dataset drawn from a seeded random Markov chain
// (data/markov_chain.h) whose entropy rate is known exactly, so the irreducible
// loss E of a fit can be checked, and as many tokens as a budget needs.
// Writes train.bin, val.bin (see common/token_file.h) and meta.json.
#ifndef ISOFLOP_DATA_SYNTH_H_
#define ISOFLOP_DATA_SYNTH_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "data/markov_chain.h"

namespace isoflop::data {

struct SynthOptions {
  std::string out_dir;                 // --out: created if missing
  ZipfChainOptions chain;              // --vocab-size ... --seed
  int64_t train_tokens = 100'000'000;  // --train-tokens: stream 1 of the seed
  int64_t val_tokens = 1'000'000;      // --val-tokens: stream 2 of the seed
};

struct SynthSummary {
  double entropy_rate_nats = 0;  // the irreducible loss E of both splits
  double unigram_entropy_nats = 0;
  int stationary_iterations = 0;
  double tokens_per_s = 0;  // sampling alone, per CPU second of one core
};

// Builds the chain, computes its entropy rate, and streams both splits to
// disk in chunks (memory does not grow with the token counts); prints the
// entropy rates and the sampling speed to stderr and writes them into
// meta.json. The same options give byte-identical train.bin and val.bin.
// INVALID_ARGUMENT naming the flag, its value and the rule on a bad option
// (the chain's are listed at RandomZipfChain; token counts in [1, 1e12]);
// FAILED_PRECONDITION if the chain's stationary distribution does not
// converge; INTERNAL on I/O errors.
absl::StatusOr<SynthSummary> Synth(const SynthOptions& options);

}  // namespace isoflop::data

#endif  // ISOFLOP_DATA_SYNTH_H_
