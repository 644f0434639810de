// Clock seam: production code reads time only through a Clock so that tests
// can drive leases and timeouts with a FakeClock (common/fake_clock.h).
#ifndef ISOFLOP_COMMON_CLOCK_H_
#define ISOFLOP_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace isoflop {

class Clock {
 public:
  virtual ~Clock() = default;
  // Current wall time. Thread-safe.
  virtual absl::Time Now() const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_CLOCK_H_
