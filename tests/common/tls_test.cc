#include "common/tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/self_signed.h"

namespace isoflop {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(::testing::TempDir(), "/isoflop-tls-", getpid());
    std::filesystem::remove_all(dir_);
    server_ = testing::MakeSelfSigned(dir_, "server");
    other_ = testing::MakeSelfSigned(dir_, "other");
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string dir_;
  testing::SelfSigned server_, other_;
};

TEST_F(TlsFilesTest, NeitherFileMeansPlainTcp) {
  auto files = LoadTlsServerFiles("", "");
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_FALSE(files->has_value());
}

TEST_F(TlsFilesTest, MatchingCertificateAndKeyLoad) {
  auto files = LoadTlsServerFiles(server_.cert, server_.key);
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_TRUE(files->has_value());
  EXPECT_THAT((*files)->cert_pem, StartsWith("-----BEGIN CERTIFICATE-----"));
  EXPECT_THAT((*files)->key_pem, HasSubstr("PRIVATE KEY-----"));
  EXPECT_EQ((*files)->cert_path, server_.cert);
}

TEST_F(TlsFilesTest, BadServerFilesAreRefusedNamingTheFlagAndPath) {
  struct Case {
    std::string cert, key;
    absl::StatusCode code;
    std::string message;
  };
  const std::string garbled = Write("garbled.pem",
                                    "-----BEGIN CERTIFICATE-----\nnot base64 "
                                    "!!\n-----END CERTIFICATE-----\n");
  const Case cases[] = {
      {server_.cert, "", absl::StatusCode::kInvalidArgument,
       "--tls-key = \"\": give both (TLS) or neither"},
      {"", server_.key, absl::StatusCode::kInvalidArgument, "give both"},
      {dir_ + "/missing.pem", server_.key, absl::StatusCode::kNotFound,
       absl::StrCat("--tls-cert = \"", dir_, "/missing.pem\": cannot read")},
      {server_.cert, dir_ + "/missing.pem", absl::StatusCode::kNotFound,
       "--tls-key = \""},
      {server_.key, server_.key, absl::StatusCode::kInvalidArgument,
       "no PEM certificate in the file"},
      {garbled, server_.key, absl::StatusCode::kInvalidArgument,
       "certificate 1 does not parse"},
      {server_.cert, server_.cert, absl::StatusCode::kInvalidArgument,
       "no PEM private key that parses"},
      {server_.cert, other_.key, absl::StatusCode::kInvalidArgument,
       absl::StrCat("not the private key of --tls-cert = \"", server_.cert)},
  };
  for (const Case& c : cases) {
    auto files = LoadTlsServerFiles(c.cert, c.key);
    EXPECT_EQ(files.status().code(), c.code) << c.cert << " " << c.key;
    EXPECT_THAT(files.status().message(), HasSubstr(c.message));
  }
}

TEST_F(TlsFilesTest, CaBundleWithSeveralCertificatesLoads) {
  const std::string bundle =
      Write("bundle.pem", Read(server_.cert) + Read(other_.cert));
  auto pem = ReadPemCertificates("--tls-ca", bundle);
  ASSERT_TRUE(pem.ok()) << pem.status();
  EXPECT_EQ(*pem, Read(bundle));
  EXPECT_THAT(ReadPemCertificates("--tls-ca", Write("empty.pem", ""))
                  .status()
                  .message(),
              HasSubstr("--tls-ca = \""));
}

TEST(TlsCaPathTest, FlagWinsOverEnvironment) {
  setenv(kTlsCaEnv, "/from/env.pem", 1);
  EXPECT_EQ(TlsCaPath("/from/flag.pem"), "/from/flag.pem");
  EXPECT_EQ(TlsCaPath(""), "/from/env.pem");
  unsetenv(kTlsCaEnv);
  EXPECT_EQ(TlsCaPath(""), "");
}

// A listener that accepts one connection, reads what comes and hangs up: a
// plain server that does not speak TLS.
TEST(SpeaksTlsTest, PlainServerAndNothingAreNotTls) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string address = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  std::thread plain([fd] {
    const int c = accept(fd, nullptr, nullptr);
    char buf[512];
    (void)!read(c, buf, sizeof buf);
    close(c);
  });
  EXPECT_FALSE(SpeaksTls(address));
  plain.join();
  // The TLS client is told that the server speaks no TLS only while it
  // answers; once closed, nothing is said.
  close(fd);
  EXPECT_FALSE(SpeaksTls(address));
  EXPECT_EQ(TlsMismatchHint(address, true, "handshake failed"), "");
  EXPECT_FALSE(SpeaksTls("no-port"));
}

}  // namespace
}  // namespace isoflop
