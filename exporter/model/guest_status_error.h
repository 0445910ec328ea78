// Guest status error kinds: the bounded set of ways reading a guest's time
// daemon can fail. The guest_status collector writes them
// (GuestStatusObservation::error starts with "<kind>: ") and exposition
// renders them as the label values of vmtime_vm_guest_status_error{error};
// both read this one list, which is why it sits in model.
#pragma once

#include <string_view>

namespace vmtime::guest_status {

enum class GuestStatusError { kNone, kExecFailed, kParseFailed, kTimeout, kNoDaemon };

// "exec_failed", "parse_failed", "timeout", "no_daemon" ("" for kNone).
std::string_view GuestStatusErrorName(GuestStatusError e);

// The kind an observation's error names (kNone for an empty error; an error
// of unknown form counts as kExecFailed).
GuestStatusError GuestStatusErrorOf(std::string_view error);

}  // namespace vmtime::guest_status
