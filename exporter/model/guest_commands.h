// Guest commands: the fixed, compiled-in list of read-only programs the
// guest_status collector may run inside a guest through the agent's
// guest-exec. Nothing here is built from configuration text: the config only
// selects entries by id (`guest_status.commands`), and an unknown id is a
// config error (IsKnownGuestCommand). No shell is involved; the program and
// its arguments are constants. The table lives in model, below config, so
// that config validation and the guest_status collector read the same list.
#pragma once

#include <span>
#include <string_view>

namespace vmtime::guest_status {

enum class GuestCommandId { kChronycTracking, kNtpqRv, kTimedatectlShow, kW32tmStatus };

// Which guest operating systems a command is meant for.
enum class GuestOsFamily { kUnknown, kLinux, kWindows };

struct GuestCommand {
  GuestCommandId id;
  std::string_view config_id;  // "chronyc_tracking", as written in the config
  std::string_view daemon;     // "chrony", "ntpd", "timesyncd", "w32time"
  std::string_view display;    // "chronyc -c tracking", used in error messages
  std::string_view path;       // program; the agent searches the guest's PATH
  std::span<const std::string_view> args;
  GuestOsFamily os;
};

// Every command, in the default order of preference.
std::span<const GuestCommand> AllGuestCommands();
// The entry for a config id, or nullptr.
const GuestCommand* FindGuestCommand(std::string_view config_id);
const GuestCommand& GetGuestCommand(GuestCommandId id);
// True for the ids the config may list: chronyc_tracking, ntpq_rv,
// timedatectl_show, w32tm_status.
bool IsKnownGuestCommand(std::string_view config_id);

}  // namespace vmtime::guest_status
