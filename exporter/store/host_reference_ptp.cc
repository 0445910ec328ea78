// Host reference from PTP (see the header).
#include "exporter/store/host_reference_ptp.h"

#include <algorithm>
#include <cmath>

namespace vmtime {
namespace {

bool AnyPortIn(const PtpObservation& obs, PtpPortState state) {
  return std::any_of(obs.ports.begin(), obs.ports.end(),
                     [state](const PtpPortObservation& p) { return p.state == state; });
}

}  // namespace

bool PtpClockClassTraceable(int clock_class) { return clock_class == 6 || clock_class == 7; }

scoring::HostReference HostReferenceFromPtp(const PtpObservation& obs) {
  scoring::HostReference h;
  h.source = "ptp";
  h.state = scoring::SyncState::kUnsynchronised;
  const bool gm_absent = obs.gm_present.has_value() && !*obs.gm_present;
  if (AnyPortIn(obs, PtpPortState::kSlave) && !gm_absent &&
      std::abs(obs.offset_from_master_s) <= kPtpMaxSlaveOffsetS) {
    h.state = scoring::SyncState::kSynchronised;
    h.stratum = obs.steps_removed + 1;
    h.offset_s = obs.offset_from_master_s;
    h.root_distance_s = std::abs(obs.mean_path_delay_s);
  } else if (obs.IsGrandmaster() && AnyPortIn(obs, PtpPortState::kMaster) &&
             PtpClockClassTraceable(obs.grandmaster_clock_class)) {
    h.state = scoring::SyncState::kSynchronised;
    h.stratum = 1;
    h.root_distance_s = 0.0;
  }
  return h;
}

}  // namespace vmtime
