// See sample_history.h.
#include "exporter/store/sample_history.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace vmtime {

namespace {
constexpr uint32_t kInterruptedBit = 1U << 31;
constexpr uint32_t kMicrosecondsBit = 1U << 30;
constexpr uint32_t kValueMask = kMicrosecondsBit - 1;  // 30 bits

// Seconds -> integer nanoseconds, rounded, saturating (NaN -> 0).
int64_t ToNs(double s) {
  if (!(s == s)) return 0;
  const double ns = std::round(s * 1e9);
  if (ns >= 9.2e18) return std::numeric_limits<int64_t>::max();
  if (ns <= -9.2e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(ns);
}
}  // namespace

SampleHistory::Packed SampleHistory::Pack(const scoring::ClockSample& s) {
  Packed p{};
  p.host_mono_ns = s.host_mono_ns;
  p.guest_real_ns = s.guest_real_ns;
  // The collector's offset is exactly guest - host realtime in integer ns;
  // keep that difference when it is what offset_s says (also for offsets
  // beyond 2^52 ns, where rounding offset_s would not give it back), else
  // offset_s rounded to the ns.
  int64_t diff = 0;
  if (!__builtin_sub_overflow(s.guest_real_ns, s.host_real_ns, &diff) &&
      static_cast<double>(diff) / 1e9 == s.offset_s) {
    p.offset_ns = diff;
  } else {
    p.offset_ns = ToNs(s.offset_s);
  }
  const int64_t unc_ns = std::max<int64_t>(0, ToNs(s.uncertainty_s));
  uint32_t unc = 0;
  if (unc_ns <= static_cast<int64_t>(kValueMask)) {
    unc = static_cast<uint32_t>(unc_ns);
  } else {
    // Microseconds, rounded up: never less uncertain than measured.
    const int64_t us = std::min<int64_t>(unc_ns / 1000 + (unc_ns % 1000 != 0 ? 1 : 0), kValueMask);
    unc = kMicrosecondsBit | static_cast<uint32_t>(us);
  }
  if (s.after_interruption) unc |= kInterruptedBit;
  p.uncertainty_and_flags = unc;
  return p;
}

scoring::ClockSample SampleHistory::Unpack(const Packed& p) {
  scoring::ClockSample s;
  s.host_mono_ns = p.host_mono_ns;
  s.guest_real_ns = p.guest_real_ns;
  if (__builtin_sub_overflow(p.guest_real_ns, p.offset_ns, &s.host_real_ns)) {
    s.host_real_ns =
        p.offset_ns > 0 ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
  }
  s.offset_s = static_cast<double>(p.offset_ns) / 1e9;
  const uint32_t u = p.uncertainty_and_flags;
  const auto value = static_cast<double>(u & kValueMask);
  s.uncertainty_s = (u & kMicrosecondsBit) != 0 ? value / 1e6 : value / 1e9;
  s.after_interruption = (u & kInterruptedBit) != 0;
  return s;
}

void SampleHistory::Push(const scoring::ClockSample& s, size_t capacity) {
  capacity = std::max<size_t>(1, capacity);
  if (ring_.size() >= capacity) {
    ring_.erase(ring_.begin(), ring_.begin() + static_cast<long>(ring_.size() - capacity + 1));
  } else if (ring_.capacity() < capacity) {
    // The whole ring at once: a ring grown by doubling frees four smaller
    // blocks on its way to 64 samples, between the snapshots' short-lived
    // blocks, and the heap stays fragmented (measured, docs/performance.md).
    ring_.reserve(capacity);
  }
  ring_.push_back(Pack(s));
  newest_ = s;
}

void SampleHistory::Trim(size_t capacity) {
  capacity = std::max<size_t>(1, capacity);
  if (ring_.size() <= capacity) return;
  ring_.erase(ring_.begin(), ring_.begin() + static_cast<long>(ring_.size() - capacity));
  ring_.shrink_to_fit();
}

void SampleHistory::Unpack(std::vector<scoring::ClockSample>& out) const {
  out.clear();
  if (ring_.empty()) return;
  out.reserve(ring_.size());
  for (size_t i = 0; i + 1 < ring_.size(); ++i) out.push_back(Unpack(ring_[i]));
  out.push_back(newest_);
}

}  // namespace vmtime
