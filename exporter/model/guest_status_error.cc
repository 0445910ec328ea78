// Guest status error names (see guest_status_error.h).
#include "exporter/model/guest_status_error.h"

#include <string>

namespace vmtime::guest_status {

std::string_view GuestStatusErrorName(GuestStatusError e) {
  switch (e) {
    case GuestStatusError::kNone:
      return "";
    case GuestStatusError::kExecFailed:
      return "exec_failed";
    case GuestStatusError::kParseFailed:
      return "parse_failed";
    case GuestStatusError::kTimeout:
      return "timeout";
    case GuestStatusError::kNoDaemon:
      return "no_daemon";
  }
  return "";
}

GuestStatusError GuestStatusErrorOf(std::string_view error) {
  if (error.empty()) return GuestStatusError::kNone;
  for (auto e : {GuestStatusError::kExecFailed, GuestStatusError::kParseFailed,
                 GuestStatusError::kTimeout, GuestStatusError::kNoDaemon}) {
    std::string prefix = std::string(GuestStatusErrorName(e)) + ":";
    if (error.starts_with(prefix)) return e;
  }
  return GuestStatusError::kExecFailed;  // an error of unknown form is still an error
}

}  // namespace vmtime::guest_status
