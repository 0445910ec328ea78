// Per-VM guest status metrics beyond the four the main renderer writes
// (vmtime_vm_guest_synchronised, _stratum, _leap_status, _status_source):
// vmtime_vm_guest_status_error{domain,uuid,error}, 1 while the last probe
// of the guest failed, with `error` one of a bounded set (exec_failed,
// parse_failed, timeout, no_daemon); absent while the probe succeeds or
// when guest status is not collected. The full message is in
// /api/v1/targets (guest.error) and the log, never in a label.
#pragma once

#include "exporter/exposition/families.h"
#include "exporter/model/snapshot.h"

namespace vmtime::exposition {

// Declares the family once per scrape, before the VM loop.
Family DeclareGuestStatusMetrics(FamilyBuilder& out);

// Appends the series of one VM to `error` (the family Declare returned);
// `vm_labels` are its {domain, uuid}.
void AppendGuestStatusMetrics(const VmView& vm, const Labels& vm_labels, const Family& error);

}  // namespace vmtime::exposition
