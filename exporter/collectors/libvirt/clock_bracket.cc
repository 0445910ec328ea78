// See clock_bracket.h.
#include "exporter/collectors/libvirt/clock_bracket.h"

namespace vmtime::libvirt {

namespace {
// Midpoint of two nanosecond values without overflow.
int64_t Midpoint(int64_t a, int64_t b) { return a + (b - a) / 2; }
}  // namespace

scoring::ClockSample SampleFromBracket(const Bracket& b) {
  scoring::ClockSample s;
  s.host_mono_ns = Midpoint(b.t0_mono_ns, b.t1_mono_ns);
  s.host_real_ns = Midpoint(b.t0_real_ns, b.t1_real_ns);
  s.guest_real_ns = b.guest_seconds * 1'000'000'000 + static_cast<int64_t>(b.guest_nanoseconds);
  // guest - host realtime midpoint; computed in integer ns first to keep
  // sub-microsecond precision with epoch-sized values.
  s.offset_s = static_cast<double>(s.guest_real_ns - s.host_real_ns) / 1e9;
  int64_t half_rtt_ns = (b.t1_real_ns - b.t0_real_ns) / 2;
  if (half_rtt_ns < 0) half_rtt_ns = -half_rtt_ns;  // host realtime stepped mid-call
  s.uncertainty_s = static_cast<double>(half_rtt_ns) / 1e9;
  return s;
}

std::optional<size_t> BestBracket(std::span<const Bracket> brackets) {
  std::optional<size_t> best;
  for (size_t i = 0; i < brackets.size(); ++i) {
    if (!best || brackets[i].RoundTripNs() < brackets[*best].RoundTripNs()) best = i;
  }
  return best;
}

}  // namespace vmtime::libvirt
