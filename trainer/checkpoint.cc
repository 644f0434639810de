#include "trainer/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

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

absl::Status WriteCheckpoint(const std::string& path,
                             uint64_t config_fingerprint,
                             const std::vector<BlobView>& blobs) {
  const std::string tmp = path + ".tmp";
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
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat(path, ": cannot write checkpoint: ", err));
  }
  // Make the rename itself durable.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(),
                         O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
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
