// The exit-code contract between isoflop-trainer and isoflop-worker
// (docs/architecture.md §5.2). One header, included by both sides.
#ifndef ISOFLOP_COMMON_EXIT_CODES_H_
#define ISOFLOP_COMMON_EXIT_CODES_H_

namespace isoflop {

inline constexpr int kExitOk = 0;             // trained to the token budget
inline constexpr int kExitInvalidConfig = 2;  // bad flags/data: never retried
inline constexpr int kExitRetryable =
    75;  // EX_TEMPFAIL: NCCL timeout, preemption
// The trainer fenced itself (retried like 75): its watchdog was not fed
// within --watchdog-timeout-s (the worker stopped renewing the lease), or a
// newer attempt claimed its checkpoint directory (trainer/watchdog.h,
// trainer/checkpoint.h, docs/faults.md).
inline constexpr int kExitFenced = 76;
// Any other code: failed. 128 + n: killed by signal n.

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_EXIT_CODES_H_
