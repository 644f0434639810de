#include "data/encode.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/token_file.h"
#include "data/prepare.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A 128-piece dataset from repetitive text, once per test binary.
const fs::path& Dataset() {
  static const fs::path dir = [] {
    const fs::path d = fs::path(::testing::TempDir()) / "encode-ds";
    // Ten files: prepare splits by document and needs at least two.
    const fs::path text = fs::path(::testing::TempDir()) / "enc";
    fs::create_directories(text);
    for (int f = 0; f < 10; ++f) {
      std::ofstream out(text / absl::StrCat("part", f, ".txt"));
      for (int i = f * 200; i < (f + 1) * 200; ++i) {
        out << "the quick brown fox " << i % 37 << " jumps over the lazy dog\n";
      }
    }
    EXPECT_TRUE(Prepare({.out_dir = d.string(),
                         .inputs = {text.string()},
                         .vocab_size = 128})
                    .ok());
    return d;
  }();
  return dir;
}

TEST(Encode, PromptIdsArePrintedWithoutEndOfSentence) {
  ::testing::internal::CaptureStdout();
  ASSERT_TRUE(
      Encode({.dataset = Dataset().string(), .text = "the quick fox"}).ok());
  const std::string out = ::testing::internal::GetCapturedStdout();
  std::vector<int> ids;
  for (absl::string_view f :
       absl::StrSplit(absl::StripTrailingAsciiWhitespace(out), ',')) {
    int id = -1;
    ASSERT_TRUE(absl::SimpleAtoi(f, &id)) << out;
    ASSERT_GE(id, 3);  // never <unk> 0, <s> 1 or </s> 2 for known words
    ids.push_back(id);
  }
  EXPECT_GE(ids.size(), 2u);
}

TEST(Encode, TextFileBecomesATokenFileWithItsByteCount) {
  const fs::path in = fs::path(::testing::TempDir()) / "held-out.txt";
  std::ofstream(in) << "the lazy dog\n\nthe quick brown fox 3\n";
  const fs::path out = fs::path(::testing::TempDir()) / "held-out.bin";
  ::testing::internal::CaptureStdout();
  ASSERT_TRUE(Encode({.dataset = Dataset().string(),
                      .input = in.string(),
                      .out = out.string()})
                  .ok());
  const std::string json = ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(json, HasSubstr("\"lines\": 2"));  // the empty line is skipped
  EXPECT_THAT(json, HasSubstr("\"bytes\": 36"));
  absl::StatusOr<TokenFile> f = TokenFile::Open(out.string());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->vocab_size(), 128u);
  EXPECT_THAT(json,
              HasSubstr(absl::StrCat("\"tokens\": ", f->tokens().size())));
  EXPECT_EQ(f->tokens()[f->size() - 1],
            2u);  // each line ends with </s>, as prepare
}

TEST(Encode, RefusesBadFlagsNamingThem) {
  EXPECT_THAT(Encode({.dataset = "", .text = "x"}).message(),
              HasSubstr("--dataset: required"));
  EXPECT_THAT(Encode({.dataset = Dataset().string()}).message(),
              HasSubstr("exactly one of --text"));
  EXPECT_THAT(Encode({.dataset = Dataset().string(), .input = "/nonexistent"})
                  .message(),
              HasSubstr("--out: required"));
  EXPECT_THAT(Encode({.dataset = Dataset().string(),
                      .input = "/nonexistent",
                      .out = "/tmp/x.bin"})
                  .message(),
              HasSubstr("--input = /nonexistent: cannot open"));
  const absl::Status no_tokenizer =
      Encode({.dataset = ::testing::TempDir(), .text = "x"});
  EXPECT_EQ(no_tokenizer.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(no_tokenizer.message(), HasSubstr("no tokenizer.model"));
}

}  // namespace
}  // namespace isoflop::data
