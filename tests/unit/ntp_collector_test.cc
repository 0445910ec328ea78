// NTP server usability (JudgeNtpServer): leap, stratum and ntp.max_stratum.
// The probing itself runs against a real UDP responder in
// tests/e2e/test_ntp_responder.py.
#include "exporter/collectors/ntp/ntp_collector.h"

#include <gtest/gtest.h>

namespace vmtime {
namespace {

NtpServerObservation Answered(int stratum, int leap = 0) {
  NtpServerObservation o;
  o.server = "127.0.0.1:123";
  o.reachable = true;
  o.stratum = stratum;
  o.leap = leap;
  return o;
}

bool Usable(int stratum, int leap, int max_stratum) {
  NtpServerObservation o = Answered(stratum, leap);
  JudgeNtpServer(o, max_stratum);
  EXPECT_EQ(o.error.empty(), o.usable) << "stratum " << stratum << ": " << o.error;
  return o.usable;
}

TEST(JudgeNtpServer, UsableOnlyUpToMaxStratum) {
  const int kDefault = NtpConfig{}.max_stratum;
  EXPECT_EQ(kDefault, 9);
  EXPECT_TRUE(Usable(1, 0, kDefault));
  EXPECT_TRUE(Usable(4, 0, kDefault));
  EXPECT_TRUE(Usable(9, 0, kDefault));
  EXPECT_FALSE(Usable(10, 0, kDefault));  // `local stratum 10`
  EXPECT_FALSE(Usable(11, 0, kDefault));
  EXPECT_TRUE(Usable(11, 0, 11));
  EXPECT_FALSE(Usable(4, 0, 3));
}

TEST(JudgeNtpServer, LeapThreeAndStratumZeroOrSixteenAreUnsynchronised) {
  EXPECT_FALSE(Usable(2, 3, 9));
  EXPECT_FALSE(Usable(0, 0, 9));
  EXPECT_FALSE(Usable(16, 0, 15));
  EXPECT_TRUE(Usable(2, 1, 9));  // a leap second announced is still synchronised
}

TEST(JudgeNtpServer, ErrorsNameTheReason) {
  NtpServerObservation o = Answered(11);
  JudgeNtpServer(o, 9);
  EXPECT_EQ(o.error, "stratum 11 above ntp.max_stratum 9 (a server serving its local clock?)");
  o = Answered(16);
  JudgeNtpServer(o, 9);
  EXPECT_EQ(o.error, "unsynchronised (stratum 16)");
  o = Answered(2, 3);
  JudgeNtpServer(o, 9);
  EXPECT_EQ(o.error, "unsynchronised (leap indicator 3)");
}

TEST(JudgeNtpServer, LeavesServersThatDidNotAnswerAlone) {
  NtpServerObservation o;
  o.reachable = false;
  o.error = "kiss-o'-death RATE";
  o.kiss_code = "RATE";
  JudgeNtpServer(o, 9);
  EXPECT_FALSE(o.usable);
  EXPECT_EQ(o.error, "kiss-o'-death RATE");
}

}  // namespace
}  // namespace vmtime
