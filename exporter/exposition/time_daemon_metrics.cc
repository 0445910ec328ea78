// Renders vmtime_host_ntpd_* and vmtime_host_timesyncd_* (see the header).
#include "exporter/exposition/time_daemon_metrics.h"

#include <string>

namespace vmtime::exposition {
namespace {

int PopCount8(int reach) {
  int n = 0;
  for (int i = 0; i < 8; ++i) n += (reach >> i) & 1;
  return n;
}

bool Ran(const Snapshot& s, const char* name) {
  for (const auto& c : s.collectors) {
    if (c.name == name) return true;
  }
  return false;
}

void RenderNtpdSystem(const NtpdObservation& n, FamilyBuilder& out) {
  out.Gauge("vmtime_host_ntpd_info", "The host ntpd's reference id and version (1).")
      .Add({{"refid", n.refid}, {"version", n.version}}, 1);
  out.Gauge("vmtime_host_ntpd_leap",
            "Host ntpd leap: 0 normal, 1 insert, 2 delete, 3 unsynchronised.")
      .Add(n.leap);
  out.Gauge("vmtime_host_ntpd_stratum", "Stratum of the host ntpd (16 = unsynchronised).")
      .Add(n.stratum);
  out.Gauge("vmtime_host_ntpd_offset_seconds",
            "ntpd's combined offset: server minus host (positive = host behind).")
      .Add(n.offset_s);
  out.Gauge("vmtime_host_ntpd_sys_jitter_seconds", "ntpd's system jitter.").Add(n.sys_jitter_s);
  out.Gauge("vmtime_host_ntpd_root_delay_seconds",
            "Total round-trip delay to the primary reference (ntpd).")
      .Add(n.root_delay_s);
  out.Gauge("vmtime_host_ntpd_root_dispersion_seconds",
            "Total dispersion to the primary reference (ntpd).")
      .Add(n.root_dispersion_s);
}

void RenderNtpdPeers(const NtpdObservation& n, FamilyBuilder& out) {
  Family condition = out.Gauge("vmtime_host_ntpd_peer_condition_info",
                               "Association of the host ntpd and its selection state (1).");
  Family stratum = out.Gauge("vmtime_host_ntpd_peer_stratum", "Stratum of the peer.");
  Family reach =
      out.Gauge("vmtime_host_ntpd_peer_reachability_ratio", "Reachability register bits set / 8.");
  Family offset = out.Gauge("vmtime_host_ntpd_peer_offset_seconds",
                            "Offset of the peer: server minus host (positive = host behind).");
  Family delay = out.Gauge("vmtime_host_ntpd_peer_delay_seconds", "Round-trip delay to the peer.");
  Family jitter = out.Gauge("vmtime_host_ntpd_peer_jitter_seconds", "Jitter of the peer.");
  for (const NtpdPeer& p : n.peers) {
    const std::string id = std::to_string(p.association_id);
    const Labels l = {{"peer", p.address}, {"association", id}};
    condition.Add({{"peer", p.address}, {"association", id}, {"condition", p.condition}}, 1);
    stratum.Add(l, p.stratum);
    reach.Add(l, PopCount8(p.reach) / 8.0);
    offset.Add(l, p.offset_s);
    delay.Add(l, p.delay_s);
    jitter.Add(l, p.jitter_s);
  }
}

void RenderTimesyncd(const TimesyncdObservation& t, FamilyBuilder& out) {
  out.Gauge("vmtime_host_timesyncd_dbus_up", "1 when timesyncd answered on D-Bus.")
      .Add(t.bus ? 1 : 0);
  out.Gauge("vmtime_host_timesyncd_synchronised",
            "1 when timesyncd's flag file (/run/systemd/timesync/synchronized) exists.")
      .Add(t.synchronised ? 1 : 0);
  if (t.bus) {
    out.Gauge("vmtime_host_timesyncd_server_info", "timesyncd's current server (1).")
        .Add({{"server_name", t.server_name}, {"server_address", t.server_address}}, 1);
  }
  auto opt = [&out](const char* name, const char* help, const auto& v) {
    if (v) out.Gauge(name, help).Add(static_cast<double>(*v));
  };
  opt("vmtime_host_timesyncd_leap", "Leap indicator of timesyncd's last NTP message.", t.leap);
  opt("vmtime_host_timesyncd_stratum", "Stratum of the server of timesyncd's last NTP message.",
      t.stratum);
  opt("vmtime_host_timesyncd_offset_seconds",
      "Offset of timesyncd's last NTP message: server minus host (positive = host behind).",
      t.offset_s);
  opt("vmtime_host_timesyncd_delay_seconds", "Round-trip delay of timesyncd's last NTP message.",
      t.delay_s);
  opt("vmtime_host_timesyncd_root_delay_seconds", "Root delay of timesyncd's server.",
      t.root_delay_s);
  opt("vmtime_host_timesyncd_root_dispersion_seconds", "Root dispersion of timesyncd's server.",
      t.root_dispersion_s);
  opt("vmtime_host_timesyncd_jitter_seconds", "timesyncd's jitter estimate.", t.jitter_s);
}

}  // namespace

void AppendNtpdMetrics(const Snapshot& s, FamilyBuilder& out) {
  RenderGuarded("ntpd metrics", [&] {
    if (!s.ntpd && !Ran(s, "ntpd")) return;
    out.Gauge("vmtime_host_ntpd_up", "1 when the host ntpd answered the last poll (mode 6).")
        .Add(s.ntpd_up ? 1 : 0);
    if (!s.ntpd_up || !s.ntpd) return;
    RenderNtpdSystem(*s.ntpd, out);
    if (!s.ntpd->peers.empty()) RenderNtpdPeers(*s.ntpd, out);
  });
}

void AppendTimesyncdMetrics(const Snapshot& s, FamilyBuilder& out) {
  RenderGuarded("timesyncd metrics", [&] {
    if (!s.timesyncd && !Ran(s, "timesyncd")) return;
    out.Gauge("vmtime_host_timesyncd_up",
              "1 when systemd-timesyncd was found at the last poll (D-Bus or its flag directory).")
        .Add(s.timesyncd_up ? 1 : 0);
    if (!s.timesyncd_up || !s.timesyncd) return;
    RenderTimesyncd(*s.timesyncd, out);
  });
}

}  // namespace vmtime::exposition
