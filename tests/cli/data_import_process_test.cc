// `isoflop data import` through the real binaries (isoflop execs
// isoflop-data): a dataset that the trainer can open comes out, a refusal is
// exit code 2 with the file and rule named, and nothing is left behind.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/exit_codes.h"
#include "common/token_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/subprocess.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using ::isoflop::testing::ExitStatus;
using ::isoflop::testing::ReadFile;
using ::isoflop::testing::RunToCompletion;
using ::testing::HasSubstr;

fs::path TestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir =
      fs::path(::testing::TempDir()) /
      absl::StrCat("data-import-", info->name(), "-", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// numpy.save's format 1.0 for a 1-D '<u4' array.
std::string NpyU4(const std::vector<uint32_t>& ids) {
  std::string dict =
      absl::StrCat("{'descr': '<u4', 'fortran_order': False, 'shape': (",
                   ids.size(), ",), }");
  while ((10 + dict.size() + 1) % 64 != 0) dict += ' ';
  dict += '\n';
  const auto len = static_cast<uint16_t>(dict.size());
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out.append(reinterpret_cast<const char*>(&len), 2);
  out += dict;
  out.append(reinterpret_cast<const char*>(ids.data()), 4 * ids.size());
  return out;
}

ExitStatus Isoflop(const std::vector<std::string>& args,
                   const std::string& log) {
  std::vector<std::string> argv = {std::string(ISOFLOP_BIN_DIR) + "/isoflop"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunToCompletion(argv, log);
}

TEST(DataImportProcess, NpyOfA100kVocabularyBecomesAUint32Dataset) {
  const fs::path dir = TestDir();
  std::vector<uint32_t> ids(2000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = (i * 7919) % 100000;
  std::ofstream(dir / "train.npy", std::ios::binary) << NpyU4(ids);
  std::ofstream(dir / "val.npy", std::ios::binary)
      << NpyU4(std::vector<uint32_t>(ids.begin(), ids.begin() + 200));
  const std::string log = (dir / "log").string();
  const ExitStatus s =
      Isoflop({"data", "import", "--format", "npy", "--name", "wide",
               "--data-dir", (dir / "data").string(), "--vocab-size", "100000",
               (dir / "train.npy").string(), (dir / "val.npy").string()},
              log);
  ASSERT_EQ(s.code, kExitOk) << ReadFile(log);
  EXPECT_THAT(ReadFile(log), HasSubstr("\"train_tokens\":2000"));
  absl::StatusOr<TokenFile> train =
      TokenFile::Open((dir / "data" / "wide" / "train.bin").string());
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->dtype(), TokenDtype::kUint32);
  EXPECT_EQ(train->vocab_size(), 100000u);
  EXPECT_EQ(train->tokens().ToVector(), ids);
  EXPECT_TRUE(fs::exists(dir / "data" / "wide" / "meta.json"));
}

TEST(DataImportProcess, RefusalIsExitTwoNamingTheFileAndLeavesNoDataset) {
  const fs::path dir = TestDir();
  std::vector<int32_t> header(256, 0);
  header[0] = 20240520;
  header[1] = 1;
  header[2] = 50;  // but 10 ids follow
  std::string bytes(reinterpret_cast<const char*>(header.data()), 1024);
  bytes += std::string(20, '\1');
  std::ofstream(dir / "shard_train.bin", std::ios::binary) << bytes;
  const std::string log = (dir / "log").string();
  const ExitStatus s = Isoflop(
      {"data", "import", "--format", "llmc", "--name", "bad", "--data-dir",
       (dir / "data").string(), (dir / "shard_train.bin").string()},
      log);
  EXPECT_EQ(s.code, kExitInvalidConfig) << ReadFile(log);
  EXPECT_THAT(ReadFile(log),
              HasSubstr("shard_train.bin: the header's token count = 50 but "
                        "the file holds 20 bytes of uint16 ids"));
  EXPECT_FALSE(fs::exists(dir / "data" / "bad"));
  if (fs::exists(dir / "data")) {
    EXPECT_TRUE(fs::is_empty(dir / "data"));  // no staging directory left
  }

  const ExitStatus unknown =
      Isoflop({"data", "import", "--format", "parquet", "--name", "x",
               "--data-dir", (dir / "data").string(), "a.parquet"},
              log);
  EXPECT_EQ(unknown.code, kExitInvalidConfig);
  EXPECT_THAT(ReadFile(log),
              HasSubstr("--format = \"parquet\": must be one of nanogpt, "
                        "llmc, npy, text, jsonl"));
}

}  // namespace
}  // namespace isoflop
