// Host reference decision (see host_reference.h).
#include "exporter/store/host_reference.h"

namespace vmtime {

scoring::HostReference HostReferenceFromChrony(const ChronyObservation& obs) {
  const ChronyTracking& t = obs.tracking;
  scoring::HostReference h;
  const bool has_reference = t.reference_id != 0;
  const bool synced = t.leap_status != 3 && t.stratum < 16 && has_reference;
  h.state = synced ? scoring::SyncState::kSynchronised : scoring::SyncState::kUnsynchronised;
  h.stratum = t.stratum;
  h.offset_s = t.system_time_offset_s;
  h.root_distance_s = t.root_delay_s / 2 + t.root_dispersion_s;
  return h;
}

}  // namespace vmtime
