// SampleHistory: one VM's ring of clock samples, packed.
//
// At 10,000 VMs with the default 64 samples each, the history is the
// largest thing the exporter keeps (docs/performance.md, "Memory at 10,000
// VMs"): as scoring::ClockSample (48 bytes) it was 30 MB. Each sample is
// first reduced, without losing what the collector measured, to:
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
// - after_interruption.
// The ring then stores those values as variable-length records, oldest
// first: the oldest absolute, every later one as differences from the one
// before it (host monotonic elapsed; host realtime elapsed minus host
// monotonic elapsed; the change of the offset; the uncertainty), each a
// zigzag LEB128 varint,
// computed modulo 2^64 so that any values round-trip exactly. A healthy
// VM's record takes 10-16 bytes instead of 28 (a clock step or an hour-long
// gap only makes its record a few bytes longer). The newest sample is also
// kept as it came (48 bytes), so what is exported of it (offset,
// uncertainty, timestamp) is bit for bit the measured value whatever made
// it. Not thread safe: the store's lock covers it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "scoring/types.h"

namespace vmtime {

class SampleHistory {
 public:
  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }
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

  // Bytes the ring holds (records only), for measurements and tests.
  size_t ring_bytes() const { return bytes_.size(); }
  // Bytes reserved per sample when a ring is first made (a ring that needs
  // more grows by a quarter; docs/performance.md).
  static constexpr size_t kReservedBytesPerSample = 16;
  // The longest record: four varints of at most 10 bytes.
  static constexpr size_t kMaxRecordBytes = 40;

 private:
  // What one sample is reduced to before it is encoded (see above).
  struct Packed {
    int64_t host_mono_ns = 0;
    int64_t guest_real_ns = 0;
    int64_t offset_ns = 0;
    uint32_t uncertainty_and_flags = 0;
  };
  static Packed Pack(const scoring::ClockSample& s);
  static scoring::ClockSample Unpack(const Packed& p);
  // Writes `p` as a record at `out` (kMaxRecordBytes of room): absolute
  // when `prev` is null, else as differences from *prev. Returns its length.
  static size_t Encode(const Packed& p, const Packed* prev, uint8_t* out);
  // Decodes the record at `pos` (advanced past it), relative to `prev`.
  static Packed Decode(const std::vector<uint8_t>& in, size_t& pos, const Packed* prev);
  void DropOldest();

  std::vector<uint8_t> bytes_;  // the records, oldest first
  uint32_t count_ = 0;
  // The newest sample as pushed. The next record is relative to it packed
  // (Pack(newest_), made again at each Push rather than kept: 32 bytes per
  // VM).
  scoring::ClockSample newest_;
};

}  // namespace vmtime
