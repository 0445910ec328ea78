// NTP packet encoding and the pure reply parser (see the header).
#include "exporter/collectors/ntp/ntp_packet.h"

#include <sys/random.h>

#include <cmath>
#include <cstdio>
#include <random>

namespace vmtime::ntp {
namespace {

uint32_t U32(std::span<const uint8_t> b, size_t off) {
  return (static_cast<uint32_t>(b[off]) << 24) | (static_cast<uint32_t>(b[off + 1]) << 16) |
         (static_cast<uint32_t>(b[off + 2]) << 8) | static_cast<uint32_t>(b[off + 3]);
}
uint64_t U64(std::span<const uint8_t> b, size_t off) {
  return (static_cast<uint64_t>(U32(b, off)) << 32) | U32(b, off + 4);
}
// NTP short format (16.16 unsigned seconds).
double Short(uint32_t x) { return static_cast<double>(x) / 65536.0; }

}  // namespace

uint64_t UnixNsToNtp(int64_t unix_ns) {
  // Floor division so negative (pre-1970) values still map correctly.
  int64_t sec = unix_ns / 1'000'000'000;
  int64_t ns = unix_ns % 1'000'000'000;
  if (ns < 0) {
    ns += 1'000'000'000;
    --sec;
  }
  const uint64_t ntp_sec = static_cast<uint64_t>(sec) + kNtpUnixEpochOffsetS;
  const uint64_t frac = (static_cast<uint64_t>(ns) << 32) / 1'000'000'000ULL;
  return (ntp_sec << 32) | (frac & 0xffffffffULL);
}

double NtpDiffSeconds(uint64_t a, uint64_t b) {
  const auto d = static_cast<int64_t>(a - b);  // modulo 2^64, signed 32.32
  return std::ldexp(static_cast<double>(d), -32);
}

std::vector<uint8_t> BuildNtpRequest(uint64_t transmit) {
  std::vector<uint8_t> p(kNtpPacketLength, 0);
  p[0] = (0 << 6) | (4 << 3) | 3;  // LI 0, VN 4, mode 3 (client)
  for (int i = 0; i < 8; ++i) p[40 + i] = static_cast<uint8_t>(transmit >> (56 - 8 * i));
  return p;
}

uint64_t RandomTransmitBits() {
  uint64_t bits = 0;
  while (bits == 0) {
    if (::getrandom(&bits, sizeof bits, 0) != static_cast<ssize_t>(sizeof bits)) {
      // No getrandom (or interrupted): the C++ library's entropy source.
      std::random_device rd;
      bits = (static_cast<uint64_t>(rd()) << 32) | rd();
    }
  }
  return bits;
}

Result<NtpReply> ParseNtpPacket(std::span<const uint8_t> packet, uint64_t expected_origin) {
  if (packet.size() < kNtpPacketLength) {
    return Error{"truncated NTP packet: " + std::to_string(packet.size()) + " bytes, need 48"};
  }
  NtpReply r;
  r.leap = packet[0] >> 6;
  r.version = (packet[0] >> 3) & 7;
  r.mode = packet[0] & 7;
  if (r.version < 1 || r.version > 4) {
    return Error{"bad NTP version " + std::to_string(r.version)};
  }
  if (r.mode != 4) {
    return Error{"not a server reply (mode " + std::to_string(r.mode) + ", expected 4)"};
  }
  r.stratum = packet[1];
  r.poll_log2 = static_cast<int8_t>(packet[2]);
  r.precision_log2 = static_cast<int8_t>(packet[3]);
  r.root_delay_s = Short(U32(packet, 4));
  r.root_dispersion_s = Short(U32(packet, 8));
  r.reference_id = U32(packet, 12);
  r.reference_ts = U64(packet, 16);
  r.origin_ts = U64(packet, 24);
  r.receive_ts = U64(packet, 32);
  r.transmit_ts = U64(packet, 40);
  if (r.origin_ts != expected_origin) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "origin timestamp mismatch: the reply echoes %016llx, our request carried "
                  "%016llx (not a reply to our request)",
                  static_cast<unsigned long long>(r.origin_ts),
                  static_cast<unsigned long long>(expected_origin));
    return Error{buf};
  }
  if (r.stratum == 0) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      const auto c = static_cast<unsigned char>(r.reference_id >> shift);
      if (c == 0) break;
      r.kiss_code.push_back(c >= 0x20 && c <= 0x7e ? static_cast<char>(c) : '?');
    }
    if (r.kiss_code.empty()) r.kiss_code = "????";
    return r;
  }
  if (r.transmit_ts == 0) return Error{"zero transmit timestamp in NTP reply"};
  if (r.receive_ts == 0) return Error{"zero receive timestamp in NTP reply"};
  return r;
}

NtpTiming ComputeTiming(const NtpReply& reply, uint64_t t1, uint64_t t4) {
  // All differences relative to t1 to stay in one era.
  const double t2 = NtpDiffSeconds(reply.receive_ts, t1);
  const double t3 = NtpDiffSeconds(reply.transmit_ts, t1);
  const double t4r = NtpDiffSeconds(t4, t1);
  NtpTiming t;
  t.offset_s = (t2 + (t3 - t4r)) / 2;
  t.delay_s = t4r - (t3 - t2);
  return t;
}

}  // namespace vmtime::ntp
