// Test helper: a fresh self-signed certificate (P-256, one day) for
// 127.0.0.1 and localhost, made with Debian's `openssl` command at run time
// so that no key is ever committed.
#ifndef ISOFLOP_TESTS_COMMON_SELF_SIGNED_H_
#define ISOFLOP_TESTS_COMMON_SELF_SIGNED_H_

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace isoflop::testing {

struct SelfSigned {
  std::string cert;  // PEM certificate: its own CA
  std::string key;   // PEM private key, unencrypted
};

// Writes DIR/NAME-cert.pem and DIR/NAME-key.pem; a failed expectation (and
// paths to missing files) when `openssl` fails.
inline SelfSigned MakeSelfSigned(const std::string& dir,
                                 const std::string& name = "server") {
  std::filesystem::create_directories(dir);
  SelfSigned files{.cert = dir + "/" + name + "-cert.pem",
                   .key = dir + "/" + name + "-key.pem"};
  const std::string command =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "-nodes -days 1 -subj /CN=isoflop-test -addext "
      "subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
      files.key + " -out " + files.cert + " 2>" + dir + "/" + name +
      "-openssl.log";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  return files;
}

}  // namespace isoflop::testing

#endif  // ISOFLOP_TESTS_COMMON_SELF_SIGNED_H_
