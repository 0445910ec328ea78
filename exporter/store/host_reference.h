// Host reference: the one place that decides whether the host's own clock
// is synchronised, and from what. Collectors only observe (chronyd's
// tracking, the kernel's timex); what those observations mean for the host
// is store logic. The result feeds scoring (the host reference component,
// host_unsynchronised / host_stratum_high) and is Snapshot::host_reference,
// which exposition renders as vmtime_host_synchronised{source}.
//
// Rule: the candidates are the host's time sources, each present when its
// collector answered its last run: chrony (chronyd's tracking), ntpd (its
// mode 6 system variables), timesyncd (D-Bus and its flag file), ptp
// (ptp4l/phc2sys, store/host_reference_ptp.h) and kernel (adjtimex). The
// first present candidate in `host.reference_order` (default chrony, ntpd,
// timesyncd, ptp, kernel: the daemons that discipline the system clock
// before ptp4l, whose offset is its NIC's PHC against the grandmaster, and
// the kernel's flags last) decides. A present daemon decides even when it
// is unsynchronised: one that answers but has lost its sources is the
// host's truth, and the kernel's maxerror lags behind it. None present: no
// host reference (scoring counts it unknown).
//
// Each source's verdict:
//  - chrony: synchronised unless leap status 3 (not synchronised), stratum 0
//    (no reference) or stratum >= 16; stratum, offset (host - UTC) and root
//    distance from its tracking.
//  - ntpd: the same rule on its leap and stratum; offset = -`offset` (ntpd
//    reports server - host), root distance rootdelay/2 + rootdisp.
//  - timesyncd: synchronised iff its flag file exists and the last NTP
//    message (when D-Bus gave one) is not leap 3; stratum = the server's + 1,
//    offset = -(that message's offset), root distance (root delay + delay)/2
//    + root dispersion, when D-Bus gave them.
//  - kernel: synchronised iff maxerror < 16 s and the clock reports no error
//    other than STA_UNSYNC. STA_UNSYNC itself is ignored, as systemd does:
//    chronyd leaves it set unless `rtcsync` is configured, and the kernel
//    then returns TIME_ERROR for that flag alone; maxerror is what a running
//    NTP daemon keeps below 16 s. No stratum or offset.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "exporter/model/observations.h"
#include "scoring/types.h"

namespace vmtime {

// Above this kernel maxerror the clock is unsynchronised (NTP's MAXPHASE
// bound of 16 s, systemd's ntp_synced rule).
inline constexpr double kKernelUnsynchronisedMaxErrorS = 16.0;

// The host reference chronyd's tracking gives. root_distance_s =
// root_delay/2 + root_dispersion; offset_s = system_time_offset_s (host -
// UTC, positive = host ahead).
scoring::HostReference HostReferenceFromChrony(const ChronyObservation& obs);

// The host reference the kernel's timex gives.
scoring::HostReference HostReferenceFromKernel(const TimexObservation& obs);

// The host reference ntpd's system variables give.
scoring::HostReference HostReferenceFromNtpd(const NtpdObservation& obs);

// The host reference timesyncd gives.
scoring::HostReference HostReferenceFromTimesyncd(const TimesyncdObservation& obs);

// One candidate: a source name of HostReferenceSourceNames() and the
// reference it gives when present (nullopt: its collector is disabled or
// did not answer its last run).
struct HostReferenceCandidate {
  std::string name;
  std::optional<scoring::HostReference> reference;
};

// The first candidate, in `order`, that is present; names in `order`
// without a candidate, and candidates not in `order`, are skipped.
std::optional<scoring::HostReference> SelectHostReference(
    const std::vector<std::string>& order, const std::vector<HostReferenceCandidate>& candidates);

// The rule with only chronyd and the kernel, in the default order. `chrony`
// is the last tracking of a chronyd that answered the last run (nullopt
// when it did not, or is not collected).
std::optional<scoring::HostReference> DecideHostReference(
    const std::optional<ChronyObservation>& chrony, const std::optional<TimexObservation>& timex);

}  // namespace vmtime
