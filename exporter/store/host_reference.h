// Host reference: what the store tells scoring about the host's own clock.
// Collectors only observe (chronyd's tracking, the kernel's timex); deciding
// what those observations mean for the host's sync state is store logic, so
// it lives here, below exposition and above the collectors' model structs.
#pragma once

#include "exporter/model/observations.h"
#include "scoring/types.h"

namespace vmtime {

// The host's time reference as chronyd sees it. synchronised = leap != 3,
// stratum < 16 and a reference is set; offset_s = system_time_offset_s
// (host - UTC, positive = host ahead); root_distance_s = root_delay/2 +
// root_dispersion.
scoring::HostReference HostReferenceFromChrony(const ChronyObservation& obs);

}  // namespace vmtime
