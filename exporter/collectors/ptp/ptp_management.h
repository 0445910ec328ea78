// PTP management messages (IEEE 1588-2008 clause 15) as linuxptp's ptp4l
// speaks them on its UNIX datagram socket: building GET requests and
// parsing RESPONSE messages, pure functions over bytes (no I/O), so the
// collector's client (ptp_client.h), the unit tests and the fuzzer share
// them.
//
// Wire layout (all fields big-endian):
//   bytes  0..33  common header: messageType 0xD (low nibble of byte 0),
//                 versionPTP 2 (low nibble of byte 1), messageLength (2..3),
//                 domainNumber (4), sourcePortIdentity (20..29),
//                 sequenceId (30..31), controlField 0x04 (32), 0x7F (33)
//   bytes 34..47  management body: targetPortIdentity (34..43),
//                 startingBoundaryHops (44), boundaryHops (45),
//                 actionField (low nibble of 46: 0 GET, 2 RESPONSE), 47 reserved
//   bytes 48..    one TLV: tlvType (2; 0x0001 MANAGEMENT, 0x0002
//                 MANAGEMENT_ERROR_STATUS), lengthField (2; bytes after it),
//                 managementId (2), then the data set.
// A GET goes to the wildcard target (all ones) with boundary hops 0, so only
// the ptp4l behind the socket answers (never forwarded to the network), and,
// as linuxptp's pmc does, carries a zeroed data field of the data set's size.
//
// Every malformed reply is an Error whose message names what is wrong
// ("short message", "TLV length past the end", "wrong sequence id", ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "exporter/core/result.h"
#include "exporter/model/observations.h"

namespace vmtime::ptp {

// Management ids (IEEE 1588-2008 table 40; TIME_STATUS_NP is linuxptp's).
inline constexpr uint16_t kIdDefaultDataSet = 0x2000;
inline constexpr uint16_t kIdCurrentDataSet = 0x2001;
inline constexpr uint16_t kIdParentDataSet = 0x2002;
inline constexpr uint16_t kIdTimePropertiesDataSet = 0x2003;
inline constexpr uint16_t kIdPortDataSet = 0x2004;
inline constexpr uint16_t kIdTimeStatusNp = 0xC000;

inline constexpr size_t kHeaderBytes = 34;
inline constexpr size_t kManagementBytes = 48;  // header + management body
inline constexpr size_t kMaxMessageBytes = 1500;

// "CURRENT_DATA_SET", ... or "0x1234" for ids this module does not know.
std::string ManagementIdName(uint16_t id);
// The size of the data set `id` names, 0 for an unknown id.
size_t DataSetBytes(uint16_t id);

// A GET for `management_id` with sequence `sequence` in `domain_number`;
// `source_port_number` identifies the requester (the source clock identity
// is all zeros, as pmc sends it).
std::vector<uint8_t> BuildGetRequest(uint16_t management_id, uint16_t sequence,
                                     uint8_t domain_number, uint16_t source_port_number);

struct ManagementResponse {
  uint16_t sequence = 0;
  uint8_t domain_number = 0;
  std::string source_port_identity;  // "aabbcc.fffe.ddeeff-1"
  int source_port_number = 0;
  uint16_t management_id = 0;
  std::vector<uint8_t> data;  // the data set, lengthField - 2 bytes
};

// The sequence id of a PTP message, or -1 when it is too short to carry
// one (the client uses it to skip late answers to earlier requests).
int MessageSequence(std::span<const uint8_t> message);

// Parses one reply to the GET (`sequence`, `management_id`). Errors name
// the defect: short message, not a management message, PTP version,
// messageLength disagreeing with the datagram, action not RESPONSE, wrong
// sequence id, missing TLV, TLV length past the end, unknown TLV type,
// wrong management id, or ptp4l's own MANAGEMENT_ERROR_STATUS
// ("NOT_SUPPORTED", "WRONG_LENGTH", ...).
Result<ManagementResponse> ParseResponse(std::span<const uint8_t> message, uint16_t sequence,
                                         uint16_t management_id);

// Data-set decoders: each checks the data is at least the data set's size
// ("CURRENT_DATA_SET: 10 bytes, need 18") and fills its part of `out`.
Status DecodeDefaultDataSet(std::span<const uint8_t> data, PtpObservation& out);
Status DecodeCurrentDataSet(std::span<const uint8_t> data, PtpObservation& out);
Status DecodeParentDataSet(std::span<const uint8_t> data, PtpObservation& out);
Status DecodeTimePropertiesDataSet(std::span<const uint8_t> data, PtpObservation& out);
Status DecodeTimeStatusNp(std::span<const uint8_t> data, PtpObservation& out);
Result<PtpPortObservation> DecodePortDataSet(std::span<const uint8_t> data);

// "aabbcc.fffe.ddeeff" for 8 bytes (pmc's format); `bytes` must hold 8.
std::string FormatClockIdentity(std::span<const uint8_t> bytes);

}  // namespace vmtime::ptp
