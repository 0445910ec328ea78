// Renders vmtime_ntp_* from Snapshot::ntp (see the header).
#include "exporter/exposition/ntp_metrics.h"

#include <cmath>

namespace vmtime::exposition {
namespace {

// Every per-server family, declared once in output order.
struct ServerFamilies {
  explicit ServerFamilies(FamilyBuilder& out)
      : up(out.Gauge("vmtime_ntp_server_up", "1 when a valid reply arrived from the server.")),
        usable(
            out.Gauge("vmtime_ntp_server_usable",
                      "1 when the server is up, synchronised (leap != 3) and 0 < stratum < 16.")),
        offset(out.Gauge("vmtime_ntp_server_offset_seconds",
                         "Server clock minus host clock (positive = host behind).")),
        rtt(out.Gauge("vmtime_ntp_server_rtt_seconds", "Round-trip delay of the probe.")),
        stratum(out.Gauge("vmtime_ntp_server_stratum", "Stratum the server reports.")),
        leap(out.Gauge("vmtime_ntp_server_leap", "Leap indicator the server reports.")),
        root_delay(
            out.Gauge("vmtime_ntp_server_root_delay_seconds", "Root delay the server reports.")),
        root_dispersion(out.Gauge("vmtime_ntp_server_root_dispersion_seconds",
                                  "Root dispersion the server reports.")),
        precision(out.Gauge("vmtime_ntp_server_precision_seconds",
                            "Clock precision the server reports.")),
        reference(out.Gauge("vmtime_ntp_server_reference_info", "Reference id of the server (1).")),
        kiss_code(
            out.Gauge("vmtime_ntp_server_kiss_code_info",
                      "1 while the server's last reply was a kiss-o'-death with this code.")) {}

  Family up, usable, offset, rtt, stratum, leap, root_delay, root_dispersion, precision, reference,
      kiss_code;
};

void RenderServer(const NtpServerObservation& o, const ServerFamilies& f) {
  const Labels l = {{"server", o.server}};
  f.up.Add(l, o.reachable ? 1 : 0);
  f.usable.Add(l, o.usable ? 1 : 0);
  if (!o.kiss_code.empty()) f.kiss_code.Add({{"server", o.server}, {"code", o.kiss_code}}, 1);
  if (!o.reachable) return;
  f.offset.Add(l, o.offset_s);
  f.rtt.Add(l, o.delay_s);
  f.stratum.Add(l, o.stratum);
  f.leap.Add(l, o.leap);
  f.root_delay.Add(l, o.root_delay_s);
  f.root_dispersion.Add(l, o.root_dispersion_s);
  f.precision.Add(l, std::ldexp(1.0, o.precision_log2));
  f.reference.Add(
      {{"server", o.server}, {"reference_id", NtpReferenceIdText(o.reference_id, o.stratum)}}, 1);
}

void Render(const Snapshot& s, FamilyBuilder& out) {
  if (!s.ntp && s.ntp_configured == 0) return;
  const ServerFamilies families(out);
  size_t usable = 0;
  if (s.ntp) {
    for (const NtpServerObservation& o : s.ntp->servers) {
      RenderServer(o, families);
      if (o.usable) ++usable;
    }
  }
  out.Gauge("vmtime_ntp_usable_sources", "Number of usable configured NTP servers.")
      .Add(static_cast<double>(usable));
  const size_t configured =
      s.ntp_configured > 0 || !s.ntp ? s.ntp_configured : s.ntp->servers.size();
  out.Gauge("vmtime_ntp_configured_sources", "Number of configured NTP servers.")
      .Add(static_cast<double>(configured));
}

}  // namespace

std::string NtpReferenceIdText(uint32_t reference_id, int stratum) {
  if (stratum <= 1) {
    std::string s;
    for (int shift = 24; shift >= 0; shift -= 8) {
      const auto c = static_cast<unsigned char>(reference_id >> shift);
      if (c == 0) break;
      s.push_back(c >= 0x20 && c <= 0x7e ? static_cast<char>(c) : '?');
    }
    return s;
  }
  return std::to_string(reference_id >> 24) + "." + std::to_string((reference_id >> 16) & 255) +
         "." + std::to_string((reference_id >> 8) & 255) + "." + std::to_string(reference_id & 255);
}

void AppendNtpMetrics(const Snapshot& s, FamilyBuilder& out) {
  RenderGuarded("ntp metrics", [&] { Render(s, out); });
}

}  // namespace vmtime::exposition
