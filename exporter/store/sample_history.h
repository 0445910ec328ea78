// SampleHistory: one VM's ring of clock samples, packed.
//
// At 10,000 VMs with the default 64 samples each, the history is the
// largest thing the exporter keeps (docs/performance.md, "Memory at 10,000
// VMs"): as scoring::ClockSample (48 bytes) it was 30 MB. Here a sample
// takes 28 bytes, without losing what the collector measured:
// - host monotonic and guest realtime: int64 nanoseconds, as measured;
// - the offset: int64 nanoseconds, guest - host realtime as the collector
//   computed it (clock_bracket.cc: offset_s is that difference / 1e9), so
//   host realtime is guest - offset exactly and offset_ns / 1e9 is the same
//   double (checked when packing, also for a guest clock decades off). A sample whose
//   offset_s is not that difference (tests) keeps offset_s rounded to the ns;
//   the store takes no sample with a non-finite offset or uncertainty;
// - the uncertainty (half the bracket's round trip, integer nanoseconds for
//   the collector) in 30 bits: nanoseconds up to 1.07 s, else microseconds
//   up to 17.9 minutes, saturating; one bit says which;
// - after_interruption in the last bit.
// The newest sample is also kept as it came (48 bytes), so what is exported
// of it (offset, uncertainty, timestamp) is bit for bit the measured value
// whatever made it. Not thread safe: the store's lock covers it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "scoring/types.h"

namespace vmtime {

class SampleHistory {
 public:
  bool empty() const { return ring_.empty(); }
  size_t size() const { return ring_.size(); }
  // The newest sample, exactly as pushed. Precondition: !empty().
  const scoring::ClockSample& back() const { return newest_; }

  // Appends `s` (its host_mono_ns must exceed back()'s) and drops the oldest
  // samples beyond `capacity` (>= 1).
  void Push(const scoring::ClockSample& s, size_t capacity);
  // Drops the oldest samples beyond `capacity` (>= 1).
  void Trim(size_t capacity);
  // Every sample, oldest first, into `out` (replacing its contents): the
  // packed ones unpacked, the newest exact.
  void Unpack(std::vector<scoring::ClockSample>& out) const;

  // Bytes held per stored sample (packed form), for the docs and a test.
  static constexpr size_t kPackedBytes = 28;

 private:
#pragma pack(push, 4)
  struct Packed {
    int64_t host_mono_ns;
    int64_t guest_real_ns;
    int64_t offset_ns;
    uint32_t uncertainty_and_flags;
  };
#pragma pack(pop)
  static_assert(sizeof(Packed) == kPackedBytes);
  static Packed Pack(const scoring::ClockSample& s);
  static scoring::ClockSample Unpack(const Packed& p);

  std::vector<Packed> ring_;  // oldest first
  scoring::ClockSample newest_;
};

}  // namespace vmtime
