#include "trainer/checkpoint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace isoflop::trainer {
namespace {

constexpr char kMagic[8] = {'I', 'S', 'O', 'F', 'C', 'K', 'P', '1'};
constexpr uint32_t kVersion = 1;

// Streams bytes to a file descriptor while folding them into the checksum.
class HashingWriter {
 public:
  explicit HashingWriter(int fd) : fd_(fd) {}
  bool Write(const void* data, size_t n) {
    hash_ = Checksum64({static_cast<const char*>(data), n}, hash_);
    return WriteRaw(data, n);
  }
  template <typename T>
  bool Pod(T v) {
    return Write(&v, sizeof v);
  }
  bool WriteRaw(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  uint64_t hash() const { return hash_; }

 private:
  int fd_;
  uint64_t hash_ = 0;
};

absl::Status Defect(const std::string& path, const std::string& what) {
  return absl::DataLossError(
      absl::StrCat("checkpoint ", path, ": ", what,
                   ": refusing to load it (delete it to start over)"));
}

}  // namespace

uint64_t Checksum64(std::span<const char> bytes, uint64_t seed) {
  // Word-at-a-time multiply-xor (a streaming variant of FNV-1a): fast enough
  // for GB-sized checkpoints, and any flipped or missing byte changes it.
  // Chunking-dependent, so writer and reader hash the same pieces.
  uint64_t h = seed ^ 0xcbf29ce484222325ULL ^ bytes.size();
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  for (; i < bytes.size(); ++i) {
    h = (h ^ static_cast<unsigned char>(bytes[i])) * 0x100000001b3ULL;
  }
  return h;
}

namespace {

// Writes the whole file to `tmp` and fsyncs it; removes it on failure.
absl::Status WriteTemporary(const std::string& tmp, uint64_t config_fingerprint,
                            const std::vector<BlobView>& blobs) {
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat(tmp, ": cannot create: ", std::strerror(errno)));
  }
  HashingWriter w(fd);
  bool ok = w.Write(kMagic, sizeof kMagic) && w.Pod(kVersion) &&
            w.Pod(static_cast<uint32_t>(blobs.size())) &&
            w.Pod(config_fingerprint);
  for (const BlobView& b : blobs) {
    if (!ok) break;
    ok = w.Pod(static_cast<uint32_t>(b.name.size())) &&
         w.Write(b.name.data(), b.name.size()) &&
         w.Pod(static_cast<uint64_t>(b.bytes.size())) &&
         w.Write(b.bytes.data(), b.bytes.size());
  }
  const uint64_t sum = w.hash();
  ok = ok && w.WriteRaw(&sum, sizeof sum) && ::fsync(fd) == 0;
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat(tmp, ": cannot write checkpoint: ", err));
  }
  return absl::OkStatus();
}

// Makes a rename in `dir` durable.
void SyncDir(const std::string& dir) {
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(),
                         O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

constexpr char kFenceName[] = "fence";

// DIR/fence, open and exclusively locked for the object's life.
class FenceLock {
 public:
  static absl::StatusOr<FenceLock> Take(const std::string& dir) {
    const std::string path = (std::filesystem::path(dir) / kFenceName).string();
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::InternalError(
          absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
    }
    // Held for microseconds by a healthy trainer; a holder stopped with
    // SIGSTOP must not hang the next attempt for ever.
    const auto give_up =
        std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if ((errno != EWOULDBLOCK && errno != EINTR) ||
          std::chrono::steady_clock::now() >= give_up) {
        const std::string err = std::strerror(errno);
        ::close(fd);
        return absl::UnavailableError(
            absl::StrCat(path, ": cannot lock: ", err));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return FenceLock(fd, path);
  }
  FenceLock(FenceLock&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}
  FenceLock& operator=(FenceLock&&) = delete;
  ~FenceLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }

  // The recorded epoch (0 for an empty file).
  absl::StatusOr<uint64_t> Read() const {
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    if (n < 0) {
      return absl::InternalError(
          absl::StrCat(path_, ": cannot read: ", std::strerror(errno)));
    }
    const absl::string_view text = absl::StripAsciiWhitespace(
        absl::string_view(buf, static_cast<size_t>(n)));
    uint64_t epoch = 0;
    if (!text.empty() && !absl::SimpleAtoi(text, &epoch)) {
      return absl::DataLossError(
          absl::StrCat(path_, ": not an epoch: \"", text, "\""));
    }
    return epoch;
  }
  absl::Status Write(uint64_t epoch) const {
    const std::string text = absl::StrCat(epoch, "\n");
    if (::ftruncate(fd_, 0) != 0 ||
        ::pwrite(fd_, text.data(), text.size(), 0) !=
            static_cast<ssize_t>(text.size()) ||
        ::fsync(fd_) != 0) {
      return absl::InternalError(
          absl::StrCat(path_, ": cannot write: ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }
  // OK unless the recorded epoch is newer than `epoch` (or unreadable).
  absl::Status Allows(uint64_t epoch) const {
    absl::StatusOr<uint64_t> fence = Read();
    if (!fence.ok()) {
      return absl::AbortedError(
          absl::StrCat("fenced: ", fence.status().message()));
    }
    if (*fence > epoch) {
      return absl::AbortedError(
          absl::StrCat("fenced: ", path_, " names lease epoch ", *fence,
                       ", newer than this attempt's --lease-epoch ", epoch,
                       ": a newer attempt of this trial owns the directory"));
    }
    return absl::OkStatus();
  }

 private:
  FenceLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

// The epoch of a checkpoint file name, or nullopt for another file.
std::optional<uint64_t> EpochOf(const std::string& name) {
  if (name == "checkpoint.bin") return 0;
  absl::string_view rest = name;
  uint64_t epoch = 0;
  if (!absl::ConsumePrefix(&rest, "checkpoint.") ||
      !absl::ConsumeSuffix(&rest, ".bin") || !absl::SimpleAtoi(rest, &epoch) ||
      CheckpointFileName(epoch) != name) {
    return std::nullopt;
  }
  return epoch;
}

}  // namespace

absl::Status WriteCheckpoint(const std::string& path,
                             uint64_t config_fingerprint,
                             const std::vector<BlobView>& blobs) {
  const std::string tmp = path + ".tmp";
  if (absl::Status s = WriteTemporary(tmp, config_fingerprint, blobs);
      !s.ok()) {
    return s;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat(path, ": cannot write checkpoint: ", err));
  }
  SyncDir(std::filesystem::path(path).parent_path().string());
  return absl::OkStatus();
}

std::string CheckpointFileName(uint64_t epoch) {
  return epoch == 0 ? "checkpoint.bin"
                    : absl::StrCat("checkpoint.", epoch, ".bin");
}

absl::Status ClaimCheckpointDir(const std::string& dir, uint64_t epoch) {
  absl::StatusOr<FenceLock> lock = FenceLock::Take(dir);
  if (!lock.ok()) return lock.status();
  absl::StatusOr<uint64_t> fence = lock->Read();
  // An unreadable fence (a torn write) is replaced by this claim.
  if (fence.ok() && *fence > epoch) return lock->Allows(epoch);
  if (epoch == 0 || (fence.ok() && *fence == epoch)) return absl::OkStatus();
  return lock->Write(epoch);
}

absl::Status CheckCheckpointFence(const std::string& dir, uint64_t epoch) {
  absl::StatusOr<FenceLock> lock = FenceLock::Take(dir);
  if (!lock.ok()) return lock.status();
  return lock->Allows(epoch);
}

namespace {

// Writes `path` (in `dir`) through a temporary file and renames it into place
// under the fence lock, unless a newer epoch claimed `dir` or `may_commit`
// refuses.
absl::Status CommitFenced(const std::string& dir, const std::string& path,
                          uint64_t epoch, uint64_t config_fingerprint,
                          const std::vector<BlobView>& blobs,
                          const std::function<absl::Status()>& may_commit) {
  const std::string tmp = path + ".tmp";
  if (absl::Status s = WriteTemporary(tmp, config_fingerprint, blobs);
      !s.ok()) {
    return s;
  }
  absl::Status status;
  {
    absl::StatusOr<FenceLock> lock = FenceLock::Take(dir);
    status = lock.ok() ? lock->Allows(epoch) : lock.status();
    if (status.ok() && may_commit) status = may_commit();
    if (status.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
      status = absl::InternalError(absl::StrCat(
          path, ": cannot write checkpoint: ", std::strerror(errno)));
    }
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  SyncDir(dir);
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteFencedCheckpoint(
    const std::string& dir, uint64_t epoch, uint64_t config_fingerprint,
    const std::vector<BlobView>& blobs,
    const std::function<absl::Status()>& may_commit) {
  const std::string path =
      (std::filesystem::path(dir) / CheckpointFileName(epoch)).string();
  if (absl::Status s =
          CommitFenced(dir, path, epoch, config_fingerprint, blobs, may_commit);
      !s.ok()) {
    return s;
  }
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ignored)) {
    const std::optional<uint64_t> e = EpochOf(entry.path().filename());
    if (e.has_value() && *e < epoch) std::filesystem::remove(entry, ignored);
  }
  return absl::OkStatus();
}

std::string KeptCheckpointFileName(int64_t step) {
  return absl::StrCat("kept.", step, ".bin");
}

int64_t KeptStepOf(const std::string& file_name) {
  absl::string_view rest = file_name;
  int64_t step = -1;
  if (!absl::ConsumePrefix(&rest, "kept.") ||
      !absl::ConsumeSuffix(&rest, ".bin") || !absl::SimpleAtoi(rest, &step) ||
      step < 0 || KeptCheckpointFileName(step) != file_name) {
    return -1;
  }
  return step;
}

absl::Status WriteKeptCheckpoint(
    const std::string& dir, uint64_t epoch, int64_t step,
    uint64_t config_fingerprint, const std::vector<BlobView>& blobs,
    const std::function<absl::Status()>& may_commit) {
  const std::string path =
      (std::filesystem::path(dir) / KeptCheckpointFileName(step)).string();
  return CommitFenced(dir, path, epoch, config_fingerprint, blobs, may_commit);
}

std::vector<std::string> ResumeCandidates(const std::string& dir,
                                          uint64_t epoch) {
  std::vector<std::pair<uint64_t, std::string>> found;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ignored)) {
    const std::optional<uint64_t> e = EpochOf(entry.path().filename());
    if (e.has_value() && *e <= epoch) found.emplace_back(*e, entry.path());
  }
  std::sort(found.begin(), found.end(), std::greater<>());
  std::vector<std::string> out;
  for (auto& [e, path] : found) out.push_back(std::move(path));
  return out;
}

absl::StatusOr<std::vector<Blob>> ReadCheckpoint(const std::string& path,
                                                 uint64_t config_fingerprint) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(
        absl::StrCat("checkpoint ", path, ": not found"));
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  uint64_t hash = 0, consumed = 0;
  // Reads n bytes into dst, folding them into the checksum; false if short.
  auto read = [&](void* dst, uint64_t n) {
    if (n > size - consumed) return false;
    in.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!in) return false;
    hash = Checksum64({static_cast<const char*>(dst), n}, hash);
    consumed += n;
    return true;
  };
  char magic[8];
  uint32_t version = 0, n_blobs = 0;
  uint64_t fingerprint = 0;
  if (!read(magic, sizeof magic) ||
      std::memcmp(magic, kMagic, sizeof magic) != 0) {
    return Defect(path, "bad magic (not an isoflop checkpoint)");
  }
  if (!read(&version, sizeof version) || version != kVersion) {
    return Defect(path,
                  absl::StrCat("version ", version, ": expected ", kVersion));
  }
  if (!read(&n_blobs, sizeof n_blobs) ||
      !read(&fingerprint, sizeof fingerprint)) {
    return Defect(path, "truncated header");
  }
  std::vector<Blob> blobs(n_blobs);
  for (uint32_t i = 0; i < n_blobs; ++i) {
    uint32_t name_bytes = 0;
    uint64_t data_bytes = 0;
    if (!read(&name_bytes, sizeof name_bytes) || name_bytes > 4096) {
      return Defect(path, absl::StrCat("truncated or corrupt at blob ", i));
    }
    blobs[i].name.resize(name_bytes);
    if (!read(blobs[i].name.data(), name_bytes) ||
        !read(&data_bytes, sizeof data_bytes) || data_bytes > size - consumed) {
      return Defect(
          path, absl::StrCat("truncated at blob ", i, " (", size, " bytes)"));
    }
    blobs[i].bytes.resize(data_bytes);
    if (!read(blobs[i].bytes.data(), data_bytes)) {
      return Defect(path, absl::StrCat("truncated in blob ", blobs[i].name));
    }
  }
  const uint64_t expected = hash;
  uint64_t stored = 0;
  if (size - consumed != sizeof stored) {
    return Defect(
        path, absl::StrCat("truncated or trailing bytes (", size, " bytes)"));
  }
  in.read(reinterpret_cast<char*>(&stored), sizeof stored);
  if (!in || stored != expected)
    return Defect(path, "checksum mismatch (corrupt file)");
  if (fingerprint != config_fingerprint) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", path,
                     ": written for a different model or batch configuration"));
  }
  return blobs;
}

}  // namespace isoflop::trainer
