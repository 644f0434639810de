// The dashboard's HTTP server against hostile clients (issue 18, defects 7,
// 8, 9, 10, 14): a real DashboardServer on loopback in this process, real
// sockets, httplib::Client for the well-behaved requests and raw sockets for
// the hostile ones. Waits poll for conditions with generous deadlines (2
// cores, ASan); nothing sleeps for a fixed time.
#include "coordinator/http/dashboard_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "analysis/approach3.h"
#include "common/fake_clock.h"
#include "coordinator/events/event_feed.h"
#include "coordinator/http/dashboard_api.h"
#include "coordinator/http/generation.h"
#include "coordinator/service/core.h"
#include "coordinator/store/sqlite_trial_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/self_signed.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator::http {
namespace {

using ::isoflop::coordinator::testing::FreshDir;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kToken[] = "0123456789abcdef0123456789abcdef";

// VmRSS of this process in KiB.
int64_t RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kib = 0;
      const absl::string_view value =
          absl::string_view(line).substr(6, line.size() - 9);  // " kB"
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(value), &kib)) {
        return -1;
      }
      return kib;
    }
  }
  return -1;
}

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& s) {
  size_t sent = 0;
  while (sent < s.size()) {
    const ssize_t n = send(fd, s.data() + sent, s.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// What `fd` gives within `timeout`, up to the end of a response head (or
// the end of the stream).
std::string ReadHead(int fd, absl::Duration timeout) {
  std::string out;
  const absl::Time deadline = absl::Now() + timeout;
  while (out.find("\r\n\r\n") == std::string::npos) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(ms)) <= 0) break;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// True when the server closes `fd` within `timeout` (what it sends first is
// read and dropped).
bool ClosedWithin(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(ms)) <= 0) return false;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
  }
}

class DashboardServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir();
    std::filesystem::create_directories(dir_ + "/static");
    std::ofstream(dir_ + "/static/index.html") << "<!doctype html><p>index";
    std::ofstream(dir_ + "/static/login.html") << "<!doctype html><p>login";
    db_ = dir_ + "/isoflop.db";
    auto store = SqliteTrialStore::Open(db_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    // Fits from grid:2's 243 starts, not 4500: seconds under ASan.
    core_ = std::make_unique<Core>(
        store_.get(), &clock_,
        CoreOptions{.fit_starts = *analysis::StartsFromSpec("grid:2")});
    ASSERT_TRUE(core_->Recover().ok());
    api_ = std::make_unique<DashboardApi>(
        store_.get(), core_.get(),
        DashboardApiOptions{.max_staleness = absl::ZeroDuration(),
                            .clock = &clock_});
    // "tr-done" succeeded on a worker that has no sampling stream open;
    // every other id is the core's.
    generation_ = std::make_unique<Generation>(
        &relay_,
        [this](const std::string& id) -> absl::StatusOr<v1::Trial> {
          if (id != "tr-done") return core_->GetTrial(id);
          v1::Trial t;
          t.mutable_spec()->set_trial_id(id);
          t.mutable_spec()->set_dataset("tiny");
          t.set_state(v1::SUCCEEDED);
          t.set_worker_id("wk-gone");
          return t;
        },
        GenerationOptions{});
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  void Start(DashboardOptions options = {}) {
    options.listen = "127.0.0.1:0";
    options.static_dir = dir_ + "/static";
    options.token = kToken;
    options.generation = generation_.get();
    options.clock = &clock_;
    auto started = DashboardServer::Start(api_.get(), &feed_, options);
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = std::move(*started);
    const std::string& url = server_->url();
    ASSERT_TRUE(absl::SimpleAtoi(url.substr(url.rfind(':') + 1), &port_));
  }

  httplib::Client Client(bool with_token = true) {
    httplib::Client c(server_->url());
    c.set_read_timeout(30, 0);
    c.set_connection_timeout(10, 0);
    if (with_token) c.set_bearer_token_auth(kToken);
    return c;
  }

  // The Set-Cookie of a login with the token.
  std::string Login() {
    httplib::Client c = Client(/*with_token=*/false);
    httplib::Result r =
        c.Post("/api/v1/login", httplib::Params{{"token", kToken}});
    EXPECT_TRUE(r) << httplib::to_string(r.error());
    if (!r) return "";
    EXPECT_EQ(r->status, 303);
    return r->get_header_value("Set-Cookie");
  }

  std::string dir_, db_;
  FakeClock clock_;
  std::unique_ptr<SqliteTrialStore> store_;
  std::unique_ptr<Core> core_;
  std::unique_ptr<DashboardApi> api_;
  GenerationRelay relay_;
  std::unique_ptr<Generation> generation_;
  EventFeed feed_;
  std::unique_ptr<DashboardServer> server_;
  int port_ = 0;
};

// Defect 7: after a login, `next` is followed only to a path of this origin.
TEST_F(DashboardServerTest, LoginRedirectsOnlyToSameOriginPaths) {
  Start();
  httplib::Client c = Client(/*with_token=*/false);
  for (const std::string next :
       {"/\\evil.example.com", "/%09/evil.example.com", "/\t/evil.example.com",
        "//evil", "https://evil", "/%5Cevil.example.com", "/%2F/evil",
        "/ok\r\nSet-Cookie: x=1", "evil.example.com", ""}) {
    httplib::Result r = c.Post(
        "/api/v1/login", httplib::Params{{"token", kToken}, {"next", next}});
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 303) << next;
    EXPECT_EQ(r->get_header_value("Location"), "/") << next;
  }
  httplib::Result ok = c.Post(
      "/api/v1/login",
      httplib::Params{{"token", kToken}, {"next", "/sweep.html?id=s-1"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->get_header_value("Location"), "/sweep.html?id=s-1");
}

// Defect 8: a 300 MiB header line is refused with 431 while it is read; the
// server's memory does not grow with it.
TEST_F(DashboardServerTest, HugeHeaderLineIsRefusedWhileReading) {
  Start();
  const int64_t rss_before = RssKiB();
  ASSERT_GT(rss_before, 0);
  const int fd = Connect(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "GET /api/v1 HTTP/1.1\r\nHost: x\r\nX-Big: "));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  const std::string chunk(64 * 1024, 'a');  // sent over and over, not stored
  constexpr int64_t kTotal = int64_t{300} << 20;
  int64_t sent = 0;
  std::string answer;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (sent < kTotal && absl::Now() < deadline) {
    pollfd p{fd, POLLIN | POLLOUT, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) break;  // answered or cut
    const ssize_t n = send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) break;
    if (n > 0) sent += n;
  }
  answer = ReadHead(fd, absl::Seconds(10));
  close(fd);
  const int64_t rss_after = RssKiB();
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 431 "));
  EXPECT_THAT(answer, HasSubstr("request head: longer than 16384 bytes"));
  // Cut early: at most the 16 KiB head plus what the kernels' socket
  // buffers held, far from 300 MiB.
  EXPECT_LT(sent, int64_t{32} << 20) << sent;
  EXPECT_LT(rss_after - rss_before, 8 * 1024)
      << "VmRSS grew from " << rss_before << " to " << rss_after << " KiB";
  // The server goes on answering.
  httplib::Result r = Client().Get("/api/v1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// Defect 8: a body past the limit is 413, as announced or as sent chunked.
TEST_F(DashboardServerTest, OversizedBodyIs413) {
  Start({.limits = {.max_body_bytes = 4096}});
  httplib::Result r = Client().Post("/api/v1/trials/tr-x/eval",
                                    std::string(8192, 'x'), "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 413);
  const int fd = Connect(port_);
  ASSERT_GE(fd, 0);
  std::string chunked = absl::StrCat(
      "POST /api/v1/trials/tr-x/eval HTTP/1.1\r\nHost: x\r\nAuthorization: "
      "Bearer ",
      kToken, "\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 40; ++i)
    absl::StrAppend(&chunked, "1000\r\n", std::string(4096, 'x'), "\r\n");
  SendAll(fd, chunked);  // may fail once the server has answered
  const std::string answer = ReadHead(fd, absl::Seconds(20));
  close(fd);
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 413 "));
}

// Defect 9: 100 connections trickling a request head hold no thread the
// API needs, and each is cut at the head deadline with 408.
TEST_F(DashboardServerTest, SlowClientsDoNotStarveTheApiAndAreCut) {
  // Each read may wait 60 s: only the whole head's deadline cuts them at 3 s.
  Start({.limits = {.head_timeout = absl::Seconds(3),
                    .read_timeout = absl::Seconds(60)}});
  std::vector<int> slow;
  for (int i = 0; i < 100; ++i) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(
        SendAll(fd, "GET /api/v1 HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n"));
    slow.push_back(fd);
  }
  const absl::Time t0 = absl::Now();
  httplib::Result r = Client().Get("/api/v1/sweeps");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(3));
  int cut = 0;
  for (int fd : slow) {
    const std::string answer = ReadHead(fd, absl::Seconds(30));
    if (answer.rfind("HTTP/1.1 408 ", 0) == 0 &&
        answer.find("request head: not complete within 3s") !=
            std::string::npos) {
      ++cut;
    }
    close(fd);
  }
  EXPECT_EQ(cut, 100);
}

// Defect 9: past max_unauthenticated, a new connection evicts the oldest
// unauthenticated one: slow clients cannot lock a legitimate one out.
TEST_F(DashboardServerTest, NewConnectionsEvictTheOldestUnauthenticated) {
  // Deadlines far away: only an eviction closes a slow connection soon.
  Start({.limits = {.max_unauthenticated = 10,
                    .head_timeout = absl::Seconds(120),
                    .read_timeout = absl::Seconds(120)}});
  std::vector<int> slow;
  for (int i = 0; i < 10; ++i) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, "GET / HTTP/1.1\r\nX-Slow: 1\r\n"));  // no more
    slow.push_back(fd);
  }
  httplib::Result r = Client().Get("/api/v1/sweeps");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  // The oldest slow connection was shut down long before its head deadline.
  EXPECT_TRUE(ClosedWithin(slow[0], absl::Seconds(20)));
  for (int fd : slow) close(fd);
}

// Defect 9: connections beyond max_connections are answered 503 at once.
TEST_F(DashboardServerTest, ConnectionsBeyondTheCapAre503) {
  Start({.limits = {.max_connections = 10}});
  std::vector<int> idle;
  for (int i = 0; i < 10; ++i) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, "GET / HTTP/1.1\r\n"));  // and no more
    idle.push_back(fd);
  }
  // The server may not have accepted all 10 yet: poll until one is refused.
  std::string answer;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (answer.rfind("HTTP/1.1 503", 0) != 0 && absl::Now() < deadline) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    SendAll(fd, "GET /api/v1 HTTP/1.1\r\nHost: x\r\n\r\n");
    answer = ReadHead(fd, absl::Seconds(10));
    close(fd);
  }
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 503 "));
  EXPECT_THAT(answer, HasSubstr("Retry-After: 1"));
  EXPECT_THAT(answer, HasSubstr("too many connections"));
  for (int fd : idle) close(fd);
}

// Defect 9: 200 event streams: 64 are served, the others get 503 with
// Retry-After, and the API still answers.
TEST_F(DashboardServerTest, EventStreamsBeyondTheCapAre503AndApiAnswers) {
  Start();
  std::vector<int> fds;
  int served = 0, refused = 0;
  for (int i = 0; i < 200; ++i) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(
        SendAll(fd, absl::StrCat("GET /api/v1/events HTTP/1.1\r\nHost: x\r\n"
                                 "Authorization: Bearer ",
                                 kToken, "\r\n\r\n")));
    const std::string answer = ReadHead(fd, absl::Seconds(20));
    if (answer.rfind("HTTP/1.1 200 ", 0) == 0) {
      ++served;
    } else if (answer.rfind("HTTP/1.1 503 ", 0) == 0 &&
               answer.find("Retry-After: 5") != std::string::npos) {
      ++refused;
    }
    fds.push_back(fd);
  }
  EXPECT_EQ(served, 64);
  EXPECT_EQ(refused, 136);
  const absl::Time t0 = absl::Now();
  httplib::Result r = Client().Get("/api/v1/sweeps");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(3));
  httplib::Result more = Client().Get("/api/v1/events");
  ASSERT_TRUE(more);
  EXPECT_EQ(more->status, 503);
  EXPECT_THAT(more->body, HasSubstr("events: 64 streams are open"));
  httplib::Result metrics = Client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_THAT(metrics->body, HasSubstr("isoflop_http_event_streams 64\n"));
  for (int fd : fds) close(fd);
  // Closed streams free their slots.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::string answer;
  while (absl::Now() < deadline) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    SendAll(fd, absl::StrCat("GET /api/v1/events HTTP/1.1\r\nHost: x\r\n"
                             "Authorization: Bearer ",
                             kToken, "\r\n\r\n"));
    answer = ReadHead(fd, absl::Seconds(10));
    close(fd);
    if (answer.rfind("HTTP/1.1 200 ", 0) == 0) break;
  }
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 200 "));
}

// Defects 8 and 9 over HTTPS: a stalled TLS handshake holds nothing the API
// needs and is cut at the head deadline; a long head is refused with 431.
TEST_F(DashboardServerTest, OverTlsStalledHandshakesAreCutAndLongHeadsRefused) {
  const isoflop::testing::SelfSigned cert =
      isoflop::testing::MakeSelfSigned(dir_ + "/certs");
  Start({.tls_cert_path = cert.cert,
         .tls_key_path = cert.key,
         .limits = {.head_timeout = absl::Seconds(2)}});
  ASSERT_THAT(server_->url(), StartsWith("https://"));
  std::vector<int> stalled;
  for (int i = 0; i < 20; ++i) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    stalled.push_back(fd);
  }
  httplib::Client c(server_->url());
  c.set_ca_cert_path(cert.cert);
  c.set_bearer_token_auth(kToken);
  c.set_read_timeout(30, 0);
  const absl::Time t0 = absl::Now();
  httplib::Result r = c.Get("/api/v1/sweeps");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(3));
  httplib::Result big = c.Get(
      "/api/v1", httplib::Headers{{"X-Big", std::string(64 * 1024, 'a')}});
  ASSERT_TRUE(big) << httplib::to_string(big.error());
  EXPECT_EQ(big->status, 431);
  EXPECT_THAT(big->body, HasSubstr("request head: longer than 16384 bytes"));
  int cut = 0;
  for (int fd : stalled) {
    cut += ClosedWithin(fd, absl::Seconds(30)) ? 1 : 0;
    close(fd);
  }
  EXPECT_EQ(cut, 20);
}

// Defect 10: eval takes a dataset name, never a path.
TEST_F(DashboardServerTest, EvalRefusesAPathNamingTheField) {
  Start();
  httplib::Client c = Client();
  for (const std::string data : {"/etc/shadow", "../state/worker_token",
                                 "/proc/self/environ", "a/b", ".hidden", ""}) {
    httplib::Result r =
        c.Post("/api/v1/trials/tr-x/eval",
               nlohmann::json{{"data", data}}.dump(), "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 400) << data;
    EXPECT_THAT(r->body,
                HasSubstr("must be a dataset name (1 to 64 of "
                          "[A-Za-z0-9_.-], starting with a letter or digit) "
                          "in the worker's --data-dir, not a path"))
        << data;
    EXPECT_THAT(r->body, HasSubstr("\"data = ")) << r->body;
  }
}

// Sampling goes to the worker that keeps the trial's model.bin: when that
// worker has no sampling stream open, generate and eval answer 503 naming it,
// and an unknown trial is 404.
TEST_F(DashboardServerTest, SamplingATrialWhoseWorkerIsNotConnectedIs503) {
  Start();
  httplib::Client c = Client();
  httplib::Result r =
      c.Post("/api/v1/trials/tr-done/generate",
             R"({"prompt": "In the beginning"})", "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_THAT(r->body, HasSubstr("worker wk-gone keeps this trial's model.bin "
                                 "but has no live connection"));
  r = c.Post("/api/v1/trials/tr-done/eval", R"({"data": "tiny"})",
             "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_THAT(r->body, HasSubstr("worker wk-gone"));
  r = c.Post("/api/v1/trials/tr-none/generate", R"({"prompt": "x"})",
             "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 404) << r->body;
  EXPECT_THAT(r->body, HasSubstr("trial tr-none: unknown"));
}

// The sweep page's buttons change state: only with a session (or token) and
// a JSON body, which an HTML form of another site cannot send; a form post
// with the session cookie is refused naming Content-Type and changes
// nothing.
TEST_F(DashboardServerTest, SweepActionsNeedTheSessionAndAJsonBody) {
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = testing::SmallConfig();
  absl::StatusOr<v1::SubmitSweepResponse> sweep = core_->Submit(submit);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  const std::string path =
      absl::StrCat("/api/v1/sweeps/", sweep->sweep_id(), "/pause");
  Start();
  const std::string cookie = Login();
  const std::string session = cookie.substr(0, cookie.find(';'));
  httplib::Client c = Client(/*with_token=*/false);
  httplib::Result r = c.Post(path, "{}", "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 401);
  r = c.Post(path, httplib::Headers{{"Cookie", session}}, "a=b",
             "application/x-www-form-urlencoded");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(r->body, HasSubstr("must be application/json"));
  EXPECT_FALSE(core_->GetSweep(sweep->sweep_id())->paused());
  r = c.Post(path, httplib::Headers{{"Cookie", session}}, "{}",
             "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(core_->GetSweep(sweep->sweep_id())->paused());
  r = Client().Post(
      absl::StrCat("/api/v1/sweeps/", sweep->sweep_id(), "/explode"), "{}",
      "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(r->body, HasSubstr("must be pause, resume, cancel or retry"));
}

// Defect 14: an order other than asc or desc is refused, named.
TEST_F(DashboardServerTest, TrialsRefuseUnknownOrder) {
  Start();
  httplib::Result r = Client().Get("/api/v1/sweeps/s-1/trials?order=sideways");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(r->body,
              HasSubstr("order = \\\"sideways\\\": must be asc or desc"));
}

// Defect 14: a log offset of 2^48 or more is refused as documented.
TEST_F(DashboardServerTest, LogsRefuseOffsetFrom2To48) {
  Start();
  httplib::Result r =
      Client().Get("/api/v1/trials/tr-x/logs?offset=281474976710656");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(r->body,
              HasSubstr("offset = 281474976710656: must be >= 0 and < 2^48"));
}

// Defect 14: no other site may frame a page or an answer.
TEST_F(DashboardServerTest, EveryResponseForbidsFraming) {
  Start();
  httplib::Client anonymous = Client(/*with_token=*/false);
  for (const char* path : {"/", "/index.html", "/login.html", "/api/v1"}) {
    httplib::Result r = anonymous.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_THAT(r->get_header_value("Content-Security-Policy"),
                HasSubstr("frame-ancestors 'none'"))
        << path << " " << r->status;
  }
  httplib::Result api = Client().Get("/api/v1");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 200);
  EXPECT_THAT(api->get_header_value("Content-Security-Policy"),
              HasSubstr("frame-ancestors 'none'"));
}

// Defect 14: the cookie is a random session id, not the token; it expires
// after 12 h and logout ends it.
TEST_F(DashboardServerTest, SessionCookieIsARandomIdThatExpires) {
  Start();
  const std::string set_cookie = Login();
  EXPECT_THAT(set_cookie, HasSubstr("Max-Age=43200"));
  EXPECT_THAT(set_cookie, HasSubstr("HttpOnly"));
  EXPECT_THAT(set_cookie, HasSubstr("SameSite=Strict"));
  EXPECT_EQ(set_cookie.find(kToken), std::string::npos) << set_cookie;
  ASSERT_THAT(set_cookie, StartsWith("isoflop_session="));
  const std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  EXPECT_EQ(cookie.size(), std::string("isoflop_session=").size() + 64);
  EXPECT_NE(Login().substr(0, set_cookie.find(';')), cookie);  // random

  httplib::Client c = Client(/*with_token=*/false);
  auto get = [&](const std::string& cookie_header) {
    httplib::Result r =
        c.Get("/api/v1/sweeps", httplib::Headers{{"Cookie", cookie_header}});
    return r ? r->status : -1;
  };
  EXPECT_EQ(get(cookie), 200);
  EXPECT_EQ(get(absl::StrCat("isoflop_session=", kToken)), 401);
  EXPECT_EQ(get(absl::StrCat("isoflop_token=", kToken)), 401);
  clock_.Advance(absl::Hours(12) - absl::Seconds(1));
  EXPECT_EQ(get(cookie), 200);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(get(cookie), 401);

  const std::string fresh = Login();
  const std::string fresh_cookie = fresh.substr(0, fresh.find(';'));
  EXPECT_EQ(get(fresh_cookie), 200);
  httplib::Result out =
      c.Post("/api/v1/logout", httplib::Headers{{"Cookie", fresh_cookie}}, "",
             "application/x-www-form-urlencoded");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 303);
  EXPECT_THAT(out->get_header_value("Set-Cookie"), HasSubstr("Max-Age=0"));
  EXPECT_EQ(get(fresh_cookie), 401);
}

// Issue 24 point 4: a one-time login link (minted with the token) sets a
// session once; opened again, or after its 10 minutes, it goes to the login
// page. The token never appears in it.
TEST_F(DashboardServerTest, OneTimeLoginLinkOpensOnceAndExpires) {
  Start();
  httplib::Client anonymous = Client(/*with_token=*/false);
  httplib::Result refused = anonymous.Post("/api/v1/login/once");
  ASSERT_TRUE(refused) << httplib::to_string(refused.error());
  EXPECT_EQ(refused->status, 401);
  auto mint = [&]() -> std::string {
    httplib::Result r = Client().Post("/api/v1/login/once");
    EXPECT_TRUE(r) << httplib::to_string(r.error());
    if (!r) return "";
    EXPECT_EQ(r->status, 200) << r->body;
    const nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
    EXPECT_TRUE(j.is_object()) << r->body;
    if (!j.is_object()) return "";
    EXPECT_EQ(j.value("single_use", false), true);
    const std::string url = j.value("url", "");
    EXPECT_THAT(url, StartsWith(server_->url() + "/login?once="));
    EXPECT_EQ(url.find(kToken), std::string::npos) << url;
    return url.substr(server_->url().size());  // the path
  };
  const std::string path = mint();
  httplib::Result first = anonymous.Get(path + "&next=/trial.html%3Fid%3Dtr-1");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 303);
  EXPECT_EQ(first->get_header_value("Location"), "/trial.html?id=tr-1");
  const std::string set_cookie = first->get_header_value("Set-Cookie");
  ASSERT_THAT(set_cookie, StartsWith("isoflop_session="));
  EXPECT_THAT(set_cookie, HasSubstr("HttpOnly"));
  httplib::Result api = anonymous.Get(
      "/api/v1/sweeps",
      httplib::Headers{{"Cookie", set_cookie.substr(0, set_cookie.find(';'))}});
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 200);

  httplib::Result again = anonymous.Get(path);  // spent
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 303);
  EXPECT_EQ(again->get_header_value("Location"), "/login.html?error=link");
  EXPECT_FALSE(again->has_header("Set-Cookie"));

  const std::string late = mint();
  clock_.Advance(absl::Minutes(10));
  httplib::Result expired = anonymous.Get(late);
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->get_header_value("Location"), "/login.html?error=link");
  EXPECT_FALSE(expired->has_header("Set-Cookie"));
}

TEST_F(DashboardServerTest, TrialOfUnknownIdIs404NamingIt) {
  Start();
  httplib::Result r = Client().Get("/api/v1/trials/tr-nope");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 404);
  EXPECT_THAT(r->body, HasSubstr("tr-nope"));
}

// Issue 19: the law route of a sweep without a stored fit answers at once
// with "fit pending" (a fit queued on the core, none made for the request);
// after the core's fit thread ran it, the same route shows the stored fit.
TEST_F(DashboardServerTest, LawWithoutAFitAnswersPendingThenTheStoredFit) {
  Start();
  v1::SubmitSweepRequest submit;
  *submit.mutable_config() = ::isoflop::coordinator::testing::SmallConfig();
  absl::StatusOr<v1::SubmitSweepResponse> sweep = core_->Submit(submit);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  v1::RegisterWorkerRequest reg;
  reg.set_worker_id("w1");
  reg.mutable_resources()->set_cpu_slots(8);
  ASSERT_TRUE(core_->RegisterWorker(reg).ok());
  for (int i = 0; i < 5; ++i) {  // of 6: the sweep still runs
    v1::LeaseTrialRequest lease;
    lease.set_worker_id("w1");
    lease.set_free_cpu_slots(1);
    absl::StatusOr<v1::LeaseTrialResponse> l = core_->LeaseTrial(lease);
    ASSERT_TRUE(l.ok() && l->has_assignment());
    v1::ReportOutcomeRequest out;
    out.set_worker_id("w1");
    out.mutable_lease()->set_trial_id(l->spec().trial_id());
    out.mutable_lease()->set_attempt(l->attempt());
    out.mutable_lease()->set_lease_epoch(l->lease_epoch());
    out.set_outcome(v1::OUTCOME_SUCCEEDED);
    out.set_final_val_loss(
        1.7 + 400 / std::pow(static_cast<double>(l->spec().n_total()), 0.34) +
        410 / std::pow(static_cast<double>(l->spec().tokens()), 0.28));
    ASSERT_TRUE(core_->ReportOutcome(out).ok());
  }
  const std::string path =
      absl::StrCat("/api/v1/sweeps/", sweep->sweep_id(), "/law");
  httplib::Client c = Client();
  const absl::Time asked = absl::Now();
  httplib::Result r = c.Get(path);
  const absl::Duration took = absl::Now() - asked;
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  nlohmann::json law = nlohmann::json::parse(r->body);
  EXPECT_EQ(law["fit_pending"], true);
  EXPECT_TRUE(law["fit"].is_null());
  EXPECT_EQ(law["points"].size(), 5u);
  EXPECT_EQ(core_->GetStats().fits, 0);  // nothing fitted to answer
  RecordProperty("pending_answer_ms",
                 absl::StrCat(absl::ToInt64Milliseconds(took)));
  EXPECT_EQ(core_->RunPendingFits(), 1);  // CoordinatorServer's loop does
  r = c.Get(path);
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  law = nlohmann::json::parse(r->body);
  EXPECT_EQ(law["fit_pending"], false);
  ASSERT_TRUE(law["fit"].is_object()) << r->body.substr(0, 200);
  EXPECT_EQ(law["fit"]["n_points"], 5);
  EXPECT_EQ(law["fit"]["alpha"].get<double>(),
            store_->ReadFit(sweep->sweep_id()).value()->alpha());
}

}  // namespace
}  // namespace isoflop::coordinator::http
