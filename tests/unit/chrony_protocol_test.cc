// chrony command protocol: request encoding and reply parsing against reply
// datagrams captured from chronyd 4.3 (a client instance synchronised to a
// `local stratum 8` server on loopback), with the values `chronyc -c`
// printed just before and just after each capture.
#include "exporter/collectors/chrony/chrony_protocol.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vmtime::chrony {
namespace {

std::vector<uint8_t> Hex(const std::string& s) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < s.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(s.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// chronyc -c tracking (before / after):
// 7F000001,127.0.0.1,9,1795589261.184835655,-0.000002494,-0.000001023,0.000001023,-0.007,
//   -0.278,0.115,0.000009408,0.000036614,2.0,Normal
// 7F000001,127.0.0.1,9,1795589261.184835655,-0.000002491,-0.000001023,0.000001023,-0.007,
//   -0.278,0.115,0.000009408,0.000037330,2.0,Normal
const char* kTrackingClient =
    "060200000021000500000000000000000102030400000000000000007f0000017f000001000000000000000000"
    "0000000001000000090000000000006b06848d0b045e47df58caebdd76a474dc895b8cf51fe35301718267fceb"
    "36a6e29dd70de69be6d50680f5b7";
// The server (local stratum 8): 7F7F0101,,8,1795589204.117298556,0.000000000,...,0.0,Normal
const char* kTrackingServer =
    "060200000021000500000000000000000102030400000000000000007f7f010100000000000000000000000000"
    "0000000000000000080000000000006b06845406fdd57c00000000000000000000000000000000000000000000"
    "0000000000000000000000000000";
const char* kNSources = "06020000000e0002000000000000000000000005000000000000000000000001";
// chronyc -c sources: ^,*,127.0.0.1,8,6,17,26,-0.000000040,-0.000001063,0.000004748
const char* kSourceData =
    "06020000000f000300000000000000000000000600000000000000007f0000010000000000000000000000000001"
    "000000060008000000000000000f0000001add715399d355e496e09f5203";
// chronyc -c sourcestats (before / after):
// 127.0.0.1,4,4,6,-0.278,4.213,-0.000007114,0.000000537
// 127.0.0.1,4,4,6,-0.278,4.213,-0.000007235,0.000000537
const char* kSourcestats =
    "060200000022000600000000000000000000000700000000000000007f0000017f0000010000000000000000000000"
    "0000010000000000040000000400000006da901fec017182670886d340e11071bae8ed58f6";
// Reply to SOURCE_DATA for index 7 of 1: RPY_NULL with STT_NOSUCHSOURCE.
const char* kNoSuchSource = "06020000000f00010004000000000000000000090000000000000000";

std::vector<uint8_t> NameReply(const std::string& name) {
  std::vector<uint8_t> r = Hex("0602000000410013000000000000000000000008000000000000000000");
  r.resize(kReplyHeaderLength);
  r.resize(kNtpSourceNameReplyLength, 0);
  for (size_t i = 0; i < name.size() && i < 256; ++i) r[kReplyHeaderLength + i] = name[i];
  return r;
}

TEST(ChronyProtocol, RequestsArePaddedToReplyLengthWithHeader) {
  auto t = BuildTrackingRequest(0x01020304, 2);
  ASSERT_EQ(t.size(), 104u);
  EXPECT_EQ(t[0], 6);  // version
  EXPECT_EQ(t[1], 1);  // request
  EXPECT_EQ(t[2], 0);
  EXPECT_EQ(t[3], 0);
  EXPECT_EQ((t[4] << 8) | t[5], 33);  // REQ_TRACKING
  EXPECT_EQ((t[6] << 8) | t[7], 2);   // attempt
  EXPECT_EQ(t[8], 1);
  EXPECT_EQ(t[11], 4);
  for (size_t i = 12; i < t.size(); ++i) EXPECT_EQ(t[i], 0) << i;
  EXPECT_EQ(BuildNSourcesRequest(1).size(), 32u);
  auto sd = BuildSourceDataRequest(1, 3);
  EXPECT_EQ(sd.size(), 76u);
  EXPECT_EQ(sd[23], 3);
  EXPECT_EQ(BuildSourcestatsRequest(1, 0).size(), 84u);
  IpAddr a;
  a.family = kFamilyInet4;
  a.bytes[0] = 127;
  a.bytes[3] = 1;
  auto nm = BuildNtpSourceNameRequest(1, a);
  EXPECT_EQ(nm.size(), 284u);
  EXPECT_EQ(nm[20], 127);
  EXPECT_EQ(nm[23], 1);
  EXPECT_EQ(nm[37], 1);  // family (big-endian u16 at 36)
}

TEST(ChronyProtocol, FloatDecodeKnownValuesAndRoundTrip) {
  EXPECT_EQ(DecodeFloat(0), 0.0);
  for (double x : {1.0, -1.0, 0.5, 1e-9, -2.5e-6, 123.456, 4.213, -0.278, 1e10, -1e-15}) {
    const double y = DecodeFloat(EncodeFloat(x));
    EXPECT_NEAR(y, x, std::abs(x) * 1e-7) << x;
  }
  // Largest and smallest magnitudes saturate instead of wrapping.
  EXPECT_GT(DecodeFloat(EncodeFloat(1e200)), 1e18);
  EXPECT_LT(DecodeFloat(EncodeFloat(-1e200)), -1e18);
  EXPECT_EQ(DecodeFloat(EncodeFloat(1e-200)), 0.0);
}

TEST(ChronyProtocol, TrackingOfSyncedClientMatchesChronyc) {
  auto r = ParseTrackingReply(Hex(kTrackingClient));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ChronyTracking& t = *r;
  EXPECT_EQ(t.reference_id, 0x7F000001u);
  EXPECT_EQ(t.reference_name, "127.0.0.1");
  EXPECT_EQ(t.stratum, 9);
  EXPECT_EQ(t.leap_status, 0);
  EXPECT_NEAR(t.ref_time_real_s, 1795589261.184835655, 1e-6);
  // chronyc prints the correction (-0.000002494 = "fast"); we store local - true.
  EXPECT_GE(t.system_time_offset_s, 0.000002491 - 5e-10);
  EXPECT_LE(t.system_time_offset_s, 0.000002494 + 5e-10);
  EXPECT_NEAR(t.last_offset_s, -0.000001023, 5e-10);
  EXPECT_NEAR(t.rms_offset_s, 0.000001023, 5e-10);
  EXPECT_NEAR(t.frequency_ppm, -0.007, 5e-4);
  EXPECT_NEAR(t.residual_frequency_ppm, -0.278, 5e-4);
  EXPECT_NEAR(t.skew_ppm, 0.115, 5e-4);
  EXPECT_NEAR(t.root_delay_s, 0.000009408, 5e-10);
  EXPECT_GE(t.root_dispersion_s, 0.000036614 - 5e-10);
  EXPECT_LE(t.root_dispersion_s, 0.000037330 + 5e-10);
  EXPECT_NEAR(t.update_interval_s, 2.0, 0.05);
}

TEST(ChronyProtocol, TrackingOfLocalStratumServer) {
  auto r = ParseTrackingReply(Hex(kTrackingServer));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->reference_id, 0x7F7F0101u);
  EXPECT_EQ(r->reference_name, "");
  EXPECT_EQ(r->stratum, 8);
  EXPECT_NEAR(r->ref_time_real_s, 1795589204.117298556, 1e-6);
  EXPECT_EQ(r->system_time_offset_s, 0.0);
  EXPECT_EQ(r->root_dispersion_s, 0.0);
}

TEST(ChronyProtocol, SourcesMatchChronyc) {
  auto n = ParseNSourcesReply(Hex(kNSources));
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 1u);
  auto sd = ParseSourceDataReply(Hex(kSourceData));
  ASSERT_TRUE(sd.ok()) << sd.error().message;
  const ChronySource& s = sd->source;
  EXPECT_EQ(s.address, "127.0.0.1");
  EXPECT_EQ(s.mode, 0);   // ^
  EXPECT_EQ(s.state, 0);  // *
  EXPECT_EQ(s.stratum, 8);
  EXPECT_EQ(s.poll_log2, 6);
  EXPECT_EQ(s.reachability, 017);
  EXPECT_EQ(s.since_sample_s, 26u);
  EXPECT_NEAR(s.latest_offset_s, -0.000000040, 5e-10);
  EXPECT_NEAR(s.orig_latest_offset_s, -0.000001063, 5e-10);
  EXPECT_NEAR(s.latest_error_s, 0.000004748, 5e-10);
  auto st = ParseSourcestatsReply(Hex(kSourcestats));
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(FormatIpAddr(st->address), "127.0.0.1");
  EXPECT_EQ(st->samples, 4u);
  EXPECT_EQ(st->runs, 4u);
  EXPECT_EQ(st->span_s, 6u);
  EXPECT_NEAR(st->resid_freq_ppm, -0.278, 5e-4);
  EXPECT_NEAR(st->skew_ppm, 4.213, 5e-4);
  EXPECT_GE(st->est_offset_s, -0.000007235 - 5e-10);
  EXPECT_LE(st->est_offset_s, -0.000007114 + 5e-10);
  EXPECT_NEAR(st->std_dev_s, 0.000000537, 5e-10);
}

TEST(ChronyProtocol, NtpSourceName) {
  auto r = ParseNtpSourceNameReply(NameReply("ntp.example.org"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "ntp.example.org");
  auto full = ParseNtpSourceNameReply(NameReply(std::string(256, 'a')));
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.error().message.find("not NUL-terminated"), std::string::npos);
  auto bad = ParseNtpSourceNameReply(NameReply("a\x01"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("non-printable"), std::string::npos);
}

void ExpectError(const Result<ChronyTracking>& r, const std::string& needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
}

TEST(ChronyProtocol, MalformedRepliesGiveNamedErrors) {
  const auto good = Hex(kTrackingClient);
  ExpectError(ParseTrackingReply({}), "truncated header: 0 bytes");
  ExpectError(ParseTrackingReply(std::span(good).first(27)), "truncated header: 27 bytes");
  ExpectError(ParseTrackingReply(std::span(good).first(103)), "truncated: 103 bytes, expected 104");
  auto v = good;
  v[0] = 5;
  ExpectError(ParseTrackingReply(v), "protocol version 5");
  v = good;
  v[1] = 1;
  ExpectError(ParseTrackingReply(v), "packet type 1");
  v = good;
  v[5] = 15;
  ExpectError(ParseTrackingReply(v), "answers command 15");
  v = good;
  v[7] = 6;
  ExpectError(ParseTrackingReply(v), "reply code 6");
  v = good;
  v[9] = 2;
  ExpectError(ParseTrackingReply(v), "status 2 (unauthorised)");
  v = good;
  v[kReplyHeaderLength + 27] = 9;
  ExpectError(ParseTrackingReply(v), "leap status 9");

  auto ns = ParseSourceDataReply(Hex(kNoSuchSource));
  ASSERT_FALSE(ns.ok());
  EXPECT_NE(ns.error().message.find("no such source"), std::string::npos);
  auto sd = Hex(kSourceData);
  sd[kReplyHeaderLength + 25] = 9;
  auto bad_state = ParseSourceDataReply(sd);
  ASSERT_FALSE(bad_state.ok());
  EXPECT_NE(bad_state.error().message.find("source state 9"), std::string::npos);
  // A tracking reply is not a source-data reply.
  EXPECT_FALSE(ParseSourceDataReply(good).ok());
  EXPECT_FALSE(ParseSourcestatsReply(Hex(kSourceData)).ok());
  EXPECT_FALSE(ParseNSourcesReply(std::vector<uint8_t>(20)).ok());
}

TEST(ChronyProtocol, EveryTruncationOfEveryFixtureIsRejectedWithoutCrash) {
  for (const char* fx : {kTrackingClient, kTrackingServer, kNSources, kSourceData, kSourcestats}) {
    const auto full = Hex(fx);
    for (size_t n = 0; n < full.size(); ++n) {
      std::span<const uint8_t> cut(full.data(), n);
      EXPECT_FALSE(ParseTrackingReply(cut).ok());
      EXPECT_FALSE(ParseSourceDataReply(cut).ok());
      EXPECT_FALSE(ParseSourcestatsReply(cut).ok());
      EXPECT_FALSE(ParseNtpSourceNameReply(cut).ok());
    }
  }
}

TEST(ChronyProtocol, AddressFormatting) {
  IpAddr a;
  EXPECT_EQ(FormatIpAddr(a), "");
  a.family = kFamilyId;
  a.bytes[0] = 'P';
  a.bytes[1] = 'P';
  a.bytes[2] = 'S';
  a.bytes[3] = '0';
  EXPECT_EQ(FormatIpAddr(a), "PPS0");
  a.family = kFamilyInet6;
  std::fill(std::begin(a.bytes), std::end(a.bytes), 0);
  a.bytes[15] = 1;
  EXPECT_EQ(FormatIpAddr(a), "::1");
  EXPECT_EQ(RefIdText(0x7F7F0101), "7F7F0101");
  EXPECT_EQ(RefIdText(0x47505300), "GPS");
}

}  // namespace
}  // namespace vmtime::chrony
