// The generators behind `isoflop-data synth`: splitmix64 to expand a seed and
// xoshiro256** (Blackman and Vigna) to draw. Written out here rather than taken
// from <random> so that a seed gives the same tokens with any standard library.
#ifndef ISOFLOP_DATA_RANDOM_H_
#define ISOFLOP_DATA_RANDOM_H_

#include <cstdint>

namespace isoflop::data {

// One step of splitmix64: advances `*x` and returns a well-mixed 64-bit value.
inline uint64_t SplitMix64(uint64_t* x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// xoshiro256**: 2^256 - 1 period, one 64-bit value per call. Not thread-safe:
// one generator per stream.
class Xoshiro256 {
 public:
  // The streams of one seed are independent: (seed, stream) is hashed into the
  // 256-bit state with splitmix64, which never yields the all-zero state.
  Xoshiro256(uint64_t seed, uint64_t stream) {
    uint64_t x = seed;
    uint64_t mixed_stream = stream;
    x ^= SplitMix64(&mixed_stream);
    for (uint64_t& word : s_) word = SplitMix64(&x);
  }

  uint64_t operator()() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in (0, 1]: never 0, so log() of it is finite.
  double UniformOpenClosed() {
    return static_cast<double>(((*this)() >> 11) + 1) * 0x1.0p-53;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace isoflop::data

#endif  // ISOFLOP_DATA_RANDOM_H_
