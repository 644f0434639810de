#include "data/synth.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/token_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

SynthOptions Small(const std::string& name, uint64_t seed) {
  return {.out_dir = (fs::path(::testing::TempDir()) / name).string(),
          .chain = {.vocab_size = 500, .successors = 8, .seed = seed},
          .train_tokens = 3'000'000,  // more than one 1 Mi-token chunk
          .val_tokens = 10'000};
}

TEST(Synth, WritesSplitsTheTrainerCanRead) {
  const SynthOptions o = Small("synth-read", 1);
  absl::StatusOr<SynthSummary> summary = Synth(o);
  ASSERT_TRUE(summary.ok()) << summary.status();
  for (const auto& [split, n] : {std::pair{"train.bin", o.train_tokens},
                                 std::pair{"val.bin", o.val_tokens}}) {
    absl::StatusOr<TokenFile> f =
        TokenFile::Open((fs::path(o.out_dir) / split).string());
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->vocab_size(), 500u);
    ASSERT_EQ(f->tokens().size(), static_cast<size_t>(n));
    EXPECT_EQ(f->tokens().FindIdAtLeast(500), f->size());
  }
  EXPECT_FALSE(fs::exists(fs::path(o.out_dir) / "train.bin.tmp"));
  const std::string meta = ReadFile(fs::path(o.out_dir) / "meta.json");
  EXPECT_THAT(meta, HasSubstr("\"vocab_size\": 500"));
  EXPECT_THAT(meta, HasSubstr("\"train_tokens\": 3000000"));
  EXPECT_THAT(meta, HasSubstr(absl::StrCat("\"entropy_rate_nats\": ")));
  EXPECT_GT(summary->entropy_rate_nats, 0);
  EXPECT_GT(summary->unigram_entropy_nats, summary->entropy_rate_nats);
}

TEST(Synth, SameSeedSameBytesOtherSeedOtherBytes) {
  const SynthOptions a = Small("synth-a", 11);
  const SynthOptions b = Small("synth-b", 11);
  const SynthOptions c = Small("synth-c", 12);
  for (const SynthOptions* o : {&a, &b, &c}) ASSERT_TRUE(Synth(*o).ok());
  for (const char* split : {"train.bin", "val.bin"}) {
    const std::string bytes_a = ReadFile(fs::path(a.out_dir) / split);
    EXPECT_EQ(bytes_a, ReadFile(fs::path(b.out_dir) / split)) << split;
    EXPECT_NE(bytes_a, ReadFile(fs::path(c.out_dir) / split)) << split;
  }
  // Train and val are different streams of the same chain.
  EXPECT_NE(ReadFile(fs::path(a.out_dir) / "train.bin").substr(64, 20000),
            ReadFile(fs::path(a.out_dir) / "val.bin").substr(64, 20000));
}

TEST(Synth, RefusesBadFlagsNamingTheFlag) {
  const std::string out = (fs::path(::testing::TempDir()) / "bad").string();
  const std::vector<std::pair<std::function<void(SynthOptions&)>, std::string>>
      cases = {
          {[](SynthOptions& o) { o.out_dir.clear(); }, "--out: required"},
          {[](SynthOptions& o) { o.train_tokens = 0; },
           "--train-tokens = 0: must be in [1, 1e12]"},
          {[](SynthOptions& o) { o.val_tokens = -5; },
           "--val-tokens = -5: must be in [1, 1e12]"},
          {[](SynthOptions& o) { o.chain.vocab_size = 70000; },
           "--vocab-size = 70000: must be in [2, 65535]"},
          {[](SynthOptions& o) { o.chain.successors = 300; },
           "--successors = 300: must be in [1, 256]"},
          {[](SynthOptions& o) { o.chain.zipf = 4; },
           "--zipf = 4: must be in [0, 3]"},
          {[](SynthOptions& o) { o.chain.concentration = 0.01; },
           "--concentration = 0.01: must be in [0.1, 100]"},
      };
  for (const auto& [set, error] : cases) {
    SynthOptions o{.out_dir = out};
    set(o);
    absl::StatusOr<SynthSummary> s = Synth(o);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << error;
    EXPECT_THAT(s.status().message(), HasSubstr(error));
  }
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace isoflop::data
