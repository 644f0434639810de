// `isoflop data prepare` through the real binaries (isoflop runs
// isoflop-data): a named source read offline from --source-dir becomes a
// dataset; an input too small for a validation split is refused with exit
// code 2, naming the file, and leaves no dataset (issue 22, points 2 and 5).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/subprocess.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using ::isoflop::testing::ExitStatus;
using ::isoflop::testing::ReadFile;
using ::isoflop::testing::RunToCompletion;
using ::testing::HasSubstr;

std::string Bin(const std::string& name) {
  return std::string(ISOFLOP_BIN_DIR) + "/" + name;
}

fs::path TestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::path(::testing::TempDir()) /
                 absl::StrCat("data-prepare-", info->name(), "-", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void Write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

bool AnyTemporary(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".tmp-") != std::string::npos) {
      return true;
    }
  }
  return false;
}

TEST(DataPrepareProcess, CodeSourceFromExtractedPackagesBecomesADataset) {
  const fs::path dir = TestDir();
  for (int i = 0; i < 16; ++i) {
    std::string c = absl::StrCat("static int f", i, "(int x)\n{\n");
    for (int l = 0; l < 12; ++l) {
      absl::StrAppend(&c, "\tif (x > ", l + i, ")\n\t\tx -= ", l, ";\n");
    }
    absl::StrAppend(&c, "\treturn x;\n}\n");
    Write(dir / "pkgs/linux-source-6.1/src/lib" / absl::StrCat("f", i, ".c"),
          c);
  }
  const std::string log = (dir / "out.log").string();
  const ExitStatus status = RunToCompletion(
      {Bin("isoflop"), "data", "prepare", "--name", "code-tiny", "--data-dir",
       (dir / "data").string(), "--source", "code", "--source-dir",
       (dir / "pkgs").string(), "--vocab-size", "80", "--threads", "2"},
      log);
  ASSERT_EQ(status.code, 0) << ReadFile(log);
  const nlohmann::json meta = nlohmann::json::parse(
      ReadFile((dir / "data/code-tiny/meta.json").string()));
  EXPECT_EQ(meta["source"], "code");
  EXPECT_EQ(meta["documents"], 16);
  EXPECT_GE(meta["val_documents"], 1);
  EXPECT_GT(meta["val_tokens"], 0);
  EXPECT_FALSE(AnyTemporary(dir / "data"));
}

TEST(DataPrepareProcess, OneDocumentIsRefusedNamingTheFileAndLeavesNothing) {
  const fs::path dir = TestDir();
  const fs::path one = dir / "one.txt";
  std::string text;
  for (int i = 0; i < 200; ++i) absl::StrAppend(&text, "verse ", i, "\n");
  Write(one, text);
  fs::create_directories(dir / "data");
  const std::string log = (dir / "out.log").string();
  const ExitStatus status = RunToCompletion(
      {Bin("isoflop"), "data", "prepare", "--name", "tiny", "--data-dir",
       (dir / "data").string(), "--input", one.string(), "--vocab-size", "64"},
      log);
  EXPECT_EQ(status.code, 2);
  EXPECT_THAT(ReadFile(log),
              HasSubstr(absl::StrCat("--input ", one.string(),
                                     ": input too small: 1 distinct")));
  EXPECT_FALSE(fs::exists(dir / "data/tiny"));
  EXPECT_FALSE(AnyTemporary(dir / "data"));
}

TEST(DataPrepareProcess, InterruptedRunLeavesNoTemporaryDirectory) {
  const fs::path dir = TestDir();
  // Enough text that tokenizer training takes a while.
  for (int f = 0; f < 60; ++f) {
    std::string text;
    for (int l = 0; l < 2000; ++l) {
      absl::StrAppend(&text, "line ", l * 7919 % 100003, " of file ", f,
                      " says ", (l * f) % 977, " and ", l % 313, "\n");
    }
    Write(dir / "in" / absl::StrCat("f", f, ".txt"), text);
  }
  fs::create_directories(dir / "data");
  isoflop::testing::Subprocess p(
      {Bin("isoflop-data"), "prepare", "--out", (dir / "data/big").string(),
       "--input", (dir / "in").string(), "--vocab-size", "3000", "--threads",
       "1"},
      (dir / "out.log").string());
  // Wait (up to 60 s) for the temporary directory, then interrupt.
  bool started = false;
  for (int i = 0; i < 600 && !started; ++i) {
    started = AnyTemporary(dir / "data");
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(started) << ReadFile((dir / "out.log").string());
  p.Signal(SIGTERM);
  const std::optional<ExitStatus> status = p.Wait(std::chrono::seconds(60));
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(fs::exists(dir / "data/big"));
  EXPECT_FALSE(AnyTemporary(dir / "data"));
}

}  // namespace
}  // namespace isoflop
