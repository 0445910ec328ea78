// SNTP packet building and parsing: constructed replies (valid, kiss-o'-death,
// unsynchronised, wrong origin, truncated, wrong mode/version) and the
// offset/delay arithmetic with its sign convention (server - host).
#include "exporter/collectors/ntp/ntp_packet.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace vmtime::ntp {
namespace {

void Put32(std::vector<uint8_t>& p, size_t off, uint32_t x) {
  for (int i = 0; i < 4; ++i) p[off + i] = static_cast<uint8_t>(x >> (24 - 8 * i));
}
void Put64(std::vector<uint8_t>& p, size_t off, uint64_t x) {
  Put32(p, off, static_cast<uint32_t>(x >> 32));
  Put32(p, off + 4, static_cast<uint32_t>(x));
}

std::vector<uint8_t> Reply(uint64_t origin, uint64_t t2, uint64_t t3, int leap = 0, int stratum = 2,
                           uint32_t refid = 0xC0A80001) {
  std::vector<uint8_t> p(48, 0);
  p[0] = static_cast<uint8_t>((leap << 6) | (4 << 3) | 4);
  p[1] = static_cast<uint8_t>(stratum);
  p[2] = 6;
  p[3] = static_cast<uint8_t>(-20);
  Put32(p, 4, 0x00010000 / 4);   // root delay 0.25 s
  Put32(p, 8, 0x00010000 / 16);  // root dispersion 0.0625 s
  Put32(p, 12, refid);
  Put64(p, 16, t2 - (1ULL << 32));
  Put64(p, 24, origin);
  Put64(p, 32, t2);
  Put64(p, 40, t3);
  return p;
}

constexpr int64_t kT1 = 1'700'000'000'000'000'000;  // host send, Unix ns

TEST(NtpPacket, RequestLayout) {
  const uint64_t tx = UnixNsToNtp(kT1);
  auto p = BuildNtpRequest(tx);
  ASSERT_EQ(p.size(), 48u);
  EXPECT_EQ(p[0], 0x23);  // LI 0, VN 4, mode 3
  uint64_t got = 0;
  for (int i = 0; i < 8; ++i) got = (got << 8) | p[40 + i];
  EXPECT_EQ(got, tx);
}

TEST(NtpPacket, TimestampConversion) {
  EXPECT_EQ(UnixNsToNtp(0) >> 32, kNtpUnixEpochOffsetS);
  EXPECT_EQ(UnixNsToNtp(500'000'000) & 0xffffffffULL, 0x80000000ULL);
  EXPECT_NEAR(NtpDiffSeconds(UnixNsToNtp(kT1 + 1'500'000), UnixNsToNtp(kT1)), 0.0015, 1e-9);
  EXPECT_NEAR(NtpDiffSeconds(UnixNsToNtp(kT1), UnixNsToNtp(kT1 + 1'500'000)), -0.0015, 1e-9);
  // Across the 2036 era boundary the difference is still small.
  const uint64_t before = (0xffffffffULL << 32) | 0x80000000ULL;  // era 0, last second + 0.5
  const uint64_t after = 0x0000000180000000ULL;                   // era 1, second 1 + 0.5
  EXPECT_NEAR(NtpDiffSeconds(after, before), 2.0, 1e-9);
}

TEST(NtpPacket, ValidReplyOffsetAndDelay) {
  // Server 0.100 s ahead of the host; 10 ms each way; 1 ms in the server.
  const uint64_t t1 = UnixNsToNtp(kT1);
  const uint64_t t2 = UnixNsToNtp(kT1 + 10'000'000 + 100'000'000);
  const uint64_t t3 = UnixNsToNtp(kT1 + 11'000'000 + 100'000'000);
  const uint64_t t4 = UnixNsToNtp(kT1 + 21'000'000);
  auto r = ParseNtpPacket(Reply(t1, t2, t3), t1);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->leap, 0);
  EXPECT_EQ(r->version, 4);
  EXPECT_EQ(r->mode, 4);
  EXPECT_EQ(r->stratum, 2);
  EXPECT_EQ(r->poll_log2, 6);
  EXPECT_EQ(r->precision_log2, -20);
  EXPECT_DOUBLE_EQ(r->root_delay_s, 0.25);
  EXPECT_DOUBLE_EQ(r->root_dispersion_s, 0.0625);
  EXPECT_EQ(r->reference_id, 0xC0A80001u);
  EXPECT_TRUE(r->kiss_code.empty());
  const NtpTiming t = ComputeTiming(*r, t1, t4);
  EXPECT_NEAR(t.offset_s, 0.100, 1e-8);  // positive: host behind the server
  EXPECT_NEAR(t.delay_s, 0.020, 1e-8);
  // Host ahead by 2 s: negative offset.
  const uint64_t u2 = UnixNsToNtp(kT1 + 1'000'000 - 2'000'000'000);
  const uint64_t u3 = UnixNsToNtp(kT1 + 1'000'000 - 2'000'000'000);
  auto r2 = ParseNtpPacket(Reply(t1, u2, u3), t1);
  ASSERT_TRUE(r2.ok());
  EXPECT_NEAR(ComputeTiming(*r2, t1, UnixNsToNtp(kT1 + 2'000'000)).offset_s, -2.0, 1e-8);
}

TEST(NtpPacket, KissOfDeathParsesWithCode) {
  const uint64_t t1 = UnixNsToNtp(kT1);
  for (const char* code : {"RATE", "DENY", "RSTR"}) {
    const uint32_t id = (static_cast<uint32_t>(code[0]) << 24) |
                        (static_cast<uint32_t>(code[1]) << 16) |
                        (static_cast<uint32_t>(code[2]) << 8) | static_cast<uint32_t>(code[3]);
    auto r = ParseNtpPacket(Reply(t1, 0, 0, 3, 0, id), t1);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->kiss_code, code);
    EXPECT_EQ(r->stratum, 0);
  }
}

TEST(NtpPacket, UnsynchronisedRepliesParse) {
  const uint64_t t1 = UnixNsToNtp(kT1);
  auto leap3 = ParseNtpPacket(Reply(t1, t1, t1, 3, 2), t1);
  ASSERT_TRUE(leap3.ok());
  EXPECT_EQ(leap3->leap, 3);
  auto s16 = ParseNtpPacket(Reply(t1, t1, t1, 0, 16), t1);
  ASSERT_TRUE(s16.ok());
  EXPECT_EQ(s16->stratum, 16);
}

void ExpectError(const Result<NtpReply>& r, const std::string& needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
}

TEST(NtpPacket, MalformedRepliesGiveNamedErrors) {
  const uint64_t t1 = UnixNsToNtp(kT1);
  const auto good = Reply(t1, t1 + 1, t1 + 2);
  ExpectError(ParseNtpPacket({}, t1), "truncated NTP packet: 0 bytes, need 48");
  ExpectError(ParseNtpPacket(std::span(good).first(47), t1), "truncated NTP packet: 47 bytes");
  ExpectError(ParseNtpPacket(good, t1 + 1), "origin timestamp mismatch");
  auto v = good;
  v[0] = (4 << 3) | 3;  // a client request echoed back
  ExpectError(ParseNtpPacket(v, t1), "not a server reply (mode 3");
  v = good;
  v[0] = (7 << 3) | 4;
  ExpectError(ParseNtpPacket(v, t1), "bad NTP version 7");
  v = good;
  v[0] = 4;  // version 0
  ExpectError(ParseNtpPacket(v, t1), "bad NTP version 0");
  ExpectError(ParseNtpPacket(Reply(t1, t1, 0), t1), "zero transmit timestamp");
  ExpectError(ParseNtpPacket(Reply(t1, 0, t1), t1), "zero receive timestamp");
  // Longer packets (extension fields, MAC) are accepted.
  auto longer = good;
  longer.resize(68, 0);
  EXPECT_TRUE(ParseNtpPacket(longer, t1).ok());
}

}  // namespace
}  // namespace vmtime::ntp
