// The report a colleague can open: `isoflop report --html` (report.html, one
// self-contained file: the Markdown report rendered with cmark-gfm, the
// figures inline as SVG, the resolved config) and `--pdf` (report.pdf,
// printed from that file by headless Chromium).
#ifndef ISOFLOP_CLI_REPORT_HTML_H_
#define ISOFLOP_CLI_REPORT_HTML_H_

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace isoflop::cli {

// report.md's text rendered as HTML (GitHub-flavoured Markdown: tables), in
// a page with print styles. Each image `![caption](NAME)` whose NAME is a key
// of `figures` (file name -> SVG text) is replaced by that SVG inline (its
// ids prefixed so that figures on one page do not share them) with the
// caption under it; other images stay links. `config_json`, when not empty,
// is shown under "Config" as preformatted text. The page loads nothing:
// no scripts, styles or images from elsewhere.
std::string ReportHtml(const std::string& title, const std::string& markdown,
                       const std::map<std::string, std::string>& figures,
                       const std::string& config_json);

// The Chromium to print with: $ISOFLOP_CHROMIUM when set (it must be an
// executable file), else the first of chromium, chromium-browser,
// google-chrome, google-chrome-stable on $PATH; nullopt when none.
std::optional<std::string> FindChromium();

// Prints `html` to `pdf` with `chromium --headless --print-to-pdf` (A4, no
// header or footer). UNAVAILABLE when Chromium cannot be started or exits
// non-zero, or writes no PDF (its stderr's last lines in the message);
// DEADLINE_EXCEEDED (after killing it) past `timeout`.
absl::Status PrintPdf(const std::string& chromium,
                      const std::filesystem::path& html,
                      const std::filesystem::path& pdf, absl::Duration timeout);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_REPORT_HTML_H_
