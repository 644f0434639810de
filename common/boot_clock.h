// The clock of the trainer's watchdog (trainer/watchdog.h): CLOCK_BOOTTIME,
// one clock for every process on a host (the worker writes feeds in it, the
// trainer compares them with it), never stepped by NTP, and still counting
// while the host is suspended (a lease's TTL does too, at the coordinator).
#ifndef ISOFLOP_COMMON_BOOT_CLOCK_H_
#define ISOFLOP_COMMON_BOOT_CLOCK_H_

#include <time.h>

#include <cstdint>

namespace isoflop {

// Nanoseconds since boot.
inline int64_t BootTimeNs() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_BOOT_CLOCK_H_
