// NTP packets for SNTP client probes (RFC 5905 / RFC 4330): building a
// mode-3 request and parsing the 48-byte server reply as a pure function.
//
// Timestamps are the raw 64-bit NTP format (seconds since 1900 in the high
// 32 bits, binary fraction in the low 32). Differences between timestamps
// are taken modulo 2^64 and read as signed 32.32 fixed point, so era
// rollover (2036) needs no special case as long as the clocks are within
// 68 years of each other.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "exporter/core/result.h"

namespace vmtime::ntp {

constexpr size_t kNtpPacketLength = 48;
constexpr uint64_t kNtpUnixEpochOffsetS = 2'208'988'800ULL;  // 1900-01-01 to 1970-01-01

// Unix nanoseconds (UTC) to an NTP timestamp and back.
uint64_t UnixNsToNtp(int64_t unix_ns);
// a - b in seconds, both NTP timestamps (signed, era-safe).
double NtpDiffSeconds(uint64_t a, uint64_t b);

// A 48-byte client request (LI 0, VN 4, mode 3) carrying `transmit` as its
// transmit timestamp, which the server must echo as the origin timestamp.
// Every other field is zero.
std::vector<uint8_t> BuildNtpRequest(uint64_t transmit);

// 64 random bits (getrandom(2); never 0) for a request's transmit field. A
// client following RFC 5905 with draft-ietf-ntp-data-minimization does not
// put its clock there: the server only echoes the field as origin, so random
// bits leak nothing about the host's clock and make a reply that does not
// echo them (stale, spoofed, off-path guessed) recognisable. The host's own
// send time t1 is kept locally for the offset.
uint64_t RandomTransmitBits();

struct NtpReply {
  int leap = 0;  // LI: 0 none, 1 +1 s, 2 -1 s, 3 unsynchronised
  int version = 0;
  int mode = 0;
  int stratum = 0;  // 0 = kiss-o'-death, 16 = unsynchronised
  int poll_log2 = 0;
  int precision_log2 = 0;
  double root_delay_s = 0;
  double root_dispersion_s = 0;
  uint32_t reference_id = 0;
  uint64_t reference_ts = 0;
  uint64_t origin_ts = 0;
  uint64_t receive_ts = 0;   // t2, server clock
  uint64_t transmit_ts = 0;  // t3, server clock
  std::string kiss_code;     // stratum 0: the four ASCII characters ("RATE", "DENY", ...)
};

// Parses a reply to the request whose transmit timestamp was
// `expected_origin`. Errors name the problem: "truncated NTP packet: 20
// bytes, need 48", "not a server reply (mode 3)", "origin timestamp
// mismatch: the reply echoes <hex>, our request carried <hex> ...", "bad version 7", "zero transmit
// timestamp". A kiss-o'-death (stratum 0) parses successfully with kiss_code set: the caller
// decides.
Result<NtpReply> ParseNtpPacket(std::span<const uint8_t> packet, uint64_t expected_origin);

// Offset and round trip from one exchange. t1/t4 are the host's send and
// receive times as NTP timestamps. offset = ((t2 - t1) + (t3 - t4)) / 2 is
// server - host (positive = host behind); delay = (t4 - t1) - (t3 - t2).
struct NtpTiming {
  double offset_s = 0;
  double delay_s = 0;
};
NtpTiming ComputeTiming(const NtpReply& reply, uint64_t t1, uint64_t t4);

}  // namespace vmtime::ntp
