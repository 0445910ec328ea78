// Renders vmtime_host_ptp_* from Snapshot::ptp (see the header).
#include "exporter/exposition/ptp_metrics.h"

namespace vmtime::exposition {
namespace {

constexpr PtpPortState kPortStates[] = {
    PtpPortState::kInitializing, PtpPortState::kFaulty,       PtpPortState::kDisabled,
    PtpPortState::kListening,    PtpPortState::kPreMaster,    PtpPortState::kMaster,
    PtpPortState::kPassive,      PtpPortState::kUncalibrated, PtpPortState::kSlave,
};

void RenderPorts(const PtpObservation& o, FamilyBuilder& out) {
  const Family state = out.Gauge(
      "vmtime_host_ptp_port_state",
      "1 for the PTP port's current state, 0 for the others (enum: one series per state).");
  const Family peer_delay = out.Gauge("vmtime_host_ptp_port_peer_mean_path_delay_seconds",
                                      "Peer mean path delay of the port (P2P delay mechanism).");
  for (const PtpPortObservation& p : o.ports) {
    for (PtpPortState st : kPortStates) {
      state.Add({{"port", p.port_identity}, {"state", PtpPortStateName(st)}},
                p.state == st ? 1 : 0);
    }
    if (p.state == PtpPortState::kUnknown) {
      state.Add({{"port", p.port_identity}, {"state", "unknown"}}, 1);
    }
    peer_delay.Add({{"port", p.port_identity}}, p.peer_mean_path_delay_s);
  }
}

void RenderTimeProperties(const PtpObservation& o, FamilyBuilder& out) {
  const Family flag = out.Gauge("vmtime_host_ptp_time_property",
                                "Time properties flag the grandmaster announces (1 set, 0 clear).");
  const std::pair<const char*, bool> flags[] = {
      {"ptp_timescale", o.ptp_timescale},
      {"time_traceable", o.time_traceable},
      {"frequency_traceable", o.frequency_traceable},
      {"current_utc_offset_valid", o.current_utc_offset_valid},
      {"leap61", o.leap61},
      {"leap59", o.leap59},
  };
  for (const auto& [name, set] : flags) flag.Add({{"flag", name}}, set ? 1 : 0);
  out.Gauge("vmtime_host_ptp_current_utc_offset_seconds",
            "TAI minus UTC the grandmaster announces (currentUtcOffset).")
      .Add(o.current_utc_offset_s);
  out.Gauge("vmtime_host_ptp_time_source",
            "IEEE 1588 timeSource of the grandmaster (0x20 GPS, 0xA0 internal oscillator, ...).")
      .Add(o.time_source);
}

void Render(const Snapshot& s, FamilyBuilder& out) {
  if (!s.ptp_enabled) return;
  out.Gauge("vmtime_host_ptp_up", "1 when ptp4l answered the last management queries.")
      .Add(s.ptp_up && s.ptp ? 1 : 0);
  if (!s.ptp_up || !s.ptp) return;
  const PtpObservation& o = *s.ptp;
  if (s.ptp_host_reference) {
    out.Gauge("vmtime_host_ptp_synchronised",
              "1 when ptp4l's state makes the host synchronised (docs/ptp.md, host reference).")
        .Add(s.ptp_host_reference->state == scoring::SyncState::kSynchronised ? 1 : 0);
  }
  RenderPorts(o, out);
  out.Gauge("vmtime_host_ptp_offset_from_master_seconds",
            "Local PTP clock minus master (CURRENT_DATA_SET; positive = local ahead).")
      .Add(o.offset_from_master_s);
  out.Gauge("vmtime_host_ptp_mean_path_delay_seconds",
            "Mean one-way path delay to the master (CURRENT_DATA_SET).")
      .Add(o.mean_path_delay_s);
  out.Gauge("vmtime_host_ptp_steps_removed",
            "Communication paths between the grandmaster and this clock (0 = this is the GM).")
      .Add(o.steps_removed);
  out.Gauge("vmtime_host_ptp_is_grandmaster", "1 when this clock is the grandmaster.")
      .Add(o.IsGrandmaster() ? 1 : 0);
  out.Gauge("vmtime_host_ptp_clock_class", "This clock's own clockClass (DEFAULT_DATA_SET).")
      .Add(o.clock_class);
  out.Gauge("vmtime_host_ptp_grandmaster_clock_class",
            "clockClass of the grandmaster (6 locked to a primary reference, 7 holdover, 248 "
            "default/free-running).")
      .Add(o.grandmaster_clock_class);
  out.Gauge(
         "vmtime_host_ptp_grandmaster_clock_accuracy",
         "clockAccuracy code of the grandmaster (0x20 = 25 ns ... 0x31 = over 10 s, 0xFE unknown).")
      .Add(o.grandmaster_clock_accuracy);
  out.Gauge("vmtime_host_ptp_grandmaster_info",
            "The grandmaster and parent this clock follows (1).")
      .Add({{"grandmaster_identity", o.grandmaster_identity},
            {"parent_port_identity", o.parent_port_identity},
            {"clock_identity", o.clock_identity},
            {"domain", std::to_string(o.domain_number)}},
           1);
  RenderTimeProperties(o, out);
  if (o.master_offset_s) {
    out.Gauge("vmtime_host_ptp_master_offset_seconds",
              "Last measured offset from the master (linuxptp TIME_STATUS_NP; positive = local "
              "ahead).")
        .Add(*o.master_offset_s);
  }
  if (o.gm_present) {
    out.Gauge("vmtime_host_ptp_grandmaster_present",
              "1 when ptp4l sees a grandmaster other than itself (TIME_STATUS_NP gmPresent).")
        .Add(*o.gm_present ? 1 : 0);
  }
}

}  // namespace

void AppendPtpMetrics(const Snapshot& s, FamilyBuilder& out) {
  RenderGuarded("ptp metrics", [&] { Render(s, out); });
}

}  // namespace vmtime::exposition
