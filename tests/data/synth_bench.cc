// synth_bench (ctest label bench): tokens/s of `isoflop-data synth`'s sampler
// on one core (per CPU second, so a busy machine distorts it less), against the
// bare xoshiro256** generator it draws from (the ceiling: one draw per token).
// Prints figures; asserts nothing about time.
//   synth_bench [--tokens N] [--vocab-size V] [--successors S] [--zipf Z]
//               [--concentration A]
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "data/chain_sampler.h"
#include "data/markov_chain.h"
#include "data/random.h"

namespace {

using isoflop::data::ChainSampler;
using isoflop::data::TokenStream;

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) +
         1e-9 * static_cast<double>(ts.tv_nsec);
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t tokens = 200'000'000;
  isoflop::data::ZipfChainOptions o;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--tokens") == 0) {
      tokens = std::atoll(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--vocab-size") == 0) {
      o.vocab_size = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--successors") == 0) {
      o.successors = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--zipf") == 0) {
      o.zipf = std::atof(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--concentration") == 0) {
      o.concentration = std::atof(argv[i + 1]);
    }
  }
  auto t0 = std::chrono::steady_clock::now();
  auto chain = isoflop::data::RandomZipfChain(o);
  if (!chain.ok()) {
    std::fprintf(stderr, "%s\n", std::string(chain.status().message()).c_str());
    return 2;
  }
  const double build_s = Seconds(t0);
  t0 = std::chrono::steady_clock::now();
  auto entropy = isoflop::data::ComputeEntropy(*chain);
  if (!entropy.ok()) {
    std::fprintf(stderr, "%s\n",
                 std::string(entropy.status().message()).c_str());
    return 1;
  }
  const double entropy_s = Seconds(t0);
  const ChainSampler sampler(*chain, entropy->stationary);
  std::vector<uint16_t> chunk(size_t{1} << 20);
  TokenStream stream(sampler, 1, 1);
  uint64_t checksum = 0;
  t0 = std::chrono::steady_clock::now();
  double cpu0 = CpuSeconds();
  for (int64_t done = 0; done < tokens; done += chunk.size()) {
    stream.Fill(chunk);
    checksum += chunk[done % chunk.size()];
  }
  const double sample_s = Seconds(t0);
  const double sample_cpu_s = CpuSeconds() - cpu0;
  isoflop::data::Xoshiro256 rng(1, 1);
  cpu0 = CpuSeconds();
  for (int64_t done = 0; done < tokens; done += chunk.size()) {
    for (uint16_t& t : chunk) t = static_cast<uint16_t>(rng());
    checksum += chunk[done % chunk.size()];
  }
  const double rng_cpu_s = CpuSeconds() - cpu0;
  const double n = static_cast<double>(tokens);
  std::printf(
      "synth_bench: vocab %d, %d successors, zipf %g, concentration %g: "
      "entropy rate %.6f nats/token, unigram %.6f\n"
      "  chain %.3f s, stationary distribution %.3f s (%d iterations)\n"
      "  sampler   %.1fM tokens/s per CPU second (%.1fM per wall second)\n"
      "  xoshiro   %.1fM draws/s per CPU second (baseline)\n"
      "  ratio     %.2f of the generator alone (checksum %llu)\n",
      o.vocab_size, o.successors, o.zipf, o.concentration,
      entropy->entropy_rate_nats, entropy->unigram_entropy_nats, build_s,
      entropy_s, entropy->iterations, n / sample_cpu_s / 1e6,
      n / sample_s / 1e6, n / rng_cpu_s / 1e6, rng_cpu_s / sample_cpu_s,
      static_cast<unsigned long long>(checksum));
  return 0;
}
