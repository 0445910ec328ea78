// Exposition of the host chronyd section of a Snapshot: the
// vmtime_host_chrony_* families of docs/metrics.md ("Host: chronyd").
// Pure and non-throwing.
#pragma once

#include "exporter/exposition/families.h"
#include "exporter/model/snapshot.h"

namespace vmtime::exposition {

// vmtime_host_chrony_up is written when the chrony collector ran (it is in
// s.collectors) or chrony data is present; tracking and source series only
// while chronyd answered the last poll.
void AppendChronyMetrics(const Snapshot& s, FamilyBuilder& out);

// Label values (exposed for tests).
const char* ChronySourceStateName(int state);  // "selected", "falseticker", ...
const char* ChronySourceModeName(int mode);    // "server", "peer", "refclock"

}  // namespace vmtime::exposition
