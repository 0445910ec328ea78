// chrony command protocol (cmdmon, "candm"): request encoding and pure reply
// parsers. The layouts follow chrony's candm.h, protocol version 6; namespace
// candm below names every field's offset. In short:
//
//   request header (20 bytes): version u8, pkt_type u8 (1), res1 u8, res2 u8,
//     command u16, attempt u16, sequence u32, pad1 u32, pad2 u32, then the
//     command's data; the whole request is zero-padded to the length of the
//     reply it asks for (chronyd refuses shorter requests: no amplification).
//   reply header (28 bytes): version u8, pkt_type u8 (2), res1 u8, res2 u8,
//     command u16, reply u16, status u16, pad1..pad3 u16, sequence u32,
//     pad4 u32, pad5 u32, then the reply's data.
//
// All integers are big-endian. Real numbers use chrony's 32-bit "Float":
// a 7-bit signed exponent and a 25-bit signed coefficient,
// value = coef * 2^(exp - 25). Addresses are an IPAddr (16 bytes of address,
// u16 family, u16 pad). Timestamps are a Timespec (sec high u32, sec low u32,
// nsec u32).
//
// The parsers take the whole reply datagram and check the header (version,
// packet type, command, reply code, status, length) before the body; they
// never read out of bounds and name what was wrong in the error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "exporter/core/result.h"
#include "exporter/model/observations.h"

namespace vmtime::chrony {

constexpr uint8_t kProtocolVersion = 6;  // PROTO_VERSION_NUMBER
constexpr uint8_t kPktTypeRequest = 1;   // PKT_TYPE_CMD_REQUEST
constexpr uint8_t kPktTypeReply = 2;     // PKT_TYPE_CMD_REPLY

// ---- Wire layout ----
// Byte offsets of the fields of candm.h's structs, each derived from the one
// before it (offset + size, in declaration order). candm.h declares every
// field at its natural alignment, so the C layout has no holes and these
// offsets are the ones chronyd's offsetof() gives; the EOR ("end of record")
// offset of a reply is the length chronyd sends (pktlength.c). The
// static_asserts pin the totals to protocol 6 as chronyd 4.x sends it.
namespace candm {

constexpr size_t kU8 = 1;
constexpr size_t kU16 = 2;
constexpr size_t kU32 = 4;
constexpr size_t kFloat = 4;  // Float: int32_t f (see DecodeFloat)

// IPAddr (addressing.h): union { uint32_t in4; uint8_t in6[16]; uint32_t id; }
// addr; uint16_t family; uint16_t _pad.
namespace ip_addr {
constexpr size_t kAddr = 0;                     // addr (in4 and id: first 4 bytes, network order)
constexpr size_t kAddrBytes = 16;               // sizeof addr (in6)
constexpr size_t kFamily = kAddr + kAddrBytes;  // family: IPADDR_*
constexpr size_t kPad = kFamily + kU16;         // _pad
constexpr size_t kSize = kPad + kU16;
}  // namespace ip_addr
static_assert(ip_addr::kSize == 20);

// Timespec: uint32_t tv_sec_high, tv_sec_low, tv_nsec.
namespace time_spec {
constexpr size_t kSecHigh = 0;               // tv_sec_high (TV_NOHIGHSEC: 32-bit time)
constexpr size_t kSecLow = kSecHigh + kU32;  // tv_sec_low
constexpr size_t kNsec = kSecLow + kU32;     // tv_nsec
constexpr size_t kSize = kNsec + kU32;
}  // namespace time_spec
constexpr uint32_t kTvNoHighSec = 0x7fffffff;  // TV_NOHIGHSEC

// CMD_Request header; offsets from the start of the datagram.
namespace cmd_request {
constexpr size_t kVersion = 0;                 // version
constexpr size_t kPktType = kVersion + kU8;    // pkt_type
constexpr size_t kRes1 = kPktType + kU8;       // res1
constexpr size_t kRes2 = kRes1 + kU8;          // res2
constexpr size_t kCommand = kRes2 + kU8;       // command: REQ_*
constexpr size_t kAttempt = kCommand + kU16;   // attempt
constexpr size_t kSequence = kAttempt + kU16;  // sequence
constexpr size_t kPad1 = kSequence + kU32;     // pad1
constexpr size_t kPad2 = kPad1 + kU32;         // pad2
constexpr size_t kData = kPad2 + kU32;         // data: the REQ_* union
}  // namespace cmd_request
static_assert(cmd_request::kData == 20);

// Request bodies; offsets from cmd_request::kData.
namespace req_source_data {   // REQ_Source_Data
constexpr size_t kIndex = 0;  // int32_t index
constexpr size_t kEor = kIndex + kU32;
}  // namespace req_source_data
namespace req_sourcestats {   // REQ_Sourcestats
constexpr size_t kIndex = 0;  // uint32_t index
constexpr size_t kEor = kIndex + kU32;
}  // namespace req_sourcestats
namespace req_ntp_source_name {  // REQ_NTPSourceName
constexpr size_t kIpAddr = 0;    // IPAddr ip_addr
constexpr size_t kEor = kIpAddr + ip_addr::kSize;
}  // namespace req_ntp_source_name

// CMD_Reply header; offsets from the start of the datagram.
namespace cmd_reply {
constexpr size_t kVersion = 0;               // version
constexpr size_t kPktType = kVersion + kU8;  // pkt_type
constexpr size_t kRes1 = kPktType + kU8;     // res1
constexpr size_t kRes2 = kRes1 + kU8;        // res2
constexpr size_t kCommand = kRes2 + kU8;     // command: the REQ_* answered
constexpr size_t kReply = kCommand + kU16;   // reply: RPY_*
constexpr size_t kStatus = kReply + kU16;    // status: STT_*
constexpr size_t kPad1 = kStatus + kU16;     // pad1
constexpr size_t kPad2 = kPad1 + kU16;       // pad2
constexpr size_t kPad3 = kPad2 + kU16;       // pad3
constexpr size_t kSequence = kPad3 + kU16;   // sequence (echo of the request's)
constexpr size_t kPad4 = kSequence + kU32;   // pad4
constexpr size_t kPad5 = kPad4 + kU32;       // pad5
constexpr size_t kData = kPad5 + kU32;       // data: the RPY_* union
}  // namespace cmd_reply
static_assert(cmd_reply::kData == 28);

// Reply bodies; offsets from cmd_reply::kData.
namespace rpy_n_sources {        // RPY_N_Sources
constexpr size_t kNSources = 0;  // uint32_t n_sources
constexpr size_t kEor = kNSources + kU32;
}  // namespace rpy_n_sources
static_assert(rpy_n_sources::kEor == 4);

namespace rpy_source_data {                               // RPY_Source_Data
constexpr size_t kIpAddr = 0;                             // IPAddr ip_addr
constexpr size_t kPoll = kIpAddr + ip_addr::kSize;        // int16_t poll (log2 seconds)
constexpr size_t kStratum = kPoll + kU16;                 // uint16_t stratum
constexpr size_t kState = kStratum + kU16;                // uint16_t state: RPY_SD_ST_*
constexpr size_t kMode = kState + kU16;                   // uint16_t mode: RPY_SD_MD_*
constexpr size_t kFlags = kMode + kU16;                   // uint16_t flags
constexpr size_t kReachability = kFlags + kU16;           // uint16_t reachability
constexpr size_t kSinceSample = kReachability + kU16;     // uint32_t since_sample (seconds)
constexpr size_t kOrigLatestMeas = kSinceSample + kU32;   // Float orig_latest_meas
constexpr size_t kLatestMeas = kOrigLatestMeas + kFloat;  // Float latest_meas
constexpr size_t kLatestMeasErr = kLatestMeas + kFloat;   // Float latest_meas_err
constexpr size_t kEor = kLatestMeasErr + kFloat;
}  // namespace rpy_source_data
static_assert(rpy_source_data::kEor == 48);

namespace rpy_tracking {                                            // RPY_Tracking
constexpr size_t kRefId = 0;                                        // uint32_t ref_id
constexpr size_t kIpAddr = kRefId + kU32;                           // IPAddr ip_addr
constexpr size_t kStratum = kIpAddr + ip_addr::kSize;               // uint16_t stratum
constexpr size_t kLeapStatus = kStratum + kU16;                     // uint16_t leap_status
constexpr size_t kRefTime = kLeapStatus + kU16;                     // Timespec ref_time
constexpr size_t kCurrentCorrection = kRefTime + time_spec::kSize;  // Float current_correction
constexpr size_t kLastOffset = kCurrentCorrection + kFloat;         // Float last_offset
constexpr size_t kRmsOffset = kLastOffset + kFloat;                 // Float rms_offset
constexpr size_t kFreqPpm = kRmsOffset + kFloat;                    // Float freq_ppm
constexpr size_t kResidFreqPpm = kFreqPpm + kFloat;                 // Float resid_freq_ppm
constexpr size_t kSkewPpm = kResidFreqPpm + kFloat;                 // Float skew_ppm
constexpr size_t kRootDelay = kSkewPpm + kFloat;                    // Float root_delay
constexpr size_t kRootDispersion = kRootDelay + kFloat;             // Float root_dispersion
constexpr size_t kLastUpdateInterval = kRootDispersion + kFloat;    // Float last_update_interval
constexpr size_t kEor = kLastUpdateInterval + kFloat;
}  // namespace rpy_tracking
static_assert(rpy_tracking::kEor == 76);

namespace rpy_sourcestats {                             // RPY_Sourcestats
constexpr size_t kRefId = 0;                            // uint32_t ref_id
constexpr size_t kIpAddr = kRefId + kU32;               // IPAddr ip_addr
constexpr size_t kNSamples = kIpAddr + ip_addr::kSize;  // uint32_t n_samples
constexpr size_t kNRuns = kNSamples + kU32;             // uint32_t n_runs
constexpr size_t kSpanSeconds = kNRuns + kU32;          // uint32_t span_seconds
constexpr size_t kSd = kSpanSeconds + kU32;             // Float sd
constexpr size_t kResidFreqPpm = kSd + kFloat;          // Float resid_freq_ppm
constexpr size_t kSkewPpm = kResidFreqPpm + kFloat;     // Float skew_ppm
constexpr size_t kEstOffset = kSkewPpm + kFloat;        // Float est_offset
constexpr size_t kEstOffsetErr = kEstOffset + kFloat;   // Float est_offset_err
constexpr size_t kEor = kEstOffsetErr + kFloat;
}  // namespace rpy_sourcestats
static_assert(rpy_sourcestats::kEor == 56);

namespace rpy_ntp_source_name {  // RPY_NTPSourceName
constexpr size_t kName = 0;      // uint8_t name[256], NUL-terminated
constexpr size_t kNameBytes = 256;
constexpr size_t kEor = kName + kNameBytes;
}  // namespace rpy_ntp_source_name

}  // namespace candm

constexpr size_t kRequestHeaderLength = candm::cmd_request::kData;
constexpr size_t kReplyHeaderLength = candm::cmd_reply::kData;

// Request codes (candm.h REQ_*).
constexpr uint16_t kReqNSources = 14;
constexpr uint16_t kReqSourceData = 15;
constexpr uint16_t kReqTracking = 33;
constexpr uint16_t kReqSourcestats = 34;
constexpr uint16_t kReqNtpSourceName = 65;

// Reply codes (candm.h RPY_*).
constexpr uint16_t kRpyNSources = 2;
constexpr uint16_t kRpySourceData = 3;
constexpr uint16_t kRpyTracking = 5;
constexpr uint16_t kRpySourcestats = 6;
constexpr uint16_t kRpyNtpSourceName = 19;

// Status codes (candm.h STT_*).
constexpr uint16_t kSttSuccess = 0;
constexpr uint16_t kSttNoSuchSource = 4;

// Reply lengths: header + body up to its EOR marker.
constexpr size_t kNSourcesReplyLength = kReplyHeaderLength + candm::rpy_n_sources::kEor;
constexpr size_t kSourceDataReplyLength = kReplyHeaderLength + candm::rpy_source_data::kEor;
constexpr size_t kTrackingReplyLength = kReplyHeaderLength + candm::rpy_tracking::kEor;
constexpr size_t kSourcestatsReplyLength = kReplyHeaderLength + candm::rpy_sourcestats::kEor;
constexpr size_t kNtpSourceNameReplyLength = kReplyHeaderLength + candm::rpy_ntp_source_name::kEor;

// IPAddr family codes (addressing.h IPADDR_*).
constexpr uint16_t kFamilyUnspec = 0;
constexpr uint16_t kFamilyInet4 = 1;
constexpr uint16_t kFamilyInet6 = 2;
constexpr uint16_t kFamilyId = 3;  // refclock: the address is a reference id

struct IpAddr {
  uint16_t family = kFamilyUnspec;
  uint8_t bytes[candm::ip_addr::kAddrBytes] = {};  // in4/id: first 4 bytes, network order
};

// Text of an address as chronyc prints it: dotted quad, IPv6, a refclock's
// reference id as ASCII (e.g. "PPS0"), or "" for an unspecified address.
std::string FormatIpAddr(const IpAddr& a);
// Reference id as four ASCII characters when printable, else hex "7F7F0101".
std::string RefIdText(uint32_t ref_id);

// chrony's 32-bit float (util.c UTI_FloatNetworkToHost), from the raw
// big-endian word already converted to host order.
double DecodeFloat(uint32_t raw);
// The inverse, for tests and fixtures (UTI_FloatHostToNetwork).
uint32_t EncodeFloat(double x);

struct ReplyHeader {
  uint8_t version = 0;
  uint8_t pkt_type = 0;
  uint16_t command = 0;
  uint16_t reply = 0;
  uint16_t status = 0;
  uint32_t sequence = 0;
};

// Human name of a STT_* status code ("no such source", "unauthorised", ...).
std::string StatusText(uint16_t status);

// Reads the 28-byte header without judging it (the client uses it to match
// sequence numbers before parsing the body).
Result<ReplyHeader> ParseReplyHeader(std::span<const uint8_t> reply);

// Builds a request for `command` with `data` (the command's body), padded to
// the length of the reply `command` gets.
std::vector<uint8_t> BuildRequest(uint16_t command, uint32_t sequence, uint16_t attempt,
                                  std::span<const uint8_t> data);
std::vector<uint8_t> BuildTrackingRequest(uint32_t sequence, uint16_t attempt = 0);
std::vector<uint8_t> BuildNSourcesRequest(uint32_t sequence, uint16_t attempt = 0);
std::vector<uint8_t> BuildSourceDataRequest(uint32_t sequence, int32_t index, uint16_t attempt = 0);
std::vector<uint8_t> BuildSourcestatsRequest(uint32_t sequence, uint32_t index,
                                             uint16_t attempt = 0);
std::vector<uint8_t> BuildNtpSourceNameRequest(uint32_t sequence, const IpAddr& addr,
                                               uint16_t attempt = 0);

// One source as RPY_SOURCE_DATA carries it.
struct SourceData {
  IpAddr address;
  ChronySource source;  // address/name filled with FormatIpAddr
};

// One RPY_SOURCESTATS reply.
struct Sourcestats {
  uint32_t ref_id = 0;
  IpAddr address;
  uint32_t samples = 0;
  uint32_t runs = 0;
  uint32_t span_s = 0;
  double std_dev_s = 0;
  double resid_freq_ppm = 0;
  double skew_ppm = 0;
  double est_offset_s = 0;
  double est_offset_err_s = 0;
};

// Parsers of whole reply datagrams. Each checks version 6, packet type 2,
// the command and reply code it expects, status success and the length.
// ChronyTracking.system_time_offset_s is local - true (positive = fast), the
// negation of chronyd's "current correction" (which `chronyc -c tracking`
// prints as is); frequency_ppm is chronyd's value as chronyc prints it
// (positive = "fast", negative = "slow").
Result<ChronyTracking> ParseTrackingReply(std::span<const uint8_t> reply);
Result<uint32_t> ParseNSourcesReply(std::span<const uint8_t> reply);
Result<SourceData> ParseSourceDataReply(std::span<const uint8_t> reply);
Result<Sourcestats> ParseSourcestatsReply(std::span<const uint8_t> reply);
// The configured name of an NTP source (NUL-terminated in a 256-byte field).
Result<std::string> ParseNtpSourceNameReply(std::span<const uint8_t> reply);

}  // namespace vmtime::chrony
