// Renders the exporter, host-verdict, timex and per-VM families of a Snapshot
// (see metrics.h); chronyd and NTP sections live in their own files.
#include "exporter/exposition/metrics.h"

#include <prometheus/text_serializer.h>

#include <map>

#include "exporter/core/build_info.h"
#include "exporter/exposition/chrony_metrics.h"
#include "exporter/exposition/guest_status_metrics.h"
#include "exporter/exposition/ntp_metrics.h"
#include "scoring/score.h"

namespace vmtime::exposition {
namespace {

double Seconds(int64_t real_ns) { return static_cast<double>(real_ns) / 1e9; }

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
  if (s.libvirt_enabled) {
    out.Gauge("vmtime_libvirt_up", "1 while the libvirt connection is open.")
        .Add(s.libvirt_connected ? 1 : 0);
    std::map<std::string, int> by_state;
    for (const auto& vm : s.vms) ++by_state[DomainStateName(vm.state)];
    const Family vms = out.Gauge("vmtime_vms", "Domains libvirt lists, by state.");
    for (const auto& [state, n] : by_state) vms.Add({{"state", state}}, n);
  }
}

void AppendHostMetrics(const Snapshot& s, FamilyBuilder& out) {
  if (!s.host_reference) return;
  const scoring::HostReference& h = *s.host_reference;
  out.Gauge("vmtime_host_synchronised",
            "1 when the host clock is synchronised as `source` decided it (chronyd when it "
            "answers, else the kernel), 0 otherwise.")
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

namespace {

// Every per-VM family, declared once per scrape in output order; the
// members are the only place their names are written.
struct VmFamilies {
  explicit VmFamilies(FamilyBuilder& out)
      : info(out.Gauge("vmtime_vm_info", "Domain known to libvirt (1), with its state.")),
        agent_up(
            out.Gauge("vmtime_vm_agent_up",
                      "1 when the last guest-get-time through the guest agent succeeded; absent "
                      "before the first attempt.")),
        offset(out.Gauge("vmtime_vm_clock_offset_seconds",
                         "Guest clock minus host CLOCK_REALTIME (positive = guest ahead).")),
        uncertainty(out.Gauge(
            "vmtime_vm_clock_offset_uncertainty_seconds",
            "Half the round trip of the offset measurement: the true offset is within +/- this.")),
        utc_offset(
            out.Gauge("vmtime_vm_clock_utc_offset_seconds",
                      "Guest clock minus UTC (VM-vs-host offset plus host-vs-UTC from chronyd).")),
        drift(out.Gauge(
            "vmtime_vm_clock_drift_ratio",
            "Least-squares slope of the guest offset over the drift window (1e-6 = 1 ppm).")),
        stopped(out.Gauge("vmtime_vm_clock_stopped", "1 when the guest clock stopped advancing.")),
        steps(out.Counter("vmtime_vm_clock_steps_total",
                          "Guest clock steps beyond the step threshold, by direction.")),
        rtt(out.Gauge("vmtime_vm_agent_rtt_seconds",
                      "Round trip of the kept virDomainGetTime call.")),
        last_sample(out.Gauge("vmtime_vm_last_sample_timestamp_seconds",
                              "Unix time (host) of the last good guest clock sample.")),
        guest_synchronised(out.Gauge("vmtime_vm_guest_synchronised",
                                     "Guest time daemon reports synchronised (1) or not (0).")),
        guest_stratum(
            out.Gauge("vmtime_vm_guest_stratum", "Stratum the guest time daemon reports.")),
        guest_leap(out.Gauge("vmtime_vm_guest_leap_status",
                             "Guest leap status: 0 normal, 1 insert, 2 delete, 3 unsynchronised.")),
        score(out.Gauge("vmtime_vm_health_score",
                        "Guest clock sync health score, 0..100 (docs/scoring.md).")),
        band(out.Gauge("vmtime_vm_health_band",
                       "Health band of the score: 0 good, 1 degraded, 2 bad (docs/scoring.md).")),
        component(out.Gauge("vmtime_vm_health_component_score", "Score component, 0..1.")),
        reason(out.Gauge("vmtime_vm_health_reason", "1 while the named reason is active.")),
        guest_source(out.Gauge("vmtime_vm_guest_status_source",
                               "1 for the guest daemon the status came from.")),
        guest_error(DeclareGuestStatusMetrics(out)) {}

  Family info, agent_up, offset, uncertainty, utc_offset, drift, stopped, steps, rtt, last_sample;
  Family guest_synchronised, guest_stratum, guest_leap;
  Family score, band, component, reason;
  Family guest_source, guest_error;
};

// Labels of one VM plus one more.
Labels With(const Labels& vm, const char* name, std::string value) {
  Labels l = vm;
  l.emplace_back(name, std::move(value));
  return l;
}

void AppendGuestStatus(const VmView& vm, const Labels& l, const VmFamilies& f) {
  if (!vm.guest) return;
  const auto& g = vm.guest->status;
  if (g.state != scoring::SyncState::kUnknown) {
    f.guest_synchronised.Add(l, g.state == scoring::SyncState::kSynchronised ? 1 : 0);
  }
  if (g.stratum) f.guest_stratum.Add(l, *g.stratum);
  if (g.leap != scoring::LeapStatus::kUnknown) f.guest_leap.Add(l, static_cast<int>(g.leap));
  f.guest_source.Add(With(l, "daemon", vm.guest->daemon), 1);
  AppendGuestStatusMetrics(vm, l, f.guest_error);
}

void AppendScore(const VmView& vm, const Labels& l, const VmFamilies& f) {
  f.score.Add(l, vm.score.score);
  f.band.Add(l, static_cast<int>(vm.score.band));
  for (int c = 0; c < scoring::kComponentCount; ++c) {
    if (!vm.score.measured[c]) continue;  // input not collected: no series
    const auto name = scoring::ComponentName(static_cast<scoring::Component>(c));
    f.component.Add(With(l, "component", std::string(name)), vm.score.components[c]);
  }
  for (auto r : vm.score.reasons) {
    f.reason.Add(With(l, "reason", std::string(scoring::ReasonName(r))), 1);
  }
}

void AppendVm(const VmView& vm, const VmFamilies& f) {
  const Labels l = {{"domain", vm.name}, {"uuid", vm.uuid}};
  f.info.Add(With(l, "state", DomainStateName(vm.state)), 1);
  // Before the first agent attempt the agent is neither up nor down.
  if (vm.agent_attempted) f.agent_up.Add(l, vm.agent_up ? 1 : 0);
  if (vm.last_sample) {
    f.offset.Add(l, vm.last_sample->offset_s);
    f.uncertainty.Add(l, vm.last_sample->uncertainty_s);
    f.rtt.Add(l, vm.rtt_s);
    f.last_sample.Add(l, Seconds(vm.last_sample->host_real_ns));
  }
  if (vm.utc_offset_s) f.utc_offset.Add(l, *vm.utc_offset_s);
  if (vm.score.drift) f.drift.Add(l, vm.score.drift->ratio);
  f.stopped.Add(l, vm.score.clock_stopped ? 1 : 0);
  f.steps.Add(With(l, "direction", "forward"), vm.steps_total.forward);
  f.steps.Add(With(l, "direction", "backward"), vm.steps_total.backward);
  AppendGuestStatus(vm, l, f);
  AppendScore(vm, l, f);
}

}  // namespace

void AppendVmMetrics(const Snapshot& s, FamilyBuilder& out) {
  if (!s.libvirt_enabled) return;
  const VmFamilies families(out);
  for (const auto& vm : s.vms) AppendVm(vm, families);
}

std::vector<prometheus::MetricFamily> RenderFamilies(const Snapshot& s) {
  FamilyBuilder out;
  AppendSelfMetrics(s, out);
  AppendHostMetrics(s, out);
  AppendTimexMetrics(s, out);
  AppendChronyMetrics(s, out);
  AppendNtpMetrics(s, out);
  AppendVmMetrics(s, out);
  return out.Take();
}

std::string RenderText(const Snapshot& s) {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(RenderFamilies(s));
}

std::vector<prometheus::MetricFamily> SnapshotCollectable::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  RenderGuarded("metrics", [&] { families = RenderFamilies(*holder_.Get()); });
  return families;
}

}  // namespace vmtime::exposition
