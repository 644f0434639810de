#include "data/chain_sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "data/markov_chain.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::data {
namespace {

struct Built {
  MarkovChain chain;
  ChainEntropy entropy;
};

Built Build(absl::StatusOr<MarkovChain> chain) {
  EXPECT_TRUE(chain.ok()) << chain.status();
  absl::StatusOr<ChainEntropy> e = ComputeEntropy(*chain);
  EXPECT_TRUE(e.ok()) << e.status();
  return {*std::move(chain), *std::move(e)};
}

std::vector<uint16_t> Sample(const ChainSampler& sampler, uint64_t seed,
                             uint64_t stream, size_t n) {
  std::vector<uint16_t> tokens(n);
  TokenStream(sampler, seed, stream).Fill(tokens);
  return tokens;
}

// P(next | prev) looked up in the chain (rows of RandomZipfChain are sorted).
double Prob(const MarkovChain& chain, uint16_t prev, uint16_t next) {
  const auto row = chain.next().subspan(
      chain.row_start()[prev],
      chain.row_start()[prev + 1] - chain.row_start()[prev]);
  const auto it = std::lower_bound(row.begin(), row.end(), next);
  if (it == row.end() || *it != next) return 0;
  return chain.prob()[chain.row_start()[prev] + (it - row.begin())];
}

TEST(TokenStream, MeanLossOfTheTrueModelIsTheEntropyRate) {
  const Built b = Build(RandomZipfChain({}));
  const ChainSampler sampler(b.chain, b.entropy.stationary);
  const std::vector<uint16_t> tokens = Sample(sampler, 1, 1, 4'000'000);
  double loss = 0;
  for (size_t t = 1; t < tokens.size(); ++t) {
    const double p = Prob(b.chain, tokens[t - 1], tokens[t]);
    ASSERT_GT(p, 0) << "impossible transition at t = " << t;
    loss -= std::log(p);
  }
  loss /= static_cast<double>(tokens.size() - 1);
  EXPECT_NEAR(loss / b.entropy.entropy_rate_nats, 1.0, 0.005)
      << "empirical " << loss << " vs exact " << b.entropy.entropy_rate_nats;
}

TEST(TokenStream, FrequenciesMatchTheChain) {
  // pi = (0.4, 0.4, 0.2); see markov_chain_test.cc.
  const Built b = Build(
      MarkovChain::FromRows({{{1, 1.0}}, {{0, 0.5}, {2, 0.5}}, {{0, 1.0}}}));
  const ChainSampler sampler(b.chain, b.entropy.stationary);
  const std::vector<uint16_t> tokens = Sample(sampler, 5, 1, 1'000'000);
  std::vector<double> count(3, 0), pair(9, 0);
  for (size_t t = 0; t < tokens.size(); ++t) {
    ++count[tokens[t]];
    if (t > 0) ++pair[tokens[t - 1] * 3 + tokens[t]];
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(count[i] / tokens.size(), b.entropy.stationary[i], 0.005);
    for (int j = 0; j < 3; ++j) {
      EXPECT_NEAR(pair[i * 3 + j] / count[i], Prob(b.chain, i, j), 0.01)
          << i << " -> " << j;
    }
  }
}

TEST(TokenStream, ChunksContinueOneStream) {
  const Built b = Build(RandomZipfChain({.vocab_size = 100, .seed = 2}));
  const ChainSampler sampler(b.chain, b.entropy.stationary);
  const std::vector<uint16_t> whole = Sample(sampler, 9, 1, 1000);
  std::vector<uint16_t> pieces(1000);
  TokenStream stream(sampler, 9, 1);
  stream.Fill(std::span(pieces).first(1));
  stream.Fill(std::span(pieces).subspan(1, 400));
  stream.Fill(std::span(pieces).subspan(401));
  EXPECT_EQ(pieces, whole);
}

TEST(TokenStream, SameSeedAndStreamSameTokensOtherwiseOthers) {
  const Built b = Build(RandomZipfChain({.vocab_size = 100, .seed = 2}));
  const ChainSampler sampler(b.chain, b.entropy.stationary);
  const std::vector<uint16_t> a = Sample(sampler, 9, 1, 1000);
  EXPECT_EQ(Sample(sampler, 9, 1, 1000), a);
  EXPECT_NE(Sample(sampler, 9, 2, 1000), a);
  EXPECT_NE(Sample(sampler, 10, 1, 1000), a);
}

}  // namespace
}  // namespace isoflop::data
