// Renders vmtime_host_chrony_* from Snapshot::chrony (see the header).
#include "exporter/exposition/chrony_metrics.h"

#include <cmath>
#include <cstdio>
#include <string>

namespace vmtime::exposition {
namespace {

std::string Hex8(uint32_t x) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08X", x);
  return buf;
}

int PopCount8(int reach) {
  int n = 0;
  for (int i = 0; i < 8; ++i) n += (reach >> i) & 1;
  return n;
}

void RenderTracking(const ChronyTracking& t, FamilyBuilder& out) {
  out.Gauge("vmtime_host_chrony_tracking_info", "chronyd's current reference (1).")
      .Add({{"tracking_refid", Hex8(t.reference_id)}, {"tracking_address", t.reference_name}}, 1);
  out.Gauge("vmtime_host_chrony_tracking_stratum", "Stratum of the host chronyd.").Add(t.stratum);
  out.Gauge("vmtime_host_chrony_tracking_leap_status",
            "Host chronyd leap status: 0 normal, 1 insert, 2 delete, 3 unsynchronised.")
      .Add(t.leap_status);
  out.Gauge("vmtime_host_chrony_tracking_system_time_seconds",
            "Host system time minus true time as chronyd estimates it (positive = host fast).")
      .Add(t.system_time_offset_s);
  out.Gauge("vmtime_host_chrony_tracking_last_offset_seconds",
            "Offset of the last clock update (chronyd).")
      .Add(t.last_offset_s);
  out.Gauge("vmtime_host_chrony_tracking_rms_offset_seconds", "Long-term average offset (chronyd).")
      .Add(t.rms_offset_s);
  out.Gauge("vmtime_host_chrony_tracking_frequency_ppm",
            "Host clock frequency error as chronyc prints it (positive = fast).")
      .Add(t.frequency_ppm);
  out.Gauge("vmtime_host_chrony_tracking_residual_frequency_ppm",
            "Residual frequency of the current reference (chronyd).")
      .Add(t.residual_frequency_ppm);
  out.Gauge("vmtime_host_chrony_tracking_skew_ppm", "Error bound of the frequency (chronyd).")
      .Add(t.skew_ppm);
  out.Gauge("vmtime_host_chrony_tracking_root_delay_seconds",
            "Total network delay to the stratum-1 source (chronyd).")
      .Add(t.root_delay_s);
  out.Gauge("vmtime_host_chrony_tracking_root_dispersion_seconds",
            "Total dispersion accumulated to the stratum-1 source (chronyd).")
      .Add(t.root_dispersion_s);
  out.Gauge("vmtime_host_chrony_tracking_update_interval_seconds",
            "Interval between the last two clock updates (chronyd).")
      .Add(t.update_interval_s);
  out.Gauge("vmtime_host_chrony_tracking_reference_timestamp_seconds",
            "Unix time of the last measurement of the reference (chronyd).")
      .Add(t.ref_time_real_s);
}

// Every per-source family, declared once in output order.
struct SourceFamilies {
  explicit SourceFamilies(FamilyBuilder& out)
      : state_info(
            out.Gauge("vmtime_host_chrony_sources_state_info", "Source of the host chronyd (1).")),
        stratum(out.Gauge("vmtime_host_chrony_sources_stratum", "Stratum of the source.")),
        reachability(out.Gauge("vmtime_host_chrony_sources_reachability_ratio",
                               "Reachability register bits set / 8.")),
        last_offset(out.Gauge(
            "vmtime_host_chrony_sources_last_sample_offset_seconds",
            "Offset of the last sample as chronyc prints it (positive = local clock ahead).")),
        last_error(out.Gauge("vmtime_host_chrony_sources_last_sample_error_seconds",
                             "Error bound of the last sample.")),
        polling_interval(out.Gauge("vmtime_host_chrony_sources_polling_interval_seconds",
                                   "Polling interval of the source.")),
        last_sample_age(out.Gauge("vmtime_host_chrony_sources_last_sample_age_seconds",
                                  "Time since the last sample of the source.")),
        stats_frequency(out.Gauge("vmtime_host_chrony_sourcestats_frequency_ppm",
                                  "Residual frequency of the source (sourcestats).")),
        stats_skew(out.Gauge("vmtime_host_chrony_sourcestats_skew_ppm",
                             "Frequency error bound of the source (sourcestats).")),
        stats_std_dev(
            out.Gauge("vmtime_host_chrony_sourcestats_std_dev_seconds",
                      "Estimated sample standard deviation of the source (sourcestats).")) {}

  Family state_info, stratum, reachability, last_offset, last_error, polling_interval,
      last_sample_age;
  Family stats_frequency, stats_skew, stats_std_dev;
};

void RenderSource(const ChronySource& src, const SourceFamilies& f) {
  const Labels l = {{"source_address", src.address}, {"source_name", src.name}};
  f.state_info.Add({{"source_address", src.address},
                    {"source_name", src.name},
                    {"source_state", ChronySourceStateName(src.state)},
                    {"source_mode", ChronySourceModeName(src.mode)}},
                   1);
  f.stratum.Add(l, src.stratum);
  f.reachability.Add(l, PopCount8(src.reachability) / 8.0);
  f.last_offset.Add(l, src.latest_offset_s);
  f.last_error.Add(l, src.latest_error_s);
  f.polling_interval.Add(l, std::ldexp(1.0, src.poll_log2));
  f.last_sample_age.Add(l, src.since_sample_s);
  if (src.stats_frequency_ppm) f.stats_frequency.Add(l, *src.stats_frequency_ppm);
  if (src.stats_skew_ppm) f.stats_skew.Add(l, *src.stats_skew_ppm);
  if (src.stats_std_dev_s) f.stats_std_dev.Add(l, *src.stats_std_dev_s);
}

void Render(const Snapshot& s, FamilyBuilder& out) {
  bool ran = s.chrony.has_value();
  for (const auto& c : s.collectors) ran = ran || c.name == "chrony";
  if (!ran) return;
  out.Gauge("vmtime_host_chrony_up", "1 when chronyd answered the last poll.")
      .Add(s.chrony_up ? 1 : 0);
  if (!s.chrony_up || !s.chrony) return;
  RenderTracking(s.chrony->tracking, out);
  const SourceFamilies families(out);
  for (const ChronySource& src : s.chrony->sources) RenderSource(src, families);
}

}  // namespace

const char* ChronySourceStateName(int state) {
  switch (state) {
    case 0:
      return "selected";
    case 1:
      return "nonselectable";
    case 2:
      return "falseticker";
    case 3:
      return "jittery";
    case 4:
      return "unselected";
    case 5:
      return "selectable";
    default:
      return "unknown";
  }
}

const char* ChronySourceModeName(int mode) {
  switch (mode) {
    case 0:
      return "server";
    case 1:
      return "peer";
    case 2:
      return "refclock";
    default:
      return "unknown";
  }
}

void AppendChronyMetrics(const Snapshot& s, FamilyBuilder& out) {
  RenderGuarded("chrony metrics", [&] { Render(s, out); });
}

}  // namespace vmtime::exposition
