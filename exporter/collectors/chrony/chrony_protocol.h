// chrony command protocol (cmdmon, "candm"): request encoding and pure reply
// parsers. The layouts follow chrony's candm.h, protocol version 6:
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

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "exporter/core/result.h"
#include "exporter/model/observations.h"

namespace vmtime::chrony {

constexpr uint8_t kProtocolVersion = 6;
constexpr uint8_t kPktTypeRequest = 1;
constexpr uint8_t kPktTypeReply = 2;
constexpr size_t kRequestHeaderLength = 20;
constexpr size_t kReplyHeaderLength = 28;

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

// Reply lengths (header + data up to the EOR marker).
constexpr size_t kNSourcesReplyLength = kReplyHeaderLength + 4;
constexpr size_t kSourceDataReplyLength = kReplyHeaderLength + 48;
constexpr size_t kTrackingReplyLength = kReplyHeaderLength + 76;
constexpr size_t kSourcestatsReplyLength = kReplyHeaderLength + 56;
constexpr size_t kNtpSourceNameReplyLength = kReplyHeaderLength + 256;

// IPAddr family codes.
constexpr uint16_t kFamilyUnspec = 0;
constexpr uint16_t kFamilyInet4 = 1;
constexpr uint16_t kFamilyInet6 = 2;
constexpr uint16_t kFamilyId = 3;  // refclock: the address is a reference id

struct IpAddr {
  uint16_t family = kFamilyUnspec;
  uint8_t bytes[16] = {};  // in4/id: first 4 bytes, network order
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
