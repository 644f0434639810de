// The exit-code contract between isoflop-trainer and isoflop-worker
// (DESIGN.md §2). One header, included by both sides.
#ifndef ISOFLOP_COMMON_EXIT_CODES_H_
#define ISOFLOP_COMMON_EXIT_CODES_H_

namespace isoflop {

inline constexpr int kExitOk = 0;             // trained to the token budget
inline constexpr int kExitInvalidConfig = 2;  // bad flags/data: never retried
inline constexpr int kExitRetryable =
    75;  // EX_TEMPFAIL: NCCL timeout, preemption
// Any other code: failed. 128 + n: killed by signal n.

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_EXIT_CODES_H_
