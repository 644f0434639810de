// RETURN_IF_ERROR / ASSIGN_OR_RETURN: abseil 20220623 ships neither.
#ifndef ISOFLOP_COMMON_STATUS_MACROS_H_
#define ISOFLOP_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ISOFLOP_CONCAT_INNER_(a, b) a##b
#define ISOFLOP_CONCAT_(a, b) ISOFLOP_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) once; returns it from the enclosing
// function when it is not OK.
#define RETURN_IF_ERROR(expr)                             \
  do {                                                    \
    if (absl::Status _st = (expr); !_st.ok()) return _st; \
  } while (0)

// `lhs` = value of `rexpr` (an absl::StatusOr<T>), or returns its status.
#define ASSIGN_OR_RETURN(lhs, rexpr)                                         \
  ISOFLOP_ASSIGN_OR_RETURN_IMPL_(ISOFLOP_CONCAT_(_statusor_, __LINE__), lhs, \
                                 rexpr)

// `tmp` and `lhs` name or declare variables: they cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define ISOFLOP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                   \
  if (!tmp.ok()) return std::move(tmp).status();        \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

#endif  // ISOFLOP_COMMON_STATUS_MACROS_H_
