// Host reference decision (see host_reference.h).
#include "exporter/store/host_reference.h"

#include <sys/timex.h>

namespace vmtime {

scoring::HostReference HostReferenceFromChrony(const ChronyObservation& obs) {
  const ChronyTracking& t = obs.tracking;
  scoring::HostReference h;
  const bool synced = t.leap_status != 3 && t.stratum > 0 && t.stratum < 16;
  h.state = synced ? scoring::SyncState::kSynchronised : scoring::SyncState::kUnsynchronised;
  h.stratum = t.stratum;
  h.offset_s = t.system_time_offset_s;
  h.root_distance_s = t.root_delay_s / 2 + t.root_dispersion_s;
  h.source = "chrony";
  return h;
}

scoring::HostReference HostReferenceFromKernel(const TimexObservation& obs) {
  // adjtimex returns TIME_ERROR whenever STA_UNSYNC is set; such a
  // TIME_ERROR says nothing beyond the flag we ignore. With STA_UNSYNC clear
  // it names another error (PPS trouble); STA_CLOCKERR is one in any case.
  const bool unsync_flag = (obs.status & STA_UNSYNC) != 0;
  const bool clock_error =
      (obs.status & STA_CLOCKERR) != 0 || (obs.state == TIME_ERROR && !unsync_flag);
  const bool synced = obs.max_error_s < kKernelUnsynchronisedMaxErrorS && !clock_error;
  scoring::HostReference h;
  h.state = synced ? scoring::SyncState::kSynchronised : scoring::SyncState::kUnsynchronised;
  h.source = "kernel";
  return h;
}

std::optional<scoring::HostReference> DecideHostReference(
    const std::optional<ChronyObservation>& chrony, const std::optional<TimexObservation>& timex) {
  if (chrony) return HostReferenceFromChrony(*chrony);
  if (timex) return HostReferenceFromKernel(*timex);
  return std::nullopt;
}

}  // namespace vmtime
