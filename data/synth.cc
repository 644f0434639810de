#include "data/synth.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/token_file.h"
#include "data/chain_sampler.h"

namespace isoflop::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxTokens = 1'000'000'000'000;
constexpr size_t kChunkTokens = size_t{1} << 20;  // 2 MiB per write

absl::Status Validate(const SynthOptions& o) {
  if (o.out_dir.empty()) return absl::InvalidArgumentError("--out: required");
  for (const auto& [flag, n] : {std::pair{"--train-tokens", o.train_tokens},
                                std::pair{"--val-tokens", o.val_tokens}}) {
    if (n < 1 || n > kMaxTokens) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " = ", n, ": must be in [1, 1e12]"));
    }
  }
  return absl::OkStatus();
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) +
         1e-9 * static_cast<double>(ts.tv_nsec);
}

// Writes a token file (common/token_file.h), `n_tokens` of `stream` in
// chunks, through a temporary file renamed at the end.
// Adds the CPU seconds spent sampling to `*sample_s`: a speed per core that
// other processes on the machine do not distort.
absl::Status WriteStream(const std::string& path, uint32_t vocab_size,
                         int64_t n_tokens, TokenStream& stream,
                         double* sample_s) {
  ASSIGN_OR_RETURN(TokenFileWriter writer,
                   TokenFileWriter::Create(path, vocab_size));
  std::vector<uint16_t> chunk(
      std::min<uint64_t>(kChunkTokens, static_cast<uint64_t>(n_tokens)));
  for (auto left = static_cast<uint64_t>(n_tokens); left > 0;) {
    const size_t n = std::min<uint64_t>(left, chunk.size());
    const double t0 = ThreadCpuSeconds();
    stream.Fill({chunk.data(), n});
    *sample_s += ThreadCpuSeconds() - t0;
    RETURN_IF_ERROR(writer.Append(std::span<const uint16_t>(chunk.data(), n)));
    left -= n;
  }
  return writer.Finish();
}

}  // namespace

absl::StatusOr<SynthSummary> Synth(const SynthOptions& o) {
  RETURN_IF_ERROR(Validate(o));
  const auto t0 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(const MarkovChain chain, RandomZipfChain(o.chain));
  ASSIGN_OR_RETURN(const ChainEntropy entropy, ComputeEntropy(chain));
  const ChainSampler sampler(chain, entropy.stationary);
  const fs::path dir(o.out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("--out ", o.out_dir, ": cannot create: ", ec.message()));
  }
  const auto vocab_size = static_cast<uint32_t>(o.chain.vocab_size);
  double sample_s = 0;
  TokenStream train(sampler, o.chain.seed, /*stream=*/1);
  RETURN_IF_ERROR(WriteStream((dir / "train.bin").string(), vocab_size,
                              o.train_tokens, train, &sample_s));
  TokenStream val(sampler, o.chain.seed, /*stream=*/2);
  RETURN_IF_ERROR(WriteStream((dir / "val.bin").string(), vocab_size,
                              o.val_tokens, val, &sample_s));
  SynthSummary summary{
      .entropy_rate_nats = entropy.entropy_rate_nats,
      .unigram_entropy_nats = entropy.unigram_entropy_nats,
      .stationary_iterations = entropy.iterations,
      .tokens_per_s =
          sample_s > 0
              ? static_cast<double>(o.train_tokens + o.val_tokens) / sample_s
              : 0};
  const double bits = 1 / std::numbers::ln2;
  std::ofstream meta((dir / "meta.json").string());
  meta << absl::StrFormat(
      "{\"vocab_size\": %d, \"train_tokens\": %d, \"val_tokens\": %d, "
      "\"source\": \"synth-markov1\", \"tokenizer\": \"none\", \"seed\": %d, "
      "\"successors\": %d, \"zipf\": %.17g, \"concentration\": %.17g, "
      "\"entropy_rate_nats\": %.17g, \"entropy_rate_bits\": %.17g, "
      "\"unigram_entropy_nats\": %.17g, \"unigram_entropy_bits\": %.17g, "
      "\"stationary_iterations\": %d, \"stationary_l1_change\": %.3g, "
      "\"sample_tokens_per_s\": %.4g}\n",
      o.chain.vocab_size, o.train_tokens, o.val_tokens, o.chain.seed,
      o.chain.successors, o.chain.zipf, o.chain.concentration,
      entropy.entropy_rate_nats, entropy.entropy_rate_nats * bits,
      entropy.unigram_entropy_nats, entropy.unigram_entropy_nats * bits,
      entropy.iterations, entropy.l1_change, summary.tokens_per_s);
  meta.close();
  if (!meta) {
    return absl::InternalError(
        absl::StrCat((dir / "meta.json").string(), ": write failed"));
  }
  const double total_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  std::fprintf(
      stderr,
      "isoflop-data: %s: order-1 Markov chain, vocab %d, %d successors, "
      "zipf %g, concentration %g, seed %llu\n"
      "  entropy rate %.6f nats/token (%.6f bits/token) = the irreducible "
      "loss E; unigram entropy %.6f nats/token (%.6f bits/token); "
      "stationary distribution in %d iterations\n"
      "  %lld train + %lld val tokens, sampled at %.1fM tokens/s on one "
      "core (CPU time), %.1f s in all\n",
      o.out_dir.c_str(), o.chain.vocab_size, o.chain.successors, o.chain.zipf,
      o.chain.concentration, static_cast<unsigned long long>(o.chain.seed),
      entropy.entropy_rate_nats, entropy.entropy_rate_nats * bits,
      entropy.unigram_entropy_nats, entropy.unigram_entropy_nats * bits,
      entropy.iterations, static_cast<long long>(o.train_tokens),
      static_cast<long long>(o.val_tokens), summary.tokens_per_s / 1e6,
      total_s);
  return summary;
}

}  // namespace isoflop::data
