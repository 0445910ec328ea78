// NTP mode 6 messages: requests, reassembly and parsers (see the header).
#include "exporter/collectors/ntpd/mode6.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace vmtime::ntpd {
namespace {

uint16_t Get16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>((b[at] << 8) | b[at + 1]);
}

void Put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// A printable rendering of a value for error messages (bounded, no control
// characters from a hostile reply reach the log).
std::string Quote(std::string_view v) {
  std::string out = "\"";
  for (size_t i = 0; i < v.size() && i < 40; ++i) {
    const unsigned char c = static_cast<unsigned char>(v[i]);
    out += c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?';
  }
  if (v.size() > 40) out += "...";
  return out + "\"";
}

const std::string* Find(const std::vector<std::pair<std::string, std::string>>& vars,
                        std::string_view name) {
  for (const auto& [k, v] : vars) {
    if (k == name) return &v;
  }
  return nullptr;
}

Result<double> ParseNumber(std::string_view name, std::string_view value) {
  const std::string s(Trim(value));
  if (s.empty()) return Error{"variable " + std::string(name) + ": empty value"};
  errno = 0;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(d)) {
    return Error{"variable " + std::string(name) + ": not a number: " + Quote(value)};
  }
  return d;
}

Result<long> ParseInteger(std::string_view name, std::string_view value, long lo, long hi) {
  const std::string s(Trim(value));
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 0);  // ntpd writes reach as 0x.. hex
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE || v < lo || v > hi) {
    return Error{"variable " + std::string(name) + ": not an integer in [" + std::to_string(lo) +
                 ", " + std::to_string(hi) + "]: " + Quote(value)};
  }
  return v;
}

// Optional numeric variable in milliseconds, stored in seconds.
Status Millis(const std::vector<std::pair<std::string, std::string>>& vars, std::string_view name,
              double& out_s) {
  const std::string* v = Find(vars, name);
  if (v == nullptr) return Status::Ok();
  auto d = ParseNumber(name, *v);
  if (!d) return d.error();
  out_s = *d / 1000.0;
  return Status::Ok();
}

std::string Unquote(std::string_view v) {
  v = Trim(v);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return std::string(v);
}

}  // namespace

std::vector<uint8_t> BuildRequest(uint8_t opcode, uint16_t sequence, uint16_t association_id,
                                  std::string_view data) {
  const size_t padded = (data.size() + 3) / 4 * 4;
  std::vector<uint8_t> b(kHeaderSize + padded, 0);
  b[0] = (0 << 6) | (2 << 3) | 6;  // LI 0, version 2, mode 6
  b[1] = opcode & 0x1f;
  Put16(b, 2, sequence);
  Put16(b, 6, association_id);
  Put16(b, 10, static_cast<uint16_t>(data.size()));
  for (size_t i = 0; i < data.size(); ++i) b[kHeaderSize + i] = static_cast<uint8_t>(data[i]);
  return b;
}

Result<Header> ParseHeader(std::span<const uint8_t> d) {
  if (d.size() < kHeaderSize) {
    return Error{"reply of " + std::to_string(d.size()) +
                 " octets, shorter than the 12-octet header"};
  }
  Header h;
  h.version = (d[0] >> 3) & 7;
  h.mode = d[0] & 7;
  h.response = (d[1] & 0x80) != 0;
  h.error = (d[1] & 0x40) != 0;
  h.more = (d[1] & 0x20) != 0;
  h.opcode = d[1] & 0x1f;
  h.sequence = Get16(d, 2);
  h.status = Get16(d, 4);
  h.association_id = Get16(d, 6);
  h.offset = Get16(d, 8);
  h.count = Get16(d, 10);
  if (h.mode != 6) return Error{"byte 0: mode " + std::to_string(h.mode) + ", not 6 (control)"};
  if (h.version < 1 || h.version > 4) {
    return Error{"byte 0: version " + std::to_string(h.version) + " out of 1..4"};
  }
  if (!h.response) return Error{"byte 1: response bit not set"};
  if (static_cast<size_t>(h.offset) + h.count > kMaxResponseBytes) {
    return Error{"bytes 8-11: offset " + std::to_string(h.offset) + " + count " +
                 std::to_string(h.count) + " beyond " + std::to_string(kMaxResponseBytes)};
  }
  if (kHeaderSize + h.count > d.size()) {
    return Error{"bytes 10-11: count " + std::to_string(h.count) + " but only " +
                 std::to_string(d.size() - kHeaderSize) + " data octets"};
  }
  return h;
}

std::string ErrorCodeName(int code) {
  switch (code) {
    case 0:
      return "unspecified error";
    case 1:
      return "authentication failure (the server wants an authenticated request)";
    case 2:
      return "invalid message length or format";
    case 3:
      return "invalid opcode";
    case 4:
      return "unknown association identifier";
    case 5:
      return "unknown variable name";
    case 6:
      return "invalid variable value";
    case 7:
      return "administratively prohibited (restricted)";
    default:
      return "error code " + std::to_string(code);
  }
}

Reassembly::Reassembly(uint8_t opcode, uint16_t sequence, uint16_t association_id)
    : opcode_(opcode), sequence_(sequence), association_id_(association_id) {}

Result<Reassembly::Outcome> Reassembly::Add(std::span<const uint8_t> datagram, std::string* why) {
  auto h = ParseHeader(datagram);
  if (!h) {
    if (why) *why = h.error().message;
    return Outcome::kNotOurs;
  }
  if (h->sequence != sequence_ || h->opcode != opcode_) {
    if (why) {
      *why = "sequence " + std::to_string(h->sequence) + " opcode " + std::to_string(h->opcode) +
             ", waiting for sequence " + std::to_string(sequence_) + " opcode " +
             std::to_string(opcode_);
    }
    return Outcome::kNotOurs;
  }
  if (h->error) {
    return Error{"error response: " + ErrorCodeName(h->status >> 8)};
  }
  if (h->association_id != association_id_) {
    return Error{"bytes 6-7: answer for association " + std::to_string(h->association_id) +
                 ", asked for " + std::to_string(association_id_)};
  }
  const std::string where = "fragment at offset " + std::to_string(h->offset);
  if (fragments_.contains(h->offset)) return Outcome::kIncomplete;  // a duplicate
  if (fragments_.size() >= kMaxFragments) {
    return Error{where + ": more than " + std::to_string(kMaxFragments) + " fragments"};
  }
  const size_t end = static_cast<size_t>(h->offset) + h->count;
  if (!h->more) {
    if (total_ && *total_ != end) return Error{where + ": a second last fragment"};
    total_ = end;
  }
  if (total_ && end > *total_) return Error{where + ": data beyond the last fragment"};
  // Overlap with a neighbour (fragments are disjoint ranges).
  auto next = fragments_.upper_bound(h->offset);
  if (next != fragments_.end() && next->first < end) return Error{where + ": overlaps another"};
  if (next != fragments_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.size() > h->offset) return Error{where + ": overlaps another"};
  }
  status_ = h->status;
  const auto* data = reinterpret_cast<const char*>(datagram.data() + kHeaderSize);
  fragments_.emplace(h->offset, std::string(data, h->count));
  if (!total_) return Outcome::kIncomplete;
  size_t covered = 0;
  for (const auto& [off, bytes] : fragments_) {
    if (off != covered) return Outcome::kIncomplete;
    covered += bytes.size();
  }
  return covered == *total_ ? Outcome::kComplete : Outcome::kIncomplete;
}

std::string Reassembly::data() const {
  std::string out;
  for (const auto& [off, bytes] : fragments_) out += bytes;
  return out;
}

Result<std::vector<Association>> ParseAssociationList(std::string_view data) {
  if (data.size() % 4 != 0) {
    return Error{"association list of " + std::to_string(data.size()) +
                 " octets, not a multiple of 4"};
  }
  std::vector<Association> out;
  const std::span<const uint8_t> b(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  for (size_t i = 0; i < b.size(); i += 4) {
    Association a{Get16(b, i), Get16(b, i + 2)};
    if (a.id == 0) return Error{"association list octet " + std::to_string(i) + ": id 0"};
    out.push_back(a);
  }
  return out;
}

PeerStatus DecodePeerStatus(uint16_t status) {
  PeerStatus p;
  const int flags = status >> 11;
  p.configured = (flags & 0x10) != 0;
  p.reachable = (flags & 0x02) != 0;
  p.selection = (status >> 8) & 7;
  return p;
}

std::string_view SelectionName(int selection) {
  static constexpr std::string_view kNames[] = {"reject",    "falsetick", "excess",   "outlier",
                                                "candidate", "backup",    "sys.peer", "pps.peer"};
  return selection >= 0 && selection < 8 ? kNames[selection] : "unknown";
}

Result<std::vector<std::pair<std::string, std::string>>> ParseVariables(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  // ntpd pads the data with NULs to a multiple of 4: only trailing ones.
  while (!text.empty() && text.back() == '\0') text.remove_suffix(1);
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return Error{"variables: NUL at octet " + std::to_string(nul)};
  }
  size_t i = 0;
  while (i < text.size()) {
    // One item runs to the next comma outside quotes.
    const size_t start = i;
    bool quoted = false;
    while (i < text.size() && (quoted || text[i] != ',')) {
      if (text[i] == '"') quoted = !quoted;
      ++i;
    }
    if (quoted) return Error{"variables: unterminated quote from octet " + std::to_string(start)};
    const std::string_view item = Trim(text.substr(start, i - start));
    if (i < text.size()) ++i;  // the comma
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string_view name = Trim(item.substr(0, eq));
    // ntpsec mixes randomly named variables into its answers (against
    // fingerprinting); a name outside the usual characters is skipped, not
    // fatal: only the variables read later matter, and they are checked.
    bool ok_name = !name.empty();
    for (char c : name) {
      ok_name =
          ok_name && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '-' || c == '[' || c == ']');
    }
    if (!ok_name) continue;
    const std::string value = eq == std::string_view::npos ? "" : Unquote(item.substr(eq + 1));
    out.emplace_back(std::string(name), value);
    if (out.size() > 1024) return Error{"variables: more than 1024"};
  }
  return out;
}

Result<SystemVariables> SystemFromVariables(
    const std::vector<std::pair<std::string, std::string>>& vars) {
  SystemVariables s;
  const std::string* leap = Find(vars, "leap");
  if (leap == nullptr) return Error{"system variables: no leap"};
  auto l = ParseInteger("leap", *leap, 0, 3);
  if (!l) return l.error();
  s.leap = static_cast<int>(*l);
  const std::string* stratum = Find(vars, "stratum");
  if (stratum == nullptr) return Error{"system variables: no stratum"};
  auto st = ParseInteger("stratum", *stratum, 0, 255);
  if (!st) return st.error();
  s.stratum = static_cast<int>(*st);
  if (const std::string* r = Find(vars, "refid")) s.refid = *r;
  if (const std::string* v = Find(vars, "version")) s.version = *v;
  if (const std::string* p = Find(vars, "precision")) {
    auto pr = ParseInteger("precision", *p, -128, 127);
    if (!pr) return pr.error();
    s.precision_log2 = static_cast<int>(*pr);
  }
  for (auto [name, field] : {std::pair{"offset", &s.offset_s},
                             {"sys_jitter", &s.sys_jitter_s},
                             {"rootdelay", &s.root_delay_s},
                             {"rootdisp", &s.root_dispersion_s}}) {
    if (Status st2 = Millis(vars, name, *field); !st2) return st2.error();
  }
  return s;
}

Result<PeerVariables> PeerFromVariables(
    const std::vector<std::pair<std::string, std::string>>& vars) {
  PeerVariables p;
  const std::string* src = Find(vars, "srcadr");
  if (src == nullptr || src->empty()) return Error{"peer variables: no srcadr"};
  p.address = *src;
  if (const std::string* port = Find(vars, "srcport")) {
    auto pt = ParseInteger("srcport", *port, 0, 65535);
    if (!pt) return pt.error();
    if (*pt != 123 && *pt != 0) p.address += ":" + std::to_string(*pt);
  }
  if (const std::string* st = Find(vars, "stratum")) {
    auto v = ParseInteger("stratum", *st, 0, 255);
    if (!v) return v.error();
    p.stratum = static_cast<int>(*v);
  }
  if (const std::string* r = Find(vars, "reach")) {
    auto v = ParseInteger("reach", *r, 0, 255);
    if (!v) return v.error();
    p.reach = static_cast<int>(*v);
  }
  if (const std::string* r = Find(vars, "refid")) p.refid = *r;
  for (auto [name, field] :
       {std::pair{"offset", &p.offset_s}, {"delay", &p.delay_s}, {"jitter", &p.jitter_s}}) {
    if (Status st = Millis(vars, name, *field); !st) return st.error();
  }
  return p;
}

}  // namespace vmtime::ntpd
