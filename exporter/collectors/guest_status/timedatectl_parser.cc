// Parser for `timedatectl show` (systemd-timedated properties); see
// parsers.h. Only NTPSynchronized= (the kernel's "clock synchronised" flag,
// set by whichever daemon disciplines the clock) and NTP= (a time sync
// service is enabled) are used; `timedatectl show-timesync` would give the
// server and poll details but is not in the command list.
#include <string>

#include "exporter/collectors/guest_status/parse_text.h"
#include "exporter/collectors/guest_status/parsers.h"

namespace vmtime::guest_status {
namespace {

constexpr std::string_view kCmd = "timedatectl show";

std::optional<bool> YesNo(std::string_view v) {
  v = Trim(v);
  if (v == "yes" || v == "true" || v == "1") return true;
  if (v == "no" || v == "false" || v == "0") return false;
  return std::nullopt;
}

}  // namespace

Result<GuestStatusObservation> ParseTimedatectlShow(std::string_view out) {
  std::optional<std::string_view> synced_text;
  std::optional<std::string_view> ntp_text;
  bool any = false;
  for (auto line : SplitLines(out)) {
    line = Trim(line);
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    any = true;
    std::string_view key = Trim(line.substr(0, eq));
    std::string_view value = line.substr(eq + 1);
    if (key == "NTPSynchronized" && !synced_text) synced_text = value;
    if (key == "NTP" && !ntp_text) ntp_text = value;
  }
  if (!any) return Error{std::string(kCmd) + ": no Key=Value lines in the output: " + Quote(out)};
  if (!synced_text) {
    return Error{std::string(kCmd) + ": no NTPSynchronized= line (truncated or an old systemd)"};
  }
  auto synced = YesNo(*synced_text);
  if (!synced) {
    return Error{std::string(kCmd) + ": NTPSynchronized= is not yes or no: " + Quote(*synced_text)};
  }
  std::optional<bool> ntp;
  if (ntp_text) {
    ntp = YesNo(*ntp_text);
    if (!ntp) return Error{std::string(kCmd) + ": NTP= is not yes or no: " + Quote(*ntp_text)};
  }

  GuestStatusObservation obs;
  if (*synced) {
    obs.daemon = "timesyncd";
    obs.status.state = scoring::SyncState::kSynchronised;
  } else if (ntp && !*ntp) {
    // No time service enabled at all: nothing to judge, not an alarm.
    obs.daemon = "none";
    obs.status.state = scoring::SyncState::kUnknown;
  } else {
    obs.daemon = "timesyncd";
    obs.status.state = scoring::SyncState::kUnsynchronised;
  }
  return obs;
}

}  // namespace vmtime::guest_status
