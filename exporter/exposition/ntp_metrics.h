// Exposition of the upstream NTP section of a Snapshot: the vmtime_ntp_*
// families of docs/metrics.md ("Upstream NTP servers"). Pure and
// non-throwing.
#pragma once

#include <string>

#include "exporter/exposition/families.h"
#include "exporter/model/snapshot.h"

namespace vmtime::exposition {

// Writes nothing when no server is configured and no round ran.
void AppendNtpMetrics(const Snapshot& s, FamilyBuilder& out);

// The reference id as a label value: four ASCII characters for stratum 0
// and 1 ("GPS", "PPS", "RATE"), a dotted quad above (an IPv4 address or the
// first bytes of an IPv6 address's MD5 hash).
std::string NtpReferenceIdText(uint32_t reference_id, int stratum);

}  // namespace vmtime::exposition
