#include "common/token_file.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
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
  EXPECT_EQ(f->dtype(), TokenDtype::kUint16);
  EXPECT_EQ(f->tokens().ToVector(),
            std::vector<uint32_t>(tokens.begin(), tokens.end()));
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
              HasSubstr("version = 9: must be 1 or 2"));
  EXPECT_EQ(TokenFile::Open(TempPath("missing.bin")).status().code(),
            absl::StatusCode::kNotFound);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(TokenFile, VocabulariesPastUint16AreWrittenAsUint32) {
  const std::vector<uint32_t> tokens = {0, 65535, 65536, 99999, 7};
  ASSERT_TRUE(WriteTokenFile(TempPath("wide.bin"), 100000, tokens).ok());
  EXPECT_EQ(ReadAll(TempPath("wide.bin")).size(), 64u + 4 * tokens.size());
  absl::StatusOr<TokenFile> f = TokenFile::Open(TempPath("wide.bin"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->dtype(), TokenDtype::kUint32);
  EXPECT_EQ(f->vocab_size(), 100000u);
  EXPECT_EQ(f->tokens().ToVector(), tokens);
  EXPECT_EQ(f->tokens()[3], 99999u);
}

TEST(TokenFile, Uint32IdsOfASmallVocabularyAreStoredAsUint16) {
  const std::vector<uint32_t> tokens = {1, 65535, 2};
  ASSERT_TRUE(WriteTokenFile(TempPath("narrow.bin"), 65536, tokens).ok());
  EXPECT_EQ(ReadAll(TempPath("narrow.bin")).size(), 64u + 2 * tokens.size());
  absl::StatusOr<TokenFile> f = TokenFile::Open(TempPath("narrow.bin"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->dtype(), TokenDtype::kUint16);
  EXPECT_EQ(f->tokens().ToVector(), tokens);
}

TEST(TokenFile, HeaderStatesVersionVocabCountAndWidth) {
  const std::vector<uint32_t> tokens(3, 70000);
  ASSERT_TRUE(WriteTokenFile(TempPath("hdr.bin"), 70001, tokens).ok());
  const std::string b = ReadAll(TempPath("hdr.bin"));
  ASSERT_GE(b.size(), 64u);
  uint32_t version = 0, vocab = 0, width = 0;
  uint64_t count = 0;
  std::memcpy(&version, b.data() + 8, 4);
  std::memcpy(&vocab, b.data() + 12, 4);
  std::memcpy(&count, b.data() + 16, 8);
  std::memcpy(&width, b.data() + 24, 4);
  EXPECT_EQ(b.substr(0, 8), "ISOFTOK1");
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(vocab, 70001u);
  EXPECT_EQ(count, 3u);
  EXPECT_EQ(width, 4u);
  EXPECT_EQ(b.substr(28, 36), std::string(36, '\0'));
}

// A version 1 file, as isoflop wrote them before uint32 ids: no width field.
TEST(TokenFile, ReadsVersionOneFilesAsUint16) {
  std::string b(64, '\0');
  const uint32_t version = 1, vocab = 300;
  const uint64_t count = 4;
  std::memcpy(b.data(), "ISOFTOK1", 8);
  std::memcpy(b.data() + 8, &version, 4);
  std::memcpy(b.data() + 12, &vocab, 4);
  std::memcpy(b.data() + 16, &count, 8);
  const uint16_t ids[4] = {5, 299, 0, 17};
  b.append(reinterpret_cast<const char*>(ids), sizeof(ids));
  std::ofstream(TempPath("v1.bin"), std::ios::binary) << b;
  absl::StatusOr<TokenFile> f = TokenFile::Open(TempPath("v1.bin"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 1u);
  EXPECT_EQ(f->dtype(), TokenDtype::kUint16);
  EXPECT_EQ(f->vocab_size(), 300u);
  EXPECT_EQ(f->tokens().ToVector(), (std::vector<uint32_t>{5, 299, 0, 17}));
}

TEST(TokenFile, OpenRefusesAWidthOrVocabularyTheHeaderCannotHold) {
  const std::vector<uint32_t> tokens(10, 3);
  ASSERT_TRUE(WriteTokenFile(TempPath("w.bin"), 16, tokens).ok());
  const std::string bytes = ReadAll(TempPath("w.bin"));
  auto open = [&](const std::string& name, const std::string& b) {
    std::ofstream(TempPath(name), std::ios::binary) << b;
    return TokenFile::Open(TempPath(name)).status();
  };
  std::string width = bytes;
  width[24] = 3;
  EXPECT_THAT(open("width.bin", width).message(),
              HasSubstr("token_bytes = 3: must be 2 (uint16) or 4 (uint32)"));
  std::string vocab = bytes;
  const uint32_t big = 70000;
  std::memcpy(vocab.data() + 12, &big, 4);
  EXPECT_THAT(open("vocab.bin", vocab).message(),
              HasSubstr("vocab_size = 70000: must be <= 65536 with uint16"));
  std::string wide = bytes;  // 20 bytes of ids hold 5 uint32, not 10
  wide[24] = 4;
  EXPECT_THAT(open("wide.bin", wide).message(),
              HasSubstr("n_tokens = 10 but the file holds 20 bytes of uint32 "
                        "ids (5 tokens)"));
}

TEST(TokenFileWriter, StreamsChunksAndCountsIdsAcrossThem) {
  absl::StatusOr<TokenFileWriter> w =
      TokenFileWriter::Create(TempPath("stream.bin"), 200000);
  ASSERT_TRUE(w.ok()) << w.status();
  const std::vector<uint32_t> a = {1, 2, 3};
  const std::vector<uint16_t> b = {4, 5};
  ASSERT_TRUE(w->Append(a).ok());
  ASSERT_TRUE(w->Append(b).ok());
  EXPECT_THAT(w->Append(std::vector<uint32_t>{6, 200000}).message(),
              HasSubstr("token[6] = 200000: must be < vocab_size = 200000"));
}

TEST(TokenFileWriter, LeavesNothingWhenNotFinished) {
  {
    absl::StatusOr<TokenFileWriter> w =
        TokenFileWriter::Create(TempPath("abandoned.bin"), 100);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->Append(std::vector<uint16_t>{1, 2}).ok());
  }
  EXPECT_FALSE(std::filesystem::exists(TempPath("abandoned.bin")));
  EXPECT_FALSE(std::filesystem::exists(TempPath("abandoned.bin.tmp")));
}

TEST(TokenSpan, CopyToWidensEitherWidth) {
  const std::vector<uint16_t> narrow = {1, 2, 3, 4};
  const std::vector<uint32_t> wide = {70000, 2, 3, 4};
  int64_t out[2] = {};
  TokenSpan(narrow).CopyTo(1, 2, out);
  EXPECT_EQ(out[0], 2);
  EXPECT_EQ(out[1], 3);
  TokenSpan(wide).CopyTo(0, 2, out);
  EXPECT_EQ(out[0], 70000);
  EXPECT_EQ(TokenSpan(wide).FindIdAtLeast(70000), 0u);
  EXPECT_EQ(TokenSpan(narrow).FindIdAtLeast(4), 3u);
  EXPECT_EQ(TokenSpan(narrow).FindIdAtLeast(5), 4u);
}

}  // namespace
}  // namespace isoflop
