// token_width_bench (ctest label bench): the trainer's batch assembly
// (trainer/train.cc UploadBatch: random windows of context + 1 ids copied
// into an int64 batch) from a token file, three ways: the loop the trainer ran
// before uint32 token files (a std::span<const uint16_t> indexed per id), and
// TokenSpan::CopyTo over a uint16 and a uint32 file. Files are written to and
// mapped from a temporary directory, as the trainer maps them. Prints ns per
// token copied (best of --repeats, interleaved, in CPU time); asserts
// nothing.
//   token_width_bench [--tokens N] [--context T] [--batch B] [--batches K]
//                     [--repeats R]
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "common/token_file.h"

namespace {

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) +
         1e-9 * static_cast<double>(ts.tv_nsec);
}

// Window offsets as the trainer draws them: uniform in [0, n - t - 1].
std::vector<size_t> Offsets(size_t n, int64_t t, size_t count) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<size_t> off(0, n - static_cast<size_t>(t) - 2);
  std::vector<size_t> v(count);
  for (size_t& o : v) o = off(rng);
  return v;
}

// One pass over all windows; CPU seconds.
template <typename Copy>
double Pass(const std::vector<size_t>& offsets, int64_t t, int64_t batch,
            int64_t* checksum, Copy copy) {
  std::vector<int64_t> dst(static_cast<size_t>(batch * (t + 1)));
  const double t0 = CpuSeconds();
  for (size_t k = 0; k < offsets.size(); k += static_cast<size_t>(batch)) {
    for (int64_t j = 0; j < batch; ++j) {
      copy(offsets[k + static_cast<size_t>(j)], dst.data() + j * (t + 1));
    }
    *checksum += dst[k % dst.size()];
  }
  return CpuSeconds() - t0;
}

}  // namespace

int main(int argc, char** argv) {
  size_t tokens = 64'000'000;
  int64_t context = 1024, batch = 32, batches = 400;
  int repeats = 15;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--tokens") == 0) tokens = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--context") == 0)
      context = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--batch") == 0) batch = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--batches") == 0)
      batches = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--repeats") == 0)
      repeats = std::atoi(argv[i + 1]);
  }
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() /
                       ("token_width_bench." + std::to_string(getpid()));
  fs::create_directories(dir);
  std::vector<uint32_t> ids(tokens);
  std::mt19937_64 rng(2);
  for (uint32_t& id : ids) id = static_cast<uint32_t>(rng() % 50000);
  const std::string narrow = (dir / "narrow.bin").string();
  const std::string wide = (dir / "wide.bin").string();
  if (!isoflop::WriteTokenFile(narrow, 50000, ids).ok() ||
      !isoflop::WriteTokenFile(wide, 100000, ids).ok()) {
    std::fprintf(stderr, "cannot write %s\n", dir.c_str());
    return 1;
  }
  ids = {};
  auto n16 = isoflop::TokenFile::Open(narrow);
  auto w32 = isoflop::TokenFile::Open(wide);
  if (!n16.ok() || !w32.ok()) return 1;
  const auto offsets =
      Offsets(tokens, context, static_cast<size_t>(batch * batches));
  // Touch both mappings once so page faults are not timed.
  int64_t checksum = 0;
  for (size_t i = 0; i < tokens; i += 1024)
    checksum += n16->tokens()[i] + w32->tokens()[i];
  const auto t1 = static_cast<size_t>(context + 1);
  const std::span<const uint16_t> before = n16->tokens().Visit([](auto s) {
    if constexpr (std::is_same_v<decltype(s), std::span<const uint16_t>>) {
      return s;
    } else {
      return std::span<const uint16_t>();
    }
  });
  const isoflop::TokenSpan s16 = n16->tokens(), s32 = w32->tokens();
  auto before_copy = [&](size_t off, int64_t* dst) {
    for (size_t i = 0; i < t1; ++i) dst[i] = before[off + i];
  };
  auto copy16 = [&](size_t off, int64_t* dst) { s16.CopyTo(off, t1, dst); };
  auto copy32 = [&](size_t off, int64_t* dst) { s32.CopyTo(off, t1, dst); };
  // The three interleaved, best of --repeats each: a load that drifts over
  // the run touches all three alike.
  double best[3] = {1e30, 1e30, 1e30};
  for (int r = 0; r < repeats; ++r) {
    best[0] = std::min(best[0],
                       Pass(offsets, context, batch, &checksum, before_copy));
    best[1] =
        std::min(best[1], Pass(offsets, context, batch, &checksum, copy16));
    best[2] =
        std::min(best[2], Pass(offsets, context, batch, &checksum, copy32));
  }
  const double per_token = 1e9 / static_cast<double>(offsets.size() * t1);
  const double old_loop = best[0] * per_token;
  const double new16 = best[1] * per_token;
  const double new32 = best[2] * per_token;
  std::printf(
      "{\"tokens\": %zu, \"context\": %lld, \"batch\": %lld, \"batches\": "
      "%lld, \"ns_per_token_uint16_before\": %.4f, "
      "\"ns_per_token_uint16\": %.4f, \"ns_per_token_uint32\": %.4f, "
      "\"checksum\": %lld}\n",
      tokens, static_cast<long long>(context), static_cast<long long>(batch),
      static_cast<long long>(batches), old_loop, new16, new32,
      static_cast<long long>(checksum));
  fs::remove_all(dir);
  return 0;
}
