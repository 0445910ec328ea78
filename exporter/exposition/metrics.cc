// Renders the exporter, host-verdict, timex and per-VM families of a Snapshot
// (see metrics.h); chronyd and NTP sections live in their own files.
#include "exporter/exposition/metrics.h"

#include <map>

#include "exporter/core/build_info.h"
#include "exporter/exposition/chrony_metrics.h"
#include "exporter/exposition/ntp_metrics.h"
#include "exporter/exposition/ptp_metrics.h"
#include "exporter/exposition/text_writer.h"
#include "exporter/exposition/time_daemon_metrics.h"
#include "exporter/exposition/vm_metrics.h"
#include "scoring/score.h"

namespace vmtime::exposition {
namespace {

double Seconds(int64_t real_ns) { return static_cast<double>(real_ns) / 1e9; }

// Groups (docs/metrics.md, "Groups"): one series per group with members on
// this host; the spread only where two or more members are measured.
void AppendGroupMetrics(const Snapshot& s, FamilyBuilder& out) {
  if (s.groups.empty()) return;
  const Family members =
      out.Gauge("vmtime_group_members", "Domains of the group on this host, any state.");
  const Family measured = out.Gauge(
      "vmtime_group_measured_members",
      "Members of the group on this host that run and have a guest clock sample that is not "
      "stale.");
  const Family spread =
      out.Gauge("vmtime_group_offset_spread_seconds",
                "Max minus min guest clock offset among the group's measured members on this host "
                "(present with two or more).");
  for (const GroupView& g : s.groups) {
    const Labels l = {{"group", g.name.str()}};
    members.Add(l, g.members);
    measured.Add(l, g.measured);
    if (g.measured >= 2) spread.Add(l, g.spread_s);
  }
}

// The audit trail's counters (docs/audit.md); none before a sink is attached.
void AppendEventMetrics(const Snapshot& s, FamilyBuilder& out) {
  if (s.events.dropped_by_reason.empty() && s.events.total_by_type.empty()) return;
  const Family total = out.Counter("vmtime_events_total",
                                   "Audit events emitted since the exporter started, by type.");
  for (const auto& [type, n] : s.events.total_by_type) {
    total.Add({{"type", type}}, static_cast<double>(n));
  }
  const Family dropped = out.Counter(
      "vmtime_events_dropped_total",
      "Audit events not written to audit.file, by reason (queue_full, write_error, size_limit); "
      "they are still served by /api/v1/events.");
  for (const auto& [reason, n] : s.events.dropped_by_reason) {
    dropped.Add({{"reason", reason}}, static_cast<double>(n));
  }
}

}  // namespace

void AppendSelfMetrics(const Snapshot& s, FamilyBuilder& out) {
  out.Gauge("vmtime_exporter_build_info",
            "A metric with a constant '1' value labeled by version and revision of "
            "vmtime-exporter.")
      .Add({{"version", kVersion}, {"revision", kRevision}}, 1);
  const Family success =
      out.Gauge("vmtime_collector_success", "1 when the collector's last run succeeded.");
  const Family duration =
      out.Gauge("vmtime_collector_duration_seconds", "Duration of the collector's last run.");
  const Family last_run = out.Gauge("vmtime_collector_last_run_timestamp_seconds",
                                    "Unix time when the collector's last run ended.");
  for (const auto& c : s.collectors) {
    const Labels l = {{"collector", c.name}};
    success.Add(l, c.success ? 1 : 0);
    duration.Add(l, c.duration_s);
    last_run.Add(l, Seconds(c.last_run_real_ns));
  }
  out.Gauge("vmtime_config_last_reload_successful",
            "1 when the last configuration (re)load succeeded.")
      .Add(s.reload.last_successful ? 1 : 0);
  out.Gauge("vmtime_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration (re)load.")
      .Add(Seconds(s.reload.last_success_real_ns));
  AppendEventMetrics(s, out);
  if (s.libvirt_enabled) {
    out.Gauge("vmtime_libvirt_up", "1 while the libvirt connection is open.")
        .Add(s.libvirt_connected ? 1 : 0);
    std::map<std::string, int> by_state;
    for (const auto& vm : s.vms) ++by_state[DomainStateName(vm.state)];
    const Family vms = out.Gauge("vmtime_vms", "Domains libvirt lists, by state.");
    for (const auto& [state, n] : by_state) vms.Add({{"state", state}}, n);
    AppendGroupMetrics(s, out);
  }
}

void AppendHostMetrics(const Snapshot& s, FamilyBuilder& out) {
  if (!s.host_reference) return;
  const scoring::HostReference& h = *s.host_reference;
  out.Gauge("vmtime_host_synchronised",
            "1 when the host clock is synchronised as `source` decided it (the first present "
            "source of host.reference_order), 0 otherwise.")
      .Add({{"source", h.source}}, h.state == scoring::SyncState::kSynchronised ? 1 : 0);
}

void AppendTimexMetrics(const Snapshot& s, FamilyBuilder& out) {
  if (!s.timex) return;
  const auto& t = *s.timex;
  out.Gauge("vmtime_host_timex_offset_seconds", "Host kernel PLL time offset (adjtimex).")
      .Add(t.offset_s);
  out.Gauge("vmtime_host_timex_frequency_adjustment_ratio",
            "Host kernel frequency adjustment as a ratio (1e-6 = 1 ppm).")
      .Add(t.frequency_ratio);
  out.Gauge("vmtime_host_timex_maxerror_seconds", "Host kernel maximum error.").Add(t.max_error_s);
  out.Gauge("vmtime_host_timex_estimated_error_seconds", "Host kernel estimated error.")
      .Add(t.est_error_s);
  out.Gauge("vmtime_host_timex_status", "Host kernel clock status bits (STA_*).").Add(t.status);
  out.Gauge("vmtime_host_timex_sync_status",
            "1 when the host kernel clock state is not TIME_ERROR and STA_UNSYNC is clear (raw "
            "flags; vmtime_host_synchronised is the verdict).")
      .Add(t.synchronised ? 1 : 0);
  out.Gauge("vmtime_host_timex_tick_seconds", "Length of a host clock tick.").Add(t.tick_s);
  out.Gauge("vmtime_host_timex_tai_offset_seconds", "TAI minus UTC as the host kernel knows it.")
      .Add(t.tai_offset_s);
  out.Gauge("vmtime_host_timex_loop_time_constant", "Host kernel PLL time constant.")
      .Add(t.time_constant);
  out.Counter("vmtime_host_timex_kvm_offset_artifacts_total",
              "adjtimex readings whose offset was exactly 2^32 ns (a known KVM artifact, not "
              "scored).")
      .Add(static_cast<double>(s.timex_kvm_artifacts_total));
}

std::vector<prometheus::MetricFamily> RenderFamilies(const Snapshot& s) {
  FamilyBuilder out;
  AppendSelfMetrics(s, out);
  AppendHostMetrics(s, out);
  AppendTimexMetrics(s, out);
  AppendChronyMetrics(s, out);
  AppendNtpMetrics(s, out);
  AppendNtpdMetrics(s, out);
  AppendTimesyncdMetrics(s, out);
  AppendPtpMetrics(s, out);
  AppendVmMetrics(s, out);
  return out.Take();
}

void AppendHostText(const Snapshot& s, std::string& out) {
  // The exporter and host sections: a few dozen series, built as
  // MetricFamily values (their per-source loops interleave families, which
  // FamilyBuilder orders) and written by the same writer.
  std::vector<prometheus::MetricFamily> host;
  RenderGuarded("metrics", [&] {
    FamilyBuilder b;
    AppendSelfMetrics(s, b);
    AppendHostMetrics(s, b);
    AppendTimexMetrics(s, b);
    AppendChronyMetrics(s, b);
    AppendNtpMetrics(s, b);
    AppendNtpdMetrics(s, b);
    AppendTimesyncdMetrics(s, b);
    AppendPtpMetrics(s, b);
    host = b.Take();
  });
  AppendFamilies(out, host);
}

std::string RenderText(const Snapshot& s, size_t reserve_bytes) {
  std::string out;
  out.reserve(reserve_bytes > 0 ? reserve_bytes : kHostSectionBytes + kBytesPerVm * s.vms.size());
  AppendHostText(s, out);
  const size_t vm_start = out.size();
  RenderGuarded("vm metrics", [&] {
    try {
      AppendVmText(s, out);
    } catch (...) {
      out.resize(vm_start);  // no half-written family
      throw;
    }
  });
  return out;
}

std::vector<prometheus::MetricFamily> SnapshotCollectable::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  RenderGuarded("metrics", [&] { families = RenderFamilies(*holder_.Get()); });
  return families;
}

}  // namespace vmtime::exposition
