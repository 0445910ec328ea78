// chrony command protocol: request builders and reply parsers (see the
// header for the wire layout). Everything here is pure and bounds-checked.
#include "exporter/collectors/chrony/chrony_protocol.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace vmtime::chrony {
namespace {

constexpr int kFloatExpBits = 7;
constexpr int kFloatCoefBits = 32 - kFloatExpBits;  // 25

namespace c = candm;

// Big-endian reader over one struct of a reply (the header, or the body after
// cmd_reply::kData); offsets are the candm:: field offsets. Callers check the
// length first (ReplyBody / ParseReplyHeader).
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}
  uint8_t U8(size_t off) const { return b_[off]; }
  uint16_t U16(size_t off) const {
    return static_cast<uint16_t>((static_cast<uint16_t>(b_[off]) << 8) | b_[off + 1]);
  }
  uint32_t U32(size_t off) const {
    return (static_cast<uint32_t>(b_[off]) << 24) | (static_cast<uint32_t>(b_[off + 1]) << 16) |
           (static_cast<uint32_t>(b_[off + 2]) << 8) | static_cast<uint32_t>(b_[off + 3]);
  }
  double Float(size_t off) const { return DecodeFloat(U32(off)); }
  std::span<const uint8_t> Bytes(size_t off, size_t n) const { return b_.subspan(off, n); }
  IpAddr Addr(size_t off) const {
    IpAddr a;
    std::memcpy(a.bytes, b_.data() + off + c::ip_addr::kAddr, c::ip_addr::kAddrBytes);
    a.family = U16(off + c::ip_addr::kFamily);
    return a;
  }
  // Timespec as Unix seconds (TV_NOHIGHSEC: the high word is absent).
  double Time(size_t off) const {
    uint32_t sec_high = U32(off + c::time_spec::kSecHigh);
    if (sec_high == c::kTvNoHighSec) sec_high = 0;
    const uint32_t sec_low = U32(off + c::time_spec::kSecLow);
    const uint32_t nsec = U32(off + c::time_spec::kNsec);
    const double sec = static_cast<double>((static_cast<uint64_t>(sec_high) << 32) | sec_low);
    return sec + static_cast<double>(nsec) * 1e-9;
  }

 private:
  std::span<const uint8_t> b_;
};

void PutU16(std::vector<uint8_t>& v, size_t off, uint16_t x) {
  v[off] = static_cast<uint8_t>(x >> 8);
  v[off + 1] = static_cast<uint8_t>(x);
}
void PutU32(std::vector<uint8_t>& v, size_t off, uint32_t x) {
  v[off] = static_cast<uint8_t>(x >> 24);
  v[off + 1] = static_cast<uint8_t>(x >> 16);
  v[off + 2] = static_cast<uint8_t>(x >> 8);
  v[off + 3] = static_cast<uint8_t>(x);
}

size_t ReplyLengthOf(uint16_t command) {
  switch (command) {
    case kReqNSources:
      return kNSourcesReplyLength;
    case kReqSourceData:
      return kSourceDataReplyLength;
    case kReqTracking:
      return kTrackingReplyLength;
    case kReqSourcestats:
      return kSourcestatsReplyLength;
    case kReqNtpSourceName:
      return kNtpSourceNameReplyLength;
    default:
      return 0;
  }
}

const char* ReplyName(uint16_t reply) {
  switch (reply) {
    case kRpyNSources:
      return "N_SOURCES";
    case kRpySourceData:
      return "SOURCE_DATA";
    case kRpyTracking:
      return "TRACKING";
    case kRpySourcestats:
      return "SOURCESTATS";
    case kRpyNtpSourceName:
      return "NTP_SOURCE_NAME";
    default:
      return "?";
  }
}

// Checks the header of a reply to `command` expecting `reply_code` and the
// length of that reply; returns a reader over its body.
Result<Reader> ReplyBody(std::span<const uint8_t> reply, uint16_t command, uint16_t reply_code) {
  const size_t length = ReplyLengthOf(command);
  const std::string what = std::string("chrony ") + ReplyName(reply_code) + " reply";
  auto h = ParseReplyHeader(reply);
  if (!h) return Error{what + ": " + h.error().message};
  if (h->version != kProtocolVersion) {
    return Error{what + ": protocol version " + std::to_string(h->version) + ", expected " +
                 std::to_string(kProtocolVersion)};
  }
  if (h->pkt_type != kPktTypeReply) {
    return Error{what + ": packet type " + std::to_string(h->pkt_type) + ", expected 2 (reply)"};
  }
  if (h->command != command) {
    return Error{what + ": answers command " + std::to_string(h->command) + ", expected " +
                 std::to_string(command)};
  }
  if (h->status != kSttSuccess) {
    return Error{what + ": chronyd status " + std::to_string(h->status) + " (" +
                 StatusText(h->status) + ")"};
  }
  if (h->reply != reply_code) {
    return Error{what + ": reply code " + std::to_string(h->reply) + ", expected " +
                 std::to_string(reply_code)};
  }
  if (reply.size() < length) {
    return Error{what + ": truncated: " + std::to_string(reply.size()) + " bytes, expected " +
                 std::to_string(length)};
  }
  return Reader(reply.subspan(kReplyHeaderLength));
}

}  // namespace

double DecodeFloat(uint32_t raw) {
  int32_t exp = static_cast<int32_t>(raw >> kFloatCoefBits);
  if (exp >= 1 << (kFloatExpBits - 1)) exp -= 1 << kFloatExpBits;
  exp -= kFloatCoefBits;
  int32_t coef = static_cast<int32_t>(raw % (1U << kFloatCoefBits));
  if (coef >= 1 << (kFloatCoefBits - 1)) coef -= 1 << kFloatCoefBits;
  return std::ldexp(static_cast<double>(coef), exp);
}

uint32_t EncodeFloat(double x) {
  // Port of util.c UTI_FloatHostToNetwork: value = coef * 2^(exp - 25).
  constexpr int32_t kExpMin = -(1 << (kFloatExpBits - 1));
  constexpr int32_t kExpMax = -kExpMin - 1;
  constexpr int32_t kCoefMax = (1 << (kFloatCoefBits - 1)) - 1;
  int32_t exp = 0;
  int32_t coef = 0;
  int32_t neg = 0;
  if (x < 0.0) {
    x = -x;
    neg = 1;
  } else if (!(x >= 0.0)) {
    x = 0.0;  // NaN
  }
  if (x < 1.0e-100) {
    exp = coef = 0;
  } else if (x > 1.0e100) {
    exp = kExpMax;
    coef = kCoefMax + neg;
  } else {
    exp = static_cast<int32_t>(std::log(x) / std::log(2.0)) + 1;
    coef = static_cast<int32_t>(x * std::pow(2.0, -exp + kFloatCoefBits) + 0.5);
    while (coef > kCoefMax + neg) {
      coef >>= 1;
      ++exp;
    }
    if (exp > kExpMax) {
      exp = kExpMax;
      coef = kCoefMax + neg;
    } else if (exp < kExpMin) {
      if (exp + kFloatCoefBits >= kExpMin) {
        coef >>= kExpMin - exp;
        exp = kExpMin;
      } else {
        exp = coef = 0;
      }
    }
  }
  uint32_t c = static_cast<uint32_t>(coef);
  if (neg) c = (static_cast<uint32_t>(-coef) << kFloatExpBits) >> kFloatExpBits;
  return (static_cast<uint32_t>(exp) << kFloatCoefBits) | c;
}

std::string FormatIpAddr(const IpAddr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (a.family) {
    case kFamilyInet4:
      if (inet_ntop(AF_INET, a.bytes, buf, sizeof buf) == nullptr) return "?";
      return buf;
    case kFamilyInet6:
      if (inet_ntop(AF_INET6, a.bytes, buf, sizeof buf) == nullptr) return "?";
      return buf;
    case kFamilyId: {
      const uint32_t id = (static_cast<uint32_t>(a.bytes[0]) << 24) |
                          (static_cast<uint32_t>(a.bytes[1]) << 16) |
                          (static_cast<uint32_t>(a.bytes[2]) << 8) | a.bytes[3];
      return RefIdText(id);
    }
    default:
      return "";
  }
}

std::string RefIdText(uint32_t ref_id) {
  std::string s;
  bool printable = true;
  for (int shift = 24; shift >= 0; shift -= 8) {
    const auto c = static_cast<unsigned char>(ref_id >> shift);
    if (c == 0) break;
    if (c < 0x20 || c > 0x7e) printable = false;
    s.push_back(static_cast<char>(c));
  }
  if (printable && !s.empty()) return s;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08X", ref_id);
  return hex;
}

std::string StatusText(uint16_t status) {
  switch (status) {
    case 0:
      return "success";
    case 1:
      return "failed";
    case 2:
      return "unauthorised";
    case 3:
      return "invalid command";
    case 4:
      return "no such source";
    case 5:
      return "invalid timestamp";
    case 6:
      return "not enabled";
    case 7:
      return "bad subnet";
    case 8:
      return "access allowed";
    case 9:
      return "access denied";
    case 10:
      return "no host access";
    case 11:
      return "source already known";
    case 12:
      return "too many sources";
    case 13:
      return "no RTC";
    case 14:
      return "bad RTC file";
    case 15:
      return "inactive";
    case 16:
      return "bad sample";
    case 17:
      return "invalid address family";
    case 18:
      return "bad packet version";
    case 19:
      return "bad packet length";
    case 21:
      return "invalid name";
    default:
      return "unknown status";
  }
}

Result<ReplyHeader> ParseReplyHeader(std::span<const uint8_t> reply) {
  if (reply.size() < kReplyHeaderLength) {
    return Error{"truncated header: " + std::to_string(reply.size()) + " bytes, need " +
                 std::to_string(kReplyHeaderLength)};
  }
  Reader r(reply);
  ReplyHeader h;
  h.version = r.U8(c::cmd_reply::kVersion);
  h.pkt_type = r.U8(c::cmd_reply::kPktType);
  h.command = r.U16(c::cmd_reply::kCommand);
  h.reply = r.U16(c::cmd_reply::kReply);
  h.status = r.U16(c::cmd_reply::kStatus);
  h.sequence = r.U32(c::cmd_reply::kSequence);
  return h;
}

std::vector<uint8_t> BuildRequest(uint16_t command, uint32_t sequence, uint16_t attempt,
                                  std::span<const uint8_t> data) {
  const size_t unpadded = kRequestHeaderLength + data.size();
  const size_t length = std::max(unpadded, ReplyLengthOf(command));
  std::vector<uint8_t> v(length, 0);
  v[c::cmd_request::kVersion] = kProtocolVersion;
  v[c::cmd_request::kPktType] = kPktTypeRequest;
  PutU16(v, c::cmd_request::kCommand, command);
  PutU16(v, c::cmd_request::kAttempt, attempt);
  PutU32(v, c::cmd_request::kSequence, sequence);
  if (!data.empty()) std::memcpy(v.data() + c::cmd_request::kData, data.data(), data.size());
  return v;
}

std::vector<uint8_t> BuildTrackingRequest(uint32_t sequence, uint16_t attempt) {
  return BuildRequest(kReqTracking, sequence, attempt, {});
}

std::vector<uint8_t> BuildNSourcesRequest(uint32_t sequence, uint16_t attempt) {
  return BuildRequest(kReqNSources, sequence, attempt, {});
}

std::vector<uint8_t> BuildSourceDataRequest(uint32_t sequence, int32_t index, uint16_t attempt) {
  std::vector<uint8_t> d(c::req_source_data::kEor);
  PutU32(d, c::req_source_data::kIndex, static_cast<uint32_t>(index));
  return BuildRequest(kReqSourceData, sequence, attempt, d);
}

std::vector<uint8_t> BuildSourcestatsRequest(uint32_t sequence, uint32_t index, uint16_t attempt) {
  std::vector<uint8_t> d(c::req_sourcestats::kEor);
  PutU32(d, c::req_sourcestats::kIndex, index);
  return BuildRequest(kReqSourcestats, sequence, attempt, d);
}

std::vector<uint8_t> BuildNtpSourceNameRequest(uint32_t sequence, const IpAddr& addr,
                                               uint16_t attempt) {
  namespace f = c::req_ntp_source_name;
  std::vector<uint8_t> d(f::kEor, 0);
  std::memcpy(d.data() + f::kIpAddr + c::ip_addr::kAddr, addr.bytes, c::ip_addr::kAddrBytes);
  PutU16(d, f::kIpAddr + c::ip_addr::kFamily, addr.family);
  return BuildRequest(kReqNtpSourceName, sequence, attempt, d);
}

Result<ChronyTracking> ParseTrackingReply(std::span<const uint8_t> reply) {
  auto body = ReplyBody(reply, kReqTracking, kRpyTracking);
  if (!body) return body.error();
  namespace f = c::rpy_tracking;
  const Reader& r = *body;
  ChronyTracking t;
  t.reference_id = r.U32(f::kRefId);
  t.reference_name = FormatIpAddr(r.Addr(f::kIpAddr));
  t.stratum = r.U16(f::kStratum);
  t.leap_status = r.U16(f::kLeapStatus);
  t.ref_time_real_s = r.Time(f::kRefTime);
  // chronyd sends the correction it still has to apply (positive = clock
  // slow); local - true is its negation.
  t.system_time_offset_s = -r.Float(f::kCurrentCorrection);
  t.last_offset_s = r.Float(f::kLastOffset);
  t.rms_offset_s = r.Float(f::kRmsOffset);
  t.frequency_ppm = r.Float(f::kFreqPpm);
  t.residual_frequency_ppm = r.Float(f::kResidFreqPpm);
  t.skew_ppm = r.Float(f::kSkewPpm);
  t.root_delay_s = r.Float(f::kRootDelay);
  t.root_dispersion_s = r.Float(f::kRootDispersion);
  t.update_interval_s = r.Float(f::kLastUpdateInterval);
  if (t.leap_status > 3) {
    return Error{"chrony TRACKING reply: leap status " + std::to_string(t.leap_status) +
                 " out of range 0..3"};
  }
  return t;
}

Result<uint32_t> ParseNSourcesReply(std::span<const uint8_t> reply) {
  auto body = ReplyBody(reply, kReqNSources, kRpyNSources);
  if (!body) return body.error();
  return body->U32(c::rpy_n_sources::kNSources);
}

Result<SourceData> ParseSourceDataReply(std::span<const uint8_t> reply) {
  auto body = ReplyBody(reply, kReqSourceData, kRpySourceData);
  if (!body) return body.error();
  namespace f = c::rpy_source_data;
  const Reader& r = *body;
  SourceData out;
  out.address = r.Addr(f::kIpAddr);
  ChronySource& s = out.source;
  s.address = FormatIpAddr(out.address);
  s.name = s.address;
  s.poll_log2 = static_cast<int16_t>(r.U16(f::kPoll));
  s.stratum = r.U16(f::kStratum);
  s.state = r.U16(f::kState);
  s.mode = r.U16(f::kMode);
  // f::kFlags (noselect, prefer, ...) is not used.
  s.reachability = r.U16(f::kReachability);
  s.since_sample_s = r.U32(f::kSinceSample);
  s.orig_latest_offset_s = r.Float(f::kOrigLatestMeas);
  s.latest_offset_s = r.Float(f::kLatestMeas);
  s.latest_error_s = r.Float(f::kLatestMeasErr);
  if (s.state > 5) {
    return Error{"chrony SOURCE_DATA reply: source state " + std::to_string(s.state) +
                 " out of range 0..5"};
  }
  if (s.mode > 2) {
    return Error{"chrony SOURCE_DATA reply: source mode " + std::to_string(s.mode) +
                 " out of range 0..2"};
  }
  return out;
}

Result<Sourcestats> ParseSourcestatsReply(std::span<const uint8_t> reply) {
  auto body = ReplyBody(reply, kReqSourcestats, kRpySourcestats);
  if (!body) return body.error();
  namespace f = c::rpy_sourcestats;
  const Reader& r = *body;
  Sourcestats st;
  st.ref_id = r.U32(f::kRefId);
  st.address = r.Addr(f::kIpAddr);
  st.samples = r.U32(f::kNSamples);
  st.runs = r.U32(f::kNRuns);
  st.span_s = r.U32(f::kSpanSeconds);
  st.std_dev_s = r.Float(f::kSd);
  st.resid_freq_ppm = r.Float(f::kResidFreqPpm);
  st.skew_ppm = r.Float(f::kSkewPpm);
  st.est_offset_s = r.Float(f::kEstOffset);
  st.est_offset_err_s = r.Float(f::kEstOffsetErr);
  return st;
}

Result<std::string> ParseNtpSourceNameReply(std::span<const uint8_t> reply) {
  auto body = ReplyBody(reply, kReqNtpSourceName, kRpyNtpSourceName);
  if (!body) return body.error();
  namespace f = c::rpy_ntp_source_name;
  const auto* name = reinterpret_cast<const char*>(body->Bytes(f::kName, f::kNameBytes).data());
  const size_t len = strnlen(name, f::kNameBytes);
  if (len == f::kNameBytes) return Error{"chrony NTP_SOURCE_NAME reply: name not NUL-terminated"};
  std::string out(name, len);
  for (char ch : out) {
    if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e) {
      return Error{"chrony NTP_SOURCE_NAME reply: name has a non-printable byte"};
    }
  }
  return out;
}

}  // namespace vmtime::chrony
