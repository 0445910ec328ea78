// NTP mode 6 (control messages, RFC 1305 appendix B; RFC 9327): the pure
// part of the ntpd/ntpsec control client. Builds requests, checks and
// reassembles (possibly fragmented) responses, and parses what the
// read-only opcodes return: READSTAT's association list and READVAR's
// "name=value, ..." text. No I/O here; every function takes bytes and
// returns a value or an error naming what was wrong and where (byte offset,
// variable name), so hostile replies are fuzzed (tests/fuzz/ntpd_mode6_fuzz).
//
// Header, 12 octets, network byte order:
//   0: LI(2) VN(3) Mode(3)=6     1: Response(1) Error(1) More(1) Opcode(5)
//   2: sequence   4: status   6: association id   8: offset   10: count
// then `count` octets of data at `offset` within the whole response, padded
// to a multiple of 4 octets (and an optional MAC, ignored).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exporter/core/result.h"

namespace vmtime::ntpd {

inline constexpr uint8_t kOpReadStatus = 1;     // READSTAT
inline constexpr uint8_t kOpReadVariables = 2;  // READVAR
inline constexpr size_t kHeaderSize = 12;
// Reassembled responses larger than this are refused (ntpq stops at 24
// fragments of at most 500 octets).
inline constexpr size_t kMaxResponseBytes = 32 * 1024;
inline constexpr size_t kMaxFragments = 64;

struct Header {
  int version = 0;
  int mode = 0;
  bool response = false;
  bool error = false;
  bool more = false;
  int opcode = 0;
  uint16_t sequence = 0;
  uint16_t status = 0;
  uint16_t association_id = 0;
  uint16_t offset = 0;
  uint16_t count = 0;
};

// A request datagram (version 2, as ntpq sends): `data` is the variable
// list for READVAR ("" asks for the default set), padded with NULs.
std::vector<uint8_t> BuildRequest(uint8_t opcode, uint16_t sequence, uint16_t association_id,
                                  std::string_view data = {});

// Parses and checks the header of one datagram: at least 12 octets, mode 6,
// the response bit set, offset + count within kMaxResponseBytes and count
// within the datagram.
Result<Header> ParseHeader(std::span<const uint8_t> datagram);

// The name of an error code from the high octet of an error response's
// status ("authentication failure", "administratively prohibited", ...).
std::string ErrorCodeName(int code);

// Collects the fragments of one response (matched by opcode, sequence and
// association id) until the data is contiguous from 0 and the fragment
// without the More bit has arrived.
class Reassembly {
 public:
  enum class Outcome { kNotOurs, kIncomplete, kComplete };

  Reassembly(uint8_t opcode, uint16_t sequence, uint16_t association_id);
  // One received datagram. kNotOurs: another request's answer or not a
  // response (`why` says which; the caller keeps waiting). An error: an
  // error response from the server (named: "restricted", "authentication
  // required", ...) or a malformed fragment of ours (overlap, too many
  // fragments, a second last fragment).
  Result<Outcome> Add(std::span<const uint8_t> datagram, std::string* why = nullptr);
  // The whole data once Add returned kComplete.
  std::string data() const;
  // Status word of the response (system status for READSTAT/READVAR of
  // association 0, peer status otherwise).
  uint16_t status() const { return status_; }

 private:
  uint8_t opcode_;
  uint16_t sequence_;
  uint16_t association_id_;
  uint16_t status_ = 0;
  std::map<uint16_t, std::string> fragments_;  // by offset
  std::optional<size_t> total_;                // known once the last fragment arrived
};

// One entry of READSTAT's association list.
struct Association {
  uint16_t id = 0;
  uint16_t status = 0;  // peer status word
};
// READSTAT data: (association id, peer status) pairs of 4 octets.
Result<std::vector<Association>> ParseAssociationList(std::string_view data);

// Fields of the peer status word: flags (configured 0x10, authentication
// enabled 0x08, authentic 0x04, reachable 0x02, broadcast 0x01) in bits
// 15-11 and the selection code in bits 10-8.
struct PeerStatus {
  bool configured = false;
  bool reachable = false;
  int selection = 0;  // 0..7, see SelectionName
};
PeerStatus DecodePeerStatus(uint16_t status);
// "reject", "falsetick", "excess", "outlier", "candidate", "backup",
// "sys.peer", "pps.peer" (ntpq's condition names).
std::string_view SelectionName(int selection);

// READVAR data: "name=value, name="quoted, text", flag,\r\n..." as ordered
// pairs (a name without '=' has an empty value). Items whose name is empty
// or has characters other than [A-Za-z0-9_.\-\[\]] are skipped (ntpsec adds
// random tags). Errors (an unterminated quote, a NUL before the padding)
// name the byte offset.
Result<std::vector<std::pair<std::string, std::string>>> ParseVariables(std::string_view text);

// What the client reads: the system variables...
struct SystemVariables {
  int leap = 0;     // 0 ok, 1 insert, 2 delete, 3 unsynchronised
  int stratum = 0;  // 16 = unsynchronised
  std::string refid;
  double offset_s = 0;  // ntpd's `offset`: server - host (positive = host behind)
  double sys_jitter_s = 0;
  double root_delay_s = 0;
  double root_dispersion_s = 0;
  std::optional<int> precision_log2;
  std::string version;  // ntpd's `version` string when it sends one
};
// ...and a peer's. Times in ntpd's text are milliseconds; these are seconds.
struct PeerVariables {
  std::string address;  // srcadr (and srcport when not 123)
  int stratum = 0;
  int reach = 0;  // 8-bit reachability register
  std::string refid;
  double offset_s = 0;  // server - host
  double delay_s = 0;
  double jitter_s = 0;
};

// From READVAR's variables: leap and stratum are required; a missing
// optional one stays 0; a present one that is not a number is an error
// naming it.
Result<SystemVariables> SystemFromVariables(
    const std::vector<std::pair<std::string, std::string>>& vars);
// srcadr is required.
Result<PeerVariables> PeerFromVariables(
    const std::vector<std::pair<std::string, std::string>>& vars);

}  // namespace vmtime::ntpd
