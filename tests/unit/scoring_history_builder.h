// Test helper: builds synthetic clock-sample histories with fixed timestamps
// (no clock reads) for the scoring tests. The host's monotonic and realtime
// clocks advance together; the guest clock advances at (1 + drift) of host
// time unless frozen, paused or held, and can be stepped. Offsets are guest - host realtime
// in seconds, computed from the integer nanosecond clocks exactly as the
// libvirt collector does.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "scoring/types.h"

namespace vmtime::scoring::testing {

class HistoryBuilder {
 public:
  static constexpr int64_t kSecond = 1'000'000'000;
  static constexpr int64_t kMonoOrigin = 7'000 * kSecond;          // host uptime
  static constexpr int64_t kRealOrigin = 1'767'225'600 * kSecond;  // 2026-01-01 UTC

  // `offset_s` is the guest's initial offset (guest - host realtime).
  explicit HistoryBuilder(double offset_s = 0, double interval_s = 15)
      : guest_real_(kRealOrigin + Ns(offset_s)), interval_ns_(Ns(interval_s)) {}

  // Guest clock rate error from now on (1e-6 = 1 ppm, positive = guest fast).
  HistoryBuilder& Drift(double ratio) {
    drift_ = ratio;
    return *this;
  }
  // `n` samples, one per interval, guest clock running.
  HistoryBuilder& Steady(int n) {
    for (int i = 0; i < n; ++i) Advance(interval_ns_, false), Take();
    return *this;
  }
  // `n` samples, one per interval, guest clock frozen.
  HistoryBuilder& Stopped(int n) {
    for (int i = 0; i < n; ++i) Advance(interval_ns_, true), Take();
    return *this;
  }
  // The guest clock jumps by `jump_s` (positive = forward) before the next sample.
  HistoryBuilder& Step(double jump_s) {
    guest_real_ += Ns(jump_s);
    return *this;
  }
  // Host time passes without samples; the guest clock is frozen (pause,
  // save/restore, migration downtime). The next sample is marked
  // after_interruption, as the libvirt collector marks it from lifecycle
  // events; `marked` false is a pause the collector did not see.
  HistoryBuilder& Pause(double seconds, bool marked = true) {
    Advance(Ns(seconds), true);
    interrupted_ = interrupted_ || marked;
    return *this;
  }
  // `n` samples, one per interval, of a clock that something keeps resetting
  // to the value it has now: each reads that value plus `wobble_s` on every
  // other sample (so it moves back and forth between samples).
  HistoryBuilder& Hold(int n, double wobble_s) { return HoldAfter(0, 0, n, wobble_s); }
  // A hold that begins mid-interval, as the lab's does: the guest clock runs
  // `ran_s` after the last sample, is then set back to its whole second
  // (losing `lost_s`) and held there for `n` samples (wobble as in Hold).
  HistoryBuilder& HoldAfter(double ran_s, double lost_s, int n, double wobble_s) {
    const int64_t held = guest_real_ + Ns(ran_s) - Ns(lost_s);
    for (int i = 0; i < n; ++i) {
      Advance(interval_ns_, true);
      guest_real_ = held + (i % 2 == 0 ? Ns(wobble_s) : 0);
      Take();
    }
    guest_real_ = held;
    return *this;
  }
  // The half round trip recorded with every later sample.
  HistoryBuilder& Uncertainty(double seconds) {
    uncertainty_s_ = seconds;
    return *this;
  }
  // Host time passes without samples; the guest clock runs (agent silent).
  HistoryBuilder& Gap(double seconds) {
    Advance(Ns(seconds), false);
    return *this;
  }
  // Adds `noise_s` to the recorded guest time of the last sample only
  // (measurement noise: the clocks themselves are unchanged).
  HistoryBuilder& Jitter(double noise_s) {
    ClockSample& s = samples_.back();
    s.guest_real_ns += Ns(noise_s);
    s.offset_s = static_cast<double>(s.guest_real_ns - s.host_real_ns) / 1e9;
    return *this;
  }

  const std::vector<ClockSample>& samples() const { return samples_; }
  // Host monotonic time of the newest sample plus `seconds`.
  int64_t MonoAfterLast(double seconds) const {
    return (samples_.empty() ? host_mono_ : samples_.back().host_mono_ns) + Ns(seconds);
  }
  int64_t host_mono() const { return host_mono_; }

  static int64_t Ns(double seconds) { return static_cast<int64_t>(std::llround(seconds * 1e9)); }

 private:
  void Advance(int64_t host_ns, bool frozen) {
    host_mono_ += host_ns;
    host_real_ += host_ns;
    if (!frozen) {
      guest_real_ += host_ns + static_cast<int64_t>(std::llround(drift_ * host_ns));
    }
  }
  void Take() {
    ClockSample s;
    s.host_mono_ns = host_mono_;
    s.host_real_ns = host_real_;
    s.guest_real_ns = guest_real_;
    s.offset_s = static_cast<double>(guest_real_ - host_real_) / 1e9;
    s.uncertainty_s = uncertainty_s_;
    s.after_interruption = interrupted_;
    interrupted_ = false;
    samples_.push_back(s);
  }

  int64_t host_mono_ = kMonoOrigin;
  int64_t host_real_ = kRealOrigin;
  int64_t guest_real_;
  int64_t interval_ns_;
  double drift_ = 0;
  double uncertainty_s_ = 0.0004;
  bool interrupted_ = false;  // mark the next sample after_interruption
  std::vector<ClockSample> samples_;
};

}  // namespace vmtime::scoring::testing
