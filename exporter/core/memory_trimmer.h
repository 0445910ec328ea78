// MemoryTrimmer: hands malloc's free memory back to the kernel after the
// exporter's churn.
//
// Every publish builds a new snapshot and drops an older one: at 10,000 VMs
// that is about 10 MB of small allocations freed, several times per second,
// in malloc's arena (main sets M_ARENA_MAX 1). glibc returns memory to
// the kernel only from the top of a heap, so the freed blocks stayed
// resident: measured on a 10,000-domain exporter, malloc_trim(0) took RSS
// from 99 to 79 MiB (docs/performance.md, "Memory at 10,000 VMs").
// Poke() is called after each publish and only wakes the trimmer's own
// thread, which calls the trim function when the previous trim is at least
// `min_interval_ns` ago (host monotonic), else as soon as it is: a steady
// 10,000-VM exporter trims once per interval, an idle one once after the
// last publish (a reload that dropped thousands of VMs included).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "exporter/core/clock.h"

namespace vmtime {

class MemoryTrimmer {
 public:
  // The trim; the default calls malloc_trim(0) (glibc; a no-op elsewhere).
  using TrimFn = std::function<void()>;
  static constexpr int64_t kDefaultIntervalNs = 10'000'000'000;

  explicit MemoryTrimmer(const Clock& clock, int64_t min_interval_ns = kDefaultIntervalNs,
                         TrimFn trim = DefaultTrim);
  ~MemoryTrimmer();  // stops and joins the thread
  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  // Something was freed (never blocks on a trim in progress).
  void Poke();
  // Trims done so far, and whether one is owed (poked within the interval).
  uint64_t trims() const;
  bool pending() const;
  // Blocks until no poke is waiting to be looked at, or `timeout_ms` passed
  // (tests).
  bool WaitQuiet(int timeout_ms) const;

  static void DefaultTrim();

 private:
  void Loop();

  const Clock& clock_;
  const int64_t min_interval_ns_;
  const TrimFn trim_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool poked_ = false;
  bool pending_ = false;  // poked since the last trim
  bool busy_ = false;
  bool stop_ = false;
  int64_t last_trim_mono_ns_ = 0;
  uint64_t trims_ = 0;  // finished; counted before the loop looks again
  std::thread thread_;
};

}  // namespace vmtime
