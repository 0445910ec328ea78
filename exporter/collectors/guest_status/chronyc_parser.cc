// Parser for `chronyc -c tracking` (CSV) output; see parsers.h.
#include <array>
#include <string>

#include "exporter/collectors/guest_status/parse_text.h"
#include "exporter/collectors/guest_status/parsers.h"

namespace vmtime::guest_status {
namespace {

constexpr std::string_view kCmd = "chronyc -c tracking";
constexpr size_t kFields = 14;
constexpr std::array<std::string_view, kFields> kFieldNames = {
    "reference id", "reference name",  "stratum",         "reference time",     "system time",
    "last offset",  "rms offset",      "frequency",       "residual frequency", "skew",
    "root delay",   "root dispersion", "update interval", "leap status"};

Error FieldError(size_t index, std::string_view what, std::string_view text) {
  return Error{std::string(kCmd) + ": field " + std::to_string(index + 1) + " (" +
               std::string(kFieldNames[index]) + ") " + std::string(what) + ": " + Quote(text)};
}

}  // namespace

Result<GuestStatusObservation> ParseChronycTracking(std::string_view out) {
  // The first non-empty line is the record; chronyc prints nothing else.
  std::string_view line;
  for (auto l : SplitLines(out)) {
    if (!Trim(l).empty()) {
      line = Trim(l);
      break;
    }
  }
  if (line.empty()) return Error{std::string(kCmd) + ": empty output"};
  auto f = SplitOn(line, ',');
  if (f.size() < kFields) {
    return Error{std::string(kCmd) + ": expected " + std::to_string(kFields) +
                 " comma-separated fields, got " + std::to_string(f.size()) +
                 " (truncated or not CSV): " + Quote(line)};
  }

  GuestStatusObservation obs;
  obs.daemon = "chrony";

  // 1: reference id, 8 hex digits.
  std::string_view refid = Trim(f[0]);
  uint64_t refid_value = 0;
  if (refid.empty() || refid.size() > 8) return FieldError(0, "is not 8 hex digits", refid);
  for (char c : refid) {
    int d = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                     : -1;
    if (d < 0) return FieldError(0, "is not 8 hex digits", refid);
    refid_value = refid_value * 16 + static_cast<uint64_t>(d);
  }
  std::string_view refname = Trim(f[1]);
  obs.reference = std::string(refname.empty() ? refid : refname);

  auto stratum = ParseInt(f[2]);
  if (!stratum) return FieldError(2, "is not an integer", f[2]);
  if (*stratum < 0 || *stratum > 255) return FieldError(2, "is out of range 0..255", f[2]);
  obs.status.stratum = static_cast<int>(*stratum);

  // Fields 4..13 are numbers; keep the ones the observation carries.
  std::array<double, kFields> num{};
  for (size_t i = 3; i < 13; ++i) {
    auto v = ParseDouble(f[i]);
    if (!v) return FieldError(i, "is not a number", f[i]);
    num[i] = *v;
  }
  obs.last_offset_s = num[5];  // chrony: positive = local clock was fast
  obs.root_delay_s = num[10];
  obs.root_dispersion_s = num[11];

  std::string_view leap = Trim(f[13]);
  if (leap == "Normal") {
    obs.status.leap = scoring::LeapStatus::kNormal;
  } else if (leap == "Insert second") {
    obs.status.leap = scoring::LeapStatus::kInsertSecond;
  } else if (leap == "Delete second") {
    obs.status.leap = scoring::LeapStatus::kDeleteSecond;
  } else if (leap == "Not synchronised" || leap == "Not synchronized") {
    obs.status.leap = scoring::LeapStatus::kUnsynchronised;
  } else {
    return FieldError(13, "is not one of Normal, Insert second, Delete second, Not synchronised",
                      leap);
  }

  bool unsynced = obs.status.leap == scoring::LeapStatus::kUnsynchronised || *stratum == 0 ||
                  *stratum >= 16 || refid_value == 0;
  obs.status.state =
      unsynced ? scoring::SyncState::kUnsynchronised : scoring::SyncState::kSynchronised;
  return obs;
}

}  // namespace vmtime::guest_status
