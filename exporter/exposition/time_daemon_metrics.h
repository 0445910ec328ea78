// Exposition of the host ntpd and systemd-timesyncd sections of a Snapshot:
// the vmtime_host_ntpd_* and vmtime_host_timesyncd_* families of
// docs/metrics.md ("Host: ntpd" and "Host: systemd-timesyncd"). Pure and
// non-throwing.
#pragma once

#include "exporter/exposition/families.h"
#include "exporter/model/snapshot.h"

namespace vmtime::exposition {

// vmtime_host_ntpd_up / vmtime_host_timesyncd_up are written when the
// collector ran (it is in s.collectors) or its data is present; the other
// series only while the daemon answered the last run.
void AppendNtpdMetrics(const Snapshot& s, FamilyBuilder& out);
void AppendTimesyncdMetrics(const Snapshot& s, FamilyBuilder& out);

}  // namespace vmtime::exposition
