#include "data/markov_chain.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::data {
namespace {

using ::testing::HasSubstr;

// Binary entropy in nats.
double H2(double p) { return -p * std::log(p) - (1 - p) * std::log(1 - p); }

TEST(ComputeEntropy, TwoStateChainMatchesTheClosedForm) {
  // P = [[0.7, 0.3], [0.2, 0.8]]: pi = (0.2, 0.3) / 0.5 = (0.4, 0.6).
  absl::StatusOr<MarkovChain> chain =
      MarkovChain::FromRows({{{0, 0.7}, {1, 0.3}}, {{0, 0.2}, {1, 0.8}}});
  ASSERT_TRUE(chain.ok()) << chain.status();
  absl::StatusOr<ChainEntropy> e = ComputeEntropy(*chain);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_NEAR(e->stationary[0], 0.4, 1e-13);
  EXPECT_NEAR(e->stationary[1], 0.6, 1e-13);
  EXPECT_NEAR(e->entropy_rate_nats, 0.4 * H2(0.3) + 0.6 * H2(0.2), 1e-12);
  EXPECT_NEAR(e->unigram_entropy_nats, H2(0.4), 1e-12);
  EXPECT_LT(e->l1_change, 1e-13);
}

TEST(ComputeEntropy, ThreeStateChainMatchesAHandComputation) {
  // 0 -> 1; 1 -> 0 or 2 evenly; 2 -> 0. pi0 = pi1, pi2 = pi1 / 2, so
  // pi = (0.4, 0.4, 0.2) and only state 1 is uncertain: H = 0.4 ln 2.
  absl::StatusOr<MarkovChain> chain =
      MarkovChain::FromRows({{{1, 1.0}}, {{0, 0.5}, {2, 0.5}}, {{0, 1.0}}});
  ASSERT_TRUE(chain.ok()) << chain.status();
  absl::StatusOr<ChainEntropy> e = ComputeEntropy(*chain);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_NEAR(e->stationary[0], 0.4, 1e-13);
  EXPECT_NEAR(e->stationary[2], 0.2, 1e-13);
  EXPECT_NEAR(e->entropy_rate_nats, 0.4 * std::numbers::ln2, 1e-12);
}

TEST(ComputeEntropy, PeriodicChainConverges) {
  // Plain power iteration would oscillate on these; the lazy chain does not.
  // A deterministic 3-cycle (period 3):
  absl::StatusOr<MarkovChain> cycle =
      MarkovChain::FromRows({{{1, 1.0}}, {{2, 1.0}}, {{0, 1.0}}});
  ASSERT_TRUE(cycle.ok()) << cycle.status();
  absl::StatusOr<ChainEntropy> e = ComputeEntropy(*cycle);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->entropy_rate_nats, 0);
  EXPECT_NEAR(e->unigram_entropy_nats, std::log(3.0), 1e-12);
  // Period 2: 0 -> 1, 1 -> 0 w.p. 1/4 or 2 w.p. 3/4, 2 -> 1.
  absl::StatusOr<MarkovChain> bipartite =
      MarkovChain::FromRows({{{1, 1.0}}, {{0, 0.25}, {2, 0.75}}, {{1, 1.0}}});
  ASSERT_TRUE(bipartite.ok()) << bipartite.status();
  e = ComputeEntropy(*bipartite);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_NEAR(e->stationary[1], 0.5, 1e-13);
  EXPECT_NEAR(e->entropy_rate_nats, 0.5 * H2(0.25), 1e-12);
}

TEST(MarkovChain, RefusesBadRowsNamingTheRowAndRule) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Case {
    std::vector<std::vector<Transition>> rows;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{}, "chain has 0 states: must be in [1, 65536]"},
      {{{{0, 1.0}}, {}}, "row 1: has no successors"},
      {{{{2, 1.0}}, {{0, 1.0}}}, "row 0: successor 2: must be < 2"},
      {{{{1, 0.5}, {1, 0.5}}, {{0, 1.0}}},
       "row 0: successor 1 is listed twice"},
      {{{{1, 1.0}}, {{0, 0.9}}}, "row 1: probabilities sum to 0.9"},
      {{{{0, 1.5}, {1, -0.5}}, {{0, 1.0}}}, "row 0: P(1) = -0.5: must be > 0"},
      {{{{0, nan}, {1, 1.0}}, {{0, 1.0}}}, "row 0: P(0) = nan"},
      {{{{0, 1.0}}, {{0, 1.0}}}, "state 1 is not reachable from state 0"},
      {{{{1, 1.0}}, {{1, 1.0}}}, "state 0 is not reachable from state 1"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<MarkovChain> chain = MarkovChain::FromRows(c.rows);
    EXPECT_EQ(chain.status().code(), absl::StatusCode::kInvalidArgument)
        << c.error;
    EXPECT_THAT(chain.status().message(), HasSubstr(c.error));
  }
}

TEST(RandomZipfChain, DefaultIsLearnableButNotTrivial) {
  absl::StatusOr<MarkovChain> chain = RandomZipfChain({});
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->size(), 10000);
  EXPECT_EQ(chain->next().size(), 10000u * 16);
  absl::StatusOr<ChainEntropy> e = ComputeEntropy(*chain);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_GT(e->entropy_rate_nats, 2.0);
  EXPECT_LT(e->entropy_rate_nats, 4.0);
  // Context is worth several nats: a unigram model is far from E.
  EXPECT_GT(e->unigram_entropy_nats, e->entropy_rate_nats + 3);
  // Zipf-like: token 0 is the most frequent.
  EXPECT_EQ(std::max_element(e->stationary.begin(), e->stationary.end()) -
                e->stationary.begin(),
            0);
}

TEST(RandomZipfChain, EveryStateLeadsToTheNextId) {
  absl::StatusOr<MarkovChain> chain =
      RandomZipfChain({.vocab_size = 50, .successors = 4, .seed = 7});
  ASSERT_TRUE(chain.ok()) << chain.status();
  for (int i = 0; i < chain->size(); ++i) {
    auto row = chain->next().subspan(chain->row_start()[i], 4);
    EXPECT_TRUE(std::find(row.begin(), row.end(), (i + 1) % 50) != row.end())
        << "state " << i;
  }
}

TEST(RandomZipfChain, SameSeedSameChainOtherSeedOtherChain) {
  const ZipfChainOptions o{.vocab_size = 300, .successors = 8, .seed = 3};
  absl::StatusOr<MarkovChain> a = RandomZipfChain(o);
  absl::StatusOr<MarkovChain> b = RandomZipfChain(o);
  absl::StatusOr<MarkovChain> c =
      RandomZipfChain({.vocab_size = 300, .successors = 8, .seed = 4});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(std::ranges::equal(a->next(), b->next()));
  EXPECT_TRUE(std::ranges::equal(a->prob(), b->prob()));
  EXPECT_FALSE(std::ranges::equal(a->next(), c->next()));
}

TEST(RandomZipfChain, ExtremeOptionsBuildAndConverge) {
  for (const ZipfChainOptions& o :
       {ZipfChainOptions{.vocab_size = 2, .successors = 1},
        ZipfChainOptions{.vocab_size = 2, .successors = 2},
        ZipfChainOptions{.vocab_size = 300, .successors = 256, .zipf = 3},
        ZipfChainOptions{.concentration = 0.1},
        ZipfChainOptions{.successors = 1, .zipf = 0}}) {
    absl::StatusOr<MarkovChain> chain = RandomZipfChain(o);
    ASSERT_TRUE(chain.ok()) << chain.status();
    absl::StatusOr<ChainEntropy> e = ComputeEntropy(*chain);
    ASSERT_TRUE(e.ok()) << e.status() << " V=" << o.vocab_size
                        << " S=" << o.successors;
    EXPECT_GE(e->entropy_rate_nats, 0);
    EXPECT_LE(e->entropy_rate_nats, std::log(o.successors) + 1e-12);
  }
}

TEST(ComputeEntropy, RefusesAChainThatMixesTooSlowly) {
  // Two successors with peaked probabilities: nearly a random mapping, whose
  // cycles the stream leaves only rarely.
  absl::StatusOr<MarkovChain> chain = RandomZipfChain(
      {.vocab_size = 10000, .successors = 2, .concentration = 0.1});
  ASSERT_TRUE(chain.ok()) << chain.status();
  absl::StatusOr<ChainEntropy> e = ComputeEntropy(*chain);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(e.status().message(), HasSubstr("mixes too slowly"));
}

TEST(RandomZipfChain, RefusesBadOptionsNamingTheFlag) {
  struct Case {
    ZipfChainOptions options;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{.vocab_size = 1}, "--vocab-size = 1: must be in [2, 65535]"},
      {{.vocab_size = 65536}, "--vocab-size = 65536: must be in [2, 65535]"},
      {{.successors = 0}, "--successors = 0: must be in [1, 256]"},
      {{.successors = 257}, "--successors = 257: must be in [1, 256]"},
      {{.vocab_size = 10, .successors = 11},
       "--successors = 11: must be in [1, 10]"},
      {{.zipf = -0.5}, "--zipf = -0.5: must be in [0, 3]"},
      {{.zipf = std::numeric_limits<double>::quiet_NaN()}, "--zipf = nan"},
      {{.concentration = 0}, "--concentration = 0: must be in [0.1, 100]"},
      {{.concentration = 1000}, "--concentration = 1000"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<MarkovChain> chain = RandomZipfChain(c.options);
    EXPECT_EQ(chain.status().code(), absl::StatusCode::kInvalidArgument)
        << c.error;
    EXPECT_THAT(chain.status().message(), HasSubstr(c.error));
  }
}

}  // namespace
}  // namespace isoflop::data
