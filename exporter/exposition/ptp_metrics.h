// Exposition of the PTP section of a Snapshot: the vmtime_host_ptp_*
// families of docs/metrics.md ("PTP (linuxptp)"). Pure and non-throwing.
#pragma once

#include "exporter/exposition/families.h"
#include "exporter/model/snapshot.h"

namespace vmtime::exposition {

// Writes nothing when the ptp collector is disabled; only
// vmtime_host_ptp_up 0 while ptp4l does not answer (no stale state).
void AppendPtpMetrics(const Snapshot& s, FamilyBuilder& out);

}  // namespace vmtime::exposition
