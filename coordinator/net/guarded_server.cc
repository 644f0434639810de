#include "coordinator/net/guarded_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace isoflop::coordinator::net {
namespace {

// Set by ConnectionThreads::enqueue around a refused connection's task: its
// process_and_close_socket answers 503 and closes on the accepting thread.
thread_local bool t_refuse = false;

// The unauthenticated connections, in the order they were accepted, so that
// a new connection past max_unauthenticated evicts the oldest (a slow
// client) rather than being refused: a legitimate client always gets in.
class Unauthenticated {
 public:
  // At accept, on the accepting thread.
  uint64_t Admit() {
    absl::MutexLock lock(&mu_);
    fds_.emplace(next_, -1);
    return next_++;
  }
  // On the connection's thread; false when it was evicted before it
  // started.
  bool Start(uint64_t id, int fd) {
    absl::MutexLock lock(&mu_);
    auto it = fds_.find(id);
    if (it == fds_.end()) return false;
    it->second = fd;
    return true;
  }
  // Once authenticated, and before its socket is closed (the fd could be
  // reused).
  void Remove(uint64_t id) {
    absl::MutexLock lock(&mu_);
    fds_.erase(id);
  }
  // Shuts the oldest one's socket down (its thread then ends it), or marks
  // it to end at its start; false if there is none.
  bool EvictOldest() {
    absl::MutexLock lock(&mu_);
    if (fds_.empty()) return false;
    if (fds_.begin()->second >= 0) shutdown(fds_.begin()->second, SHUT_RDWR);
    fds_.erase(fds_.begin());
    return true;
  }

 private:
  absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, int> fds_ ABSL_GUARDED_BY(mu_);  // id -> fd, -1: to start
};

// Set by ConnectionThreads around a connection's task: its Unauthenticated
// id.
thread_local uint64_t t_admission = 0;

struct Connection {
  ConnectionStats* stats;
  Unauthenticated* unauthenticated;
  uint64_t id;
  bool authenticated = false;
};
thread_local Connection* t_connection = nullptr;

constexpr absl::Duration kPollSlice = absl::Milliseconds(200);

const char* Reason(int status) {
  switch (status) {
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Service Unavailable";
  }
}

std::string RawResponse(int status, const std::string& code,
                        const std::string& message) {
  const std::string body =
      nlohmann::json{{"error", message}, {"code", code}}.dump();
  return absl::StrCat("HTTP/1.1 ", status, " ", Reason(status),
                      "\r\nContent-Type: application/json\r\n"
                      "Content-Security-Policy: frame-ancestors 'none'\r\n"
                      "Content-Length: ",
                      body.size(), "\r\nConnection: close\r\n",
                      status == 503 ? "Retry-After: 1\r\n" : "", "\r\n", body);
}

// Waits up to `timeout` (in slices, giving up when `stopping` says so) for
// `events` on `fd`. The revents, 0 on timeout or stop.
int16_t Wait(int fd, int16_t events, absl::Duration timeout,
             const std::function<bool()>& stopping) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration() || stopping()) return 0;
    pollfd p{fd, events, 0};
    const int ms = static_cast<int>(
        absl::ToInt64Milliseconds(std::min(left, kPollSlice)) + 1);
    const int rc = poll(&p, 1, ms);
    if (rc > 0) return p.revents;
    if (rc < 0 && errno != EINTR) return POLLERR;
  }
}

// One connection's bytes, plain or TLS (non-blocking socket, waits by poll),
// with the request head and body counted as cpp-httplib reads them.
class GuardedStream : public httplib::Stream {
 public:
  GuardedStream(int fd, SSL* ssl, const ConnectionLimits& limits,
                ConnectionStats* stats, std::function<bool()> stopping)
      : fd_(fd),
        ssl_(ssl),
        limits_(limits),
        stats_(stats),
        stopping_(std::move(stopping)) {}

  // TLS handshake within head_timeout; true for plain connections.
  bool Handshake() {
    if (ssl_ == nullptr) return true;
    const absl::Time deadline = absl::Now() + limits_.head_timeout;
    for (;;) {
      ERR_clear_error();
      const int rc = SSL_accept(ssl_);
      if (rc == 1) return true;
      const int err = SSL_get_error(ssl_, rc);
      int16_t want;
      if (err == SSL_ERROR_WANT_READ) {
        want = POLLIN;
      } else if (err == SSL_ERROR_WANT_WRITE) {
        want = POLLOUT;
      } else {
        return false;
      }
      if (Wait(fd_, want, deadline - absl::Now(), stopping_) == 0) return false;
    }
  }

  // Waits up to keep_alive_timeout for the next request's first byte.
  bool WaitForRequest() {
    if (pos_ < buffer_.size()) return true;
    if (ssl_ != nullptr && SSL_pending(ssl_) > 0) return true;
    return (Wait(fd_, POLLIN, limits_.keep_alive_timeout, stopping_) &
            (POLLIN | POLLHUP | POLLERR)) != 0;
  }

  // The next bytes read are a request head.
  void BeginRequest() {
    in_head_ = true;
    head_bytes_ = 0;
    body_bytes_ = 0;
    last_ = 0;
    before_last_ = 0;
    deadline_ = absl::Now() + limits_.head_timeout;
  }

  // This stream answered the request itself (408, 413, 431): the
  // connection must close.
  bool refused() const { return refused_; }

  // Ends the connection: after a refusal, the client's remaining bytes are
  // read and dropped for up to a second, so that the answer is not lost to
  // a reset.
  void Close() {
    if (ssl_ != nullptr) {
      SSL_shutdown(ssl_);
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (refused_) {
      shutdown(fd_, SHUT_WR);
      const absl::Time end = absl::Now() + absl::Seconds(1);
      char sink[4096];
      while (absl::Now() < end) {
        if (Wait(fd_, POLLIN, end - absl::Now(), stopping_) == 0) break;
        const ssize_t n = recv(fd_, sink, sizeof sink, 0);
        if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) break;
      }
    }
    close(fd_);
  }

  bool is_readable() const override {
    if (pos_ < buffer_.size()) return true;
    if (ssl_ != nullptr && SSL_pending(ssl_) > 0) return true;
    return Wait(fd_, POLLIN, limits_.read_timeout, stopping_) != 0;
  }

  // False once the client hung up, so that an event stream ends at once.
  bool is_writable() const override {
    const int16_t ev =
        Wait(fd_, POLLOUT | POLLRDHUP, limits_.write_timeout, stopping_);
    return (ev & POLLOUT) != 0 && (ev & (POLLRDHUP | POLLHUP | POLLERR)) == 0;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (refused_ || size == 0) return -1;
    if (in_head_) {
      if (head_bytes_ >= limits_.max_head_bytes) {
        stats_->head_too_large_total++;
        Refuse(
            431, "RESOURCE_EXHAUSTED",
            absl::StrCat("request head: longer than ", limits_.max_head_bytes,
                         " bytes (request line and headers together)"));
        return -1;
      }
      size = std::min(size, limits_.max_head_bytes - head_bytes_);
    } else if (body_bytes_ >= limits_.max_body_bytes + kChunkSlack) {
      stats_->body_too_large_total++;
      Refuse(413, "RESOURCE_EXHAUSTED",
             absl::StrCat("request body: longer than ", limits_.max_body_bytes,
                          " bytes"));
      return -1;
    }
    if (pos_ == buffer_.size()) {
      const int filled = Fill();
      if (filled <= 0) {
        if (filled < 0) {
          stats_->timed_out_total++;
          Refuse(
              408, "DEADLINE_EXCEEDED",
              in_head_
                  ? absl::StrCat("request head: not complete within ",
                                 absl::FormatDuration(limits_.head_timeout))
                  : absl::StrCat("request body: not complete within ",
                                 absl::FormatDuration(limits_.body_timeout)));
        }
        return -1;
      }
    }
    size_t n = std::min(size, buffer_.size() - pos_);
    if (in_head_) {
      // Up to the blank line that ends the head; the rest is body.
      for (size_t i = 0; i < n; ++i) {
        const char c = buffer_[pos_ + i];
        const bool end = c == '\n' && (last_ == '\n' ||
                                       (last_ == '\r' && before_last_ == '\n'));
        before_last_ = last_;
        last_ = c;
        if (end) {
          n = i + 1;
          in_head_ = false;
          deadline_ = absl::Now() + limits_.body_timeout;
          break;
        }
      }
      head_bytes_ += in_head_ ? n : 0;
    } else {
      body_bytes_ += n;
    }
    std::copy_n(buffer_.data() + pos_, n, ptr);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    // After our own answer, cpp-httplib's (a 400 for the cut head) is
    // dropped.
    if (refused_) return static_cast<ssize_t>(size);
    return WriteAll(ptr, size) ? static_cast<ssize_t>(size) : -1;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    Address(/*peer=*/true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    Address(/*peer=*/false, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  // Chunked framing on top of the body limit.
  static constexpr size_t kChunkSlack = size_t{64} << 10;

  void Address(bool peer, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    auto* sa = reinterpret_cast<sockaddr*>(&addr);
    if ((peer ? getpeername(fd_, sa, &len) : getsockname(fd_, sa, &len)) != 0)
      return;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
      ip = host;
      port = std::atoi(serv);
    }
  }

  void Refuse(int status, const std::string& code, const std::string& msg) {
    const std::string raw = RawResponse(status, code, msg);
    WriteAll(raw.data(), raw.size());
    refused_ = true;
  }

  // Reads what is there into buffer_: > 0 bytes, 0 at the end of the
  // stream or an error, -1 past the read timeout or the request's deadline.
  int Fill() {
    buffer_.resize(4096);
    pos_ = 0;
    for (;;) {
      ssize_t n;
      int16_t want = POLLIN;
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int rc = SSL_read(ssl_, buffer_.data(), buffer_.size());
        if (rc > 0) {
          n = rc;
        } else {
          const int err = SSL_get_error(ssl_, rc);
          if (err == SSL_ERROR_WANT_WRITE) {
            want = POLLOUT;
          } else if (err != SSL_ERROR_WANT_READ) {
            buffer_.clear();
            return 0;
          }
          n = -1;
        }
      } else {
        n = recv(fd_, buffer_.data(), buffer_.size(), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR)) {
          buffer_.clear();
          return 0;
        }
      }
      if (n > 0) {
        buffer_.resize(static_cast<size_t>(n));
        return 1;
      }
      const absl::Duration left =
          std::min(limits_.read_timeout, deadline_ - absl::Now());
      if (Wait(fd_, want, left, stopping_) == 0) {
        buffer_.clear();
        return stopping_() ? 0 : -1;
      }
    }
  }

  bool WriteAll(const char* ptr, size_t size) {
    while (size > 0) {
      ssize_t n;
      int16_t want = POLLOUT;
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int rc = SSL_write(
            ssl_, ptr, static_cast<int>(std::min(size, size_t{1} << 20)));
        if (rc > 0) {
          n = rc;
        } else {
          const int err = SSL_get_error(ssl_, rc);
          if (err == SSL_ERROR_WANT_READ) {
            want = POLLIN;
          } else if (err != SSL_ERROR_WANT_WRITE) {
            return false;
          }
          n = -1;
        }
      } else {
        n = send(fd_, ptr, size, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          return false;
      }
      if (n > 0) {
        ptr += n;
        size -= static_cast<size_t>(n);
        continue;
      }
      if (Wait(fd_, want, limits_.write_timeout, stopping_) == 0) return false;
    }
    return true;
  }

  const int fd_;
  SSL* ssl_;
  const ConnectionLimits& limits_;
  ConnectionStats* const stats_;
  const std::function<bool()> stopping_;
  std::string buffer_;
  size_t pos_ = 0;
  bool in_head_ = true;
  size_t head_bytes_ = 0, body_bytes_ = 0;
  char last_ = 0, before_last_ = 0;
  absl::Time deadline_ = absl::InfiniteFuture();
  bool refused_ = false;
};

// A thread per connection, up to max_connections; a connection beyond that
// or beyond max_unauthenticated is refused on the accepting thread.
class ConnectionThreads : public httplib::TaskQueue {
 public:
  ConnectionThreads(const ConnectionLimits& limits, ConnectionStats* stats,
                    Unauthenticated* unauthenticated)
      : limits_(limits), stats_(stats), unauthenticated_(unauthenticated) {}
  ~ConnectionThreads() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    bool refuse;
    {
      absl::MutexLock lock(&mu_);
      JoinFinished();
      refuse = stats_->open.load() >= limits_.max_connections ||
               (stats_->unauthenticated.load() >= limits_.max_unauthenticated &&
                !unauthenticated_->EvictOldest());
      if (!refuse &&
          stats_->unauthenticated.load() >= limits_.max_unauthenticated) {
        stats_->evicted_total++;
      }
      if (!refuse) {
        stats_->open++;
        stats_->unauthenticated++;
      }
    }
    if (!refuse) {
      absl::MutexLock lock(&mu_);
      const uint64_t id = next_id_++;
      const uint64_t admission = unauthenticated_->Admit();
      try {
        threads_.emplace(id, std::thread([this, id, admission, fn] {
                           t_admission = admission;
                           fn();
                           absl::MutexLock done(&mu_);
                           finished_.push_back(id);
                         }));
        return;
      } catch (const std::system_error&) {  // no thread to be had
        unauthenticated_->Remove(admission);
        stats_->open--;
        stats_->unauthenticated--;
      }
    }
    stats_->refused_total++;
    t_refuse = true;
    fn();
    t_refuse = false;
  }

  void shutdown() override {
    std::map<uint64_t, std::thread> all;
    {
      absl::MutexLock lock(&mu_);
      all.swap(threads_);
      finished_.clear();
    }
    for (auto& [id, t] : all) t.join();
  }

 private:
  void JoinFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (uint64_t id : finished_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      it->second.join();  // it has returned from fn and is ending
      threads_.erase(it);
    }
    finished_.clear();
  }

  const ConnectionLimits limits_;
  ConnectionStats* const stats_;
  Unauthenticated* const unauthenticated_;
  absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> finished_ ABSL_GUARDED_BY(mu_);
};

// Answers 503 on the accepting thread without waiting for the client.
void RefuseAtAccept(int fd, bool tls) {
  if (!tls) {
    const std::string raw = RawResponse(
        503, "UNAVAILABLE",
        "too many connections: retry after the time in Retry-After");
    (void)send(fd, raw.data(), raw.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    char sink[4096];
    // What the client already sent, so that closing sends FIN, not RST.
    for (int i = 0; i < 16; ++i) {
      if (recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0) break;
    }
    shutdown(fd, SHUT_WR);
  }
  close(fd);
}

class ListeningSocket {
 public:
  virtual ~ListeningSocket() = default;
  virtual void Listen(int backlog) = 0;
};

template <class Base>
class GuardedServer : public Base, public ListeningSocket {
 public:
  void Listen(int backlog) override {
    const socket_t fd = this->svr_sock_;
    if (fd != INVALID_SOCKET) ::listen(fd, backlog);  // Linux: updates it
  }

  template <class... Args>
  GuardedServer(const ConnectionLimits& limits, ConnectionStats* stats,
                Args&&... args)
      : Base(std::forward<Args>(args)...), limits_(limits), stats_(stats) {
    this->new_task_queue = [this] {
      return new ConnectionThreads(limits_, stats_, &unauthenticated_);
    };
    this->set_payload_max_length(limits_.max_body_bytes);
  }

 private:
  bool process_and_close_socket(socket_t sock) override {
    constexpr bool kTls = std::is_same_v<Base, httplib::SSLServer>;
    if (t_refuse) {
      RefuseAtAccept(sock, kTls);
      return false;
    }
    if (!unauthenticated_.Start(t_admission, sock)) {  // evicted already
      close(sock);
      stats_->unauthenticated--;
      stats_->open--;
      return false;
    }
    Connection connection{stats_, &unauthenticated_, t_admission};
    t_connection = &connection;
    fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
    SSL* ssl = nullptr;
    if constexpr (kTls) {
      ssl = SSL_new(this->ssl_context());
      if (ssl != nullptr) SSL_set_fd(ssl, sock);
    }
    GuardedStream stream(sock, ssl, limits_, stats_,
                         [this] { return this->svr_sock_ == INVALID_SOCKET; });
    bool ok = false;
    if ((!kTls || ssl != nullptr) && stream.Handshake()) {
      for (int left = limits_.keep_alive_max_count;
           left > 0 && this->svr_sock_ != INVALID_SOCKET &&
           stream.WaitForRequest();
           --left) {
        stream.BeginRequest();
        bool closed = false;
        ok = this->process_request(stream, left == 1, closed,
                                   [ssl](httplib::Request& req) {
                                     req.ssl = ssl;  // null: plain HTTP
                                   });
        if (!ok || closed || stream.refused()) break;
      }
    }
    if (!connection.authenticated) unauthenticated_.Remove(connection.id);
    stream.Close();
    t_connection = nullptr;
    if (!connection.authenticated) stats_->unauthenticated--;
    stats_->open--;
    return ok;
  }

  const ConnectionLimits limits_;
  ConnectionStats* const stats_;
  Unauthenticated unauthenticated_;
};

}  // namespace

void WidenListenBacklog(httplib::Server& server, int backlog) {
  if (auto* s = dynamic_cast<ListeningSocket*>(&server)) s->Listen(backlog);
}

void MarkConnectionAuthenticated() {
  Connection* c = t_connection;
  if (c == nullptr || c->authenticated) return;
  c->authenticated = true;
  c->unauthenticated->Remove(c->id);
  c->stats->unauthenticated--;
}

std::unique_ptr<httplib::Server> NewGuardedServer(
    const ConnectionLimits& limits, ConnectionStats* stats,
    const std::string& tls_cert_path, const std::string& tls_key_path) {
  if (tls_cert_path.empty()) {
    return std::make_unique<GuardedServer<httplib::Server>>(limits, stats);
  }
  return std::make_unique<GuardedServer<httplib::SSLServer>>(
      limits, stats, tls_cert_path.c_str(), tls_key_path.c_str());
}

}  // namespace isoflop::coordinator::net
