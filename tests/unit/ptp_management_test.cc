// PTP management messages (collectors/ptp/ptp_management.h): the GET bytes
// compared with what linuxptp 3.1's pmc sends, responses crafted byte by
// byte for every data set, and hostile replies (short, lengths past the
// end, wrong type, wrong sequence id, error status) as named errors.
#include "exporter/collectors/ptp/ptp_management.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vmtime::ptp {
namespace {

using Bytes = std::vector<uint8_t>;

void Put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
void Put64(Bytes& b, size_t at, int64_t v) {
  const auto u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) b[at + i] = static_cast<uint8_t>(u >> (56 - 8 * i));
}

const Bytes kClockId = {0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55};
const Bytes kGmId = {0x0a, 0x0b, 0x0c, 0xff, 0xfe, 0x0d, 0x0e, 0x0f};

// A RESPONSE as ptp4l sends it: header, management body, one TLV.
Bytes Response(uint16_t sequence, uint16_t id, const Bytes& data, uint16_t tlv_type = 0x0001) {
  Bytes m(48 + 4 + 2 + data.size(), 0);
  m[0] = 0x0D;
  m[1] = 0x02;
  Put16(m, 2, static_cast<uint16_t>(m.size()));
  m[4] = 0;
  for (int i = 0; i < 8; ++i) m[20 + i] = kClockId[i];
  Put16(m, 28, 1);
  Put16(m, 30, sequence);
  m[32] = 0x04;
  m[33] = 0x7F;
  m[46] = 0x02;  // RESPONSE
  Put16(m, 48, tlv_type);
  Put16(m, 50, static_cast<uint16_t>(2 + data.size()));
  Put16(m, 52, id);
  for (size_t i = 0; i < data.size(); ++i) m[54 + i] = data[i];
  return m;
}

std::string Hex(const Bytes& b) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t c : b) s += {digits[c >> 4], digits[c & 15]};
  return s;
}

TEST(PtpManagement, GetMatchesWhatPmcSends) {
  // Captured from `pmc -u -b 0 'GET CURRENT_DATA_SET'` (linuxptp 3.1.1, pid
  // 0x4a91, sequence 0): a zeroed data field of the data set's size.
  const std::string pmc =
      "0d0200480000000000000000000000000000000000000000000000004a910000047fffffffffffffffffffff"
      "00000000000100142001000000000000000000000000000000000000";
  EXPECT_EQ(Hex(BuildGetRequest(kIdCurrentDataSet, 0, 0, 0x4a91)), pmc);
  const Bytes ts = BuildGetRequest(kIdTimeStatusNp, 7, 24, 1);
  EXPECT_EQ(ts.size(), 104u);  // pmc's TIME_STATUS_NP GET is 104 bytes too
  EXPECT_EQ(ts[4], 24);        // domainNumber
  EXPECT_EQ(MessageSequence(ts), 7);
}

TEST(PtpManagement, ParsesCurrentDataSet) {
  Bytes d(18, 0);
  Put16(d, 0, 1);
  Put64(d, 2, -1500LL * 65536);  // -1.5 us
  Put64(d, 10, 2500LL * 65536);  // 2.5 us
  auto r = ParseResponse(Response(42, kIdCurrentDataSet, d), 42, kIdCurrentDataSet);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->source_port_identity, "021122.fffe.334455-1");
  PtpObservation o;
  ASSERT_TRUE(DecodeCurrentDataSet(r->data, o).ok());
  EXPECT_EQ(o.steps_removed, 1);
  EXPECT_DOUBLE_EQ(o.offset_from_master_s, -1.5e-6);
  EXPECT_DOUBLE_EQ(o.mean_path_delay_s, 2.5e-6);
}

TEST(PtpManagement, ParsesDefaultParentAndTimeProperties) {
  PtpObservation o;
  Bytes dds(20, 0);
  dds[0] = 0x03;  // twoStep | slaveOnly
  Put16(dds, 2, 1);
  dds[5] = 248;
  for (int i = 0; i < 8; ++i) dds[10 + i] = kClockId[i];
  dds[18] = 24;
  ASSERT_TRUE(DecodeDefaultDataSet(dds, o).ok());
  EXPECT_EQ(o.number_ports, 1);
  EXPECT_EQ(o.clock_class, 248);
  EXPECT_TRUE(o.slave_only);
  EXPECT_EQ(o.clock_identity, "021122.fffe.334455");
  EXPECT_EQ(o.domain_number, 24);

  Bytes pds(32, 0);
  for (int i = 0; i < 8; ++i) pds[i] = kGmId[i];
  Put16(pds, 8, 1);
  pds[18] = 128;
  pds[19] = 6;     // clockClass
  pds[20] = 0x21;  // clockAccuracy
  Put16(pds, 21, 0x4E5D);
  pds[23] = 127;
  for (int i = 0; i < 8; ++i) pds[24 + i] = kGmId[i];
  ASSERT_TRUE(DecodeParentDataSet(pds, o).ok());
  EXPECT_EQ(o.parent_port_identity, "0a0b0c.fffe.0d0e0f-1");
  EXPECT_EQ(o.grandmaster_identity, "0a0b0c.fffe.0d0e0f");
  EXPECT_EQ(o.grandmaster_clock_class, 6);
  EXPECT_EQ(o.grandmaster_clock_accuracy, 0x21);
  EXPECT_EQ(o.grandmaster_offset_scaled_log_variance, 0x4E5D);
  EXPECT_EQ(o.grandmaster_priority1, 128);
  EXPECT_EQ(o.grandmaster_priority2, 127);
  EXPECT_FALSE(o.IsGrandmaster());

  Bytes tp(4, 0);
  Put16(tp, 0, 37);
  tp[2] = 0x04 | 0x08 | 0x10 | 0x01;  // UTC offset valid, PTP timescale, time traceable, leap61
  tp[3] = 0x20;                       // GPS
  ASSERT_TRUE(DecodeTimePropertiesDataSet(tp, o).ok());
  EXPECT_EQ(o.current_utc_offset_s, 37);
  EXPECT_TRUE(o.current_utc_offset_valid);
  EXPECT_TRUE(o.ptp_timescale);
  EXPECT_TRUE(o.time_traceable);
  EXPECT_FALSE(o.frequency_traceable);
  EXPECT_TRUE(o.leap61);
  EXPECT_FALSE(o.leap59);
  EXPECT_EQ(o.time_source, 0x20);
}

TEST(PtpManagement, ParsesPortDataSetAndTimeStatus) {
  Bytes port(26, 0);
  for (int i = 0; i < 8; ++i) port[i] = kClockId[i];
  Put16(port, 8, 1);
  port[10] = 9;  // SLAVE
  Put64(port, 12, 100LL * 65536);
  port[20] = 0xFE;  // logAnnounceInterval -2
  port[21] = 3;
  port[23] = 1;  // E2E
  auto p = DecodePortDataSet(port);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->port_identity, "021122.fffe.334455-1");
  EXPECT_EQ(p->port_number, 1);
  EXPECT_EQ(p->state, PtpPortState::kSlave);
  EXPECT_STREQ(PtpPortStateName(p->state), "slave");
  EXPECT_DOUBLE_EQ(p->peer_mean_path_delay_s, 100e-9);
  EXPECT_EQ(p->log_announce_interval, -2);
  EXPECT_EQ(p->announce_receipt_timeout, 3);

  port[10] = 42;  // not a state
  p = DecodePortDataSet(port);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->state, PtpPortState::kUnknown);
  EXPECT_EQ(p->raw_state, 42);

  Bytes ts(50, 0);
  Put64(ts, 0, -250);  // ns, not scaled
  ts[41] = 1;          // gmPresent
  for (int i = 0; i < 8; ++i) ts[42 + i] = kGmId[i];
  PtpObservation o;
  ASSERT_TRUE(DecodeTimeStatusNp(ts, o).ok());
  EXPECT_DOUBLE_EQ(*o.master_offset_s, -250e-9);
  EXPECT_TRUE(*o.gm_present);
  EXPECT_EQ(*o.gm_identity_np, "0a0b0c.fffe.0d0e0f");
}

TEST(PtpManagement, HostileRepliesAreNamedErrors) {
  const Bytes good = Response(5, kIdCurrentDataSet, Bytes(18, 0));
  auto err = [](const Bytes& m, uint16_t seq = 5, uint16_t id = kIdCurrentDataSet) {
    auto r = ParseResponse(m, seq, id);
    return r.ok() ? std::string("ok") : r.error().message;
  };
  EXPECT_EQ(err(good), "ok");
  EXPECT_NE(err(Bytes(good.begin(), good.begin() + 40)).find("short message"), std::string::npos);
  EXPECT_NE(err(good, 6).find("wrong sequence id 5"), std::string::npos);
  EXPECT_NE(err(good, 5, kIdParentDataSet).find("wrong management id CURRENT_DATA_SET"),
            std::string::npos);

  Bytes wrong_type = good;
  wrong_type[0] = 0x0B;  // announce
  EXPECT_NE(err(wrong_type).find("not a management message"), std::string::npos);
  Bytes v1 = good;
  v1[1] = 0x01;
  EXPECT_NE(err(v1).find("PTP version"), std::string::npos);
  Bytes get = good;
  get[46] = 0x00;
  EXPECT_NE(err(get).find("is not RESPONSE"), std::string::npos);
  Bytes long_message = good;
  Put16(long_message, 2, static_cast<uint16_t>(good.size() + 1));
  EXPECT_NE(err(long_message).find("messageLength"), std::string::npos);
  Bytes long_tlv = good;
  Put16(long_tlv, 50, 200);
  EXPECT_NE(err(long_tlv).find("TLV with length 200 past the end"), std::string::npos);
  Bytes odd_tlv = good;
  Put16(odd_tlv, 48, 0x0003);
  EXPECT_NE(err(odd_tlv).find("unexpected TLV type 3"), std::string::npos);
  Bytes empty_tlv = good;
  Put16(empty_tlv, 50, 1);
  EXPECT_NE(err(empty_tlv).find("too short for a management id"), std::string::npos);

  // ptp4l's MANAGEMENT_ERROR_STATUS: errorId NOT_SUPPORTED for TIME_STATUS_NP.
  Bytes status(8, 0);
  Put16(status, 0, 0x0006);
  Put16(status, 2, kIdTimeStatusNp);
  Bytes e = Response(5, 0, {}, 0x0002);
  e.resize(52);
  e.insert(e.end(), status.begin(), status.end());
  Put16(e, 2, static_cast<uint16_t>(e.size()));
  Put16(e, 50, static_cast<uint16_t>(status.size()));
  EXPECT_EQ(err(e, 5, kIdTimeStatusNp), "ptp4l answered TIME_STATUS_NP with NOT_SUPPORTED");

  // A data set shorter than its layout.
  PtpObservation o;
  Status s = DecodeCurrentDataSet(Bytes(10, 0), o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "CURRENT_DATA_SET: 10 bytes, need 18");
  EXPECT_FALSE(DecodePortDataSet(Bytes(25, 0)).ok());
  EXPECT_FALSE(DecodeParentDataSet(Bytes(31, 0), o).ok());
  EXPECT_FALSE(DecodeTimeStatusNp(Bytes(49, 0), o).ok());
  EXPECT_FALSE(DecodeDefaultDataSet(Bytes(19, 0), o).ok());
  EXPECT_FALSE(DecodeTimePropertiesDataSet(Bytes(3, 0), o).ok());
}

TEST(PtpManagement, EveryTruncationIsAnErrorNotACrash) {
  Bytes d(26, 0);
  d[10] = 9;
  const Bytes good = Response(9, kIdPortDataSet, d);
  for (size_t n = 0; n < good.size(); ++n) {
    const Bytes cut(good.begin(), good.begin() + static_cast<long>(n));
    auto r = ParseResponse(cut, 9, kIdPortDataSet);
    EXPECT_FALSE(r.ok()) << n;
    if (!r.ok()) {
      EXPECT_FALSE(r.error().message.empty());
    }
  }
  EXPECT_EQ(MessageSequence(Bytes(31, 0)), -1);
}

}  // namespace
}  // namespace vmtime::ptp
