#include "data/import.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/token_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace isoflop::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path Scratch(const std::string& name) {
  const fs::path p = fs::path(::testing::TempDir()) / "import" / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void WriteBytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

template <typename T>
std::string Raw(const std::vector<T>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)};
}

// llm.c's header (dev/data/data_common.py): 256 int32, magic, version, count.
template <typename T>
std::string Llmc(int32_t magic, int32_t version, const std::vector<T>& ids,
                 int32_t count = -1) {
  std::vector<int32_t> h(256, 0);
  h[0] = magic;
  h[1] = version;
  h[2] = count >= 0 ? count : static_cast<int32_t>(ids.size());
  return Raw(h) + Raw(ids);
}

// A .npy (format 1.0) as numpy.save writes it: the header padded with spaces
// to a multiple of 64 bytes, ending in '\n'.
std::string Npy(const std::string& descr, const std::string& shape,
                const std::string& data, const std::string& fortran = "False") {
  std::string dict =
      absl::StrCat("{'descr': '", descr, "', 'fortran_order': ", fortran,
                   ", 'shape': ", shape, ", }");
  while ((10 + dict.size() + 1) % 64 != 0) dict += ' ';
  dict += '\n';
  const auto len = static_cast<uint16_t>(dict.size());
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out.append(reinterpret_cast<const char*>(&len), 2);
  return out + dict + data;
}

std::vector<uint32_t> Read(const fs::path& p) {
  absl::StatusOr<TokenFile> f = TokenFile::Open(p.string());
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? f->tokens().ToVector() : std::vector<uint32_t>{};
}

nlohmann::json Meta(const fs::path& dataset) {
  std::ifstream in(dataset / "meta.json");
  return nlohmann::json::parse(in);
}

std::vector<uint16_t> Ids16(size_t n, uint16_t vocab) {
  std::vector<uint16_t> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<uint16_t>((i * 7919) % vocab);
  return v;
}

template <typename T>
std::vector<uint32_t> Widen(const std::vector<T>& v) {
  return {v.begin(), v.end()};
}

TEST(Import, NanogptPairGivesTheSameTokenStreams) {
  const fs::path in = Scratch("nanogpt_pair");
  const std::vector<uint16_t> train = Ids16(5000, 50257),
                              val = Ids16(700, 50257);
  WriteBytes(in / "train.bin", Raw(train));
  WriteBytes(in / "val.bin", Raw(val));
  const fs::path out = in / "data" / "owt";
  absl::StatusOr<ImportSummary> s = Import(
      {.format = "nanogpt",
       .out_dir = out.string(),
       .inputs = {(in / "train.bin").string(), (in / "val.bin").string()},
       .vocab_size = 50257});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(Read(out / "train.bin"), Widen(train));
  EXPECT_EQ(Read(out / "val.bin"), Widen(val));
  EXPECT_EQ(TokenFile::Open((out / "train.bin").string())->vocab_size(),
            50257u);
  const nlohmann::json meta = Meta(out);
  EXPECT_EQ(meta["vocab_size"], 50257);
  EXPECT_EQ(meta["train_tokens"], 5000);
  EXPECT_EQ(meta["val_tokens"], 700);
  EXPECT_EQ(meta["token_dtype"], "uint16");
  EXPECT_EQ(meta["tokenizer"], "none");
  EXPECT_EQ(meta["format"], "nanogpt");
}

TEST(Import, OneFileIsSplitByPositionAndSaysSo) {
  const fs::path in = Scratch("nanogpt_one");
  const std::vector<uint16_t> ids = Ids16(1000, 300);
  WriteBytes(in / "all.bin", Raw(ids));
  const fs::path out = in / "ds";
  absl::StatusOr<ImportSummary> s =
      Import({.format = "nanogpt",
              .out_dir = out.string(),
              .inputs = {(in / "all.bin").string()},
              .vocab_size = 300,
              .val_fraction = 0.1});
  ASSERT_TRUE(s.ok()) << s.status();
  const std::vector<uint32_t> all = Widen(ids);
  EXPECT_EQ(Read(out / "train.bin"),
            std::vector<uint32_t>(all.begin(), all.begin() + 900));
  EXPECT_EQ(Read(out / "val.bin"),
            std::vector<uint32_t>(all.begin() + 900, all.end()));
  ASSERT_EQ(s->notes.size(), 1u);
  EXPECT_THAT(s->notes[0], HasSubstr("the last 100 ids are validation, split "
                                     "by position, not by document"));
}

TEST(Import, LlmcGpt2FilesGiveTheSameTokenStreams) {
  const fs::path in = Scratch("llmc");
  const std::vector<uint16_t> train = Ids16(4000, 50257),
                              val = Ids16(300, 50257);
  WriteBytes(in / "tiny_train.bin", Llmc(20240520, 1, train));
  WriteBytes(in / "tiny_val.bin", Llmc(20240520, 1, val));
  const fs::path out = in / "ds";
  absl::StatusOr<ImportSummary> s =
      Import({.format = "llmc",
              .out_dir = out.string(),
              .inputs = {(in / "tiny_val.bin").string(),
                         (in / "tiny_train.bin").string()},
              .vocab_size = 50257});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(Read(out / "train.bin"), Widen(train));
  EXPECT_EQ(Read(out / "val.bin"), Widen(val));
}

TEST(Import, LlmcLlama3FilesBecomeUint32TokenFiles) {
  const fs::path in = Scratch("llmc3");
  std::vector<uint32_t> ids(3000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = (i * 104729) % 128256;
  WriteBytes(in / "fineweb_train_000001.bin", Llmc(20240801, 7, ids));
  const fs::path out = in / "ds";
  absl::StatusOr<ImportSummary> s =
      Import({.format = "llmc",
              .out_dir = out.string(),
              .inputs = {(in / "fineweb_train_000001.bin").string()},
              .vocab_size = 128256});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->token_dtype, "uint32");
  std::vector<uint32_t> back = Read(out / "train.bin");
  const std::vector<uint32_t> val = Read(out / "val.bin");
  back.insert(back.end(), val.begin(), val.end());
  EXPECT_EQ(back, ids);
  EXPECT_EQ(TokenFile::Open((out / "val.bin").string())->dtype(),
            TokenDtype::kUint32);
}

TEST(Import, NpyOfEachIdDtypeGivesTheSameTokenStream) {
  const std::vector<uint32_t> ids = {0, 5, 99999, 70000, 3,  65536, 1,   2,
                                     4, 8, 16,    32,    64, 128,   256, 512};
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"<u4", Raw(ids)},
      {"<i4", Raw(std::vector<int32_t>(ids.begin(), ids.end()))},
      {"<i8", Raw(std::vector<int64_t>(ids.begin(), ids.end()))}};
  for (const auto& [descr, data] : cases) {
    SCOPED_TRACE(descr);
    const fs::path in = Scratch(absl::StrCat("npy", descr.substr(1)));
    WriteBytes(in / "train.npy", Npy(descr, "(16,)", data));
    WriteBytes(in / "val.npy", Npy(descr, "(16,)", data));
    const fs::path out = in / "ds";
    absl::StatusOr<ImportSummary> s = Import(
        {.format = "npy",
         .out_dir = out.string(),
         .inputs = {(in / "train.npy").string(), (in / "val.npy").string()}});
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(Read(out / "train.bin"), ids);
    EXPECT_EQ(Read(out / "val.bin"), ids);
    EXPECT_EQ(s->vocab_size, 100000);  // the largest id + 1, said in a note
    EXPECT_THAT(s->notes.at(0), HasSubstr("the largest id + 1"));
  }
  const std::vector<uint16_t> small = Ids16(64, 1000);
  const fs::path in = Scratch("npyu2");
  WriteBytes(in / "train.npy", Npy("<u2", "(64,)", Raw(small)));
  WriteBytes(in / "val.npy", Npy("<u2", "(64,)", Raw(small)));
  const fs::path out = in / "ds";
  ASSERT_TRUE(Import({.format = "npy",
                      .out_dir = out.string(),
                      .inputs = {(in / "train.npy").string(),
                                 (in / "val.npy").string()},
                      .vocab_size = 1000})
                  .ok());
  EXPECT_EQ(Read(out / "train.bin"), Widen(small));
}

// Text documents: a tokenizer trained on them, then reused for JSON lines.
TEST(Import, TextAndJsonlSplitByDocumentWithATrainedOrGivenTokenizer) {
  const fs::path in = Scratch("text");
  fs::create_directories(in / "docs" / "sub");
  for (int d = 0; d < 10; ++d) {
    std::ofstream out(in / "docs" / (d < 5 ? "" : "sub") /
                      absl::StrCat("doc", d, ".txt"));
    for (int i = 0; i < 200; ++i) {
      out << "document " << d << " says the quick brown fox " << i % 13
          << " jumps over the lazy dog\n";
    }
  }
  const fs::path text_out = in / "text_ds";
  absl::StatusOr<ImportSummary> s = Import({.format = "text",
                                            .out_dir = text_out.string(),
                                            .inputs = {(in / "docs").string()},
                                            .vocab_size = 100,
                                            .val_fraction = 0.2});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->documents, 10);
  EXPECT_EQ(s->val_documents, 2);
  EXPECT_GT(s->val_tokens, 1000);
  EXPECT_TRUE(fs::exists(text_out / "tokenizer.model"));
  EXPECT_TRUE(fs::exists(text_out / "tokenizer.vocab"));
  EXPECT_EQ(Meta(text_out)["tokenizer"], "sentencepiece-bpe");

  {
    std::ofstream out(in / "docs.jsonl");
    for (int d = 0; d < 20; ++d) {
      out << nlohmann::json{{"text", absl::StrCat("line one of ", d,
                                                  "\nthe lazy dog ", d)},
                            {"id", d}}
                 .dump()
          << "\n";
    }
  }
  const fs::path jsonl_out = in / "jsonl_ds";
  s = Import({.format = "jsonl",
              .out_dir = jsonl_out.string(),
              .inputs = {(in / "docs.jsonl").string()},
              .tokenizer = (text_out / "tokenizer.model").string(),
              .val_fraction = 0.1});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->documents, 20);
  EXPECT_EQ(s->val_documents, 2);
  EXPECT_EQ(s->vocab_size, 100);
  // The given model's pieces, one line each, for the worker's sampled text.
  std::ifstream vocab(jsonl_out / "tokenizer.vocab");
  int lines = 0;
  for (std::string l; std::getline(vocab, l);) ++lines;
  EXPECT_EQ(lines, 100);
}

struct Refusal {
  std::string label;
  std::function<ImportOptions(const fs::path& in)> setup;
  absl::StatusCode code;
  std::string message;  // a substring, after the input's directory
};

std::vector<Refusal> Refusals() {
  using C = absl::StatusCode;
  const std::vector<uint16_t> ids = Ids16(100, 50);
  return {
      {"unknown format",
       [](const fs::path& in) {
         return ImportOptions{.format = "parquet", .inputs = {"x"}};
       },
       C::kInvalidArgument,
       "--format = \"parquet\": must be one of nanogpt, llmc, npy, text, "
       "jsonl"},
      {"llm.c magic",
       [=](const fs::path& in) {
         WriteBytes(in / "a.bin", Llmc(20240521, 1, ids));
         return ImportOptions{.format = "llmc", .inputs = {"a.bin"}};
       },
       C::kInvalidArgument,
       "a.bin: magic = 20240521, version = 1: must be 20240520 version 1 "
       "(GPT-2, uint16) or 20240801 version 7 (Llama 3, uint32)"},
      {"llm.c version",
       [=](const fs::path& in) {
         WriteBytes(in / "a.bin", Llmc(20240520, 2, ids));
         return ImportOptions{.format = "llmc", .inputs = {"a.bin"}};
       },
       C::kInvalidArgument, "a.bin: magic = 20240520, version = 2: must be"},
      {"llm.c count",
       [=](const fs::path& in) {
         WriteBytes(in / "a.bin", Llmc(20240520, 1, ids, 101));
         return ImportOptions{.format = "llmc", .inputs = {"a.bin"}};
       },
       C::kInvalidArgument,
       "a.bin: the header's token count = 101 but the file holds 200 bytes "
       "of uint16 ids after the 1024-byte header (100 tokens)"},
      {"llm.c short",
       [=](const fs::path& in) {
         WriteBytes(in / "a.bin", "abc");
         return ImportOptions{.format = "llmc", .inputs = {"a.bin"}};
       },
       C::kInvalidArgument,
       "a.bin: 3 bytes: shorter than llm.c's 1024-byte header"},
      {"nanogpt odd size",
       [=](const fs::path& in) {
         WriteBytes(in / "a.bin", Raw(ids) + "x");
         return ImportOptions{
             .format = "nanogpt", .inputs = {"a.bin"}, .vocab_size = 50};
       },
       C::kInvalidArgument, "a.bin: 201 bytes: odd"},
      {"nanogpt without vocab",
       [=](const fs::path& in) {
         WriteBytes(in / "a.bin", Raw(ids));
         return ImportOptions{.format = "nanogpt", .inputs = {"a.bin"}};
       },
       C::kInvalidArgument, "--vocab-size: required with --format nanogpt"},
      {"id >= vocab, in the second file (train.bin is written first)",
       [=](const fs::path& in) {
         WriteBytes(in / "train.bin", Raw(ids));
         std::vector<uint16_t> bad = ids;
         bad[17] = 50;
         WriteBytes(in / "val.bin", Raw(bad));
         return ImportOptions{.format = "nanogpt",
                              .inputs = {"train.bin", "val.bin"},
                              .vocab_size = 50};
       },
       C::kInvalidArgument,
       "val.bin: token[17] = 50: must be < --vocab-size = 50"},
      {"negative id",
       [](const fs::path& in) {
         WriteBytes(in / "a.npy",
                    Npy("<i8", "(4,)", Raw(std::vector<int64_t>{1, 2, -3, 4})));
         return ImportOptions{.format = "npy", .inputs = {"a.npy"}};
       },
       C::kInvalidArgument, "a.npy: token[2] = -3: must be >= 0"},
      {"npy float dtype",
       [](const fs::path& in) {
         WriteBytes(in / "a.npy", Npy("<f4", "(2,)", std::string(8, '\0')));
         return ImportOptions{.format = "npy", .inputs = {"a.npy"}};
       },
       C::kInvalidArgument,
       "a.npy: dtype '<f4': must be '<u2', '<u4', '<i4' or '<i8'"},
      {"npy big-endian",
       [](const fs::path& in) {
         WriteBytes(in / "a.npy", Npy(">u4", "(2,)", std::string(8, '\0')));
         return ImportOptions{.format = "npy", .inputs = {"a.npy"}};
       },
       C::kInvalidArgument, "a.npy: dtype '>u4': must be"},
      {"npy fortran order",
       [](const fs::path& in) {
         WriteBytes(in / "a.npy",
                    Npy("<u2", "(2,)", std::string(4, '\0'), "True"));
         return ImportOptions{.format = "npy", .inputs = {"a.npy"}};
       },
       C::kInvalidArgument,
       "a.npy: fortran_order = True: must be False (C order)"},
      {"npy 2-D",
       [](const fs::path& in) {
         WriteBytes(in / "a.npy", Npy("<u2", "(2, 3)", std::string(12, '\0')));
         return ImportOptions{.format = "npy", .inputs = {"a.npy"}};
       },
       C::kInvalidArgument, "a.npy: shape = (2, 3): must be one dimension"},
      {"npy size",
       [](const fs::path& in) {
         WriteBytes(in / "a.npy", Npy("<u2", "(9,)", std::string(12, '\0')));
         return ImportOptions{.format = "npy", .inputs = {"a.npy"}};
       },
       C::kInvalidArgument,
       "a.npy: shape = (9,) of 2-byte ids but the file holds 12 bytes"},
      {"npy magic",
       [](const fs::path& in) {
         WriteBytes(in / "a.npy", "PK\x03\x04 a zip, not an npy");
         return ImportOptions{.format = "npy", .inputs = {"a.npy"}};
       },
       C::kInvalidArgument, "a.npy: no \\x93NUMPY magic"},
      {"empty file",
       [](const fs::path& in) {
         WriteBytes(in / "a.bin", "");
         return ImportOptions{
             .format = "nanogpt", .inputs = {"a.bin"}, .vocab_size = 50};
       },
       C::kInvalidArgument, "a.bin: empty (0 bytes)"},
      {"unreadable file",
       [](const fs::path& in) {
         return ImportOptions{.format = "llmc", .inputs = {"missing.bin"}};
       },
       C::kNotFound, "missing.bin: cannot open"},
      {"empty text",
       [](const fs::path& in) {
         WriteBytes(in / "a.txt", "\n  \n");
         return ImportOptions{.format = "text", .inputs = {"a.txt"}};
       },
       C::kInvalidArgument, "a.txt: empty: no text to import"},
      {"empty folder",
       [](const fs::path& in) {
         fs::create_directories(in / "nothing");
         return ImportOptions{.format = "text", .inputs = {"nothing"}};
       },
       C::kInvalidArgument, "nothing: a folder with no files"},
      {"jsonl not JSON",
       [](const fs::path& in) {
         WriteBytes(in / "a.jsonl", "{\"text\": \"ok\"}\n{\"text\": oops}\n");
         return ImportOptions{.format = "jsonl", .inputs = {"a.jsonl"}};
       },
       C::kInvalidArgument, "a.jsonl:2: not JSON: "},
      {"jsonl without text",
       [](const fs::path& in) {
         WriteBytes(in / "a.jsonl",
                    "{\"text\": \"ok\"}\n\n{\"content\": \"x\"}\n");
         return ImportOptions{.format = "jsonl", .inputs = {"a.jsonl"}};
       },
       C::kInvalidArgument,
       "a.jsonl:3: no \"text\" field: each line must be a JSON object with a "
       "string \"text\""},
      {"jsonl text not a string",
       [](const fs::path& in) {
         WriteBytes(in / "a.jsonl", "{\"text\": 5}\n");
         return ImportOptions{.format = "jsonl", .inputs = {"a.jsonl"}};
       },
       C::kInvalidArgument,
       "a.jsonl:1: \"text\" is a number: must be a string"},
      {"too small for a validation split",
       [](const fs::path& in) {
         WriteBytes(in / "a.bin", Raw(Ids16(20, 50)));
         return ImportOptions{.format = "nanogpt",
                              .inputs = {"a.bin"},
                              .vocab_size = 50,
                              .val_fraction = 0.1};
       },
       C::kInvalidArgument,
       "a.bin: 20 tokens with --val-fraction = 0.1: 18 train + 2 val tokens: "
       "too small for a validation split: each split must hold >= 3 tokens"},
      {"only validation files",
       [=](const fs::path& in) {
         WriteBytes(in / "val.bin", Raw(ids));
         return ImportOptions{
             .format = "nanogpt", .inputs = {"val.bin"}, .vocab_size = 50};
       },
       C::kInvalidArgument, "every input is named as validation"},
      {"tokenizer with token ids",
       [=](const fs::path& in) {
         return ImportOptions{
             .format = "npy", .inputs = {"a.npy"}, .tokenizer = "t.model"};
       },
       C::kInvalidArgument, "--tokenizer: only with --format text or jsonl"},
      {"not a tokenizer",
       [](const fs::path& in) {
         WriteBytes(in / "a.txt", "some text\n");
         WriteBytes(in / "t.model", "not a model");
         return ImportOptions{.format = "text",
                              .inputs = {"a.txt"},
                              .tokenizer = (in / "t.model").string()};
       },
       C::kInvalidArgument, "t.model: not a SentencePiece model"},
      {"vocabulary larger than the text supports",
       [](const fs::path& in) {
         WriteBytes(in / "a.txt", "a tiny text\nof two lines\n");
         return ImportOptions{
             .format = "text", .inputs = {"a.txt"}, .vocab_size = 5000};
       },
       C::kInvalidArgument,
       "--vocab-size = 5000: SentencePiece cannot train a tokenizer of this "
       "size on 25 bytes of text"},
      {"existing dataset",
       [=](const fs::path& in) {
         WriteBytes(in / "a.bin", Raw(ids));
         fs::create_directories(in / "out");
         return ImportOptions{
             .format = "nanogpt", .inputs = {"a.bin"}, .vocab_size = 50};
       },
       C::kAlreadyExists, "out: exists: remove it or import under another"},
  };
}

TEST(Import, RefusesEachBadInputNamingTheFileAndRuleAndLeavesNothing) {
  int i = 0;
  for (const Refusal& r : Refusals()) {
    SCOPED_TRACE(r.label);
    const fs::path in = Scratch(absl::StrCat("refusal", i++));
    ImportOptions o = r.setup(in);
    for (std::string& input : o.inputs) input = (in / input).string();
    o.out_dir = (in / "out").string();
    const bool existed = fs::exists(in / "out");
    absl::StatusOr<ImportSummary> s = Import(o);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), r.code) << s.status();
    EXPECT_THAT(s.status().message(), HasSubstr(r.message));
    // Nothing half-written: no dataset, no staging directory.
    EXPECT_EQ(fs::exists(in / "out"), existed);
    for (const auto& e : fs::directory_iterator(in)) {
      EXPECT_THAT(e.path().filename().string(),
                  ::testing::Not(HasSubstr(".import-")));
    }
  }
}

}  // namespace
}  // namespace isoflop::data
