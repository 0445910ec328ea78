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

scoring::HostReference HostReferenceFromNtpd(const NtpdObservation& obs) {
  scoring::HostReference h;
  const bool synced = obs.leap != 3 && obs.stratum > 0 && obs.stratum < 16;
  h.state = synced ? scoring::SyncState::kSynchronised : scoring::SyncState::kUnsynchronised;
  h.stratum = obs.stratum;
  h.offset_s = -obs.offset_s;  // ntpd: server - host
  h.root_distance_s = obs.root_delay_s / 2 + obs.root_dispersion_s;
  h.source = "ntpd";
  return h;
}

scoring::HostReference HostReferenceFromTimesyncd(const TimesyncdObservation& obs) {
  scoring::HostReference h;
  const bool synced = obs.synchronised && obs.leap.value_or(0) != 3;
  h.state = synced ? scoring::SyncState::kSynchronised : scoring::SyncState::kUnsynchronised;
  if (obs.stratum) h.stratum = *obs.stratum + 1;
  if (obs.offset_s) h.offset_s = -*obs.offset_s;  // the message's server - host
  if (obs.root_delay_s && obs.root_dispersion_s) {
    h.root_distance_s = (*obs.root_delay_s + obs.delay_s.value_or(0)) / 2 + *obs.root_dispersion_s;
  }
  h.source = "timesyncd";
  return h;
}

std::optional<scoring::HostReference> SelectHostReference(
    const std::vector<std::string>& order, const std::vector<HostReferenceCandidate>& candidates) {
  for (const std::string& name : order) {
    for (const auto& c : candidates) {
      if (c.name == name && c.reference) return c.reference;
    }
  }
  return std::nullopt;
}

std::optional<scoring::HostReference> DecideHostReference(
    const std::optional<ChronyObservation>& chrony, const std::optional<TimexObservation>& timex) {
  std::vector<HostReferenceCandidate> candidates;
  candidates.push_back(
      {"chrony", chrony ? std::optional(HostReferenceFromChrony(*chrony)) : std::nullopt});
  candidates.push_back(
      {"kernel", timex ? std::optional(HostReferenceFromKernel(*timex)) : std::nullopt});
  return SelectHostReference({"chrony", "kernel"}, candidates);
}

}  // namespace vmtime
