#include "data/markov_chain.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numbers>
#include <utility>

#include "absl/strings/str_cat.h"
#include "data/random.h"

namespace isoflop::data {
namespace {

constexpr int kMaxStates = 65536;  // ids are uint16
constexpr double kConvergedL1 = 1e-13;
constexpr double kTailL1 = 1e-15;
constexpr size_t kMaxIterations = 100000;
constexpr size_t kMinIterations = 200;
constexpr size_t kMaxEdgeUpdates = 100'000'000;

// States reachable from state 0 along the edges (reverse = false) or against
// them (reverse = true).
std::vector<bool> ReachableFromZero(std::span<const uint32_t> row_start,
                                    std::span<const uint16_t> next,
                                    bool reverse) {
  const size_t n = row_start.size() - 1;
  std::vector<std::vector<uint32_t>> into;
  if (reverse) {
    into.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      for (uint32_t k = row_start[i]; k < row_start[i + 1]; ++k)
        into[next[k]].push_back(i);
    }
  }
  std::vector<bool> seen(n, false);
  std::vector<uint32_t> todo = {0};
  seen[0] = true;
  while (!todo.empty()) {
    const uint32_t i = todo.back();
    todo.pop_back();
    auto visit = [&](uint32_t j) {
      if (!seen[j]) {
        seen[j] = true;
        todo.push_back(j);
      }
    };
    if (reverse) {
      for (uint32_t j : into[i]) visit(j);
    } else {
      for (uint32_t k = row_start[i]; k < row_start[i + 1]; ++k) visit(next[k]);
    }
  }
  return seen;
}

// Sampling without replacement in proportion to integer weights: a Fenwick
// tree of the weights, from which chosen items are removed and then put back.
// Integers keep removal and restoration exact.
class FenwickSampler {
 public:
  explicit FenwickSampler(const std::vector<uint64_t>& weights)
      : tree_(weights.size() + 1, 0), top_bit_(std::bit_floor(weights.size())) {
    for (size_t i = 1; i < tree_.size(); ++i) {
      tree_[i] += weights[i - 1];
      const size_t parent = i + (i & (~i + 1));
      if (parent < tree_.size()) tree_[parent] += tree_[i];
    }
    for (uint64_t w : weights) total_ += w;
  }

  // Adds `delta` (mod 2^64, so a negated weight subtracts) to item i.
  void Add(size_t i, uint64_t delta) {
    total_ += delta;
    for (size_t j = i + 1; j < tree_.size(); j += j & (~j + 1))
      tree_[j] += delta;
  }

  // The item whose weight interval holds `target` (< total()).
  size_t Find(uint64_t target) const {
    size_t pos = 0;
    for (size_t step = top_bit_; step != 0; step >>= 1) {
      if (pos + step < tree_.size() && tree_[pos + step] <= target) {
        pos += step;
        target -= tree_[pos];
      }
    }
    return pos;
  }

  uint64_t total() const { return total_; }

 private:
  std::vector<uint64_t> tree_;
  size_t top_bit_;
  uint64_t total_ = 0;
};

double Normal(Xoshiro256& rng) {  // Box-Muller, one of the pair
  const double u1 = rng.UniformOpenClosed();
  const double u2 = rng.UniformOpenClosed();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
}

// Gamma(alpha, 1) by Marsaglia and Tsang (2000); alpha < 1 by boosting.
double Gamma(double alpha, Xoshiro256& rng) {
  if (alpha < 1) {
    return Gamma(alpha + 1, rng) *
           std::pow(rng.UniformOpenClosed(), 1.0 / alpha);
  }
  const double d = alpha - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    const double x = Normal(rng);
    double v = 1.0 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    const double u = rng.UniformOpenClosed();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

absl::Status ValidateZipfChainOptions(const ZipfChainOptions& o) {
  if (o.vocab_size < 2 || o.vocab_size > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--vocab-size = ", o.vocab_size,
                     ": must be in [2, 65535] (uint16 ids)"));
  }
  const int max_successors = std::min(256, o.vocab_size);
  if (o.successors < 1 || o.successors > max_successors) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--successors = ", o.successors, ": must be in [1, ", max_successors,
        "] (at most 256 and at most --vocab-size)"));
  }
  if (!(o.zipf >= 0 && o.zipf <= 3)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--zipf = ", o.zipf, ": must be in [0, 3]"));
  }
  if (!(o.concentration >= 0.1 && o.concentration <= 100)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--concentration = ", o.concentration, ": must be in [0.1, 100]"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MarkovChain> MarkovChain::FromRows(
    const std::vector<std::vector<Transition>>& rows) {
  if (rows.empty() || rows.size() > kMaxStates) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chain has ", rows.size(), " states: must be in [1, 65536]"));
  }
  std::vector<uint32_t> row_start = {0};
  std::vector<uint16_t> next;
  std::vector<double> prob;
  for (size_t i = 0; i < rows.size(); ++i) {
    for (const Transition& t : rows[i]) {
      if (t.next >= rows.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("row ", i, ": successor ", t.next, ": must be < ",
                         rows.size(), " (the number of states)"));
      }
      next.push_back(static_cast<uint16_t>(t.next));
      prob.push_back(t.prob);
    }
    row_start.push_back(static_cast<uint32_t>(next.size()));
  }
  return FromCompressedRows(std::move(row_start), std::move(next),
                            std::move(prob));
}

absl::StatusOr<MarkovChain> MarkovChain::FromCompressedRows(
    std::vector<uint32_t> row_start, std::vector<uint16_t> next,
    std::vector<double> prob) {
  if (row_start.size() < 2 || row_start.size() > kMaxStates + 1 ||
      row_start.front() != 0 || row_start.back() != next.size() ||
      next.size() != prob.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "compressed rows: row_start has ", row_start.size(),
        " entries (must be 2..65537, first 0, last the number of edges), ",
        next.size(), " successors, ", prob.size(), " probabilities"));
  }
  const size_t n = row_start.size() - 1;
  std::vector<int64_t> last_row(n, -1);  // duplicate detection
  for (size_t i = 0; i < n; ++i) {
    if (row_start[i + 1] <= row_start[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat("row ", i, ": has no successors: must have >= 1"));
    }
    double sum = 0;
    for (uint32_t k = row_start[i]; k < row_start[i + 1]; ++k) {
      if (next[k] >= n) {
        return absl::InvalidArgumentError(absl::StrCat(
            "row ", i, ": successor ", next[k], ": must be < ", n));
      }
      if (last_row[next[k]] == static_cast<int64_t>(i)) {
        return absl::InvalidArgumentError(
            absl::StrCat("row ", i, ": successor ", next[k],
                         " is listed twice: successors must be distinct"));
      }
      last_row[next[k]] = static_cast<int64_t>(i);
      if (!(prob[k] > 0 && std::isfinite(prob[k]))) {
        return absl::InvalidArgumentError(
            absl::StrCat("row ", i, ": P(", next[k], ") = ", prob[k],
                         ": must be > 0 and finite"));
      }
      sum += prob[k];
    }
    if (std::abs(sum - 1) > 1e-9) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row ", i, ": probabilities sum to ", sum, ": must sum to 1"));
    }
    for (uint32_t k = row_start[i]; k < row_start[i + 1]; ++k) prob[k] /= sum;
  }
  for (bool reverse : {false, true}) {
    const std::vector<bool> seen = ReachableFromZero(row_start, next, reverse);
    const auto missing = std::find(seen.begin(), seen.end(), false);
    if (missing != seen.end()) {
      const auto state = missing - seen.begin();
      return absl::InvalidArgumentError(absl::StrCat(
          reverse ? "state 0 is not reachable from state " : "state ", state,
          reverse ? "" : " is not reachable from state 0",
          ": the chain must be irreducible"));
    }
  }
  MarkovChain chain;
  chain.row_start_ = std::move(row_start);
  chain.next_ = std::move(next);
  chain.prob_ = std::move(prob);
  return chain;
}

absl::StatusOr<ChainEntropy> ComputeEntropy(const MarkovChain& chain) {
  const int n = chain.size();
  const std::span<const uint32_t> row_start = chain.row_start();
  const std::span<const uint16_t> next = chain.next();
  const std::span<const double> prob = chain.prob();
  // Work budget: about 1e8 edge updates (well under a second).
  const int max_iterations = static_cast<int>(std::clamp<size_t>(
      kMaxEdgeUpdates / (next.size() + n), kMinIterations, kMaxIterations));
  ChainEntropy result;
  std::vector<double> pi(n, 1.0 / n);
  std::vector<double> pi_next(n);
  double previous_change = std::numeric_limits<double>::infinity();
  for (result.iterations = 1;; ++result.iterations) {
    std::fill(pi_next.begin(), pi_next.end(), 0.0);
    for (int i = 0; i < n; ++i) {
      const double half = 0.5 * pi[i];
      pi_next[i] += half;
      for (uint32_t k = row_start[i]; k < row_start[i + 1]; ++k)
        pi_next[next[k]] += half * prob[k];
    }
    double sum = 0;
    for (double p : pi_next) sum += p;
    result.l1_change = 0;
    for (int i = 0; i < n; ++i) {
      pi_next[i] /= sum;
      result.l1_change += std::abs(pi_next[i] - pi[i]);
    }
    pi.swap(pi_next);
    // Converging geometrically by rho per step, pi is still about
    // change * rho / (1 - rho) away from the limit; past 1e-13, iterate on
    // until that is 1e-15 or round-off stops the changes from shrinking.
    const double rho = result.l1_change / previous_change;
    previous_change = result.l1_change;
    if (result.l1_change < kConvergedL1 &&
        (rho >= 1 || result.l1_change * rho < kTailL1 * (1 - rho))) {
      break;
    }
    if (result.iterations == max_iterations) {
      return absl::FailedPreconditionError(absl::StrCat(
          "stationary distribution: L1 change ", result.l1_change, " after ",
          max_iterations, " power iterations (must fall below ", kConvergedL1,
          "): the chain mixes too slowly; more --successors or a larger "
          "--concentration mix faster"));
    }
  }
  for (int i = 0; i < n; ++i) {
    double row_entropy = 0;
    for (uint32_t k = row_start[i]; k < row_start[i + 1]; ++k)
      row_entropy -= prob[k] * std::log(prob[k]);
    result.entropy_rate_nats += pi[i] * row_entropy;
    if (pi[i] > 0) result.unigram_entropy_nats -= pi[i] * std::log(pi[i]);
  }
  result.stationary = std::move(pi);
  return result;
}

absl::StatusOr<MarkovChain> RandomZipfChain(const ZipfChainOptions& o) {
  if (absl::Status s = ValidateZipfChainOptions(o); !s.ok()) return s;
  const auto n = static_cast<uint32_t>(o.vocab_size);
  const auto s = static_cast<uint32_t>(o.successors);
  // Zipf weights as integers: 2^31 (j + 1)^-zipf, at least 1, so the total
  // (< 2^47) is far below 2^64 and a 64-bit draw modulo it is even to 2^-17.
  std::vector<uint64_t> weights(n);
  for (uint32_t j = 0; j < n; ++j) {
    weights[j] = std::max<uint64_t>(
        1, std::llround(0x1.0p31 * std::pow(j + 1.0, -o.zipf)));
  }
  FenwickSampler zipf(weights);
  Xoshiro256 rng(o.seed, /*stream=*/0);
  std::vector<uint32_t> row_start = {0};
  std::vector<uint16_t> next;
  std::vector<double> prob;
  next.reserve(size_t{n} * s);
  prob.reserve(size_t{n} * s);
  std::vector<uint32_t> chosen;
  for (uint32_t i = 0; i < n; ++i) {
    chosen = {(i + 1) % n};
    if (i == 0 && s >= 2) chosen.push_back(0);
    for (uint32_t c : chosen) zipf.Add(c, ~weights[c] + 1);
    while (chosen.size() < s) {
      const auto j = static_cast<uint32_t>(zipf.Find(rng() % zipf.total()));
      chosen.push_back(j);
      zipf.Add(j, ~weights[j] + 1);
    }
    for (uint32_t c : chosen) zipf.Add(c, weights[c]);
    std::sort(chosen.begin(), chosen.end());
    double sum = 0;
    for (uint32_t c : chosen) {
      next.push_back(static_cast<uint16_t>(c));
      prob.push_back(Gamma(o.concentration, rng));
      sum += prob.back();
    }
    for (size_t k = prob.size() - chosen.size(); k < prob.size(); ++k)
      prob[k] /= sum;
    row_start.push_back(static_cast<uint32_t>(next.size()));
  }
  return MarkovChain::FromCompressedRows(std::move(row_start), std::move(next),
                                         std::move(prob));
}

}  // namespace isoflop::data
