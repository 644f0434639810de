#include "data/import.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/token_file.h"
#include "data/sentencepiece_bpe.h"
#include "nlohmann/json.hpp"

namespace isoflop::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kDefaultBpeVocab = 8192;
constexpr size_t kChunkIds = size_t{1} << 20;
// llm.c's token files (dev/data/data_common.py in karpathy/llm.c): a header
// of 256 int32 {magic, version, token count, 0...}, then the ids.
constexpr size_t kLlmcHeaderBytes = size_t{256} * 4;
constexpr int32_t kLlmcGpt2Magic = 20240520, kLlmcGpt2Version = 1;
constexpr int32_t kLlmcLlama3Magic = 20240801, kLlmcLlama3Version = 7;

enum class IdKind { kU16, kU32, kI32, kI64 };

size_t WidthOf(IdKind k) {
  switch (k) {
    case IdKind::kU16:
      return 2;
    case IdKind::kU32:
    case IdKind::kI32:
      return 4;
    case IdKind::kI64:
      return 8;
  }
  return 0;
}

// A whole input file mapped read-only.
class Mapped {
 public:
  static absl::StatusOr<std::shared_ptr<const Mapped>> Open(
      const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": a directory: this format takes files"));
    }
    const int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) {
      return absl::NotFoundError(
          absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
    }
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a regular file"));
    }
    if (st.st_size == 0) {
      close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": empty (0 bytes): no tokens to import"));
    }
    auto m = std::shared_ptr<Mapped>(new Mapped);
    m->size = static_cast<size_t>(st.st_size);
    void* p = mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
      return absl::InternalError(
          absl::StrCat(path, ": mmap failed: ", std::strerror(errno)));
    }
    m->data = static_cast<const char*>(p);
    return std::shared_ptr<const Mapped>(std::move(m));
  }
  ~Mapped() {
    if (data != nullptr) munmap(const_cast<char*>(data), size);
  }
  const char* data = nullptr;
  size_t size = 0;

 private:
  Mapped() = default;
};

// Token ids stored in a mapped input file.
struct IdArray {
  std::string path;
  std::shared_ptr<const Mapped> map;
  size_t offset = 0;  // bytes
  size_t count = 0;
  IdKind kind = IdKind::kU16;

  // out[i] = id[begin + i], each checked >= 0 and < limit (`rule` says
  // where the limit comes from).
  absl::Status Read(size_t begin, size_t n, uint64_t limit,
                    const std::string& rule, uint32_t* out) const {
    switch (kind) {
      case IdKind::kU16:
        return ReadAs<uint16_t>(begin, n, limit, rule, out);
      case IdKind::kU32:
        return ReadAs<uint32_t>(begin, n, limit, rule, out);
      case IdKind::kI32:
        return ReadAs<int32_t>(begin, n, limit, rule, out);
      case IdKind::kI64:
        return ReadAs<int64_t>(begin, n, limit, rule, out);
    }
    return absl::InternalError("unknown id kind");
  }

  template <typename T>
  absl::Status ReadAs(size_t begin, size_t n, uint64_t limit,
                      const std::string& rule, uint32_t* out) const {
    const char* src = map->data + offset + begin * sizeof(T);
    for (size_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, src + i * sizeof(T), sizeof(T));  // may be unaligned
      if constexpr (std::is_signed_v<T>) {
        if (v < 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              path, ": token[", begin + i, "] = ", v, ": must be >= 0"));
        }
      }
      if (static_cast<uint64_t>(v) >= limit) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": token[", begin + i, "] = ", v, ": must be < ", rule));
      }
      out[i] = static_cast<uint32_t>(v);
    }
    return absl::OkStatus();
  }
};

// A piece of the concatenated inputs: ids [begin, end) of `array`.
struct Range {
  const IdArray* array;
  size_t begin, end;
};

absl::StatusOr<IdArray> ParseNanogpt(const std::string& path) {
  ASSIGN_OR_RETURN(auto map, Mapped::Open(path));
  if (map->size % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", map->size,
        " bytes: odd: a nanoGPT .bin holds uint16 ids (2 bytes each)"));
  }
  return IdArray{path, map, 0, map->size / 2, IdKind::kU16};
}

absl::StatusOr<IdArray> ParseLlmc(const std::string& path) {
  ASSIGN_OR_RETURN(auto map, Mapped::Open(path));
  if (map->size < kLlmcHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", map->size,
        " bytes: shorter than llm.c's 1024-byte header (256 int32)"));
  }
  int32_t h[3];
  std::memcpy(h, map->data, sizeof(h));
  IdKind kind;
  if (h[0] == kLlmcGpt2Magic && h[1] == kLlmcGpt2Version) {
    kind = IdKind::kU16;
  } else if (h[0] == kLlmcLlama3Magic && h[1] == kLlmcLlama3Version) {
    kind = IdKind::kU32;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": magic = ", h[0], ", version = ", h[1], ": must be ",
        kLlmcGpt2Magic, " version ", kLlmcGpt2Version, " (GPT-2, uint16) or ",
        kLlmcLlama3Magic, " version ", kLlmcLlama3Version,
        " (Llama 3, uint32): not an llm.c token file"));
  }
  const size_t width = WidthOf(kind);
  const size_t payload = map->size - kLlmcHeaderBytes;
  if (h[2] < 0 || payload % width != 0 ||
      static_cast<size_t>(h[2]) != payload / width) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": the header's token count = ", h[2], " but the file holds ",
        payload, " bytes of ", kind == IdKind::kU16 ? "uint16" : "uint32",
        " ids after the 1024-byte header (", payload / width,
        " tokens): truncated or corrupt"));
  }
  return IdArray{path, map, kLlmcHeaderBytes, static_cast<size_t>(h[2]), kind};
}

// The value of `key` in a .npy header dict ("{'descr': '<u2', ...}"), up to
// the next top-level ',' or '}' (a shape tuple is kept whole).
std::optional<std::string> NpyField(absl::string_view dict,
                                    absl::string_view key) {
  const std::string quoted = absl::StrCat("'", key, "'");
  size_t at = dict.find(quoted);
  if (at == absl::string_view::npos) return std::nullopt;
  at = dict.find(':', at + quoted.size());
  if (at == absl::string_view::npos) return std::nullopt;
  size_t end = at + 1;
  int depth = 0;
  for (; end < dict.size(); ++end) {
    const char c = dict[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  return std::string(
      absl::StripAsciiWhitespace(dict.substr(at + 1, end - at - 1)));
}

// NumPy's .npy format (numpy.lib.format): "\x93NUMPY", major, minor, a
// little-endian header length (uint16 for 1.0, uint32 for 2.0 and 3.0), an
// ASCII dict {'descr', 'fortran_order', 'shape'}, then the array's bytes.
absl::StatusOr<IdArray> ParseNpy(const std::string& path) {
  ASSIGN_OR_RETURN(auto map, Mapped::Open(path));
  const char* d = map->data;
  if (map->size < 10 || std::memcmp(d, "\x93NUMPY", 6) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no \\x93NUMPY magic: not a .npy file"));
  }
  const int major = static_cast<unsigned char>(d[6]);
  size_t header_len = 0, start = 0;
  if (major == 1) {
    uint16_t n;
    std::memcpy(&n, d + 8, 2);
    header_len = n;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (map->size < 12) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": truncated .npy header"));
    }
    uint32_t n;
    std::memcpy(&n, d + 8, 4);
    header_len = n;
    start = 12;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": .npy format version ", major, ": must be 1, 2 or 3"));
  }
  if (start + header_len > map->size) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": .npy header length ", header_len,
                     " runs past the file's ", map->size, " bytes"));
  }
  const absl::string_view dict(d + start, header_len);
  const auto descr = NpyField(dict, "descr");
  const auto fortran = NpyField(dict, "fortran_order");
  const auto shape = NpyField(dict, "shape");
  if (!descr || !fortran || !shape) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": .npy header ", dict,
                     ": must state 'descr', 'fortran_order' and 'shape'"));
  }
  IdKind kind;
  if (*descr == "'<u2'") {
    kind = IdKind::kU16;
  } else if (*descr == "'<u4'") {
    kind = IdKind::kU32;
  } else if (*descr == "'<i4'") {
    kind = IdKind::kI32;
  } else if (*descr == "'<i8'") {
    kind = IdKind::kI64;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": dtype ", *descr,
        ": must be '<u2', '<u4', '<i4' or '<i8' (little-endian uint16, "
        "uint32, int32 or int64 token ids)"));
  }
  if (*fortran != "False") {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": fortran_order = ", *fortran, ": must be False (C order)"));
  }
  // "(N,)": one dimension.
  absl::string_view s = *shape;
  size_t count = 0;
  if (!absl::ConsumePrefix(&s, "(") || !absl::ConsumeSuffix(&s, ")") ||
      !absl::ConsumeSuffix(&s, ",") ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(s), &count)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": shape = ", *shape, ": must be one dimension, (N,)"));
  }
  const size_t payload = map->size - start - header_len;
  if (count == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": shape = (0,): no tokens to import"));
  }
  if (payload != count * WidthOf(kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": shape = ", *shape, " of ", WidthOf(kind),
                     "-byte ids but the file holds ", payload,
                     " bytes of data: truncated or corrupt"));
  }
  return IdArray{path, map, start + header_len, count, kind};
}

// "val" as a word of the file's name (val.bin, fineweb_val_000000.bin,
// shakespeare-validation.npy): that file is validation data.
bool IsValidationName(const std::string& path) {
  const std::string stem = fs::path(path).stem().string();
  for (absl::string_view part : absl::StrSplit(stem, absl::ByAnyChar("._-"))) {
    const std::string p = absl::AsciiStrToLower(part);
    if (p == "val" || p == "valid" || p == "validation") return true;
  }
  return false;
}

// Creates `dir` beside the dataset and removes it unless Commit() renamed it
// onto the dataset's path.
class StagingDir {
 public:
  explicit StagingDir(fs::path target) : target_(std::move(target)) {
    dir_ = target_.parent_path() /
           absl::StrCat(".", target_.filename().string(), ".import-", getpid());
  }
  ~StagingDir() {
    if (!committed_) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
  absl::Status Create() {
    std::error_code ec;
    fs::create_directories(target_.parent_path(), ec);
    fs::remove_all(dir_, ec);
    if (!fs::create_directory(dir_, ec) || ec) {
      return absl::InternalError(absl::StrCat(
          dir_.string(), ": cannot create: ", ec ? ec.message() : "exists"));
    }
    return absl::OkStatus();
  }
  absl::Status Commit() {
    std::error_code ec;
    fs::rename(dir_, target_, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("rename ", dir_.string(), " to ",
                                              target_.string(), ": ",
                                              ec.message()));
    }
    committed_ = true;
    return absl::OkStatus();
  }
  const fs::path& path() const { return dir_; }

 private:
  fs::path target_, dir_;
  bool committed_ = false;
};

absl::Status WriteRanges(const std::string& path, uint64_t vocab,
                         const std::vector<Range>& ranges,
                         const std::string& rule) {
  ASSIGN_OR_RETURN(TokenFileWriter w, TokenFileWriter::Create(path, vocab));
  std::vector<uint32_t> buf(kChunkIds);
  for (const Range& r : ranges) {
    for (size_t at = r.begin; at < r.end;) {
      const size_t n = std::min(kChunkIds, r.end - at);
      RETURN_IF_ERROR(r.array->Read(at, n, vocab, rule, buf.data()));
      RETURN_IF_ERROR(w.Append(std::span<const uint32_t>(buf.data(), n)));
      at += n;
    }
  }
  return w.Finish();
}

int64_t Count(const std::vector<Range>& ranges) {
  int64_t n = 0;
  for (const Range& r : ranges) n += static_cast<int64_t>(r.end - r.begin);
  return n;
}

absl::Status CheckSplitSizes(int64_t train, int64_t val,
                             const std::string& what) {
  if (train < kMinSplitTokens || val < kMinSplitTokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", train, " train + ", val,
        " val tokens: too small for a validation split: each split must hold "
        ">= ",
        kMinSplitTokens, " tokens (the trainer's --context + 2 at context 1)"));
  }
  return absl::OkStatus();
}

// nanogpt, llmc, npy: token ids, no tokenizer.
absl::Status ImportIds(const ImportOptions& o, const fs::path& dir,
                       ImportSummary* sum) {
  std::vector<IdArray> arrays;
  for (const std::string& in : o.inputs) {
    absl::StatusOr<IdArray> a = o.format == "nanogpt" ? ParseNanogpt(in)
                                : o.format == "llmc"  ? ParseLlmc(in)
                                                      : ParseNpy(in);
    if (!a.ok()) return a.status();
    if (a->count == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(in, ": 0 tokens: nothing to import"));
    }
    arrays.push_back(*std::move(a));
  }
  uint64_t vocab = static_cast<uint64_t>(o.vocab_size);
  std::string rule = absl::StrCat("--vocab-size = ", vocab);
  if (vocab == 0) {
    if (o.format == "nanogpt") {
      return absl::InvalidArgumentError(
          "--vocab-size: required with --format nanogpt (its .bin files do "
          "not state the vocabulary; GPT-2's is 50257)");
    }
    // The largest id + 1: one pass over the mappings.
    uint64_t max_id = 0;
    std::vector<uint32_t> buf(kChunkIds);
    for (const IdArray& a : arrays) {
      for (size_t at = 0; at < a.count;) {
        const size_t n = std::min(kChunkIds, a.count - at);
        RETURN_IF_ERROR(a.Read(at, n, kMaxTokenFileVocab,
                               absl::StrCat(kMaxTokenFileVocab,
                                            " (the largest vocabulary a token "
                                            "file states)"),
                               buf.data()));
        for (size_t i = 0; i < n; ++i)
          max_id = std::max<uint64_t>(max_id, buf[i]);
        at += n;
      }
    }
    vocab = std::max<uint64_t>(max_id + 1, 2);
    rule = absl::StrCat("vocab_size = ", vocab);
    sum->notes.push_back(absl::StrCat(
        "vocab_size = ", vocab,
        ": the largest id + 1 (pass --vocab-size for the tokenizer's own)"));
  }
  std::vector<Range> train, val;
  for (const IdArray& a : arrays) {
    (IsValidationName(a.path) ? val : train).push_back({&a, 0, a.count});
  }
  if (train.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        absl::StrJoin(o.inputs, ", "),
        ": every input is named as validation (val): give a training file "
        "too"));
  }
  if (val.empty()) {
    // One stream: its last val_fraction is validation.
    const int64_t total = Count(train);
    const auto n_val = static_cast<int64_t>(
        std::floor(static_cast<double>(total) * o.val_fraction));
    RETURN_IF_ERROR(CheckSplitSizes(
        total - n_val, n_val,
        absl::StrCat(absl::StrJoin(o.inputs, ", "), ": ", total,
                     " tokens with --val-fraction = ", o.val_fraction)));
    auto left = static_cast<size_t>(n_val);
    while (left > 0) {
      Range& last = train.back();
      const size_t take = std::min(left, last.end - last.begin);
      val.insert(val.begin(), {last.array, last.end - take, last.end});
      last.end -= take;
      left -= take;
      if (last.begin == last.end) train.pop_back();
    }
    sum->split = absl::StrCat("by position: the last ", o.val_fraction,
                              " of the ids is validation");
    sum->notes.push_back(absl::StrCat(
        "no input is named as validation (val): the last ", n_val,
        " ids are validation, split by position, not by document; name a "
        "file val.bin (nanoGPT) or *_val_* (llm.c) to choose it"));
  } else {
    RETURN_IF_ERROR(CheckSplitSizes(
        Count(train), Count(val), absl::StrCat(absl::StrJoin(o.inputs, ", "))));
    sum->split = "as given: files named val are validation";
  }
  RETURN_IF_ERROR(
      WriteRanges((dir / "train.bin").string(), vocab, train, rule));
  RETURN_IF_ERROR(WriteRanges((dir / "val.bin").string(), vocab, val, rule));
  sum->train_tokens = Count(train);
  sum->val_tokens = Count(val);
  sum->vocab_size = static_cast<int64_t>(vocab);
  return absl::OkStatus();
}

struct Document {
  std::string source;  // path, or path:line for jsonl
  std::string text;
};

absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return absl::InternalError(absl::StrCat(path, ": read failed"));
  return s.str();
}

absl::Status ReadTextInput(const std::string& in, std::vector<Document>* docs) {
  std::error_code ec;
  std::vector<std::string> files;
  if (fs::is_directory(in, ec)) {
    for (auto it = fs::recursive_directory_iterator(in, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec)) files.push_back(it->path().string());
    }
    if (ec) {
      return absl::NotFoundError(
          absl::StrCat(in, ": cannot list: ", ec.message()));
    }
    if (files.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(in, ": a folder with no files: no text to import"));
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(in);
  }
  for (const std::string& f : files) {
    ASSIGN_OR_RETURN(std::string text, ReadWhole(f));
    if (absl::StripAsciiWhitespace(text).empty()) continue;
    docs->push_back({f, std::move(text)});
  }
  return absl::OkStatus();
}

absl::Status ReadJsonlInput(const std::string& in,
                            std::vector<Document>* docs) {
  std::error_code ec;
  if (fs::is_directory(in, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(in, ": a directory: --format jsonl takes files"));
  }
  std::ifstream f(in, std::ios::binary);
  if (!f) {
    return absl::NotFoundError(
        absl::StrCat(in, ": cannot open: ", std::strerror(errno)));
  }
  int64_t n = 0;
  for (std::string line; std::getline(f, line);) {
    ++n;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(in, ":", n, ": not JSON: ", e.what()));
    }
    if (!j.is_object() || !j.contains("text")) {
      return absl::InvalidArgumentError(absl::StrCat(
          in, ":", n,
          ": no \"text\" field: each line must be a JSON object with a "
          "string \"text\""));
    }
    if (!j["text"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(in, ":", n, ": \"text\" is a ", j["text"].type_name(),
                       ": must be a string"));
    }
    std::string text = j["text"].get<std::string>();
    if (absl::StripAsciiWhitespace(text).empty()) continue;
    docs->push_back({absl::StrCat(in, ":", n), std::move(text)});
  }
  if (f.bad()) return absl::InternalError(absl::StrCat(in, ": read failed"));
  return absl::OkStatus();
}

// The document's non-empty lines, stripped (what `prepare` encodes).
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view l : absl::StrSplit(text, '\n')) {
    l = absl::StripAsciiWhitespace(l);
    if (!l.empty()) out.emplace_back(l);
  }
  return out;
}

// text, jsonl: documents tokenised with a SentencePiece model.
absl::Status ImportText(const ImportOptions& o, const fs::path& dir,
                        ImportSummary* sum) {
  std::vector<Document> docs;
  for (const std::string& in : o.inputs) {
    const size_t before = docs.size();
    RETURN_IF_ERROR(o.format == "text" ? ReadTextInput(in, &docs)
                                       : ReadJsonlInput(in, &docs));
    if (docs.size() == before) {
      return absl::InvalidArgumentError(
          absl::StrCat(in, ": empty: no text to import"));
    }
  }
  for (const Document& d : docs)
    sum->bytes += static_cast<int64_t>(d.text.size());
  sum->documents = static_cast<int64_t>(docs.size());

  const std::string model = (dir / "tokenizer.model").string();
  const std::string vocab_file = (dir / "tokenizer.vocab").string();
  if (!o.tokenizer.empty()) {
    std::error_code ec;
    fs::copy_file(o.tokenizer, model, ec);
    if (ec) {
      return absl::NotFoundError(absl::StrCat("--tokenizer = ", o.tokenizer,
                                              ": cannot copy: ", ec.message()));
    }
    if (std::string err = WriteVocabFile(model, vocab_file); !err.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tokenizer = ", o.tokenizer, ": not a SentencePiece model: ", err));
    }
  } else {
    const int64_t v = o.vocab_size > 0 ? o.vocab_size : kDefaultBpeVocab;
    if (v < 64 || v > std::numeric_limits<int>::max()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--vocab-size = ", v, ": must be >= 64 to train a BPE tokenizer"));
    }
    const std::string corpus = (dir / "corpus.txt").string();
    {
      std::ofstream out(corpus, std::ios::binary);
      for (const Document& d : docs)
        for (const std::string& l : Lines(d.text)) out << l << '\n';
      if (!out)
        return absl::InternalError(absl::StrCat(corpus, ": write failed"));
    }
    const std::string prefix = (dir / "tokenizer").string();
    if (std::string err =
            TrainBpe(corpus, prefix, static_cast<int>(v), o.threads);
        !err.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--vocab-size = ", v,
                       ": SentencePiece cannot train a tokenizer of "
                       "this size on ",
                       sum->bytes, " bytes of text: ", err));
    }
    fs::remove(corpus);
    sum->notes.push_back(
        absl::StrCat("trained a ", v, "-piece SentencePiece BPE tokenizer"));
  }
  BpeEncoder encoder(model);
  if (!encoder.error().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tokenizer = ", o.tokenizer,
                     ": not a SentencePiece model: ", encoder.error()));
  }
  const int64_t vocab = encoder.vocab_size();
  if (!o.tokenizer.empty() && o.vocab_size > 0 && o.vocab_size != vocab) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--vocab-size = ", o.vocab_size, ": must equal --tokenizer ",
        o.tokenizer, "'s vocabulary (", vocab, ") or be left out"));
  }

  std::vector<int> train_ids, val_ids;
  const int64_t n = sum->documents;
  if (n >= 2) {
    // Whole documents: n_val of them, evenly spaced.
    const int64_t n_val = std::clamp<int64_t>(
        std::llround(static_cast<double>(n) * o.val_fraction), 1, n - 1);
    std::vector<bool> is_val(static_cast<size_t>(n), false);
    for (int64_t j = 0; j < n_val; ++j)
      is_val[static_cast<size_t>((2 * j + 1) * n / (2 * n_val))] = true;
    int64_t val_bytes = 0;
    for (size_t i = 0; i < docs.size(); ++i) {
      for (const std::string& l : Lines(docs[i].text))
        encoder.EncodeLine(l, is_val[i] ? &val_ids : &train_ids);
      if (is_val[i]) val_bytes += static_cast<int64_t>(docs[i].text.size());
    }
    sum->val_documents = n_val;
    sum->val_bytes = val_bytes;
    sum->split = absl::StrCat("by document: ", n_val, " of ", n,
                              " documents are validation");
  } else {
    // One document: every k-th block of lines.
    const std::vector<std::string> lines = Lines(docs[0].text);
    const int64_t k = std::max<int64_t>(2, std::llround(1.0 / o.val_fraction));
    const int64_t block = std::clamp<int64_t>(
        static_cast<int64_t>(lines.size()) / (4 * k), 1, 64);
    for (size_t i = 0; i < lines.size(); ++i) {
      const bool v = (static_cast<int64_t>(i) / block) % k == k - 1;
      encoder.EncodeLine(lines[i], v ? &val_ids : &train_ids);
      if (v) sum->val_bytes += static_cast<int64_t>(lines[i].size()) + 1;
    }
    sum->split = absl::StrCat("within one document: every ", k, "th block of ",
                              block, " lines is validation");
    sum->notes.push_back(absl::StrCat(
        docs[0].source, ": one document: validation is every ", k,
        "th block of ", block,
        " lines (give several files or lines to split by document)"));
  }
  RETURN_IF_ERROR(CheckSplitSizes(
      static_cast<int64_t>(train_ids.size()),
      static_cast<int64_t>(val_ids.size()),
      absl::StrCat(absl::StrJoin(o.inputs, ", "), ": ", n, " document(s)")));
  const std::vector<uint32_t> train(train_ids.begin(), train_ids.end());
  const std::vector<uint32_t> val(val_ids.begin(), val_ids.end());
  RETURN_IF_ERROR(WriteTokenFile((dir / "train.bin").string(),
                                 static_cast<uint64_t>(vocab), train));
  RETURN_IF_ERROR(WriteTokenFile((dir / "val.bin").string(),
                                 static_cast<uint64_t>(vocab), val));
  sum->train_tokens = static_cast<int64_t>(train.size());
  sum->val_tokens = static_cast<int64_t>(val.size());
  sum->vocab_size = vocab;
  return absl::OkStatus();
}

absl::Status Validate(const ImportOptions& o) {
  static constexpr const char* kFormats[] = {"nanogpt", "llmc", "npy", "text",
                                             "jsonl"};
  if (std::find(std::begin(kFormats), std::end(kFormats), o.format) ==
      std::end(kFormats)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--format = \"", o.format,
                     "\": must be one of nanogpt, llmc, npy, text, jsonl"));
  }
  if (o.out_dir.empty()) return absl::InvalidArgumentError("--out: required");
  if (o.inputs.empty()) {
    return absl::InvalidArgumentError("INPUT: at least one file is required");
  }
  if (!(o.val_fraction > 0 && o.val_fraction < 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--val-fraction = ", o.val_fraction, ": must be in (0, 0.5)"));
  }
  if (o.vocab_size < 0 ||
      static_cast<uint64_t>(o.vocab_size) > kMaxTokenFileVocab ||
      o.vocab_size == 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--vocab-size = ", o.vocab_size, ": must be in [2, ",
                     kMaxTokenFileVocab, "] (0 or unset: from the data)"));
  }
  const bool text = o.format == "text" || o.format == "jsonl";
  if (!text && !o.tokenizer.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tokenizer: only with --format text or jsonl (",
                     o.format, " files hold token ids already)"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string ImportSummaryJson(const ImportSummary& s) {
  nlohmann::ordered_json j;
  j["vocab_size"] = s.vocab_size;
  j["train_tokens"] = s.train_tokens;
  j["val_tokens"] = s.val_tokens;
  j["token_dtype"] = s.token_dtype;
  j["split"] = s.split;
  if (s.documents > 0) {
    j["documents"] = s.documents;
    j["val_documents"] = s.val_documents;
    j["bytes"] = s.bytes;
    j["val_bytes"] = s.val_bytes;
  }
  j["notes"] = s.notes;
  return j.dump();
}

absl::StatusOr<ImportSummary> Import(const ImportOptions& o) {
  RETURN_IF_ERROR(Validate(o));
  const fs::path target = fs::absolute(fs::path(o.out_dir)).lexically_normal();
  std::error_code ec;
  if (fs::exists(target, ec)) {
    return absl::AlreadyExistsError(absl::StrCat(
        target.string(), ": exists: remove it or import under another --name"));
  }
  StagingDir staging(target);
  RETURN_IF_ERROR(staging.Create());
  ImportSummary sum;
  const bool text = o.format == "text" || o.format == "jsonl";
  RETURN_IF_ERROR(text ? ImportText(o, staging.path(), &sum)
                       : ImportIds(o, staging.path(), &sum));
  sum.token_dtype =
      TokenDtypeName(DtypeForVocab(static_cast<uint64_t>(sum.vocab_size)));
  nlohmann::ordered_json meta =
      nlohmann::ordered_json::parse(ImportSummaryJson(sum));
  meta["source"] = absl::StrCat("import (", o.format, ")");
  meta["format"] = o.format;
  std::vector<std::string> inputs;
  for (const std::string& in : o.inputs)
    inputs.push_back(fs::absolute(in).lexically_normal().string());
  meta["inputs"] = inputs;
  meta["tokenizer"] = text ? "sentencepiece-bpe" : "none";
  if (!o.tokenizer.empty())
    meta["tokenizer_from"] = fs::absolute(o.tokenizer).string();
  {
    const fs::path p = staging.path() / "meta.json";
    std::ofstream out(p);
    out << meta.dump(2) << '\n';
    out.close();
    if (!out)
      return absl::InternalError(absl::StrCat(p.string(), ": write failed"));
  }
  RETURN_IF_ERROR(staging.Commit());
  return sum;
}

}  // namespace isoflop::data
