#include "data/chain_sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace isoflop::data {

ChainSampler::ChainSampler(const MarkovChain& chain,
                           std::span<const double> stationary) {
  const std::span<const uint32_t> row_start = chain.row_start();
  rows_.reserve(chain.size() + 1);
  columns_.reserve(chain.next().size() + stationary.size());
  for (int i = 0; i < chain.size(); ++i) {
    const uint32_t begin = row_start[i];
    const uint32_t count = row_start[i + 1] - begin;
    AddTable(chain.next().subspan(begin, count),
             chain.prob().subspan(begin, count));
  }
  std::vector<uint16_t> all(stationary.size());
  std::iota(all.begin(), all.end(), 0);
  AddTable(all, stationary);
  const uint32_t first = rows_.front().count;
  const bool uniform =
      std::all_of(rows_.begin(), rows_.end() - 1,
                  [first](const Row& r) { return r.count == first; });
  uniform_count_ = uniform ? first : 0;
}

// Vose's alias method: column k keeps its token with probability q_k and
// hands over to its alias otherwise; q_k is stored as a 32-bit threshold.
void ChainSampler::AddTable(std::span<const uint16_t> tokens,
                            std::span<const double> prob) {
  const size_t n = tokens.size();
  const double sum = std::accumulate(prob.begin(), prob.end(), 0.0);
  std::vector<double> scaled(n);
  std::vector<uint32_t> small, large;
  for (size_t k = 0; k < n; ++k) {
    scaled[k] = prob[k] * static_cast<double>(n) / sum;
    (scaled[k] < 1 ? small : large).push_back(static_cast<uint32_t>(k));
  }
  const auto start = static_cast<uint32_t>(columns_.size());
  rows_.push_back({start, static_cast<uint32_t>(n)});
  for (size_t k = 0; k < n; ++k) {
    columns_.push_back(
        {std::numeric_limits<uint32_t>::max(), tokens[k], tokens[k]});
  }
  while (!small.empty() && !large.empty()) {
    const uint32_t s = small.back();
    small.pop_back();
    const uint32_t l = large.back();
    large.pop_back();
    const double threshold = std::round(scaled[s] * 0x1.0p32);
    columns_[start + s].keep_below = threshold >= 0x1.0p32
                                         ? std::numeric_limits<uint32_t>::max()
                                         : static_cast<uint32_t>(threshold);
    columns_[start + s].alias = tokens[l];
    scaled[l] = (scaled[l] + scaled[s]) - 1.0;
    (scaled[l] < 1 ? small : large).push_back(l);
  }
  // Whatever is left has q = 1 up to rounding: it keeps its own token.
}

void TokenStream::Fill(std::span<uint16_t> out) {
  const ChainSampler::Row* rows = sampler_->rows_.data();
  const ChainSampler::Column* columns = sampler_->columns_.data();
  const auto start_state = static_cast<uint32_t>(sampler_->rows_.size() - 1);
  auto step = [&](uint64_t r, uint32_t column) {
    const ChainSampler::Column c = columns[column];
    return static_cast<uint32_t>(r) < c.keep_below ? c.token : c.alias;
  };
  auto pick = [](uint64_t r, uint32_t count) {  // column in [0, count)
    return static_cast<uint32_t>(((r >> 32) * count) >> 32);
  };
  size_t t = 0;
  uint32_t state = state_;
  if (state == start_state && !out.empty()) {
    const uint64_t r = rng_();
    state = step(r, rows[state].start + pick(r, rows[state].count));
    out[t++] = static_cast<uint16_t>(state);
  }
  if (const uint32_t count = sampler_->uniform_count_; count != 0) {
    for (; t < out.size(); ++t) {
      const uint64_t r = rng_();
      state = step(r, state * count + pick(r, count));
      out[t] = static_cast<uint16_t>(state);
    }
  } else {
    for (; t < out.size(); ++t) {
      const uint64_t r = rng_();
      state = step(r, rows[state].start + pick(r, rows[state].count));
      out[t] = static_cast<uint16_t>(state);
    }
  }
  state_ = state;
}

TokenStream::TokenStream(const ChainSampler& sampler, uint64_t seed,
                         uint64_t stream)
    : sampler_(&sampler),
      rng_(seed, stream),
      state_(static_cast<uint32_t>(sampler.rows_.size() - 1)) {}

}  // namespace isoflop::data
