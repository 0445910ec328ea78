// Host reference: the one place that decides whether the host's own clock
// is synchronised, and from what. Collectors only observe (chronyd's
// tracking, the kernel's timex); what those observations mean for the host
// is store logic. The result feeds scoring (the host reference component,
// host_unsynchronised / host_stratum_high) and is Snapshot::host_reference,
// which exposition renders as vmtime_host_synchronised{source}.
//
// Rule, in order:
//  1. chronyd answered the last run: source "chrony", synchronised unless
//     leap status 3 (not synchronised), stratum 0 (no reference) or
//     stratum >= 16; stratum, offset (host - UTC) and root distance from
//     its tracking.
//  2. otherwise the kernel's view (adjtimex): source "kernel", synchronised
//     iff maxerror < 16 s and the clock reports no error other than
//     STA_UNSYNC. STA_UNSYNC itself is ignored, as systemd does: chronyd
//     leaves it set unless `rtcsync` is configured, and the kernel then
//     returns TIME_ERROR for that flag alone; maxerror is what a running
//     NTP daemon keeps below 16 s. No stratum or offset.
//  3. neither observed: no host reference (scoring counts it unknown).
#pragma once

#include <optional>

#include "exporter/model/observations.h"
#include "scoring/types.h"

namespace vmtime {

// Above this kernel maxerror the clock is unsynchronised (NTP's MAXPHASE
// bound of 16 s, systemd's ntp_synced rule).
inline constexpr double kKernelUnsynchronisedMaxErrorS = 16.0;

// Rule 1: the host reference chronyd's tracking gives. root_distance_s =
// root_delay/2 + root_dispersion; offset_s = system_time_offset_s (host -
// UTC, positive = host ahead).
scoring::HostReference HostReferenceFromChrony(const ChronyObservation& obs);

// Rule 2: the host reference the kernel's timex gives.
scoring::HostReference HostReferenceFromKernel(const TimexObservation& obs);

// The whole rule. `chrony` is the last tracking of a chronyd that answered
// the last run (nullopt when it did not, or is not collected).
std::optional<scoring::HostReference> DecideHostReference(
    const std::optional<ChronyObservation>& chrony, const std::optional<TimexObservation>& timex);

}  // namespace vmtime
