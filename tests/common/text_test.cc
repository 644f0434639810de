#include "common/text.h"

#include <string>

#include "gtest/gtest.h"

namespace isoflop {
namespace {

TEST(TextProblem, AcceptsPrintableUnicode) {
  EXPECT_EQ(TextProblem("Chinchilla réplica — 小 🦙 \"x\" \\"),
            std::nullopt);
  EXPECT_EQ(TextProblem(""), std::nullopt);
}

TEST(TextProblem, NamesTheFirstBadByte) {
  EXPECT_EQ(TextProblem("ab\x1b[0m"), "byte 3 is 0x1B, a control character");
  EXPECT_EQ(TextProblem(std::string("a\0", 2)),
            "byte 2 is 0x00, a control character");
  EXPECT_EQ(TextProblem("a\x7f"), "byte 2 is 0x7F, a control character");
  EXPECT_EQ(TextProblem("a\u2028"),
            "byte 2 starts U+2028, a control character");
  EXPECT_EQ(TextProblem("a\u2066"),
            "byte 2 starts U+2066, a control character");
  EXPECT_EQ(TextProblem("a\xff"), "byte 2 (0xFF) is not UTF-8");
  EXPECT_EQ(TextProblem("a\xe2\x80"), "byte 2 (0xE2) is not UTF-8");     // cut
  EXPECT_EQ(TextProblem("\xed\xa0\x80"), "byte 1 (0xED) is not UTF-8");  // D800
  EXPECT_EQ(TextProblem("\xf4\x90\x80\x80"), "byte 1 (0xF4) is not UTF-8");
}

TEST(EscapeUnprintable, EscapesControlBytesAndKeepsPrintableUtf8) {
  EXPECT_EQ(EscapeUnprintable("réd\x1b[31m\n\xff\u202e!"),
            "réd\\x1B[31m\\x0A\\xFF\\xE2\\x80\\xAE!");
  EXPECT_EQ(EscapeUnprintable(std::string("\0", 1)), "\\x00");
}

}  // namespace
}  // namespace isoflop
