#include "common/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace isoflop {
namespace {

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t vocab_size;
  uint64_t n_tokens;
  char padding[kTokenFileHeaderBytes - 24];
};
static_assert(sizeof(Header) == kTokenFileHeaderBytes);

}  // namespace

absl::Status WriteTokenFile(const std::string& path, uint32_t vocab_size,
                            std::span<const uint16_t> tokens) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": token[", i, "] = ", tokens[i],
                       ": must be < vocab_size = ", vocab_size));
    }
  }
  Header h{};
  std::memcpy(h.magic, kTokenFileMagic, sizeof(h.magic));
  h.version = kTokenFileVersion;
  h.vocab_size = vocab_size;
  h.n_tokens = tokens.size();
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr)
    return absl::InternalError(absl::StrCat(tmp, ": cannot create"));
  bool ok = std::fwrite(&h, sizeof(h), 1, f) == 1 &&
            std::fwrite(tokens.data(), sizeof(uint16_t), tokens.size(), f) ==
                tokens.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(path, ": write failed"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TokenFile> TokenFile::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  struct stat st {};
  fstat(fd, &st);
  const size_t bytes = static_cast<size_t>(st.st_size);
  if (bytes < kTokenFileHeaderBytes) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", bytes, " bytes: shorter than the 64-byte header"));
  }
  void* map = mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED)
    return absl::InternalError(absl::StrCat(path, ": mmap failed"));
  TokenFile file;
  file.map_ = map;
  file.map_bytes_ = bytes;
  Header h;
  std::memcpy(&h, map, sizeof(h));
  if (std::memcmp(h.magic, kTokenFileMagic, sizeof(h.magic)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": bad magic: not an isoflop token file (ISOFTOK1)"));
  }
  if (h.version != kTokenFileVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": version = ", h.version, ": must be ", kTokenFileVersion));
  }
  if (bytes != kTokenFileHeaderBytes + h.n_tokens * sizeof(uint16_t)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": n_tokens = ", h.n_tokens, " but the file holds ",
        (bytes - kTokenFileHeaderBytes) / 2, " tokens: truncated or corrupt"));
  }
  file.vocab_size_ = h.vocab_size;
  file.n_tokens_ = h.n_tokens;
  file.tokens_ = reinterpret_cast<const uint16_t*>(
      static_cast<const char*>(map) + kTokenFileHeaderBytes);
  return file;
}

TokenFile::TokenFile(TokenFile&& other) noexcept { *this = std::move(other); }

TokenFile& TokenFile::operator=(TokenFile&& other) noexcept {
  if (this != &other) {
    if (map_ != nullptr) munmap(map_, map_bytes_);
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    tokens_ = std::exchange(other.tokens_, nullptr);
    n_tokens_ = std::exchange(other.n_tokens_, 0);
    vocab_size_ = other.vocab_size_;
  }
  return *this;
}

TokenFile::~TokenFile() {
  if (map_ != nullptr) munmap(map_, map_bytes_);
}

}  // namespace isoflop
