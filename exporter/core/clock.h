// Clock: the one place the exporter reads time.
//
// Everything that needs "now" takes a `const Clock&`, so drift, stopped-clock
// and staleness logic is tested with FakeClock instead of sleeps. Two time
// scales are exposed, always as signed nanoseconds:
//   RealtimeNs()  - CLOCK_REALTIME, nanoseconds since the Unix epoch (UTC).
//   MonotonicNs() - CLOCK_MONOTONIC, nanoseconds since an arbitrary origin;
//                   never steps, used for intervals, deadlines and elapsed time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace vmtime {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t RealtimeNs() const = 0;
  virtual int64_t MonotonicNs() const = 0;
};

// Reads the host kernel clocks.
class SystemClock final : public Clock {
 public:
  int64_t RealtimeNs() const override;
  int64_t MonotonicNs() const override;
  static const SystemClock& Instance();
};

// A clock the test drives by hand. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t realtime_ns = 1'700'000'000'000'000'000,
                     int64_t monotonic_ns = 1'000'000'000)
      : realtime_ns_(realtime_ns), monotonic_ns_(monotonic_ns) {}
  int64_t RealtimeNs() const override { return realtime_ns_.load(); }
  int64_t MonotonicNs() const override { return monotonic_ns_.load(); }
  // Advances both scales by `ns` (ns >= 0).
  void Advance(int64_t ns) {
    realtime_ns_ += ns;
    monotonic_ns_ += ns;
  }
  void AdvanceSeconds(double s) { Advance(static_cast<int64_t>(s * 1e9)); }
  // Steps only the realtime scale (like `date -s`); monotonic is unaffected.
  void StepRealtime(int64_t ns) { realtime_ns_ += ns; }

 private:
  std::atomic<int64_t> realtime_ns_;
  std::atomic<int64_t> monotonic_ns_;
};

constexpr int64_t kNsPerSecond = 1'000'000'000;
inline double NsToSeconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }
inline int64_t SecondsToNs(double s) { return static_cast<int64_t>(s * 1e9); }

}  // namespace vmtime
