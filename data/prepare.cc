#include "data/prepare.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/token_file.h"
#include "data/sentencepiece_bpe.h"
#include "nlohmann/json.hpp"

namespace isoflop::data {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

double Mb(int64_t bytes) { return static_cast<double>(bytes) / 1e6; }

// Bytes the tokenizer sees for `text`: its lines plus one newline each (the
// end-of-sentence id stands for it), so bits per byte are exact.
int64_t TokenizedBytes(const std::string& text) {
  return static_cast<int64_t>(text.size()) + 1;
}

absl::Status Validate(const PrepareOptions& o) {
  if (o.out_dir.empty()) return absl::InvalidArgumentError("--out: required");
  if (o.vocab_size < 64 || o.vocab_size > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--vocab-size = ", o.vocab_size,
                     ": must be in [64, 65535] (uint16 ids)"));
  }
  if (!(o.val_fraction > 0 && o.val_fraction < 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--val-fraction = ", o.val_fraction, ": must be in (0, 0.5)"));
  }
  if (o.threads < 0 || o.threads > 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--threads = ", o.threads, ": must be in [0, 1024] (0: all cores)"));
  }
  if (o.max_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-bytes = ", o.max_bytes, ": must be >= 0 (0: no limit)"));
  }
  if (o.tokenizer_sample_bytes < 1 || o.tokenizer_sentences < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tokenizer-sample-bytes = ", o.tokenizer_sample_bytes,
                     ", --tokenizer-sentences = ", o.tokenizer_sentences,
                     ": must be positive"));
  }
  if (!o.inputs.empty() && !o.source.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--source = \"", o.source, "\" and --input: give one or the other"));
  }
  const fs::path out(o.out_dir);
  std::error_code ec;
  if (fs::exists(out, ec) &&
      !(fs::is_directory(out, ec) &&
        (fs::exists(out / "meta.json", ec) || fs::is_empty(out, ec)))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--out ", o.out_dir,
                     ": exists and is not a dataset (no meta.json); refusing "
                     "to replace it"));
  }
  return absl::OkStatus();
}

std::string DefaultCacheDir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && *xdg != '\0') {
    return (fs::path(xdg) / "isoflop/sources").string();
  }
  const char* home = std::getenv("HOME");
  return (fs::path(home != nullptr && *home != '\0' ? home : "/tmp") /
          ".cache/isoflop/sources")
      .string();
}

// The temporary directory that SIGINT, SIGTERM or SIGHUP removes before the
// process dies (only async-signal-safe calls: fork, execv of rm, waitpid).
// SIGKILL leaves OUT.tmp-XXXXXX behind, which no reader takes for a dataset.
char g_temp_dir[4096];
struct sigaction g_previous[3];
constexpr int kCleanupSignals[3] = {SIGINT, SIGTERM, SIGHUP};

void RemoveTempDirAndDie(int sig) {
  if (g_temp_dir[0] != '\0') {
    const pid_t pid = fork();
    if (pid == 0) {
      char rm[] = "/bin/rm";
      char rf[] = "-rf";
      char dashes[] = "--";
      char* argv[] = {rm, rf, dashes, g_temp_dir, nullptr};
      execv(rm, argv);
      _exit(127);
    }
    if (pid > 0) {
      int status = 0;
      waitpid(pid, &status, 0);
    }
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void WatchTempDir(const std::string& path) {
  if (path.size() >= sizeof(g_temp_dir)) return;
  std::memcpy(g_temp_dir, path.c_str(), path.size() + 1);
  struct sigaction action = {};
  action.sa_handler = RemoveTempDirAndDie;
  sigemptyset(&action.sa_mask);
  for (int i = 0; i < 3; ++i) {
    sigaction(kCleanupSignals[i], &action, &g_previous[i]);
  }
}

void UnwatchTempDir() {
  if (g_temp_dir[0] == '\0') return;
  for (int i = 0; i < 3; ++i)
    sigaction(kCleanupSignals[i], &g_previous[i], nullptr);
  g_temp_dir[0] = '\0';
}

// A temporary directory beside the output, removed unless released.
class TempDir {
 public:
  static absl::StatusOr<TempDir> Create(const fs::path& out) {
    std::error_code ec;
    if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
    std::string pattern = out.string() + ".tmp-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("--out ", out.string(),
                                              ": cannot create ", pattern, ": ",
                                              std::strerror(errno)));
    }
    // mkdtemp makes it 0700; a dataset is read by workers of other users.
    fs::permissions(pattern,
                    fs::perms::owner_all | fs::perms::group_read |
                        fs::perms::group_exec | fs::perms::others_read |
                        fs::perms::others_exec,
                    ec);
    WatchTempDir(pattern);
    return TempDir(pattern);
  }
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) {
      fs::remove_all(path_, ec);
      UnwatchTempDir();
    }
  }
  const fs::path& path() const { return path_; }
  // Renames the directory to `out`, replacing an existing dataset there.
  absl::Status MoveTo(const fs::path& out) {
    std::error_code ec;
    fs::path old;
    if (fs::exists(out, ec)) {
      old = path_.string() + ".old";
      fs::rename(out, old, ec);
      if (ec) {
        return absl::InternalError(
            absl::StrCat("--out ", out.string(), ": ", ec.message()));
      }
    }
    fs::rename(path_, out, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("--out ", out.string(), ": ", ec.message()));
    }
    path_.clear();
    UnwatchTempDir();
    if (!old.empty()) fs::remove_all(old, ec);
    return absl::OkStatus();
  }

 private:
  explicit TempDir(fs::path p) : path_(std::move(p)) {}
  fs::path path_;
};

// One line on stderr per call: bytes done, throughput, ETA. A terminal gets
// a bar redrawn in place.
class Progress {
 public:
  Progress(std::string what, int64_t total)
      : what_(std::move(what)), total_(total), tty_(isatty(2) != 0) {}
  void Update(int64_t done, bool last) {
    const double s = Seconds(start_);
    if (!last && s - printed_ < (tty_ ? 0.5 : 10.0)) return;
    printed_ = s;
    const double rate = s > 0 ? Mb(done) / s : 0;
    const double eta = rate > 0 ? (Mb(total_) - Mb(done)) / rate : 0;
    const int width = 30;
    const int filled = total_ > 0 ? static_cast<int>(width * done / total_) : 0;
    std::fprintf(
        stderr,
        "%sisoflop-data: %s [%s%s] %.1f/%.1f MB  %.2f MB/s  %s %.0f s%s",
        tty_ ? "\r" : "", what_.c_str(),
        std::string(static_cast<size_t>(filled), '#').c_str(),
        std::string(static_cast<size_t>(width - filled), '.').c_str(), Mb(done),
        Mb(total_), rate, last ? "took" : "ETA", last ? s : eta,
        tty_ && !last ? "" : "\n");
  }

 private:
  std::string what_;
  int64_t total_;
  bool tty_;
  Clock::time_point start_ = Clock::now();
  double printed_ = -1e9;
};

struct Doc {
  Document document;
  std::string hash;
  int64_t bytes = 0;
  bool val = false;
  std::vector<uint16_t> tokens;
};

struct Collected {
  std::vector<Doc> docs;
  nlohmann::json sources = nlohmann::json::array();
  std::string source_label;  // meta.json "source" (compatible with before)
  TextKind kind = TextKind::kProse;
  std::string what;  // names the input in refusals: "--input a.txt" …
};

absl::StatusOr<Collected> Collect(const PrepareOptions& o,
                                  std::map<std::string, double>* seconds) {
  Collected c;
  std::vector<Document> documents;
  if (!o.inputs.empty()) {
    c.source_label = "files";
    c.what = absl::StrCat("--input ", absl::StrJoin(o.inputs, ", "));
    const auto t = Clock::now();
    RETURN_IF_ERROR(CollectInputs(o.inputs, TextKind::kProse, &documents));
    (*seconds)["read"] = Seconds(t);
    c.sources.push_back({{"package", "files"}, {"licence", "unknown"}});
  } else {
    ASSIGN_OR_RETURN(SourceSpec spec,
                     FindSource(o.source.empty() ? "kjv" : o.source));
    c.kind = spec.kind;
    c.source_label = spec.name == "kjv" ? "kjv (Debian bible-kjv)" : spec.name;
    c.what = absl::StrCat("--source ", spec.name);
    Fetcher fetch = o.fetcher;
    if (!fetch) {
      fetch = o.source_dir.empty()
                  ? PackageFetcher(o.cache_dir.empty() ? DefaultCacheDir()
                                                       : o.cache_dir)
                  : LocalFetcher(o.source_dir);
    }
    for (const PackageRef& p : spec.packages) {
      auto t = Clock::now();
      absl::StatusOr<fs::path> root = fetch(p);
      (*seconds)["fetch"] += Seconds(t);
      if (!root.ok()) {
        if (spec.optional_packages) {
          std::fprintf(stderr, "isoflop-data: %s: skipped (%s)\n",
                       p.name.c_str(),
                       std::string(root.status().message()).c_str());
          continue;
        }
        return absl::FailedPreconditionError(absl::StrCat(
            c.what, ": package ", p.name, ": ", root.status().message()));
      }
      t = Clock::now();
      const size_t before = documents.size();
      int64_t skipped = 0;
      absl::Status s =
          CollectPackage(p, *root, spec.kind, &documents, &skipped);
      (*seconds)["read"] += Seconds(t);
      if (!s.ok()) {
        if (spec.optional_packages) {
          std::fprintf(stderr, "isoflop-data: %s: skipped (%s)\n",
                       p.name.c_str(), std::string(s.message()).c_str());
          continue;
        }
        return absl::FailedPreconditionError(
            absl::StrCat(c.what, ": package ", p.name, ": ", s.message()));
      }
      int64_t bytes = 0;
      for (size_t i = before; i < documents.size(); ++i) {
        bytes += TokenizedBytes(documents[i].text);
      }
      std::fprintf(
          stderr, "isoflop-data: %s: %zu documents, %.1f MB of text%s\n",
          p.name.c_str(), documents.size() - before, Mb(bytes),
          skipped > 0 ? absl::StrCat(" (", skipped,
                                     " unreadable or binary files skipped)")
                            .c_str()
                      : "");
      c.sources.push_back({{"package", p.name},
                           {"licence", p.licence},
                           {"root", root->string()}});
    }
  }
  c.docs.reserve(documents.size());
  for (Document& d : documents) {
    Doc doc;
    doc.hash = ContentHash(d.text);
    doc.bytes = TokenizedBytes(d.text);
    doc.document = std::move(d);
    c.docs.push_back(std::move(doc));
  }
  return c;
}

// Drops exact duplicates (the first one stays); returns how many.
int64_t Deduplicate(std::vector<Doc>* docs) {
  std::unordered_set<std::string> seen;
  std::vector<Doc> kept;
  kept.reserve(docs->size());
  for (Doc& d : *docs) {
    if (seen.insert(d.hash).second) kept.push_back(std::move(d));
  }
  const auto removed = static_cast<int64_t>(docs->size() - kept.size());
  *docs = std::move(kept);
  return removed;
}

std::vector<size_t> HashOrder(const std::vector<Doc>& docs) {
  std::vector<size_t> order(docs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return docs[a].hash < docs[b].hash; });
  return order;
}

// Keeps the documents first in content-hash order up to max_bytes.
void Truncate(int64_t max_bytes, std::vector<Doc>* docs) {
  if (max_bytes <= 0) return;
  std::vector<bool> keep(docs->size(), false);
  int64_t bytes = 0;
  for (size_t i : HashOrder(*docs)) {
    if (bytes + (*docs)[i].bytes > max_bytes) continue;
    keep[i] = true;
    bytes += (*docs)[i].bytes;
  }
  std::vector<Doc> kept;
  for (size_t i = 0; i < docs->size(); ++i) {
    if (keep[i]) kept.push_back(std::move((*docs)[i]));
  }
  *docs = std::move(kept);
}

// Marks whole documents as validation, in content-hash order, until they hold
// val_fraction of the bytes; the training split keeps at least one.
void Split(double val_fraction, std::vector<Doc>* docs) {
  int64_t total = 0;
  for (const Doc& d : *docs) total += d.bytes;
  const auto target = static_cast<int64_t>(
      std::ceil(val_fraction * static_cast<double>(total)));
  int64_t val = 0;
  size_t n_val = 0;
  for (size_t i : HashOrder(*docs)) {
    if (val >= target || n_val + 1 >= docs->size()) break;
    (*docs)[i].val = true;
    val += (*docs)[i].bytes;
    ++n_val;
  }
}

// The training sample for the tokenizer: training documents in content-hash
// order up to max_bytes.
absl::StatusOr<int64_t> WriteTokenizerSample(const fs::path& path,
                                             const std::vector<Doc>& docs,
                                             int64_t max_bytes) {
  std::ofstream out(path, std::ios::binary);
  int64_t bytes = 0;
  for (size_t i : HashOrder(docs)) {
    const Doc& d = docs[i];
    if (d.val) continue;
    if (bytes > 0 && bytes + d.bytes > max_bytes) continue;
    out << d.document.text << '\n';
    bytes += d.bytes;
    if (bytes >= max_bytes) break;
  }
  out.flush();
  if (!out) {
    return absl::InternalError(
        absl::StrCat(path.string(), ": write failed (disk full?)"));
  }
  return bytes;
}

// "Vocabulary size too high (5000). Please set it to a value <= 1234." ->
// a refusal naming the flag and the bound.
absl::Status TokenizerError(const std::string& what, int vocab_size,
                            int64_t sample_bytes, const std::string& err) {
  const size_t at = err.find("value <= ");
  if (absl::StrContains(err, "Vocabulary size too high") &&
      at != std::string::npos) {
    std::string bound = err.substr(at + 9);
    while (!bound.empty() &&
           !std::isdigit(static_cast<unsigned char>(bound.back()))) {
      bound.pop_back();
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "--vocab-size = ", vocab_size, ": larger than the data of ", what,
        " supports (", sample_bytes, " bytes of training text allow at most ",
        bound, " pieces)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": sentencepiece training: ", err));
}

absl::Status Encode(const std::string& model, int threads,
                    std::vector<Doc>* docs) {
  int64_t total = 0;
  for (const Doc& d : *docs) total += d.bytes;
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::string error;  // guarded by mu
  auto work = [&] {
    BpeEncoder encoder(model);
    if (!encoder.error().empty()) {
      std::lock_guard<std::mutex> lock(mu);
      error = encoder.error();
      failed = true;
      return;
    }
    std::vector<int> ids;
    for (size_t i; (i = next.fetch_add(1)) < docs->size();) {
      Doc& d = (*docs)[i];
      ids.clear();
      for (absl::string_view line : absl::StrSplit(d.document.text, '\n')) {
        encoder.EncodeLine(std::string(line), &ids);
      }
      d.tokens.assign(ids.begin(), ids.end());
      done += d.bytes;
    }
  };
  Progress progress(absl::StrCat("encode (", threads, " threads)"), total);
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  while (next.load() < docs->size() && !failed.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    progress.Update(done.load(), false);
  }
  for (std::thread& t : pool) t.join();
  progress.Update(done.load(), true);
  if (!error.empty()) return absl::InternalError(error);
  return absl::OkStatus();
}

std::vector<uint16_t> Concatenate(bool val, std::vector<Doc>* docs) {
  size_t n = 0;
  for (const Doc& d : *docs) {
    if (d.val == val) n += d.tokens.size();
  }
  std::vector<uint16_t> out;
  out.reserve(n);
  for (Doc& d : *docs) {
    if (d.val != val) continue;
    out.insert(out.end(), d.tokens.begin(), d.tokens.end());
  }
  return out;
}

}  // namespace

absl::Status Prepare(const PrepareOptions& o) {
  RETURN_IF_ERROR(Validate(o));
  const auto t0 = Clock::now();
  std::map<std::string, double> seconds;
  ASSIGN_OR_RETURN(Collected c, Collect(o, &seconds));
  const size_t given = c.docs.size();
  const int64_t duplicates = Deduplicate(&c.docs);
  Truncate(o.max_bytes, &c.docs);
  if (c.docs.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        c.what, ": input too small: ", c.docs.size(),
        " distinct non-empty document(s) (", given, " read, ", duplicates,
        " duplicates removed); a validation split of whole documents needs at "
        "least 2"));
  }
  Split(o.val_fraction, &c.docs);
  int64_t bytes[2] = {0, 0};
  int64_t n_docs[2] = {0, 0};
  int64_t lines = 0;
  for (const Doc& d : c.docs) {
    bytes[d.val ? 1 : 0] += d.bytes;
    n_docs[d.val ? 1 : 0] += 1;
    lines +=
        std::count(d.document.text.begin(), d.document.text.end(), '\n') + 1;
  }
  // Per package: documents and bytes kept (after de-duplication).
  for (nlohmann::json& source : c.sources) {
    const std::string package = source["package"];
    int64_t docs = 0;
    int64_t text_bytes = 0;
    for (const Doc& d : c.docs) {
      if ((d.document.package.empty() ? "files" : d.document.package) ==
          package) {
        ++docs;
        text_bytes += d.bytes;
      }
    }
    source["documents"] = docs;
    source["bytes"] = text_bytes;
  }
  std::fprintf(stderr,
               "isoflop-data: %zu documents read, %lld duplicates removed; "
               "train %lld documents (%.1f MB), val %lld documents (%.1f MB)\n",
               given, static_cast<long long>(duplicates),
               static_cast<long long>(n_docs[0]), Mb(bytes[0]),
               static_cast<long long>(n_docs[1]), Mb(bytes[1]));

  ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create(o.out_dir));
  const fs::path dir = tmp.path();
  const int threads =
      o.threads > 0
          ? o.threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  auto t = Clock::now();
  const fs::path sample = dir / "tokenizer-sample.txt";
  ASSIGN_OR_RETURN(
      int64_t sample_bytes,
      WriteTokenizerSample(sample, c.docs, o.tokenizer_sample_bytes));
  std::fprintf(stderr,
               "isoflop-data: training a %d-piece BPE tokenizer on %.1f MB of "
               "training text (at most %lld lines)\n",
               o.vocab_size, Mb(sample_bytes),
               static_cast<long long>(o.tokenizer_sentences));
  const std::string prefix = (dir / "tokenizer").string();
  if (std::string err = TrainBpe(
          sample.string(), prefix,
          BpeTrainOptions{.vocab_size = o.vocab_size,
                          .threads = threads,
                          .input_sentence_size = o.tokenizer_sentences,
                          .keep_whitespace = c.kind == TextKind::kCode});
      !err.empty()) {
    return TokenizerError(c.what, o.vocab_size, sample_bytes, err);
  }
  std::error_code ec;
  fs::remove(sample, ec);
  seconds["tokenizer"] = Seconds(t);

  t = Clock::now();
  RETURN_IF_ERROR(Encode(prefix + ".model", threads, &c.docs));
  seconds["encode"] = Seconds(t);

  t = Clock::now();
  int64_t tokens[2] = {0, 0};
  {
    std::ofstream manifest(dir / "documents.tsv");
    manifest << "split\tcontent_hash\tbytes\ttokens\tname\n";
    for (const Doc& d : c.docs) {
      tokens[d.val ? 1 : 0] += static_cast<int64_t>(d.tokens.size());
      manifest << (d.val ? "val" : "train") << '\t' << d.hash << '\t' << d.bytes
               << '\t' << d.tokens.size() << '\t' << d.document.name << '\n';
    }
    manifest.flush();
    if (!manifest) {
      return absl::InternalError(
          absl::StrCat((dir / "documents.tsv").string(), ": write failed"));
    }
  }
  for (const bool val : {false, true}) {
    std::vector<uint16_t> ids = Concatenate(val, &c.docs);
    RETURN_IF_ERROR(
        WriteTokenFile((dir / (val ? "val.bin" : "train.bin")).string(),
                       static_cast<uint32_t>(o.vocab_size), ids));
  }
  seconds["write"] = Seconds(t);
  seconds["total"] = Seconds(t0);
  nlohmann::json meta = {
      {"vocab_size", o.vocab_size},
      {"train_tokens", tokens[0]},
      {"val_tokens", tokens[1]},
      {"source", c.source_label},
      {"lines", lines},
      {"tokenizer", "sentencepiece-bpe"},
      {"text", c.kind == TextKind::kCode ? "code" : "prose"},
      {"split", "documents by content hash"},
      {"val_fraction", o.val_fraction},
      {"documents", n_docs[0] + n_docs[1]},
      {"train_documents", n_docs[0]},
      {"val_documents", n_docs[1]},
      {"duplicate_documents_removed", duplicates},
      {"train_bytes", bytes[0]},
      {"val_bytes", bytes[1]},
      // Duplicates are removed before the split, so every training token is
      // unique data: U_D for counting epochs.
      {"unique_train_tokens", tokens[0]},
      {"tokenizer_sample_bytes", sample_bytes},
      {"sources", c.sources},
      {"seconds", seconds}};
  {
    std::ofstream out(dir / "meta.json");
    out << meta.dump(2) << '\n';
    out.flush();
    if (!out) {
      return absl::InternalError(
          absl::StrCat((dir / "meta.json").string(), ": write failed"));
    }
  }
  RETURN_IF_ERROR(tmp.MoveTo(o.out_dir));
  const int64_t n_total = n_docs[0] + n_docs[1];
  std::fprintf(stderr,
               "isoflop-data: %s: %lld documents -> %lld train + %lld val "
               "tokens (%.1f + %.1f MB), vocab %d, %.1f s\n",
               o.out_dir.c_str(), static_cast<long long>(n_total),
               static_cast<long long>(tokens[0]),
               static_cast<long long>(tokens[1]), Mb(bytes[0]), Mb(bytes[1]),
               o.vocab_size, Seconds(t0));
  return absl::OkStatus();
}

}  // namespace isoflop::data
