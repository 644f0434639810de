#include "common/bearer_token.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace isoflop {
namespace {

constexpr char kRule[] =
    "a token must be 1 to 4096 visible ASCII characters (0x21-0x7E)";

// A fresh directory for this test's files.
std::string TestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      (std::string("token-") + info->name() + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

struct BadToken {
  std::string label;
  std::string bytes;     // the file's content
  std::string expected;  // the message after "PATH: "
};

// Issue 18, defect 6: each of these aborted the CLI inside gRPC.
std::vector<BadToken> BadTokens() {
  return {
      {"newline inside", "a\nb", absl::StrCat("token byte 2 is 0x0A: ", kRule)},
      {"space inside", "ab cd", absl::StrCat("token byte 3 is 0x20: ", kRule)},
      {"NUL", std::string("ab\0cd", 5),
       absl::StrCat("token byte 3 is 0x00: ", kRule)},
      {"escape sequence", "x\x1b[31m",
       absl::StrCat("token byte 2 is 0x1B: ", kRule)},
      {"DEL", "ab\x7f", absl::StrCat("token byte 3 is 0x7F: ", kRule)},
      {"non-ASCII (UTF-8)", "caf\xc3\xa9",
       absl::StrCat("token byte 4 is 0xC3: ", kRule)},
      {"binary", std::string("\x89PNG\r\n\x1a\n", 8),
       absl::StrCat("token byte 1 is 0x89: ", kRule)},
      {"too long", std::string(4097, 'a'),
       absl::StrCat("the token is 4097 bytes: ", kRule)},
      {"far too long", std::string(70000, 'a'),
       absl::StrCat("more than 65536 bytes: not a token file: ", kRule)},
  };
}

TEST(ReadTokenFile, RefusesEachBadTokenNamingTheFileAndTheRule) {
  const std::string dir = TestDir();
  for (const BadToken& bad : BadTokens()) {
    SCOPED_TRACE(bad.label);
    const std::string path = WriteFile(dir + "/token", bad.bytes);
    absl::StatusOr<std::string> token = ReadTokenFile(path);
    ASSERT_FALSE(token.ok());
    EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(token.status().message(), absl::StrCat(path, ": ", bad.expected));
  }
}

TEST(ReadTokenFile, TrimsTheTrailingNewline) {
  const std::string path = WriteFile(TestDir() + "/token", "0123abcd\n");
  absl::StatusOr<std::string> token = ReadTokenFile(path);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "0123abcd");
}

TEST(ReadTokenFile, SaysADirectoryIsADirectory) {
  const std::string dir = TestDir();
  absl::StatusOr<std::string> token = ReadTokenFile(dir);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(token.status().message(),
            absl::StrCat(dir,
                         ": is a directory, not a token file (give the "
                         "file's path)"));
}

TEST(ReadTokenFile, SaysAnEmptyFileIsEmpty) {
  const std::string path = WriteFile(TestDir() + "/token", " \n");
  absl::StatusOr<std::string> token = ReadTokenFile(path);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().message(),
            absl::StrCat(path, ": empty token file (delete it to regenerate)"));
}

TEST(LoadOrCreateTokenFile, RefusesAnExistingBadTokenAsInvalid) {
  const std::string path = WriteFile(TestDir() + "/token", "a\x01z\n");
  absl::StatusOr<LoadedToken> token = LoadOrCreateTokenFile(path);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(token.status().message(),
            absl::StrCat(path, ": token byte 2 is 0x01: ", kRule));
}

TEST(LoadOrCreateTokenFile, CreatedTokensPassTheRule) {
  absl::StatusOr<LoadedToken> token =
      LoadOrCreateTokenFile(TestDir() + "/token");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_TRUE(token->created);
  EXPECT_TRUE(ValidateToken(token->value, "x").ok());
}

TEST(TokenFromEnvOrFile, RefusesABadEnvironmentTokenNamingTheVariable) {
  ASSERT_EQ(setenv("ISOFLOP_TEST_TOKEN", "a\nb", 1), 0);
  absl::StatusOr<std::string> token =
      TokenFromEnvOrFile("ISOFLOP_TEST_TOKEN", "");
  unsetenv("ISOFLOP_TEST_TOKEN");
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(token.status().message(),
            absl::StrCat("ISOFLOP_TEST_TOKEN: token byte 2 is 0x0A: ", kRule));
}

TEST(TokenFromEnvOrFile, TrimsSurroundingWhitespaceOfTheVariable) {
  ASSERT_EQ(setenv("ISOFLOP_TEST_TOKEN", " tok-en_1 \n", 1), 0);
  absl::StatusOr<std::string> token =
      TokenFromEnvOrFile("ISOFLOP_TEST_TOKEN", "");
  unsetenv("ISOFLOP_TEST_TOKEN");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "tok-en_1");
}

TEST(ValidateToken, AcceptsEveryVisibleAsciiCharacter) {
  std::string all;
  for (char c = 0x21; c <= 0x7E; ++c) all += c;
  EXPECT_TRUE(ValidateToken(all, "x").ok());
  EXPECT_TRUE(ValidateToken(std::string(kMaxTokenBytes, 'z'), "x").ok());
}

}  // namespace
}  // namespace isoflop
