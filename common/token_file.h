// Token files: the trainer's input. A 64-byte header {char magic[8] =
// "ISOFTOK1"; uint32 version = 1; uint32 vocab_size; uint64 n_tokens; zero
// padding} followed by n_tokens little-endian uint16 token ids. A dataset is a
// directory with train.bin, val.bin, tokenizer.model and meta.json.
#ifndef ISOFLOP_COMMON_TOKEN_FILE_H_
#define ISOFLOP_COMMON_TOKEN_FILE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace isoflop {

inline constexpr char kTokenFileMagic[8] = {'I', 'S', 'O', 'F',
                                            'T', 'O', 'K', '1'};
inline constexpr uint32_t kTokenFileVersion = 1;
inline constexpr size_t kTokenFileHeaderBytes = 64;

// Writes `tokens` to `path` (replacing it atomically via a temporary file).
// Returns INVALID_ARGUMENT if a token id is >= vocab_size, INTERNAL on I/O
// errors.
absl::Status WriteTokenFile(const std::string& path, uint32_t vocab_size,
                            std::span<const uint16_t> tokens);

// A read-only memory mapping of a token file. Movable, not copyable; the
// mapping lives as long as the object. Thread-safe for concurrent reads.
class TokenFile {
 public:
  // Returns NOT_FOUND if the file cannot be opened, INVALID_ARGUMENT (naming
  // the file and the rule) on a bad magic, version or size.
  static absl::StatusOr<TokenFile> Open(const std::string& path);

  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&& other) noexcept;
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  ~TokenFile();

  uint32_t vocab_size() const { return vocab_size_; }
  std::span<const uint16_t> tokens() const { return {tokens_, n_tokens_}; }

 private:
  TokenFile() = default;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint16_t* tokens_ = nullptr;
  size_t n_tokens_ = 0;
  uint32_t vocab_size_ = 0;
};

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_TOKEN_FILE_H_
