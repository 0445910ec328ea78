// Host reference from PTP: what linuxptp's ptp4l state (collectors/ptp)
// means for the host's own sync state. Kept apart from host_reference.cc,
// whose selection between sources (chrony, ntpd, timesyncd, PTP, kernel)
// takes this as one candidate.
//
// Rule (docs/ptp.md, "Host reference"):
//  - synchronised as a slave: some port is SLAVE, |offset from master| is
//    at most kPtpMaxSlaveOffsetS, and ptp4l does not report the
//    grandmaster absent (TIME_STATUS_NP gmPresent, when it answered).
//    Stratum = steps removed + 1 (the grandmaster counts as stratum 1, as
//    an NTP server on a reference clock), offset = offset from master,
//    root distance = mean path delay.
//  - synchronised as the grandmaster: this clock's identity is the
//    grandmaster identity, some port is MASTER and the clock class is 6
//    (synchronised to a primary reference) or 7 (in holdover within
//    specification). Stratum 1, root distance 0, no offset: the
//    grandmaster defines PTP time, and how far that is from UTC is not
//    visible over PTP.
//  - anything else (LISTENING, UNCALIBRATED, FAULTY, a free-running
//    grandmaster of class 248, an offset beyond the bound): unsynchronised,
//    no stratum or offset.
// Source "ptp" in every case.
//
// The offset is that of the clock ptp4l disciplines: CLOCK_REALTIME with
// software timestamping (-S); with hardware timestamping it is the PHC, and
// phc2sys's PHC-to-system offset adds to it unseen (phc2sys has no
// management interface in linuxptp 3.1).
#pragma once

#include "exporter/model/observations.h"
#include "scoring/types.h"

namespace vmtime {

// Beyond this |offset from master| a SLAVE port is not treated as
// synchronised: ptp4l's servo keeps a locked slave within microseconds
// (software timestamping) or nanoseconds (hardware); a millisecond means it
// has not converged or is being pulled by a wrong master.
inline constexpr double kPtpMaxSlaveOffsetS = 1e-3;

// The clock classes of a grandmaster that is a usable reference: 6 (locked
// to a primary reference time source) and 7 (holdover, within spec).
bool PtpClockClassTraceable(int clock_class);

scoring::HostReference HostReferenceFromPtp(const PtpObservation& obs);

}  // namespace vmtime
