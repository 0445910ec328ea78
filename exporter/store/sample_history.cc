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

namespace {

uint64_t ZigZag(uint64_t v) {  // v: an int64 in two's complement
  return (v << 1) ^ (0 - (v >> 63));
}
uint64_t UnZigZag(uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

// Writes `v` at `out` (at most 10 bytes); returns the end.
uint8_t* PutVarint(uint64_t v, uint8_t* out) {
  while (v >= 0x80) {
    *out++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *out++ = static_cast<uint8_t>(v);
  return out;
}

// The ring is written only by this class, so a malformed record is a bug;
// reading past the end still stops (and yields 0 bits) instead of
// overrunning. Unrolled for the common short values: it runs for every
// stored sample on every Store::Build.
inline uint64_t GetVarint(const uint8_t*& p, const uint8_t* end) {
  if (end - p >= 10) {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
      const uint8_t b = *p++;
      v |= static_cast<uint64_t>(b & 0x7f) << (shift & 63);
      if ((b & 0x80) == 0) return v;
    }
    return v;
  }
  uint64_t v = 0;
  for (unsigned shift = 0; p < end && shift < 64; shift += 7) {
    const uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) break;
  }
  return v;
}

uint64_t U(int64_t v) { return static_cast<uint64_t>(v); }
int64_t S(uint64_t v) { return static_cast<int64_t>(v); }

// The uncertainty word with its two flag bits moved to the bottom, so that
// a small uncertainty stays a short varint.
uint64_t UncertaintyKey(uint32_t u) {
  return (static_cast<uint64_t>(u & kValueMask) << 2) | ((u & kMicrosecondsBit) != 0 ? 1U : 0U) |
         ((u & kInterruptedBit) != 0 ? 2U : 0U);
}
uint32_t UncertaintyWord(uint64_t key) {
  uint32_t u = static_cast<uint32_t>((key >> 2) & kValueMask);
  if ((key & 1) != 0) u |= kMicrosecondsBit;
  if ((key & 2) != 0) u |= kInterruptedBit;
  return u;
}

}  // namespace

size_t SampleHistory::Encode(const Packed& p, const Packed* prev, uint8_t* out) {
  uint8_t* end = out;
  if (prev == nullptr) {
    end = PutVarint(ZigZag(U(p.host_mono_ns)), end);
    end = PutVarint(ZigZag(U(p.guest_real_ns)), end);
    end = PutVarint(ZigZag(U(p.offset_ns)), end);
  } else {
    // Host monotonic elapsed; host realtime elapsed minus that (guest
    // elapsed minus the offset's change: a synchronised host slews by
    // microseconds); the offset's change.
    const uint64_t host_elapsed = U(p.host_mono_ns) - U(prev->host_mono_ns);
    const uint64_t guest_elapsed = U(p.guest_real_ns) - U(prev->guest_real_ns);
    const uint64_t offset_change = U(p.offset_ns) - U(prev->offset_ns);
    end = PutVarint(ZigZag(host_elapsed), end);
    end = PutVarint(ZigZag(guest_elapsed - offset_change - host_elapsed), end);
    end = PutVarint(ZigZag(offset_change), end);
  }
  end = PutVarint(UncertaintyKey(p.uncertainty_and_flags), end);
  return static_cast<size_t>(end - out);
}

SampleHistory::Packed SampleHistory::Decode(const std::vector<uint8_t>& in, size_t& pos,
                                            const Packed* prev) {
  const uint8_t* cur = in.data() + pos;
  const uint8_t* const end = in.data() + in.size();
  Packed p;
  const uint64_t a = UnZigZag(GetVarint(cur, end));
  const uint64_t b = UnZigZag(GetVarint(cur, end));
  const uint64_t c = UnZigZag(GetVarint(cur, end));
  if (prev == nullptr) {
    p.host_mono_ns = S(a);
    p.guest_real_ns = S(b);
    p.offset_ns = S(c);
  } else {
    p.host_mono_ns = S(U(prev->host_mono_ns) + a);
    p.guest_real_ns = S(U(prev->guest_real_ns) + a + b + c);
    p.offset_ns = S(U(prev->offset_ns) + c);
  }
  p.uncertainty_and_flags = UncertaintyWord(GetVarint(cur, end));
  pos = static_cast<size_t>(cur - in.data());
  return p;
}

void SampleHistory::Push(const scoring::ClockSample& s, size_t capacity) {
  capacity = std::max<size_t>(1, capacity);
  const Packed p = Pack(s);
  if (bytes_.capacity() == 0) {
    // The whole ring at once: a ring grown by doubling frees smaller blocks
    // on its way, between the snapshots' short-lived blocks, and the heap
    // stays fragmented (measured, docs/performance.md).
    bytes_.reserve(capacity * kReservedBytesPerSample);
  } else if (bytes_.capacity() - bytes_.size() < kMaxRecordBytes) {
    bytes_.reserve(bytes_.size() + bytes_.size() / 4 + kMaxRecordBytes);
  }
  uint8_t record[kMaxRecordBytes];
  size_t n = 0;
  if (count_ == 0) {
    n = Encode(p, nullptr, record);
  } else {
    const Packed last = Pack(newest_);
    n = Encode(p, &last, record);
  }
  bytes_.insert(bytes_.end(), record, record + n);
  ++count_;
  newest_ = s;
  while (count_ > capacity) DropOldest();
}

void SampleHistory::DropOldest() {
  if (count_ <= 1) {
    bytes_.clear();
    count_ = 0;
    return;
  }
  // The second record becomes the absolute first.
  size_t pos = 0;
  const Packed first = Decode(bytes_, pos, nullptr);
  const Packed second = Decode(bytes_, pos, &first);
  uint8_t head[kMaxRecordBytes];
  const size_t n = Encode(second, nullptr, head);
  if (n <= pos) {
    const size_t skip = pos - n;
    std::copy(head, head + n, bytes_.begin() + static_cast<long>(skip));
    bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<long>(skip));
  } else {
    bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<long>(pos));
    bytes_.insert(bytes_.begin(), head, head + n);
  }
  --count_;
}

void SampleHistory::Trim(size_t capacity) {
  capacity = std::max<size_t>(1, capacity);
  if (count_ <= capacity) return;
  while (count_ > capacity) DropOldest();
  bytes_.shrink_to_fit();
}

void SampleHistory::Unpack(std::vector<scoring::ClockSample>& out) const {
  out.clear();
  if (count_ == 0) return;
  out.reserve(count_);
  size_t pos = 0;
  Packed prev;
  for (uint32_t i = 0; i + 1 < count_; ++i) {
    prev = Decode(bytes_, pos, i == 0 ? nullptr : &prev);
    out.push_back(Unpack(prev));
  }
  out.push_back(newest_);
}

}  // namespace vmtime
