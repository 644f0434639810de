// A first-order Markov chain over token ids with sparse rows, and its entropy
// rate: the loss (nats/token) of the best possible model of a stream drawn
// from it, i.e. the irreducible loss E that a scaling-law fit should recover.
// `isoflop-data synth` (data/synth.h) builds a random one with
// RandomZipfChain() and samples it with data/chain_sampler.h.
#ifndef ISOFLOP_DATA_MARKOV_CHAIN_H_
#define ISOFLOP_DATA_MARKOV_CHAIN_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace isoflop::data {

// One edge of a row: the next token and its probability.
struct Transition {
  uint32_t next = 0;
  double prob = 0;
};

// An irreducible chain in compressed-row form: state i's successors are
// next()[row_start()[i] .. row_start()[i+1]) with probabilities prob()[...].
// Immutable once built; safe to share between threads.
class MarkovChain {
 public:
  // rows[i] lists state i's successors. INVALID_ARGUMENT, naming the row and
  // the rule, unless: 1 <= rows.size() <= 65536 (uint16 ids); every row is
  // non-empty, its successors are distinct and < rows.size(), its
  // probabilities are > 0 and sum to 1 within 1e-9 (they are then rescaled to
  // sum to 1); and every state is reachable from every other (irreducible,
  // so the stationary distribution is unique).
  static absl::StatusOr<MarkovChain> FromRows(
      const std::vector<std::vector<Transition>>& rows);

  // The same from arrays already in compressed-row form (row_start has
  // size() + 1 entries, the first 0, the last next.size() == prob.size()).
  static absl::StatusOr<MarkovChain> FromCompressedRows(
      std::vector<uint32_t> row_start, std::vector<uint16_t> next,
      std::vector<double> prob);

  int size() const { return static_cast<int>(row_start_.size()) - 1; }
  std::span<const uint32_t> row_start() const { return row_start_; }
  std::span<const uint16_t> next() const { return next_; }
  std::span<const double> prob() const { return prob_; }

 private:
  MarkovChain() = default;
  std::vector<uint32_t> row_start_;
  std::vector<uint16_t> next_;
  std::vector<double> prob_;
};

// What ComputeEntropy() found.
struct ChainEntropy {
  std::vector<double> stationary;  // pi: pi P = pi, sums to 1
  // H = sum_i pi_i H(P_i.), in nats/token: the mean of -log P(x_t | x_t-1)
  // over a long stream, and the lowest loss any model can reach on it.
  double entropy_rate_nats = 0;
  double unigram_entropy_nats = 0;  // H(pi): the best context-free model
  int iterations = 0;               // of the power iteration
  double l1_change = 0;             // |pi_k - pi_k-1|_1 at the last iteration
};

// Finds pi by power iteration of the lazy chain (I + P) / 2 (same pi, and it
// converges for periodic chains too) from the uniform distribution, in double
// precision, until the L1 change of an iteration is below 1e-13 and the
// geometric tail it implies is below 1e-15 (or round-off stops the changes
// from shrinking); then sums the entropies. FAILED_PRECONDITION if the chain
// mixes too slowly to get there within about 1e8 edge updates (under a
// second; at least 200 and at most 100000 iterations).
absl::StatusOr<ChainEntropy> ComputeEntropy(const MarkovChain& chain);

// The random chain of `isoflop-data synth`; the fields are its flags.
struct ZipfChainOptions {
  int vocab_size = 10000;  // --vocab-size: states = token ids
  // --successors: edges out of each state. The successors of a state are
  // (i + 1) mod V, which makes the chain irreducible, state 0 also has
  // itself, which makes it aperiodic, and the others are drawn without
  // replacement with P(j) proportional to (j + 1)^-zipf, which gives the
  // stream a Zipf-like unigram distribution.
  int successors = 16;
  double zipf = 1.0;  // --zipf: exponent of the successor distribution
  // --concentration: each row's probabilities are a Dirichlet(alpha, ...,
  // alpha) draw; smaller is more peaked (lower entropy rate).
  double concentration = 1.0;
  uint64_t seed = 1;  // --seed: the same seed builds the same chain
};

// Builds the chain of `options`; the same options give the same chain (it
// draws with data/random.h and uses only log, pow, sqrt and cos of the C
// library, not <random>'s distributions). INVALID_ARGUMENT
// naming the flag, its value and the rule when an option is out of range:
// vocab_size in [2, 65535], successors in [1, min(256, vocab_size)], zipf in
// [0, 3], concentration in [0.1, 100].
absl::StatusOr<MarkovChain> RandomZipfChain(const ZipfChainOptions& options);

}  // namespace isoflop::data

#endif  // ISOFLOP_DATA_MARKOV_CHAIN_H_
