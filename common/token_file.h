// Token files: the trainer's input. The layout (a 64-byte header stating the
// format version, vocabulary size, token count and token width, then the ids
// little-endian, uint16 or uint32) is documented in docs/data-format.md.
// Version 1 files (no width field: always uint16) are still read; the writer
// writes version 2, with uint32 ids only when the vocabulary exceeds 65,536.
// A dataset is a directory with train.bin, val.bin, meta.json and, when it
// was tokenised from text, tokenizer.model.
#ifndef ISOFLOP_COMMON_TOKEN_FILE_H_
#define ISOFLOP_COMMON_TOKEN_FILE_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace isoflop {

inline constexpr char kTokenFileMagic[8] = {'I', 'S', 'O', 'F',
                                            'T', 'O', 'K', '1'};
// Version 1: uint16 ids, no width field. Version 2: the width is stated.
inline constexpr uint32_t kTokenFileVersionUint16Only = 1;
inline constexpr uint32_t kTokenFileVersion = 2;
inline constexpr size_t kTokenFileHeaderBytes = 64;
// The largest vocabulary whose ids fit uint16 (ids 0..65535).
inline constexpr uint64_t kMaxUint16Vocab = 65536;
// The largest vocabulary a token file can state (its header field is uint32).
inline constexpr uint64_t kMaxTokenFileVocab =
    std::numeric_limits<uint32_t>::max();

enum class TokenDtype { kUint16, kUint32 };

// "uint16" / "uint32".
const char* TokenDtypeName(TokenDtype dtype);
// The width the writer uses for `vocab_size`: uint32 past 65,536.
TokenDtype DtypeForVocab(uint64_t vocab_size);

// A read-only view of token ids stored as uint16 or uint32; indexes widen to
// uint32. Hot loops use Visit or CopyTo, which branch on the width once per
// call rather than once per token.
class TokenSpan {
 public:
  TokenSpan() = default;
  TokenSpan(std::span<const uint16_t> t)  // NOLINT(google-explicit-constructor)
      : u16_(t.data()), size_(t.size()) {}
  TokenSpan(std::span<const uint32_t> t)  // NOLINT(google-explicit-constructor)
      : u32_(t.data()), size_(t.size()), wide_(true) {}
  TokenSpan(std::span<uint16_t> t)  // NOLINT(google-explicit-constructor)
      : TokenSpan(std::span<const uint16_t>(t)) {}
  TokenSpan(std::span<uint32_t> t)  // NOLINT(google-explicit-constructor)
      : TokenSpan(std::span<const uint32_t>(t)) {}
  TokenSpan(const std::vector<uint16_t>& t)  // NOLINT
      : TokenSpan(std::span<const uint16_t>(t)) {}
  TokenSpan(const std::vector<uint32_t>& t)  // NOLINT
      : TokenSpan(std::span<const uint32_t>(t)) {}

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  TokenDtype dtype() const {
    return wide_ ? TokenDtype::kUint32 : TokenDtype::kUint16;
  }
  uint32_t operator[](size_t i) const { return wide_ ? u32_[i] : u16_[i]; }

  // Calls f(std::span<const uint16_t>) or f(std::span<const uint32_t>).
  template <typename F>
  decltype(auto) Visit(F&& f) const {
    if (wide_) return f(std::span<const uint32_t>(u32_, size_));
    return f(std::span<const uint16_t>(u16_, size_));
  }
  // out[i] = ids[offset + i] for i < n (the trainer's batch assembly).
  template <typename T>
  void CopyTo(size_t offset, size_t n, T* out) const {
    Visit([&](auto ids) {
      const auto* src = ids.data() + offset;
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(src[i]);
    });
  }
  // The index of the first id >= limit, or size() when there is none.
  size_t FindIdAtLeast(uint64_t limit) const;
  std::vector<uint32_t> ToVector() const;

 private:
  const uint16_t* u16_ = nullptr;
  const uint32_t* u32_ = nullptr;
  size_t size_ = 0;
  bool wide_ = false;
};

// Streams a token file: the ids are appended in chunks to `path`.tmp, the
// header's count is written by Finish, which renames the file onto `path`. A
// writer destroyed before Finish removes its temporary file. The width is
// DtypeForVocab(vocab_size). Movable, not copyable.
class TokenFileWriter {
 public:
  // INVALID_ARGUMENT for a vocab_size outside [1, 2^32 - 1]; INTERNAL when
  // the temporary file cannot be created.
  static absl::StatusOr<TokenFileWriter> Create(const std::string& path,
                                                uint64_t vocab_size);
  TokenFileWriter(TokenFileWriter&& other) noexcept;
  TokenFileWriter& operator=(TokenFileWriter&& other) noexcept;
  TokenFileWriter(const TokenFileWriter&) = delete;
  TokenFileWriter& operator=(const TokenFileWriter&) = delete;
  ~TokenFileWriter();

  // INVALID_ARGUMENT (naming the file, the id's index in the whole file and
  // the rule) if an id is >= vocab_size; INTERNAL on I/O errors.
  absl::Status Append(TokenSpan tokens);
  absl::Status Finish();

  TokenDtype dtype() const { return dtype_; }
  uint64_t count() const { return count_; }

 private:
  TokenFileWriter() = default;
  void Abandon();

  std::string path_, tmp_;
  FILE* file_ = nullptr;
  uint32_t vocab_size_ = 0;
  TokenDtype dtype_ = TokenDtype::kUint16;
  uint64_t count_ = 0;
  std::vector<char> buffer_;
};

// Writes `tokens` to `path` (replacing it atomically via a temporary file)
// with TokenFileWriter. Returns INVALID_ARGUMENT if a token id is >=
// vocab_size, INTERNAL on I/O errors.
absl::Status WriteTokenFile(const std::string& path, uint64_t vocab_size,
                            TokenSpan tokens);

// A read-only memory mapping of a token file (either version). Movable, not
// copyable; the mapping lives as long as the object. Thread-safe for
// concurrent reads.
class TokenFile {
 public:
  // Returns NOT_FOUND if the file cannot be opened, INVALID_ARGUMENT (naming
  // the file and the rule) on a bad magic, version, width or size.
  static absl::StatusOr<TokenFile> Open(const std::string& path);

  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&& other) noexcept;
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  ~TokenFile();

  uint32_t vocab_size() const { return vocab_size_; }
  uint32_t version() const { return version_; }
  TokenSpan tokens() const { return tokens_; }
  size_t size() const { return tokens_.size(); }
  TokenDtype dtype() const { return tokens_.dtype(); }

 private:
  TokenFile() = default;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  TokenSpan tokens_;
  uint32_t vocab_size_ = 0;
  uint32_t version_ = 0;
};

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_TOKEN_FILE_H_
