// Offset/uncertainty arithmetic of one bracketed guest-clock read and the
// K-sample selection (smallest round trip wins).
#include <gtest/gtest.h>

#include <vector>

#include "exporter/collectors/libvirt/agent_scheduler.h"
#include "exporter/collectors/libvirt/clock_bracket.h"

namespace vmtime::libvirt {
namespace {

constexpr int64_t kEpochNs = 1'700'000'000'000'000'000;

TEST(LibvirtBracketTest, OffsetIsGuestMinusHostMidpoint) {
  Bracket b;
  b.t0_real_ns = kEpochNs;
  b.t1_real_ns = kEpochNs + 2'000'000;  // 2 ms round trip
  b.t0_mono_ns = 5'000'000'000;
  b.t1_mono_ns = 5'002'000'000;
  // Guest is 300 s behind the host midpoint, plus 250 us.
  b.guest_seconds = (kEpochNs + 1'000'000) / 1'000'000'000 - 300;
  b.guest_nanoseconds = static_cast<uint32_t>((kEpochNs + 1'000'000) % 1'000'000'000) + 250'000;
  scoring::ClockSample s = SampleFromBracket(b);
  EXPECT_EQ(s.host_real_ns, kEpochNs + 1'000'000);
  EXPECT_EQ(s.host_mono_ns, 5'001'000'000);
  EXPECT_EQ(s.guest_real_ns, kEpochNs + 1'000'000 - 300'000'000'000 + 250'000);
  EXPECT_NEAR(s.offset_s, -300.0 + 250e-6, 1e-9);
  EXPECT_NEAR(s.uncertainty_s, 1e-3, 1e-12);
}

TEST(LibvirtBracketTest, PositiveOffsetMeansGuestAhead) {
  Bracket b;
  b.t0_real_ns = 1'000'000'000'000;
  b.t1_real_ns = 1'000'000'000'000;
  b.guest_seconds = 1'002;
  b.guest_nanoseconds = 500'000'000;
  scoring::ClockSample s = SampleFromBracket(b);
  EXPECT_DOUBLE_EQ(s.offset_s, 2.5);
  EXPECT_DOUBLE_EQ(s.uncertainty_s, 0);
}

TEST(LibvirtBracketTest, BestBracketPicksSmallestMonotonicRoundTrip) {
  std::vector<Bracket> v(3);
  const int64_t rtts[] = {6'000'000, 2'000'000, 4'000'000};
  for (int i = 0; i < 3; ++i) {
    v[i].t0_mono_ns = 100 * i;
    v[i].t1_mono_ns = 100 * i + rtts[i];
  }
  ASSERT_TRUE(BestBracket(v).has_value());
  EXPECT_EQ(*BestBracket(v), 1u);
  EXPECT_FALSE(BestBracket({}).has_value());
  // Ties keep the first.
  v[2].t1_mono_ns = v[2].t0_mono_ns + 2'000'000;
  EXPECT_EQ(*BestBracket(v), 1u);
}

TEST(LibvirtBracketTest, RetryDelayIsFixedThenExponentialThenCapped) {
  LibvirtConfig c;  // 5 s, 32 attempts, 300 s cap
  for (int f = 1; f < 32; ++f) EXPECT_EQ(RetryDelayNs(c, f), 5 * kNsPerSecond) << f;
  EXPECT_EQ(RetryDelayNs(c, 32), 10 * kNsPerSecond);
  EXPECT_EQ(RetryDelayNs(c, 33), 20 * kNsPerSecond);
  EXPECT_EQ(RetryDelayNs(c, 34), 40 * kNsPerSecond);
  EXPECT_EQ(RetryDelayNs(c, 37), 300 * kNsPerSecond);
  EXPECT_EQ(RetryDelayNs(c, 1000), 300 * kNsPerSecond);
}

}  // namespace
}  // namespace vmtime::libvirt
