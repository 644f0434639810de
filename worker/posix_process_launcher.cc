#include "worker/posix_process_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/boot_clock.h"

extern char** environ;

namespace isoflop::worker {
namespace {

absl::Status ErrnoError(const std::string& what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

// The parent's environment with `overrides` ("KEY=value") replacing or adding
// entries. Built before fork: the child must not allocate.
std::vector<std::string> MergedEnvironment(
    const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    std::string key = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const std::string& o : overrides) {
      if (o.substr(0, o.find('=')) == key) overridden = true;
    }
    if (!overridden) env.push_back(std::move(entry));
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Runs in the forked child: only async-signal-safe calls until exec. On
// failure writes errno to `err_fd` and exits 127.
[[noreturn]] void ExecChild(char* const* argv, char* const* envp, int null_fd,
                            int log_fd, int metrics_fd, int watchdog_fd,
                            int err_fd, pid_t parent, bool stdout_to_lines) {
  setpgid(0, 0);
  // A worker killed with SIGKILL cannot stop its trainers: the kernel sends
  // them SIGTERM (they checkpoint and exit) instead of leaving orphans on the
  // GPU. The worker forks from its one long-lived agent thread (the signal
  // follows the forking thread's exit). If the worker died before this line,
  // the child is already orphaned: exit.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(127);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none,
              nullptr);  // the worker blocks SIGTERM for sigwait
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &dfl, nullptr);
  bool ok = dup2(null_fd, 0) >= 0 &&
            dup2(stdout_to_lines ? metrics_fd : log_fd, 1) >= 0 &&
            dup2(log_fd, 2) >= 0;
  // Out of the way of the metrics descriptor before it is placed.
  if (ok && watchdog_fd >= 0 && watchdog_fd < kChildWatchdogFd) {
    watchdog_fd = fcntl(watchdog_fd, F_DUPFD_CLOEXEC, kChildWatchdogFd + 1);
    ok = watchdog_fd >= 0;
  }
  if (ok && metrics_fd == kChildMetricsFd) {
    ok = fcntl(metrics_fd, F_SETFD, 0) == 0;  // dup2 onto itself keeps CLOEXEC
  } else if (ok) {
    ok = dup2(metrics_fd, kChildMetricsFd) >= 0;
  }
  if (ok && watchdog_fd == kChildWatchdogFd) {
    ok = fcntl(watchdog_fd, F_SETFD, 0) == 0;
  } else if (ok && watchdog_fd >= 0) {
    ok = dup2(watchdog_fd, kChildWatchdogFd) >= 0;
  }
  if (ok) execve(argv[0], argv, envp);
  int err = errno;
  (void)!write(err_fd, &err, sizeof(err));
  _exit(127);
}

// Opens the child's descriptors; every one is O_CLOEXEC so that no other
// child inherits it. Returns {null, log, pipe read, pipe write, err read, err
// write}.
absl::StatusOr<std::array<int, 6>> OpenChildFds(
    const std::filesystem::path& log_path) {
  std::error_code ec;
  if (log_path.has_parent_path())
    std::filesystem::create_directories(log_path.parent_path(), ec);
  std::array<int, 6> fds;
  fds.fill(-1);
  auto fail = [&fds](const std::string& what) {
    int err = errno;
    for (int fd : fds)
      if (fd >= 0) close(fd);
    return ErrnoError(what, err);
  };
  fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fds[0] < 0) return fail("open /dev/null");
  fds[1] =
      open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fds[1] < 0) return fail(absl::StrCat("open log ", log_path.string()));
  if (pipe2(&fds[2], O_CLOEXEC) != 0) return fail("pipe2 (metrics)");
  if (pipe2(&fds[4], O_CLOEXEC) != 0) return fail("pipe2 (exec status)");
  return fds;
}

}  // namespace

PosixProcessLauncher::~PosixProcessLauncher() {
  for (auto& [pid, child] : children_) {
    if (!child.exit.has_value()) {
      kill(-static_cast<pid_t>(pid), SIGKILL);
      waitpid(static_cast<pid_t>(pid), nullptr, 0);
    }
    if (child.metrics_fd >= 0) close(child.metrics_fd);
    if (child.watchdog_fd >= 0) close(child.watchdog_fd);
  }
}

absl::StatusOr<ProcessId> PosixProcessLauncher::Launch(const LaunchSpec& spec) {
  if (spec.argv.empty())
    return absl::InvalidArgumentError("LaunchSpec.argv is empty");
  std::vector<std::string> argv_storage = spec.argv;
  std::vector<std::string> env_storage = MergedEnvironment(spec.env);
  std::vector<char*> argv = CStrings(argv_storage);
  std::vector<char*> envp = CStrings(env_storage);
  auto fds_or = OpenChildFds(spec.log_path);
  if (!fds_or.ok()) return fds_or.status();
  auto [null_fd, log_fd, read_fd, write_fd, err_read, err_write] = *fds_or;
  // A socket, not a pipe: Feed sends with MSG_NOSIGNAL, so a child that
  // closed its end costs no SIGPIPE.
  int watchdog[2] = {-1, -1};  // ours, the child's
  if (spec.watchdog &&
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, watchdog) != 0) {
    const int err = errno;
    for (int fd : *fds_or) close(fd);
    return ErrnoError("socketpair (watchdog)", err);
  }

  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    ExecChild(argv.data(), envp.data(), null_fd, log_fd, write_fd, watchdog[1],
              err_write, parent, spec.stdout_to_lines);
  }
  int fork_errno = errno;
  for (int fd : {null_fd, log_fd, write_fd, err_write, watchdog[1]}) {
    if (fd >= 0) close(fd);
  }
  if (pid < 0) {
    close(read_fd);
    close(err_read);
    if (watchdog[0] >= 0) close(watchdog[0]);
    return ErrnoError("fork", fork_errno);
  }
  setpgid(pid, pid);  // also in the child: whichever runs first wins the race
  int exec_errno = 0;
  ssize_t n;
  do {
    n = read(err_read, &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  close(err_read);
  if (n == sizeof(exec_errno)) {  // exec failed; the pipe closes on success
    waitpid(pid, nullptr, 0);
    close(read_fd);
    if (watchdog[0] >= 0) close(watchdog[0]);
    return ErrnoError(absl::StrCat("exec ", spec.argv[0]), exec_errno);
  }
  fcntl(read_fd, F_SETFL, fcntl(read_fd, F_GETFL) | O_NONBLOCK);
  Child child;
  child.metrics_fd = read_fd;
  child.watchdog_fd = watchdog[0];
  children_[pid] = std::move(child);
  return static_cast<ProcessId>(pid);
}

absl::StatusOr<std::vector<std::string>> PosixProcessLauncher::ReadLines(
    ProcessId id) {
  auto it = children_.find(id);
  if (it == children_.end())
    return absl::NotFoundError(absl::StrCat("process ", id));
  Child& child = it->second;
  bool eof = child.metrics_fd < 0;
  char buf[8192];
  while (!eof) {
    ssize_t n = read(child.metrics_fd, buf, sizeof(buf));
    if (n > 0) {
      child.partial.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      eof = true;
      close(child.metrics_fd);
      child.metrics_fd = -1;
    } else if (errno != EINTR) {
      break;  // EAGAIN: nothing more for now
    }
  }
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = child.partial.find('\n', start)) != std::string::npos;
       start = nl + 1) {
    lines.push_back(child.partial.substr(start, nl - start));
  }
  child.partial.erase(0, start);
  // A writer that exited without a final '\n' still said something.
  if ((eof || child.exit.has_value()) && !child.partial.empty()) {
    lines.push_back(std::move(child.partial));
    child.partial.clear();
  }
  return lines;
}

absl::StatusOr<std::optional<ExitStatus>> PosixProcessLauncher::Poll(
    ProcessId id) {
  auto it = children_.find(id);
  if (it == children_.end())
    return absl::NotFoundError(absl::StrCat("process ", id));
  Child& child = it->second;
  if (child.exit.has_value()) return child.exit;
  const pid_t pid = static_cast<pid_t>(id);
  int wstatus = 0;
  pid_t r = waitpid(pid, &wstatus, WNOHANG);
  if (r < 0 && errno != EINTR)
    return ErrnoError(absl::StrCat("waitpid ", id), errno);
  if (r == pid) {
    child.exit = WIFSIGNALED(wstatus) ? ExitStatus::Signal(WTERMSIG(wstatus))
                                      : ExitStatus::Code(WEXITSTATUS(wstatus));
    kill(-pid, SIGKILL);  // stragglers the trainer left in its group
    return child.exit;
  }
  if (child.kill_at.has_value() && clock_->Now() >= *child.kill_at) {
    kill(-pid, SIGKILL);
    child.kill_at.reset();
  }
  return std::nullopt;
}

absl::Status PosixProcessLauncher::Terminate(ProcessId id,
                                             absl::Duration grace) {
  auto it = children_.find(id);
  if (it == children_.end())
    return absl::NotFoundError(absl::StrCat("process ", id));
  if (it->second.exit.has_value()) return absl::OkStatus();
  const pid_t pgid = static_cast<pid_t>(id);
  if (grace <= absl::ZeroDuration()) {
    kill(-pgid, SIGKILL);
    return absl::OkStatus();
  }
  kill(-pgid, SIGTERM);
  if (!it->second.kill_at.has_value())
    it->second.kill_at = clock_->Now() + grace;
  return absl::OkStatus();
}

absl::Status PosixProcessLauncher::Feed(ProcessId id, absl::Time renewed_at) {
  auto it = children_.find(id);
  if (it == children_.end())
    return absl::NotFoundError(absl::StrCat("process ", id));
  if (it->second.watchdog_fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("process ", id, " has no watchdog"));
  }
  // The same instant on the boot clock, which the child reads too.
  const int64_t boot_ns =
      BootTimeNs() - absl::ToInt64Nanoseconds(clock_->Now() - renewed_at);
  const std::string line = absl::StrCat(boot_ns, "\n");
  ssize_t n;
  do {
    n = send(it->second.watchdog_fd, line.data(), line.size(),
             MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  // EAGAIN: the child stopped reading (it fences itself); EPIPE: it is gone.
  if (n < 0 && errno != EAGAIN && errno != EPIPE && errno != ECONNRESET) {
    return ErrnoError(absl::StrCat("feed process ", id), errno);
  }
  return absl::OkStatus();
}

absl::Status PosixProcessLauncher::Release(ProcessId id) {
  auto it = children_.find(id);
  if (it == children_.end())
    return absl::NotFoundError(absl::StrCat("process ", id));
  if (!it->second.exit.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("process ", id, " is still running"));
  }
  if (it->second.metrics_fd >= 0) close(it->second.metrics_fd);
  if (it->second.watchdog_fd >= 0) close(it->second.watchdog_fd);
  children_.erase(it);
  return absl::OkStatus();
}

}  // namespace isoflop::worker
