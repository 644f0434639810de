#include "trainer/watchdog.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/exit_codes.h"

namespace isoflop::trainer {

Watchdog::Watchdog(int fd, int64_t timeout_ns, NowFn now, ExpireFn on_expire)
    : fd_(fd),
      timeout_ns_(timeout_ns),
      now_(std::move(now)),
      on_expire_(std::move(on_expire)),
      deadline_ns_(now_() + timeout_ns) {
  if (fd_ >= 0) ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

Watchdog::~Watchdog() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
}

void Watchdog::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Watchdog::ReadFeedsLocked() {
  char buf[512];
  while (!eof_ && fd_ >= 0) {
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n > 0) {
      partial_.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      eof_ = true;  // the worker is gone: no more feeds, the deadline stands
    } else if (errno != EINTR) {
      break;  // EAGAIN: nothing more for now
    }
  }
  const int64_t now = now_();
  size_t start = 0;
  for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos;
       start = nl + 1) {
    int64_t fed_at = 0;
    if (!absl::SimpleAtoi(absl::string_view(partial_).substr(start, nl - start),
                          &fed_at)) {
      continue;  // not a feed: ignored
    }
    // A feed from the future cannot come from a shared clock; clamping keeps
    // the deadline within timeout of now.
    fed_at = std::min(fed_at, now);
    // The first feed replaces the start-up deadline; later ones only extend.
    deadline_ns_ = fed_ ? std::max(deadline_ns_, fed_at + timeout_ns_)
                        : fed_at + timeout_ns_;
    fed_ = true;
  }
  partial_.erase(0, start);
}

bool Watchdog::Check() {
  std::string why;
  {
    absl::MutexLock lock(&mu_);
    if (fired_) return true;
    ReadFeedsLocked();
    const int64_t now = now_();
    if (now < deadline_ns_) return false;
    fired_ = true;
    why = absl::StrCat(
        "watchdog: the lease was last renewed ",
        (now - deadline_ns_ + timeout_ns_) / 1'000'000, " ms ago (",
        fed_ ? "" : "never fed; ", "--watchdog-timeout-s ",
        static_cast<double>(timeout_ns_) / 1e9, eof_ ? "; worker gone" : "",
        "): stopping before the coordinator may re-queue the trial");
  }
  on_expire_(why);
  return true;
}

int64_t Watchdog::deadline_ns() {
  absl::MutexLock lock(&mu_);
  ReadFeedsLocked();
  return deadline_ns_;
}

bool Watchdog::AtRisk() {
  absl::MutexLock lock(&mu_);
  ReadFeedsLocked();
  return now_() >= deadline_ns_ - timeout_ns_ / 2;
}

void Watchdog::Loop() {
  while (!stop_.load()) {
    if (Check()) return;
    bool eof = false;
    int64_t left_ns = 0;
    {
      absl::MutexLock lock(&mu_);
      eof = eof_;
      left_ns = deadline_ns_ - now_();
    }
    // Wake at the deadline (rounded up to the next millisecond), on a feed,
    // and at least every 100 ms (the stop flag; a clock that jumped).
    const int timeout_ms = static_cast<int>(
        std::clamp<int64_t>((left_ns + 999'999) / 1'000'000, 1, 100));
    pollfd p{.fd = eof ? -1 : fd_, .events = POLLIN, .revents = 0};
    ::poll(&p, 1, timeout_ms);
  }
}

void FenceProcess(const std::string& why) {
  const std::string line = absl::StrCat("isoflop-trainer: fenced: ", why,
                                        " (exit ", kExitFenced, ")\n");
  (void)!::write(2, line.data(), line.size());
  ::_exit(kExitFenced);
}

}  // namespace isoflop::trainer
