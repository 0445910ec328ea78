// Parser for `ntpq -c rv` (ntpd / ntpsec system variables); see parsers.h.
//
// The output is "key=value" pairs separated by ", " over several lines. A
// value may itself hold ", " (the status word "0615 leap_none, sync_ntp,
// ..." or "reftime=e4f6a0b1.2c3d4e5f  Mon, Sep 20 2021 ...") or be quoted,
// so a value ends only at a comma, space or line end followed by the next
// "key=" ("associd=0 status=0615 ...").
#include <map>
#include <string>

#include "exporter/collectors/guest_status/parse_text.h"
#include "exporter/collectors/guest_status/parsers.h"

namespace vmtime::guest_status {
namespace {

constexpr std::string_view kCmd = "ntpq -c rv";

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// Length of "key=" at s[pos..] (key of key characters, not starting with a
// digit), or 0.
size_t KeyAt(std::string_view s, size_t pos) {
  size_t i = pos;
  while (i < s.size() && IsKeyChar(s[i])) ++i;
  if (i == pos || i >= s.size() || s[i] != '=') return 0;
  if (s[pos] >= '0' && s[pos] <= '9') return 0;
  return i - pos + 1;
}

std::map<std::string, std::string, std::less<>> ParsePairs(std::string_view text) {
  std::map<std::string, std::string, std::less<>> kv;
  size_t pos = 0;
  auto skip_sep = [&] {
    while (pos < text.size() &&
           (text[pos] == ' ' || text[pos] == ',' || text[pos] == '\t' || text[pos] == '\n')) {
      ++pos;
    }
  };
  while (true) {
    skip_sep();
    if (pos >= text.size()) break;
    size_t klen = KeyAt(text, pos);
    if (klen == 0) {  // not a key: skip to the next separator
      while (pos < text.size() && text[pos] != ',' && text[pos] != ' ' && text[pos] != '\n') ++pos;
      continue;
    }
    std::string key(text.substr(pos, klen - 1));
    pos += klen;
    std::string_view value;
    if (pos < text.size() && text[pos] == '"') {
      size_t end = text.find('"', pos + 1);
      if (end == std::string_view::npos) end = text.size();
      value = text.substr(pos + 1, end - pos - 1);
      pos = end == text.size() ? end : end + 1;
    } else {
      size_t start = pos;
      size_t end = text.size();
      for (size_t i = pos; i < text.size(); ++i) {
        if (text[i] != ',' && text[i] != '\n' && text[i] != ' ') continue;
        size_t j = i + 1;
        while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\n')) ++j;
        if (j >= text.size() || KeyAt(text, j) > 0) {
          end = i;
          break;
        }
      }
      value = Trim(text.substr(start, end - start));
      pos = end;
    }
    kv.emplace(std::move(key), std::string(value));  // first occurrence wins
  }
  return kv;
}

Error KeyError(std::string_view key, std::string_view what, std::string_view value) {
  return Error{std::string(kCmd) + ": " + std::string(key) + "= " + std::string(what) + ": " +
               Quote(value)};
}

// The leap indicator of the status word (its top two bits, 4 hex digits),
// e.g. "0618 leap_none, sync_ntp, ..." -> 0; nullopt when not a status word.
std::optional<int> LeapOfStatusWord(std::string_view status_text) {
  auto word = SplitOn(Trim(status_text), ' ')[0];
  if (word.empty() || word.size() > 4) return std::nullopt;
  unsigned value = 0;
  for (char c : word) {
    int d = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                     : -1;
    if (d < 0) return std::nullopt;
    value = value * 16 + static_cast<unsigned>(d);
  }
  return static_cast<int>((value >> 14) & 3);
}

// leap= as two binary digits (00 .. 11) or one decimal digit; without it,
// the status word's leap bits; nullopt when neither says.
Result<std::optional<int>> ReadLeap(const std::map<std::string, std::string, std::less<>>& kv) {
  if (auto it = kv.find("leap"); it != kv.end()) {
    std::string_view v = Trim(it->second);
    if (v.size() == 2 && (v[0] == '0' || v[0] == '1') && (v[1] == '0' || v[1] == '1')) {
      return std::optional<int>((v[0] - '0') * 2 + (v[1] - '0'));
    }
    if (auto n = ParseInt(v); n && *n >= 0 && *n <= 3) {
      return std::optional<int>(static_cast<int>(*n));
    }
    return KeyError("leap", "is not 00, 01, 10 or 11", it->second);
  }
  if (auto it = kv.find("status"); it != kv.end()) return LeapOfStatusWord(it->second);
  return std::optional<int>();
}

}  // namespace

Result<GuestStatusObservation> ParseNtpqRv(std::string_view out) {
  // Join lines (CRLF tolerated) so pairs may wrap anywhere.
  std::string text;
  for (auto l : SplitLines(out)) {
    text.append(l);
    text.push_back('\n');
  }
  if (Trim(text).empty()) return Error{std::string(kCmd) + ": empty output"};
  auto kv = ParsePairs(text);

  GuestStatusObservation obs;
  obs.daemon = "ntpd";

  auto stratum_it = kv.find("stratum");
  if (stratum_it == kv.end()) {
    return Error{std::string(kCmd) +
                 ": no stratum= in the output (truncated or not ntpq rv): " + Quote(Trim(text))};
  }
  auto stratum = ParseInt(stratum_it->second);
  if (!stratum) return KeyError("stratum", "is not an integer", stratum_it->second);
  if (*stratum < 0 || *stratum > 255)
    return KeyError("stratum", "is out of range 0..255", stratum_it->second);
  obs.status.stratum = static_cast<int>(*stratum);

  auto leap = ReadLeap(kv);
  if (!leap) return leap.error();
  if (*leap) obs.status.leap = static_cast<scoring::LeapStatus>(**leap);
  const std::string status_text = kv.contains("status") ? kv.at("status") : std::string();

  if (auto it = kv.find("refid"); it != kv.end() && !Trim(it->second).empty()) {
    obs.reference = std::string(Trim(it->second));
  }
  auto ms = [&](std::string_view key) -> Result<std::optional<double>> {
    auto it = kv.find(key);
    if (it == kv.end()) return std::optional<double>();
    auto v = ParseDouble(it->second);
    if (!v) return KeyError(key, "is not a number", it->second);
    return std::optional<double>(*v / 1e3);
  };
  auto offset = ms("offset");
  if (!offset) return offset.error();
  // ntpd: offset of the reference relative to this host; negate for guest - reference.
  if (*offset) obs.last_offset_s = -**offset;
  auto delay = ms("rootdelay");
  if (!delay) return delay.error();
  obs.root_delay_s = *delay;
  auto disp = ms("rootdisp");
  if (!disp) return disp.error();
  obs.root_dispersion_s = *disp;

  bool unsynced = (*leap && **leap == 3) || *stratum == 0 || *stratum >= 16 ||
                  status_text.find("sync_unspec") != std::string::npos ||
                  status_text.find("leap_alarm") != std::string::npos;
  obs.status.state =
      unsynced ? scoring::SyncState::kUnsynchronised : scoring::SyncState::kSynchronised;
  return obs;
}

}  // namespace vmtime::guest_status
