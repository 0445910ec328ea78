// Parsers for the outputs of the guest commands (guest_commands.h) into one
// GuestStatusObservation each: daemon, scoring::GuestSyncStatus (state,
// stratum, leap), and where the tool reports them the reference, the last
// offset and the root delay / dispersion.
//
// Sign convention of last_offset_s: guest clock minus the daemon's
// reference at its last clock update, seconds, positive = guest ahead.
// chronyc's "Last offset" already has that sign; ntpq's `offset` is the
// reference minus the local clock in milliseconds and is negated and
// converted; timedatectl and w32tm /query /status do not report one.
//
// Inputs are untrusted bytes from a guest: any length, CRLF line ends,
// extra fields, truncation, non-UTF-8 code pages, garbage. Every parser
// returns a Result whose error names the command, the field and the bad
// text (quoted and shortened), e.g. "chronyc -c tracking: field 3 (stratum)
// is not an integer: 'x'". They never throw and never read the locale.
// uuid, status.measured_mono_ns and error are left for the caller.
#pragma once

#include <string_view>

#include "exporter/core/result.h"
#include "exporter/model/guest_commands.h"
#include "exporter/model/observations.h"

namespace vmtime::guest_status {

// chronyc -c tracking: one CSV line of at least 14 fields (ref id hex, ref
// name, stratum, ref time, system time, last offset, rms offset, frequency,
// residual frequency, skew, root delay, root dispersion, update interval,
// leap status text). Unsynchronised when the leap status is "Not
// synchronised", the stratum is 0 or >= 16, or the reference id is 0.
Result<GuestStatusObservation> ParseChronycTracking(std::string_view out);

// ntpq -c rv: key=value pairs over several lines, the first holding the
// status word ("associd=0 status=0615 leap_none, sync_ntp, ..."). Uses
// leap= (binary 00/01/10/11), stratum=, refid=, offset= (ms), rootdelay=
// (ms), rootdisp= (ms); unsynchronised on leap 11, stratum 0 or >= 16, or a
// status word saying sync_unspec / leap_alarm.
Result<GuestStatusObservation> ParseNtpqRv(std::string_view out);

// timedatectl show: Key=Value lines; NTPSynchronized=yes|no gives the state
// (stratum and leap unknown). NTP=no with NTPSynchronized=no means no time
// service is enabled: daemon "none", state unknown (not an alarm).
Result<GuestStatusObservation> ParseTimedatectlShow(std::string_view out);

// w32tm /query /status: "Label: value" lines, English, German or French
// labels, decimal point or comma. Leap Indicator, Stratum, Root Delay, Root
// Dispersion, Source (or ReferenceId). Unsynchronised on leap 3, stratum 0
// or >= 16, or a local CMOS / free-running clock as the source.
Result<GuestStatusObservation> ParseW32tmStatus(std::string_view out);

// Dispatches on the command id.
Result<GuestStatusObservation> ParseGuestCommandOutput(GuestCommandId id, std::string_view out);

}  // namespace vmtime::guest_status
