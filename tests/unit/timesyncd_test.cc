// timesyncd: NTPMessage decoding (offset and delay from the four
// timestamps, units, the "no message yet" case). The D-Bus and flag-file
// paths run against a private dbus-daemon in tests/e2e/test_ntpd.py.
#include <gtest/gtest.h>

#include "exporter/collectors/timesyncd/timesyncd_collector.h"

namespace vmtime {
namespace {

TEST(Timesyncd, NtpMessageOffsetDelayAndUnits) {
  TimesyncdNtpMessage m;
  m.leap = 0;
  m.stratum = 2;
  m.root_delay_us = 3000;
  m.root_dispersion_us = 500;
  m.origin_us = 1'000'000;       // T1 host
  m.receive_us = 1'003'000;      // T2 server: 2 ms ahead, 1 ms path
  m.transmit_us = 1'003'100;     // T3
  m.destination_us = 1'002'100;  // T4 host
  m.packet_count = 7;
  m.jitter_us = 250;
  TimesyncdObservation obs;
  ApplyNtpMessage(m, obs);
  EXPECT_EQ(obs.leap, 0);
  EXPECT_EQ(obs.stratum, 2);
  EXPECT_DOUBLE_EQ(*obs.offset_s, 0.002);  // server - host
  EXPECT_DOUBLE_EQ(*obs.delay_s, 0.002);
  EXPECT_DOUBLE_EQ(*obs.root_delay_s, 0.003);
  EXPECT_DOUBLE_EQ(*obs.root_dispersion_s, 0.0005);
  EXPECT_DOUBLE_EQ(*obs.jitter_s, 0.00025);
  EXPECT_EQ(obs.packet_count, 7u);
}

TEST(Timesyncd, NoMessageYetLeavesTheObservationAlone) {
  TimesyncdNtpMessage m;  // all zero: timesyncd has received nothing
  TimesyncdObservation obs;
  ApplyNtpMessage(m, obs);
  EXPECT_FALSE(obs.offset_s.has_value());
  EXPECT_FALSE(obs.stratum.has_value());
  m.packet_count = 1;  // a count but no timestamps: still nothing usable
  ApplyNtpMessage(m, obs);
  EXPECT_FALSE(obs.offset_s.has_value());
}

}  // namespace
}  // namespace vmtime
