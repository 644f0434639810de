#include "data/prepare.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/token_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(Prepare, TrainsATokenizerAndWritesLoadableSplits) {
  const fs::path dir = fs::path(::testing::TempDir()) / "prep";
  // Documents are the unit of the split: the text comes in 20 files.
  const fs::path text = fs::path(::testing::TempDir()) / "text";
  fs::create_directories(text);
  for (int f = 0; f < 20; ++f) {
    std::ofstream out(text / absl::StrCat("part", f, ".txt"));
    for (int i = f * 150; i < (f + 1) * 150; ++i) {
      out << "the quick brown fox " << i % 37
          << " jumps over the lazy dog number " << i % 11 << "\n";
    }
  }
  PrepareOptions o{
      .out_dir = dir.string(), .inputs = {text.string()}, .vocab_size = 128};
  ASSERT_TRUE(Prepare(o).ok());
  for (const char* split : {"train.bin", "val.bin"}) {
    absl::StatusOr<TokenFile> f = TokenFile::Open((dir / split).string());
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->vocab_size(), 128u);
    EXPECT_GT(f->tokens().size(), 1000u);
  }
  EXPECT_TRUE(fs::exists(dir / "tokenizer.model"));
  EXPECT_TRUE(fs::exists(dir / "meta.json"));
}

TEST(Prepare, DefaultCorpusIsEveryVerseOfTheKjv) {
  const fs::path dir = fs::path(::testing::TempDir()) / "kjv";
  ASSERT_TRUE(
      Prepare({.out_dir = dir.string(), .inputs = {}, .vocab_size = 256}).ok());
  std::ifstream meta(dir / "meta.json");
  std::string json((std::istreambuf_iterator<char>(meta)), {});
  EXPECT_THAT(json, HasSubstr("\"lines\": 31102"));  // headings are not verses
  absl::StatusOr<TokenFile> val = TokenFile::Open((dir / "val.bin").string());
  ASSERT_TRUE(val.ok()) << val.status();
  EXPECT_GT(val->tokens().size(), 50000u);
}

TEST(Prepare, RefusesBadOptionsNamingTheFlag) {
  PrepareOptions o{
      .out_dir = "/tmp/x", .inputs = {"/nonexistent.txt"}, .vocab_size = 10};
  EXPECT_THAT(Prepare(o).message(),
              HasSubstr("--vocab-size = 10: must be in [64, 65535]"));
  o.vocab_size = 128;
  o.val_fraction = 0.7;
  EXPECT_THAT(Prepare(o).message(), HasSubstr("--val-fraction = 0.7"));
  o.val_fraction = 0.05;
  EXPECT_EQ(Prepare(o).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace isoflop::data
