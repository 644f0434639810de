// `isoflop report --pdf` (issue 24 point 7): report.html printed to a PDF by
// the real headless Chromium (cli/report_html.h).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "cli/report_html.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

TEST(PrintPdf, ChromiumPrintsTheHtmlReportWithItsInlineFigure) {
  const std::optional<std::string> chromium = FindChromium();
  ASSERT_TRUE(chromium.has_value())
      << "no Chromium (scripts/setup.sh installs Debian's chromium)";
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      absl::StrFormat("report_pdf_test_%d", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string svg =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"200\" "
      "height=\"100\"><clipPath id=\"c\"><rect width=\"200\" "
      "height=\"100\"/></clipPath><circle cx=\"50\" cy=\"50\" r=\"40\" "
      "clip-path=\"url(#c)\"/></svg>";
  const std::string html = ReportHtml(
      "report",
      "# Report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![Figure](f.svg)\n",
      {{"f.svg", svg}}, "{\"name\": \"x\"}");
  std::ofstream(dir / "report.html") << html;
  const absl::Status s = PrintPdf(*chromium, dir / "report.html",
                                  dir / "report.pdf", absl::Seconds(120));
  ASSERT_TRUE(s.ok()) << s;
  std::ifstream in(dir / "report.pdf", std::ios::binary);
  std::stringstream pdf;
  pdf << in.rdbuf();
  std::filesystem::remove_all(dir);
  EXPECT_EQ(pdf.str().substr(0, 5), "%PDF-");
  EXPECT_GT(pdf.str().size(), 1000u);
}

TEST(PrintPdf, AChromiumThatFailsIsUnavailableWithItsOutput) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      absl::StrFormat("report_pdf_fail_%d", ::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "report.html") << "<p>x</p>";
  // /bin/false stands for a browser that exits 1 and writes nothing.
  const absl::Status s = PrintPdf("/bin/false", dir / "report.html",
                                  dir / "report.pdf", absl::Seconds(30));
  std::filesystem::remove_all(dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), ::testing::HasSubstr("/bin/false exited 1"));
}

}  // namespace
}  // namespace isoflop::cli
