#include "exporter/core/clock.h"

#include <ctime>

namespace vmtime {
namespace {
int64_t Read(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNsPerSecond + ts.tv_nsec;
}
}  // namespace

int64_t SystemClock::RealtimeNs() const { return Read(CLOCK_REALTIME); }
int64_t SystemClock::MonotonicNs() const { return Read(CLOCK_MONOTONIC); }

const SystemClock& SystemClock::Instance() {
  static const SystemClock clock;
  return clock;
}

}  // namespace vmtime
