// A TCP proxy on loopback that a test can turn into a black hole: bytes are
// read and dropped in both directions, as when a network path fails without
// resetting connections (no RST, calls just time out). Used to cut a worker
// off from its coordinator without touching either process. Hand-written:
// `ip netns` needs root and tc/iptables are not in the test environment.
#ifndef ISOFLOP_TESTS_INTEGRATION_BLACKHOLE_PROXY_H_
#define ISOFLOP_TESTS_INTEGRATION_BLACKHOLE_PROXY_H_

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace isoflop::testing {

class BlackholeProxy {
 public:
  // Listens on 127.0.0.1:<free port> and forwards to `upstream_port`.
  explicit BlackholeProxy(int upstream_port);
  ~BlackholeProxy();
  BlackholeProxy(const BlackholeProxy&) = delete;
  BlackholeProxy& operator=(const BlackholeProxy&) = delete;

  std::string address() const;  // "127.0.0.1:PORT" for clients
  // From now on every byte in either direction is dropped.
  void Cut();
  // Forward again. Connections open during the cut are closed (their streams
  // lost bytes mid-frame); clients reconnect.
  void Heal();

 private:
  void AcceptLoop();
  void Pump(int client, int upstream);

  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> cut_{false};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<int> open_fds_;         // guarded by mu_
  std::vector<std::thread> threads_;  // guarded by mu_
  std::thread acceptor_;
};

}  // namespace isoflop::testing

#endif  // ISOFLOP_TESTS_INTEGRATION_BLACKHOLE_PROXY_H_
