// The compiled-in guest command table (see guest_commands.h).
#include "exporter/model/guest_commands.h"

#include <array>

namespace vmtime::guest_status {
namespace {

constexpr std::array<std::string_view, 2> kChronycArgs = {"-c", "tracking"};
constexpr std::array<std::string_view, 2> kNtpqArgs = {"-c", "rv"};
constexpr std::array<std::string_view, 1> kTimedatectlArgs = {"show"};
constexpr std::array<std::string_view, 2> kW32tmArgs = {"/query", "/status"};

constexpr std::array<GuestCommand, 4> kCommands = {{
    {GuestCommandId::kChronycTracking, "chronyc_tracking", "chrony", "chronyc -c tracking",
     "chronyc", kChronycArgs, GuestOsFamily::kLinux},
    {GuestCommandId::kNtpqRv, "ntpq_rv", "ntpd", "ntpq -c rv", "ntpq", kNtpqArgs,
     GuestOsFamily::kLinux},
    {GuestCommandId::kTimedatectlShow, "timedatectl_show", "timesyncd", "timedatectl show",
     "timedatectl", kTimedatectlArgs, GuestOsFamily::kLinux},
    {GuestCommandId::kW32tmStatus, "w32tm_status", "w32time", "w32tm /query /status", "w32tm",
     kW32tmArgs, GuestOsFamily::kWindows},
}};

}  // namespace

std::span<const GuestCommand> AllGuestCommands() { return kCommands; }

const GuestCommand* FindGuestCommand(std::string_view config_id) {
  for (const auto& c : kCommands) {
    if (c.config_id == config_id) return &c;
  }
  return nullptr;
}

const GuestCommand& GetGuestCommand(GuestCommandId id) {
  for (const auto& c : kCommands) {
    if (c.id == id) return c;
  }
  return kCommands[0];  // unreachable: every enumerator has an entry
}

bool IsKnownGuestCommand(std::string_view config_id) {
  return FindGuestCommand(config_id) != nullptr;
}

}  // namespace vmtime::guest_status
