#include "cli/context_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

using ::testing::HasSubstr;

std::string TestPath(const std::string& name) {
  const std::string dir =
      ::testing::TempDir() + "/context-file-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::filesystem::remove(path);
  return path;
}

TEST(ContextFilePath, IsoflopConfigThenXdgThenHome) {
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars](const char* name) -> std::optional<std::string> {
      auto it = vars.find(name);
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
  };
  EXPECT_EQ(
      ContextFilePath(env({{"ISOFLOP_CONFIG", "/c.json"}, {"HOME", "/h"}})),
      "/c.json");
  EXPECT_EQ(
      ContextFilePath(env(
          {{"ISOFLOP_CONFIG", ""}, {"XDG_CONFIG_HOME", "/x"}, {"HOME", "/h"}})),
      "/x/isoflop/config.json");
  EXPECT_EQ(ContextFilePath(env({{"HOME", "/h"}})),
            "/h/.config/isoflop/config.json");
}

TEST(ContextFile, AMissingFileIsEmpty) {
  absl::StatusOr<ContextFile> file = LoadContextFile(TestPath("none.json"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->current.empty());
  EXPECT_TRUE(file->contexts.empty());
}

TEST(ContextFile, SavedContextsLoadBackPrivately) {
  const std::string path = TestPath("sub/dir/config.json");
  ContextFile file;
  file.current = "lab";
  file.contexts["lab"] = {.address = "gpu1:50051",
                          .token_file = "/srv/token",
                          .http = "http://gpu1:8080",
                          .tls_ca = "/srv/ca.pem"};
  file.contexts["home"] = {.address = "127.0.0.1:50051"};
  ASSERT_TRUE(SaveContextFile(path, file).ok());
  absl::StatusOr<ContextFile> back = LoadContextFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->current, "lab");
  EXPECT_EQ(back->contexts.at("lab").http, "http://gpu1:8080");
  EXPECT_EQ(back->contexts.at("lab").tls_ca, "/srv/ca.pem");
  EXPECT_EQ(back->contexts.at("home").address, "127.0.0.1:50051");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(ContextFile, RefusesUnknownKeysNamingPathAndKey) {
  const std::string path = TestPath("typo.json");
  std::ofstream(path) << R"({"contexts": {"lab": {"adress": "h:1"}}})";
  absl::StatusOr<ContextFile> file = LoadContextFile(path);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(file.status().message(),
            path +
                ": contexts.lab.adress: unknown key (known: address, "
                "token_file, http, tls_ca)");
}

TEST(ContextFile, RefusesACurrentThatNamesNoContextAndBadNames) {
  const std::string path = TestPath("dangling.json");
  std::ofstream(path) << R"({"current": "lab", "contexts": {}})";
  EXPECT_THAT(LoadContextFile(path).status().message(),
              HasSubstr("current = 'lab': no context of that name"));
  std::ofstream(path) << R"({"contexts": {"a b": {}}})";
  EXPECT_THAT(LoadContextFile(path).status().message(),
              HasSubstr("context name 'a b': must be 1 to 64 characters of "
                        "[A-Za-z0-9_.-]"));
  std::ofstream(path) << "not json";
  EXPECT_THAT(LoadContextFile(path).status().message(),
              HasSubstr("not a JSON object"));
}

}  // namespace
}  // namespace isoflop::cli
