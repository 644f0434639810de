#include "cli/report_html.h"

#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace isoflop::cli {
namespace {

std::string Escape(const std::string& text) {
  return absl::StrReplaceAll(
      text, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

// GitHub-flavoured Markdown (tables) to HTML; raw HTML in the text is
// escaped (cmark's default: the report quotes messages it does not control).
std::string MarkdownToHtml(const std::string& markdown) {
  cmark_gfm_core_extensions_ensure_registered();
  std::unique_ptr<cmark_parser, decltype(&cmark_parser_free)> parser(
      cmark_parser_new(CMARK_OPT_DEFAULT), &cmark_parser_free);
  if (cmark_syntax_extension* table = cmark_find_syntax_extension("table")) {
    cmark_parser_attach_syntax_extension(parser.get(), table);
  }
  cmark_parser_feed(parser.get(), markdown.data(), markdown.size());
  std::unique_ptr<cmark_node, decltype(&cmark_node_free)> doc(
      cmark_parser_finish(parser.get()), &cmark_node_free);
  char* html =
      cmark_render_html(doc.get(), CMARK_OPT_DEFAULT,
                        cmark_parser_get_syntax_extensions(parser.get()));
  std::string out(html);
  std::free(html);
  return out;
}

// The SVG of a figure file for inlining: no XML prolog, ids prefixed.
std::string InlineSvg(const std::string& svg, const std::string& prefix) {
  std::string body = svg;
  if (absl::StartsWith(body, "<?xml")) {
    body.erase(0,
               body.find("?>") == std::string::npos ? 0 : body.find("?>") + 2);
  }
  return absl::StrReplaceAll(body,
                             {{"id=\"", absl::StrCat("id=\"", prefix)},
                              {"url(#", absl::StrCat("url(#", prefix)},
                              {"href=\"#", absl::StrCat("href=\"#", prefix)}});
}

constexpr char kStyle[] = R"css(
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 11pt;
       max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 18pt; } h2 { font-size: 14pt; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 9.5pt; }
th, td { border: 1px solid #bbb; padding: 2px 6px; text-align: left; }
th { background: #f2f2f2; }
code, pre { font-family: "DejaVu Sans Mono", monospace; font-size: 9pt; }
pre { background: #f7f7f7; padding: 0.5em; overflow-x: auto; }
.figure { display: block; margin: 1em 0; page-break-inside: avoid; }
.figure svg { max-width: 100%; height: auto; }
.figure .caption { display: block; font-style: italic; font-size: 10pt; }
@media print { body { margin: 0; max-width: none; } a { color: inherit; } }
)css";

}  // namespace

std::string ReportHtml(const std::string& title, const std::string& markdown,
                       const std::map<std::string, std::string>& figures,
                       const std::string& config_json) {
  std::string body = MarkdownToHtml(markdown);
  int k = 0;
  for (const auto& [name, svg] : figures) {
    // cmark writes an image as <img src="NAME" alt="CAPTION" />.
    const std::string open = absl::StrCat("<img src=\"", Escape(name), "\"");
    for (size_t at = body.find(open); at != std::string::npos;
         at = body.find(open, at)) {
      const size_t end = body.find("/>", at);
      if (end == std::string::npos) break;
      std::string caption;
      const std::string tag = body.substr(at, end - at);
      if (const size_t alt = tag.find("alt=\""); alt != std::string::npos) {
        caption = tag.substr(alt + 5, tag.find('"', alt + 5) - (alt + 5));
      }
      const std::string figure =
          absl::StrCat("<span class=\"figure\">",
                       InlineSvg(svg, absl::StrCat("f", k++, "-")),
                       "<span class=\"caption\">", caption, "</span></span>");
      body.replace(at, end + 2 - at, figure);
      at += figure.size();
    }
  }
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>",
      Escape(title), "</title>\n<style>", kStyle, "</style>\n</head>\n<body>\n",
      body);
  if (!config_json.empty()) {
    absl::StrAppend(&html, "<h2>Config</h2>\n<pre>", Escape(config_json),
                    "</pre>\n");
  }
  absl::StrAppend(&html, "</body>\n</html>\n");
  return html;
}

std::optional<std::string> FindChromium() {
  if (const char* env = std::getenv("ISOFLOP_CHROMIUM");
      env != nullptr && *env != '\0') {
    if (::access(env, X_OK) == 0) return std::string(env);
    return std::nullopt;
  }
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  for (const char* name : {"chromium", "chromium-browser", "google-chrome",
                           "google-chrome-stable"}) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      const std::string candidate = absl::StrCat(dir, "/", name);
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return std::nullopt;
}

absl::Status PrintPdf(const std::string& chromium,
                      const std::filesystem::path& html,
                      const std::filesystem::path& pdf,
                      absl::Duration timeout) {
  std::string dir_template =
      (std::filesystem::temp_directory_path() / "isoflop-pdf-XXXXXX").string();
  if (mkdtemp(dir_template.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp ", dir_template, ": ", std::strerror(errno)));
  }
  const std::filesystem::path tmp = dir_template;
  const std::string err_path = (tmp / "chromium.err").string();
  std::error_code ec;
  std::filesystem::remove(pdf, ec);
  // --no-sandbox: Chromium refuses to run as root with its sandbox, and the
  // page is our own file; nothing but that file is loaded.
  std::vector<std::string> args = {
      chromium,
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-extensions",
      "--disable-sync",
      "--no-pdf-header-footer",
      absl::StrCat("--user-data-dir=", (tmp / "profile").string()),
      absl::StrCat("--print-to-pdf=", std::filesystem::absolute(pdf).string()),
      absl::StrCat("file://", std::filesystem::absolute(html).string())};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, so that a timeout kills its helper processes too.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  const int rc =
      posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  const auto tail = [&err_path] {
    std::ifstream in(err_path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    const size_t from = lines.size() > 3 ? lines.size() - 3 : 0;
    std::string out;
    for (size_t i = from; i < lines.size(); ++i) {
      absl::StrAppend(&out, i == from ? "" : " | ", lines[i]);
    }
    return out;
  };
  if (rc != 0) {
    std::filesystem::remove_all(tmp, ec);
    return absl::UnavailableError(absl::StrCat("--pdf: cannot start ", chromium,
                                               ": ", std::strerror(rc)));
  }
  const auto deadline =
      std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(timeout);
  int wstatus = 0;
  bool killed = false;
  while (true) {
    const pid_t r = waitpid(pid, &wstatus, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) break;
    if (!killed && std::chrono::steady_clock::now() > deadline) {
      ::kill(-pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string last_lines = tail();
  std::filesystem::remove_all(tmp, ec);
  if (killed) {
    return absl::DeadlineExceededError(
        absl::StrCat("--pdf: ", chromium, " ran past ",
                     absl::FormatDuration(timeout), "; killed"));
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0 ||
      !std::filesystem::exists(pdf)) {
    return absl::UnavailableError(
        absl::StrCat("--pdf: ", chromium, " exited ",
                     WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1,
                     " without writing ", pdf.string(), ": ", last_lines));
  }
  return absl::OkStatus();
}

}  // namespace isoflop::cli
