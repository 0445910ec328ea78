// Clock bracket: turns host clock reads around one guest-get-time call into a
// scoring::ClockSample, and picks the best of K such brackets.
//
// One bracket is: host realtime/monotonic read before the call (t0), the
// guest's CLOCK_REALTIME as the agent returned it, host reads after (t1).
//   offset_s      = guest - (t0_real + t1_real) / 2   (guest minus host realtime,
//                                                       seconds, positive = guest ahead)
//   uncertainty_s = (t1_real - t0_real) / 2           (seconds, >= 0)
// The guest read happened somewhere inside [t0, t1], so the true offset lies
// within offset_s +- uncertainty_s (plus the guest clock's own granularity).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "scoring/types.h"

namespace vmtime::libvirt {

// Raw host reads around one guest call, all in nanoseconds.
struct Bracket {
  int64_t t0_real_ns = 0;          // host CLOCK_REALTIME before the call
  int64_t t0_mono_ns = 0;          // host CLOCK_MONOTONIC before the call
  int64_t t1_real_ns = 0;          // host CLOCK_REALTIME after the call
  int64_t t1_mono_ns = 0;          // host CLOCK_MONOTONIC after the call
  int64_t guest_seconds = 0;       // guest CLOCK_REALTIME, whole seconds since the epoch
  uint32_t guest_nanoseconds = 0;  // and the sub-second part, < 1e9

  // Round trip on the monotonic scale (immune to host steps), nanoseconds.
  int64_t RoundTripNs() const { return t1_mono_ns - t0_mono_ns; }
};

// Converts one bracket into a sample (midpoints on both host scales).
scoring::ClockSample SampleFromBracket(const Bracket& b);

// Index of the bracket with the smallest monotonic round trip (the first one
// on ties); nullopt when `brackets` is empty.
std::optional<size_t> BestBracket(std::span<const Bracket> brackets);

}  // namespace vmtime::libvirt
