// Per-VM guest status metrics beyond the four the main table writes
// (vmtime_vm_guest_synchronised, _stratum, _leap_status, _status_source):
// vmtime_vm_guest_status_error{domain,uuid,error}, 1 while the last probe
// of the guest failed, with `error` one of a bounded set (exec_failed,
// parse_failed, timeout, no_daemon); absent while the probe succeeds or
// when guest status is not collected. The full message is in
// /api/v1/targets (guest.error) and the log, never in a label.
#pragma once

#include "exporter/exposition/vm_metrics.h"

namespace vmtime::exposition {

// The row of the per-VM family table (vm_metrics.h).
VmFamily GuestStatusErrorFamily();

}  // namespace vmtime::exposition
