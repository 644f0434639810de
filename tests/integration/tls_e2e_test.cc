// TLS end to end: a real isoflop-coordinator started with --tls-cert and
// --tls-key (a self-signed certificate made at run time) serves gRPC and
// HTTPS on loopback; the CLI and a worker that pass --tls-ca get through,
// plain ones are told to pass it, and a TLS client of a plain coordinator is
// told to drop it.
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/self_signed.h"
#include "tests/integration/cluster.h"
#include "tests/integration/subprocess.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using ::isoflop::testing::ExitStatus;
using ::isoflop::testing::ReadFile;
using ::isoflop::testing::RunToCompletion;
using ::isoflop::testing::Subprocess;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

const std::string kBin = ISOFLOP_BIN_DIR;

// The word after `prefix` in `text`, up to a space, quote or newline (""
// if absent): text and json logs alike.
std::string After(const std::string& text, const std::string& prefix) {
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return "";
  const size_t from = at + prefix.size();
  return text.substr(from, text.find_first_of(" \"\n", from) - from);
}

class TlsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTestDir("isoflop-tls", {});
    cert_ = testing::MakeSelfSigned(Path("certs"));
  }
  void TearDown() override {
    for (auto* p : {worker_.get(), coordinator_.get()}) {
      if (p != nullptr) {
        ASSERT_NO_FATAL_FAILURE(testing::StopCleanly(*p, 20s));
      }
    }
  }
  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }
  // Starts the coordinator (TLS unless `tls` is false) with a dashboard and
  // the `extra` flags; sets address_, url_ and token_.
  void StartCoordinator(bool tls = true, std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {"--listen",      "127.0.0.1:0",
                                      "--http-listen", "127.0.0.1:0",
                                      "--db",          Path("isoflop.db")};
    if (tls) {
      flags.insert(flags.end(),
                   {"--tls-cert", cert_.cert, "--tls-key", cert_.key});
    }
    flags.insert(flags.end(), extra.begin(), extra.end());
    coordinator_ =
        testing::SpawnCoordinator(std::move(flags), Path("coordinator.log"));
    ASSERT_TRUE(
        testing::LogShows(Path("coordinator.log"), "dashboard on ", 20s));
    const std::string log = ReadFile(Path("coordinator.log"));
    address_ = After(log, "listening on ");
    url_ = After(log, "dashboard on ");
    token_ = testing::ReadToken(dir_);
  }
  ExitStatus Cli(std::vector<std::string> args, const std::string& log,
                 std::vector<std::string> env = {}) {
    args.insert(args.begin(), {kBin + "/isoflop", "--address", address_});
    env.push_back(absl::StrCat("ISOFLOP_TOKEN_FILE=", Path("token")));
    return RunToCompletion(std::move(args), Path(log), std::move(env));
  }
  std::unique_ptr<Subprocess> Worker(std::vector<std::string> extra,
                                     const std::string& log) {
    extra.insert(extra.begin(), {"--logs-dir", Path("logs-" + log)});
    return testing::SpawnWorker(dir_, address_, std::move(extra), Path(log));
  }

  fs::path dir_;
  testing::SelfSigned cert_;
  std::string address_, url_, token_;
  std::unique_ptr<Subprocess> coordinator_;
  std::unique_ptr<Subprocess> worker_;
};

TEST_F(TlsE2E, CliWithTheCaGetsThroughAndWithoutItIsToldToPassIt) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  EXPECT_THAT(url_, ::testing::StartsWith("https://127.0.0.1:"));

  ExitStatus with_flag =
      Cli({"--tls-ca", cert_.cert, "worker", "list"}, "flag.log");
  EXPECT_EQ(with_flag.code, 0) << ReadFile(Path("flag.log"));
  ExitStatus with_env =
      Cli({"sweep", "list"}, "env.log", {"ISOFLOP_TLS_CA=" + cert_.cert});
  EXPECT_EQ(with_env.code, 0) << ReadFile(Path("env.log"));

  ExitStatus plain = Cli({"sweep", "list"}, "plain.log");
  EXPECT_EQ(plain.code, 1);
  EXPECT_THAT(ReadFile(Path("plain.log")),
              HasSubstr(absl::StrCat("the coordinator at ", address_,
                                     " uses TLS: pass --tls-ca FILE")));

  // A CA that did not sign the certificate: the handshake fails, and says
  // what to check.
  const testing::SelfSigned other = testing::MakeSelfSigned(Path("certs"), "o");
  ExitStatus wrong_ca =
      Cli({"--tls-ca", other.cert, "sweep", "list"}, "wrong.log");
  EXPECT_EQ(wrong_ca.code, 1);
  EXPECT_THAT(ReadFile(Path("wrong.log")),
              HasSubstr("--tls-ca must be the CA certificate that signed"));
  // Not a certificate at all: refused before any call (usage error).
  ExitStatus not_pem =
      Cli({"--tls-ca", cert_.key, "sweep", "list"}, "notpem.log");
  EXPECT_EQ(not_pem.code, 2);
  EXPECT_THAT(ReadFile(Path("notpem.log")),
              HasSubstr(absl::StrCat("--tls-ca = \"", cert_.key,
                                     "\": no PEM certificate")));
}

TEST_F(TlsE2E, HttpsServesMetricsToAClientWithTheCa) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  httplib::Client https(url_);
  https.set_ca_cert_path(cert_.cert);
  https.set_bearer_token_auth(token_);
  httplib::Result metrics = https.Get("/metrics");
  ASSERT_TRUE(metrics) << httplib::to_string(metrics.error());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->body, HasSubstr("isoflop_trials{state="));

  httplib::Client unverified(url_);  // the system CAs do not know it
  unverified.set_ca_cert_path(testing::MakeSelfSigned(Path("certs"), "o").cert);
  httplib::Result refused = unverified.Get("/metrics");
  EXPECT_FALSE(refused);
  EXPECT_EQ(refused.error(), httplib::Error::SSLServerVerification);

  httplib::Client plain(absl::StrCat("http://", url_.substr(8)));
  EXPECT_FALSE(plain.Get("/metrics"));
}

TEST_F(TlsE2E, WorkerWithTheCaRunsATrialAndOneWithoutIsToldToPassIt) {
  ExitStatus synth =
      RunToCompletion({kBin + "/isoflop-data", "synth", "--out",
                       Path("data/syn"), "--vocab-size", "256",
                       "--train-tokens", "200000", "--val-tokens", "20000"},
                      Path("synth.log"));
  ASSERT_EQ(synth.code, 0) << ReadFile(Path("synth.log"));
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  worker_ = Worker({"--tls-ca", cert_.cert}, "worker.log");
  std::unique_ptr<Subprocess> plain = Worker({}, "plain-worker.log");

  std::ofstream(Path("one.textproto")) << R"(name: "tls"
model { vocab_size: 256 context: 32 family: GPT_RMSNORM }
grid { flops_budgets: [1e9] model_shapes { d_model: 16 n_layers: 1 n_heads: 2 } }
training { batch_sequences: 8 lr: 1e-2 eval_batches: 2 seed: 7 }
data { dataset: "syn" }
resources { gpus_per_trial: 0 max_attempts: 1 }
)";
  // One point fits no law, so --wait ends non-zero; the trial is what counts.
  Cli({"--tls-ca", cert_.cert, "sweep", "submit", Path("one.textproto"),
       "--wait"},
      "submit.log");
  EXPECT_THAT(ReadFile(Path("submit.log")), HasSubstr("1/1 succeeded"))
      << ReadFile(Path("worker.log"));
  EXPECT_THAT(ReadFile(Path("worker.log")), HasSubstr("(TLS)"));

  EXPECT_TRUE(
      testing::WaitForText(Path("plain-worker.log"),
                           absl::StrCat("the coordinator at ", address_,
                                        " uses TLS: pass --tls-ca FILE"),
                           10s))
      << ReadFile(Path("plain-worker.log"));
  EXPECT_THAT(ReadFile(Path("plain-worker.log")), Not(HasSubstr("registered")));
  plain->Signal(SIGTERM);
  EXPECT_TRUE(plain->Wait(20s).has_value());
}

TEST_F(TlsE2E, TlsClientOfAPlainCoordinatorIsToldToDropTheCa) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(/*tls=*/false));
  ExitStatus tls = Cli({"--tls-ca", cert_.cert, "sweep", "list"}, "tls.log");
  EXPECT_EQ(tls.code, 1);
  EXPECT_THAT(ReadFile(Path("tls.log")),
              HasSubstr(absl::StrCat("the coordinator at ", address_,
                                     " does not use TLS: drop --tls-ca")));
}

TEST_F(TlsE2E, CoordinatorRefusesAKeyThatIsNotTheCertificates) {
  const testing::SelfSigned other = testing::MakeSelfSigned(Path("certs"), "o");
  ExitStatus s = RunToCompletion(
      {kBin + "/isoflop-coordinator", "--listen", "127.0.0.1:0", "--db",
       Path("isoflop.db"), "--tls-cert", cert_.cert, "--tls-key", other.key},
      Path("refused.log"));
  EXPECT_EQ(s.code, 2);
  EXPECT_THAT(ReadFile(Path("refused.log")),
              HasSubstr(absl::StrCat("--tls-key = \"", other.key,
                                     "\": not the private key of --tls-cert")));
}

// --log-format json: every stderr line of the coordinator and the worker is
// one JSON object with ts, level, component and msg, key fields included;
// gRPC's own lines (a plain client's failed handshake) too.
TEST_F(TlsE2E, JsonLogsAreOneObjectPerLineWithKeyFields) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator(true, {"--log-format", "json"}));
  worker_ =
      Worker({"--tls-ca", cert_.cert, "--log-format", "json"}, "worker.log");
  ASSERT_TRUE(testing::WaitForText(Path("worker.log"), "registered as", 10s))
      << ReadFile(Path("worker.log"));
  Cli({"sweep", "list"}, "plain.log");  // a handshake the server logs
  ASSERT_TRUE(
      testing::WaitForText(Path("coordinator.log"), "\"source\":\"grpc", 10s))
      << ReadFile(Path("coordinator.log"));
  for (auto* p : {worker_.get(), coordinator_.get()}) {
    p->Signal(SIGTERM);
    ASSERT_TRUE(p->Wait(20s).has_value());
  }
  std::map<std::string, std::vector<nlohmann::json>> lines;
  for (const char* name : {"coordinator.log", "worker.log"}) {
    std::istringstream in(ReadFile(Path(name)));
    for (std::string line; std::getline(in, line);) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      ASSERT_TRUE(j.is_object()) << name << ": " << line;
      for (const char* key : {"ts", "level", "component", "msg"}) {
        EXPECT_TRUE(j.contains(key) && j[key].is_string())
            << key << ": " << line;
      }
      lines[name].push_back(j);
    }
  }
  const auto has = [&lines](const std::string& log, const std::string& key,
                            const std::string& value) {
    for (const nlohmann::json& j : lines[log]) {
      if (j.value(key, "") == value) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("coordinator.log", "address", address_));
  EXPECT_TRUE(has("coordinator.log", "url", url_));
  EXPECT_TRUE(has("coordinator.log", "level", "error"));  // the handshake
  EXPECT_TRUE(has("coordinator.log", "component", "isoflop-coordinator"));
  EXPECT_TRUE(has("worker.log", "component", "isoflop-worker"));
  ASSERT_FALSE(lines["worker.log"].empty());
  EXPECT_THAT(lines["worker.log"].back().value("worker", ""),
              ::testing::StartsWith("wk-"));
  worker_.reset();
  coordinator_.reset();
}

}  // namespace
}  // namespace isoflop
