// Fast sampling of token streams from a MarkovChain: one Vose alias table per
// state and one xoshiro256** draw per token (the high 32 bits pick a column,
// the low 32 bits decide between the column's token and its alias). Each
// probability is sampled to within 2^-32 of its value in the chain. Speed is
// bound by the latency of one table load per token, so the tables are small
// (8 bytes per edge) and rows of equal length are found by multiplication.
#ifndef ISOFLOP_DATA_CHAIN_SAMPLER_H_
#define ISOFLOP_DATA_CHAIN_SAMPLER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "data/markov_chain.h"
#include "data/random.h"

namespace isoflop::data {

// The alias tables of a chain plus one for its stationary distribution (the
// first token of a stream). Immutable; TokenStreams on several threads may
// share one.
class ChainSampler {
 public:
  // `stationary` has chain.size() entries summing to 1 (ComputeEntropy's).
  ChainSampler(const MarkovChain& chain, std::span<const double> stationary);

 private:
  friend class TokenStream;
  struct Row {
    uint32_t start;  // first column in columns_
    uint32_t count;  // columns of this state
  };
  struct Column {
    uint32_t keep_below;  // low 32 bits < keep_below: token, else alias
    uint16_t token;
    uint16_t alias;
  };
  void AddTable(std::span<const uint16_t> tokens, std::span<const double> prob);

  std::vector<Row> rows_;  // one per state, then the stationary row
  std::vector<Column> columns_;
  // Columns per state when every state has the same number (as in
  // RandomZipfChain), which saves a dependent load per token; else 0.
  uint32_t uniform_count_ = 0;
};

// One stream of tokens: x_0 drawn from the stationary distribution, then
// x_t drawn from P(. | x_t-1), so every token of it is distributed as the
// chain's unigram distribution. Different (seed, stream) pairs give
// independent streams; stream 0 is the one RandomZipfChain() uses. Not
// thread-safe; `sampler` must outlive it.
class TokenStream {
 public:
  TokenStream(const ChainSampler& sampler, uint64_t seed, uint64_t stream);

  // Writes the next out.size() tokens of the stream into `out`.
  void Fill(std::span<uint16_t> out);

 private:
  const ChainSampler* sampler_;
  Xoshiro256 rng_;
  uint32_t state_;  // the last token, or the stationary row before the first
};

}  // namespace isoflop::data

#endif  // ISOFLOP_DATA_CHAIN_SAMPLER_H_
