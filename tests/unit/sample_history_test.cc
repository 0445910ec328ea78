// SampleHistory: the packed ring keeps what the collector measured.
#include "exporter/store/sample_history.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace vmtime {
namespace {

using scoring::ClockSample;

// A sample as the libvirt collector makes it (clock_bracket.cc): offset and
// uncertainty from integer nanoseconds.
ClockSample Measured(int64_t mono_ns, int64_t host_real_ns, int64_t guest_real_ns,
                     int64_t half_rtt_ns, bool interrupted = false) {
  ClockSample s;
  s.host_mono_ns = mono_ns;
  s.host_real_ns = host_real_ns;
  s.guest_real_ns = guest_real_ns;
  s.offset_s = static_cast<double>(guest_real_ns - host_real_ns) / 1e9;
  s.uncertainty_s = static_cast<double>(half_rtt_ns) / 1e9;
  s.after_interruption = interrupted;
  return s;
}

void ExpectSame(const ClockSample& a, const ClockSample& b) {
  EXPECT_EQ(a.host_mono_ns, b.host_mono_ns);
  EXPECT_EQ(a.host_real_ns, b.host_real_ns);
  EXPECT_EQ(a.guest_real_ns, b.guest_real_ns);
  EXPECT_EQ(a.offset_s, b.offset_s);  // bit for bit
  EXPECT_EQ(a.uncertainty_s, b.uncertainty_s);
  EXPECT_EQ(a.after_interruption, b.after_interruption);
}

constexpr int64_t kEpoch = 1'764'633'600'000'000'000;  // 2025-12-02, ns

TEST(SampleHistoryTest, CollectorSamplesRoundTripExactly) {
  std::vector<ClockSample> in = {
      Measured(1'000'000'000, kEpoch, kEpoch + 123'456'789, 412'345),
      Measured(16'000'000'001, kEpoch + 15'000'000'007, kEpoch - 480'000'000'123, 1, true),
      Measured(31'000'000'000, kEpoch + 30'000'000'000,
               kEpoch + 30'000'000'000 + 86'400'000'000'000,
               1'073'741'823),  // largest nanosecond uncertainty
      Measured(46'000'000'000, kEpoch + 45'000'000'000, kEpoch + 45'000'000'000, 0),
  };
  SampleHistory h;
  for (const auto& s : in) h.Push(s, 64);
  std::vector<ClockSample> out;
  h.Unpack(out);
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    SCOPED_TRACE(i);
    ExpectSame(out[i], in[i]);
  }
  ExpectSame(h.back(), in.back());
}

TEST(SampleHistoryTest, LargeUncertaintyIsKeptInMicrosecondsNeverSmaller) {
  SampleHistory h;
  h.Push(Measured(1, kEpoch, kEpoch, 2'500'000'400), 8);  // 2.5000004 s
  h.Push(Measured(2, kEpoch, kEpoch, 5), 8);
  std::vector<ClockSample> out;
  h.Unpack(out);
  EXPECT_DOUBLE_EQ(out[0].uncertainty_s, 2.500001);  // rounded up to the microsecond
  // Beyond 17.9 minutes it saturates there.
  SampleHistory big;
  ClockSample s = Measured(1, kEpoch, kEpoch, 0);
  s.uncertainty_s = 7200;
  big.Push(s, 8);
  big.Push(Measured(2, kEpoch, kEpoch, 5), 8);
  big.Unpack(out);
  EXPECT_NEAR(out[0].uncertainty_s, 1073.741823, 1e-9);
}

TEST(SampleHistoryTest, KeepsTheNewestCapacitySamples) {
  SampleHistory h;
  for (int i = 1; i <= 10; ++i) h.Push(Measured(i, kEpoch + i, kEpoch + i, 0), 4);
  std::vector<ClockSample> out;
  h.Unpack(out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out.front().host_mono_ns, 7);
  EXPECT_EQ(out.back().host_mono_ns, 10);
  h.Trim(2);
  h.Unpack(out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out.front().host_mono_ns, 9);
  EXPECT_EQ(h.back().host_mono_ns, 10);
}

TEST(SampleHistoryTest, TheNewestIsExactWhateverMadeIt) {
  // A sample not from integer nanoseconds (a test, a future collector):
  // the newest is exported as given; older ones are rounded to the ns.
  ClockSample a = Measured(1, kEpoch, kEpoch, 0);
  a.offset_s = 0.1234567891234;
  a.uncertainty_s = 0.0001234567891;
  ClockSample b = a;
  b.host_mono_ns = 2;
  SampleHistory h;
  h.Push(a, 8);
  h.Push(b, 8);
  std::vector<ClockSample> out;
  h.Unpack(out);
  EXPECT_EQ(out[1].offset_s, b.offset_s);
  EXPECT_EQ(out[1].uncertainty_s, b.uncertainty_s);
  EXPECT_NEAR(out[0].offset_s, a.offset_s, 1e-9);
  EXPECT_NEAR(out[0].uncertainty_s, a.uncertainty_s, 1e-9);
}

TEST(SampleHistoryTest, AGuestClockDecadesOffRoundTripsExactly) {
  // A guest booted with its clock at 1970 (no RTC): offsets beyond 2^52 ns,
  // where offset_s rounded to the ns would not give the difference back.
  const int64_t guest = 1'000'000'123;
  SampleHistory h;
  h.Push(Measured(1, kEpoch, guest, 300'000), 8);
  h.Push(Measured(2, kEpoch + 15, guest + 15, 300'000), 8);
  h.Push(Measured(3, kEpoch + 30, guest + 30, 300'000), 8);
  std::vector<ClockSample> out;
  h.Unpack(out);
  ExpectSame(out[0], Measured(1, kEpoch, guest, 300'000));
  ExpectSame(out[1], Measured(2, kEpoch + 15, guest + 15, 300'000));
}

TEST(SampleHistoryTest, AnInfiniteUncertaintySaturatesAtTheLargestNotBelowIt) {
  ClockSample s = Measured(1, kEpoch, kEpoch, 0);
  s.uncertainty_s = std::numeric_limits<double>::infinity();
  SampleHistory h;
  h.Push(s, 8);
  h.Push(Measured(2, kEpoch, kEpoch, 0), 8);
  std::vector<ClockSample> out;
  h.Unpack(out);
  EXPECT_NEAR(out[0].uncertainty_s, 1073.741823, 1e-9);  // not a wrapped small value
}

// Any sequence, extremes included, comes back exactly through the delta
// records, at every ring length and after the oldest were dropped (the
// second record rewritten as the absolute first, shorter or longer).
TEST(SampleHistoryTest, AnySequenceRoundTripsThroughTheDeltaRecords) {
  std::mt19937_64 rng(20261202);
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  const int64_t kMin = std::numeric_limits<int64_t>::min();
  auto pick = [&](int64_t around) -> int64_t {
    switch (rng() % 6) {
      case 0:
        return kMax - static_cast<int64_t>(rng() % 1000);
      case 1:
        return kMin + static_cast<int64_t>(rng() % 1000);
      case 2:
        return static_cast<int64_t>(rng());  // anything
      default:
        return around + static_cast<int64_t>(rng() % 2'000'000) - 1'000'000;
    }
  };
  for (int run = 0; run < 200; ++run) {
    SCOPED_TRACE(run);
    const size_t capacity = 1 + rng() % 9;
    SampleHistory h;
    std::vector<ClockSample> pushed;
    int64_t mono = static_cast<int64_t>(rng() % 1000);
    for (int i = 0; i < 30; ++i) {
      mono += 1 + static_cast<int64_t>(rng() % (rng() % 2 != 0 ? 100 : 7'200'000'000'000));
      const int64_t host = pick(kEpoch + mono);
      const int64_t guest = pick(host);
      int64_t diff = 0;
      ClockSample s;
      if (__builtin_sub_overflow(guest, host, &diff)) {
        s = Measured(mono, kEpoch, kEpoch + 5, 100);  // keep the sample representable
      } else {
        s = Measured(mono, host, guest, static_cast<int64_t>(rng() % 1'073'741'824),
                     rng() % 5 == 0);
      }
      h.Push(s, capacity);
      pushed.push_back(s);
      std::vector<ClockSample> out;
      h.Unpack(out);
      const size_t want = std::min(pushed.size(), capacity);
      ASSERT_EQ(out.size(), want);
      ASSERT_EQ(h.size(), want);
      for (size_t k = 0; k < want; ++k) {
        SCOPED_TRACE(k);
        ExpectSame(out[k], pushed[pushed.size() - want + k]);
      }
      if (i == 20) {
        h.Trim(1);
        h.Unpack(out);
        ASSERT_EQ(out.size(), 1u);
        ExpectSame(out[0], s);
        pushed.assign(1, s);
      }
    }
  }
}

// What the records cost for a healthy VM measured every 15 s (offsets of
// milliseconds, a round trip of a few hundred microseconds): at most 16
// bytes a sample, the ring within what was reserved for it.
TEST(SampleHistoryTest, AHealthyVmTakesAtMostSixteenBytesASample) {
  std::mt19937_64 rng(7);
  SampleHistory h;
  int64_t mono = 1'000'000'000'000;
  int64_t host = kEpoch;
  for (int i = 0; i < 200; ++i) {
    const int64_t step = 15'000'000'000 + static_cast<int64_t>(rng() % 400'000'000);
    mono += step;
    host += step + static_cast<int64_t>(rng() % 20'000) - 10'000;  // the host slews
    const int64_t guest = host + static_cast<int64_t>(rng() % 40'000'000) - 20'000'000;
    h.Push(Measured(mono, host, guest, 100'000 + static_cast<int64_t>(rng() % 900'000)), 64);
  }
  ASSERT_EQ(h.size(), 64u);
  EXPECT_LE(h.ring_bytes(), 64 * SampleHistory::kReservedBytesPerSample);
  EXPECT_LE(h.ring_bytes(), 64u * 16);
}

}  // namespace
}  // namespace vmtime
