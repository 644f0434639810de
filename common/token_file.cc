#include "common/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace isoflop {
namespace {

// docs/data-format.md. Version 1 files have zeros where token_bytes is.
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t vocab_size;
  uint64_t n_tokens;
  uint32_t token_bytes;  // version 2: 2 (uint16) or 4 (uint32)
  char padding[kTokenFileHeaderBytes - 28];
};
static_assert(sizeof(Header) == kTokenFileHeaderBytes);

size_t BytesOf(TokenDtype d) { return d == TokenDtype::kUint32 ? 4 : 2; }

constexpr size_t kBufferBytes = size_t{1} << 20;

}  // namespace

const char* TokenDtypeName(TokenDtype dtype) {
  return dtype == TokenDtype::kUint32 ? "uint32" : "uint16";
}

TokenDtype DtypeForVocab(uint64_t vocab_size) {
  return vocab_size > kMaxUint16Vocab ? TokenDtype::kUint32
                                      : TokenDtype::kUint16;
}

size_t TokenSpan::FindIdAtLeast(uint64_t limit) const {
  return Visit([&](auto ids) -> size_t {
    const auto it = std::find_if(ids.begin(), ids.end(),
                                 [&](uint64_t id) { return id >= limit; });
    return static_cast<size_t>(it - ids.begin());
  });
}

std::vector<uint32_t> TokenSpan::ToVector() const {
  std::vector<uint32_t> out(size_);
  CopyTo(0, size_, out.data());
  return out;
}

absl::StatusOr<TokenFileWriter> TokenFileWriter::Create(const std::string& path,
                                                        uint64_t vocab_size) {
  if (vocab_size < 1 || vocab_size > kMaxTokenFileVocab) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": vocab_size = ", vocab_size, ": must be in [1, ",
                     kMaxTokenFileVocab, "] (the header's uint32 field)"));
  }
  TokenFileWriter w;
  w.path_ = path;
  w.tmp_ = path + ".tmp";
  w.vocab_size_ = static_cast<uint32_t>(vocab_size);
  w.dtype_ = DtypeForVocab(vocab_size);
  w.file_ = std::fopen(w.tmp_.c_str(), "wb");
  if (w.file_ == nullptr) {
    return absl::InternalError(absl::StrCat(w.tmp_, ": cannot create"));
  }
  const Header h{};  // the count is written by Finish
  if (std::fwrite(&h, sizeof(h), 1, w.file_) != 1) {
    w.Abandon();
    return absl::InternalError(absl::StrCat(w.tmp_, ": write failed"));
  }
  return w;
}

TokenFileWriter::TokenFileWriter(TokenFileWriter&& other) noexcept {
  *this = std::move(other);
}

TokenFileWriter& TokenFileWriter::operator=(TokenFileWriter&& other) noexcept {
  if (this != &other) {
    Abandon();
    path_ = std::move(other.path_);
    tmp_ = std::move(other.tmp_);
    file_ = std::exchange(other.file_, nullptr);
    vocab_size_ = other.vocab_size_;
    dtype_ = other.dtype_;
    count_ = other.count_;
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

TokenFileWriter::~TokenFileWriter() { Abandon(); }

void TokenFileWriter::Abandon() {
  if (file_ == nullptr) return;
  std::fclose(file_);
  file_ = nullptr;
  std::remove(tmp_.c_str());
}

absl::Status TokenFileWriter::Append(TokenSpan tokens) {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": append after Finish or a failed write"));
  }
  if (const size_t bad = tokens.FindIdAtLeast(vocab_size_);
      bad < tokens.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": token[", count_ + bad, "] = ", tokens[bad],
                     ": must be < vocab_size = ", vocab_size_));
  }
  const size_t width = BytesOf(dtype_);
  const size_t per_chunk = kBufferBytes / width;
  buffer_.resize(kBufferBytes);
  for (size_t done = 0; done < tokens.size();) {
    const size_t n = std::min(per_chunk, tokens.size() - done);
    if (dtype_ == TokenDtype::kUint32) {
      tokens.CopyTo(done, n, reinterpret_cast<uint32_t*>(buffer_.data()));
    } else {
      tokens.CopyTo(done, n, reinterpret_cast<uint16_t*>(buffer_.data()));
    }
    if (std::fwrite(buffer_.data(), width, n, file_) != n) {
      Abandon();
      return absl::InternalError(absl::StrCat(tmp_, ": write failed"));
    }
    done += n;
  }
  count_ += tokens.size();
  return absl::OkStatus();
}

absl::Status TokenFileWriter::Finish() {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": Finish after Finish or a failed write"));
  }
  Header h{};
  std::memcpy(h.magic, kTokenFileMagic, sizeof(h.magic));
  h.version = kTokenFileVersion;
  h.vocab_size = vocab_size_;
  h.n_tokens = count_;
  h.token_bytes = static_cast<uint32_t>(BytesOf(dtype_));
  bool ok = std::fseek(file_, 0, SEEK_SET) == 0 &&
            std::fwrite(&h, sizeof(h), 1, file_) == 1;
  ok = std::fclose(file_) == 0 && ok;
  file_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    return absl::InternalError(absl::StrCat(path_, ": write failed"));
  }
  return absl::OkStatus();
}

absl::Status WriteTokenFile(const std::string& path, uint64_t vocab_size,
                            TokenSpan tokens) {
  absl::StatusOr<TokenFileWriter> w = TokenFileWriter::Create(path, vocab_size);
  if (!w.ok()) return w.status();
  if (absl::Status s = w->Append(tokens); !s.ok()) return s;
  return w->Finish();
}

absl::StatusOr<TokenFile> TokenFile::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file"));
  }
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
  TokenDtype dtype = TokenDtype::kUint16;
  if (h.version == kTokenFileVersionUint16Only) {
    // Written before the width field existed: uint16 ids.
  } else if (h.version == kTokenFileVersion) {
    if (h.token_bytes == 4) {
      dtype = TokenDtype::kUint32;
    } else if (h.token_bytes != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": token_bytes = ", h.token_bytes,
                       ": must be 2 (uint16) or 4 (uint32)"));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": version = ", h.version, ": must be ",
                     kTokenFileVersionUint16Only, " or ", kTokenFileVersion));
  }
  if (dtype == TokenDtype::kUint16 && h.vocab_size > kMaxUint16Vocab) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": vocab_size = ", h.vocab_size,
                     ": must be <= 65536 with uint16 ids"));
  }
  const size_t width = BytesOf(dtype);
  const size_t held = (bytes - kTokenFileHeaderBytes) / width;
  if ((bytes - kTokenFileHeaderBytes) % width != 0 || h.n_tokens != held) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": n_tokens = ", h.n_tokens, " but the file holds ",
        bytes - kTokenFileHeaderBytes, " bytes of ", TokenDtypeName(dtype),
        " ids (", held, " tokens): truncated or corrupt"));
  }
  file.vocab_size_ = h.vocab_size;
  file.version_ = h.version;
  const char* data = static_cast<const char*>(map) + kTokenFileHeaderBytes;
  if (dtype == TokenDtype::kUint32) {
    file.tokens_ = std::span<const uint32_t>(
        reinterpret_cast<const uint32_t*>(data), held);
  } else {
    file.tokens_ = std::span<const uint16_t>(
        reinterpret_cast<const uint16_t*>(data), held);
  }
  return file;
}

TokenFile::TokenFile(TokenFile&& other) noexcept { *this = std::move(other); }

TokenFile& TokenFile::operator=(TokenFile&& other) noexcept {
  if (this != &other) {
    if (map_ != nullptr) munmap(map_, map_bytes_);
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    tokens_ = std::exchange(other.tokens_, TokenSpan());
    vocab_size_ = other.vocab_size_;
    version_ = other.version_;
  }
  return *this;
}

TokenFile::~TokenFile() {
  if (map_ != nullptr) munmap(map_, map_bytes_);
}

}  // namespace isoflop
