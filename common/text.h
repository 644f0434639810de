// Free text from users (sweep names, dataset names) ends up in terminals, logs,
// HTML pages and protobuf string fields (which must be UTF-8). The rule here
// keeps it printable: valid UTF-8 with no control characters, so no terminal
// escape sequence, no NUL and no bidirectional override travels with it.
#ifndef ISOFLOP_COMMON_TEXT_H_
#define ISOFLOP_COMMON_TEXT_H_

#include <optional>
#include <string>
#include <string_view>

namespace isoflop {

// nullopt when `text` is printable: valid UTF-8 (no overlong form, surrogate
// or code point above U+10FFFF) holding no C0 control (U+0000-U+001F, so no
// NUL, newline, tab or ESC), no DEL, no C1 control (U+0080-U+009F), no line
// or paragraph separator (U+2028, U+2029) and no bidirectional embedding,
// override or isolate (U+202A-U+202E, U+2066-U+2069). Else the first
// problem, e.g. "byte 4 is 0x1B, a control character" or "byte 2 (0xFF) is
// not UTF-8" (1-based byte positions). Pure.
std::optional<std::string> TextProblem(std::string_view text);

// `text` with every byte that TextProblem would refuse written as \xNN (a
// refused multi-byte character as each of its bytes), printable UTF-8 kept:
// safe to print to a terminal. Pure.
std::string EscapeUnprintable(std::string_view text);

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_TEXT_H_
