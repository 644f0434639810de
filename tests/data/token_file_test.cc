#include "common/token_file.h"

#include <cstdio>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/", name);
}

TEST(TokenFile, RoundTrips) {
  const std::vector<uint16_t> tokens = {0, 1, 511, 7, 300};
  ASSERT_TRUE(WriteTokenFile(TempPath("rt.bin"), 512, tokens).ok());
  absl::StatusOr<TokenFile> f = TokenFile::Open(TempPath("rt.bin"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->vocab_size(), 512u);
  EXPECT_EQ(std::vector<uint16_t>(f->tokens().begin(), f->tokens().end()),
            tokens);
}

TEST(TokenFile, WriteRefusesIdsOutsideTheVocabulary) {
  const std::vector<uint16_t> tokens = {1, 512};
  absl::Status s = WriteTokenFile(TempPath("bad.bin"), 512, tokens);
  EXPECT_THAT(s.message(),
              HasSubstr("token[1] = 512: must be < vocab_size = 512"));
}

TEST(TokenFile, OpenRefusesCorruptFilesNamingTheRule) {
  const std::vector<uint16_t> tokens(100, 3);
  ASSERT_TRUE(WriteTokenFile(TempPath("ok.bin"), 16, tokens).ok());
  std::ifstream in(TempPath("ok.bin"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  auto write = [&](const std::string& name, const std::string& b) {
    std::ofstream(TempPath(name), std::ios::binary) << b;
    return TokenFile::Open(TempPath(name)).status();
  };
  EXPECT_THAT(write("short.bin", bytes.substr(0, 10)).message(),
              HasSubstr("shorter than the 64-byte header"));
  EXPECT_THAT(write("trunc.bin", bytes.substr(0, bytes.size() - 2)).message(),
              HasSubstr("truncated"));
  std::string magic = bytes;
  magic[0] = 'X';
  EXPECT_THAT(write("magic.bin", magic).message(), HasSubstr("bad magic"));
  std::string version = bytes;
  version[8] = 9;
  EXPECT_THAT(write("version.bin", version).message(),
              HasSubstr("version = 9: must be 1"));
  EXPECT_EQ(TokenFile::Open(TempPath("missing.bin")).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace isoflop
