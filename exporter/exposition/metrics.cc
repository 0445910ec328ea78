#include "exporter/exposition/metrics.h"

#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include <array>
#include <exception>
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
            "vmtime-exporter.",
            {{"version", kVersion}, {"revision", kRevision}}, 1);
  out.Declare("vmtime_collector_success", "1 when the collector's last run succeeded.",
              prometheus::MetricType::Gauge);
  out.Declare("vmtime_collector_duration_seconds", "Duration of the collector's last run.",
              prometheus::MetricType::Gauge);
  out.Declare("vmtime_collector_last_run_timestamp_seconds",
              "Unix time when the collector's last run ended.", prometheus::MetricType::Gauge);
  for (const auto& c : s.collectors) {
    const Labels l = {{"collector", c.name}};
    out.Gauge("vmtime_collector_success", "", l, c.success ? 1 : 0);
    out.Gauge("vmtime_collector_duration_seconds", "", l, c.duration_s);
    out.Gauge("vmtime_collector_last_run_timestamp_seconds", "", l, Seconds(c.last_run_real_ns));
  }
  out.Gauge("vmtime_config_last_reload_successful",
            "1 when the last configuration (re)load succeeded.", {},
            s.reload.last_successful ? 1 : 0);
  out.Gauge("vmtime_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration (re)load.", {},
            Seconds(s.reload.last_success_real_ns));
  if (s.libvirt_enabled) {
    out.Gauge("vmtime_libvirt_up", "1 while the libvirt connection is open.", {},
              s.libvirt_connected ? 1 : 0);
    std::map<std::string, int> by_state;
    for (const auto& vm : s.vms) ++by_state[DomainStateName(vm.state)];
    out.Declare("vmtime_vms", "Domains libvirt lists, by state.", prometheus::MetricType::Gauge);
    for (const auto& [state, n] : by_state) out.Gauge("vmtime_vms", "", {{"state", state}}, n);
  }
}

void AppendTimexMetrics(const Snapshot& s, FamilyBuilder& out) {
  if (!s.timex) return;
  const auto& t = *s.timex;
  out.Gauge("vmtime_host_timex_offset_seconds", "Host kernel PLL time offset (adjtimex).", {},
            t.offset_s);
  out.Gauge("vmtime_host_timex_frequency_adjustment_ratio",
            "Host kernel frequency adjustment as a ratio (1e-6 = 1 ppm).", {}, t.frequency_ratio);
  out.Gauge("vmtime_host_timex_maxerror_seconds", "Host kernel maximum error.", {}, t.max_error_s);
  out.Gauge("vmtime_host_timex_estimated_error_seconds", "Host kernel estimated error.", {},
            t.est_error_s);
  out.Gauge("vmtime_host_timex_status", "Host kernel clock status bits (STA_*).", {}, t.status);
  out.Gauge("vmtime_host_timex_sync_status", "1 when the host kernel clock is synchronised.", {},
            t.synchronised ? 1 : 0);
  out.Gauge("vmtime_host_timex_tick_seconds", "Length of a host clock tick.", {}, t.tick_s);
  out.Gauge("vmtime_host_timex_tai_offset_seconds", "TAI minus UTC as the host kernel knows it.",
            {}, t.tai_offset_s);
  out.Gauge("vmtime_host_timex_loop_time_constant", "Host kernel PLL time constant.", {},
            t.time_constant);
  out.Counter("vmtime_host_timex_kvm_offset_artifacts_total",
              "adjtimex readings whose offset was exactly 2^32 ns (a known KVM artifact, not "
              "scored).",
              {}, static_cast<double>(s.timex_kvm_artifacts_total));
}

void AppendVmMetrics(const Snapshot& s, FamilyBuilder& out) {
  if (!s.libvirt_enabled) return;
  // Declare every per-VM family so HELP/TYPE are stable with zero VMs.
  using prometheus::MetricType;
  struct Fam {
    const char* name;
    const char* help;
    MetricType type;
  };
  static const std::array<Fam, 16> kFamilies = {{
      {"vmtime_vm_info", "Domain known to libvirt (1), with its state.", MetricType::Gauge},
      {"vmtime_vm_agent_up", "1 when the last guest-get-time through the guest agent succeeded.",
       MetricType::Gauge},
      {"vmtime_vm_clock_offset_seconds",
       "Guest clock minus host CLOCK_REALTIME (positive = guest ahead).", MetricType::Gauge},
      {"vmtime_vm_clock_offset_uncertainty_seconds",
       "Half the round trip of the offset measurement: the true offset is within +/- this.",
       MetricType::Gauge},
      {"vmtime_vm_clock_utc_offset_seconds",
       "Guest clock minus UTC (VM-vs-host offset plus host-vs-UTC from chronyd).",
       MetricType::Gauge},
      {"vmtime_vm_clock_drift_ratio",
       "Least-squares slope of the guest offset over the drift window (1e-6 = 1 ppm).",
       MetricType::Gauge},
      {"vmtime_vm_clock_stopped", "1 when the guest clock stopped advancing.", MetricType::Gauge},
      {"vmtime_vm_clock_steps_total", "Guest clock steps beyond the step threshold, by direction.",
       MetricType::Counter},
      {"vmtime_vm_agent_rtt_seconds", "Round trip of the kept virDomainGetTime call.",
       MetricType::Gauge},
      {"vmtime_vm_last_sample_timestamp_seconds",
       "Unix time (host) of the last good guest clock sample.", MetricType::Gauge},
      {"vmtime_vm_guest_synchronized", "Guest time daemon reports synchronised (1) or not (0).",
       MetricType::Gauge},
      {"vmtime_vm_guest_stratum", "Stratum the guest time daemon reports.", MetricType::Gauge},
      {"vmtime_vm_guest_leap_status",
       "Guest leap status: 0 normal, 1 insert, 2 delete, 3 unsynchronised.", MetricType::Gauge},
      {"vmtime_vm_health_score", "Guest clock sync health score, 0..100 (docs/scoring.md).",
       MetricType::Gauge},
      {"vmtime_vm_health_component_score", "Score component, 0..1.", MetricType::Gauge},
      {"vmtime_vm_health_reason", "1 while the named reason is active.", MetricType::Gauge},
  }};
  for (const auto& f : kFamilies) out.Declare(f.name, f.help, f.type);
  out.Declare("vmtime_vm_guest_status_source", "1 for the guest daemon the status came from.",
              MetricType::Gauge);
  DeclareGuestStatusMetrics(out);

  for (const auto& vm : s.vms) {
    const Labels l = {{"domain", vm.name}, {"uuid", vm.uuid}};
    out.Gauge("vmtime_vm_info", "",
              {{"domain", vm.name}, {"uuid", vm.uuid}, {"state", DomainStateName(vm.state)}}, 1);
    out.Gauge("vmtime_vm_agent_up", "", l, vm.agent_up ? 1 : 0);
    if (vm.last_sample) {
      out.Gauge("vmtime_vm_clock_offset_seconds", "", l, vm.last_sample->offset_s);
      out.Gauge("vmtime_vm_clock_offset_uncertainty_seconds", "", l, vm.last_sample->uncertainty_s);
      out.Gauge("vmtime_vm_agent_rtt_seconds", "", l, vm.rtt_s);
      out.Gauge("vmtime_vm_last_sample_timestamp_seconds", "", l,
                Seconds(vm.last_sample->host_real_ns));
    }
    if (vm.utc_offset_s) out.Gauge("vmtime_vm_clock_utc_offset_seconds", "", l, *vm.utc_offset_s);
    if (vm.score.drift) out.Gauge("vmtime_vm_clock_drift_ratio", "", l, vm.score.drift->ratio);
    out.Gauge("vmtime_vm_clock_stopped", "", l, vm.score.clock_stopped ? 1 : 0);
    Labels fwd = l, back = l;
    fwd.emplace_back("direction", "forward");
    back.emplace_back("direction", "backward");
    out.Counter("vmtime_vm_clock_steps_total", "", fwd, vm.steps_total.forward);
    out.Counter("vmtime_vm_clock_steps_total", "", back, vm.steps_total.backward);
    if (vm.guest) {
      const auto& g = vm.guest->status;
      if (g.state != scoring::SyncState::kUnknown) {
        out.Gauge("vmtime_vm_guest_synchronized", "", l,
                  g.state == scoring::SyncState::kSynchronised ? 1 : 0);
      }
      if (g.stratum) out.Gauge("vmtime_vm_guest_stratum", "", l, *g.stratum);
      if (g.leap != scoring::LeapStatus::kUnknown) {
        out.Gauge("vmtime_vm_guest_leap_status", "", l, static_cast<int>(g.leap));
      }
      Labels d = l;
      d.emplace_back("daemon", vm.guest->daemon);
      out.Gauge("vmtime_vm_guest_status_source", "", d, 1);
      AppendGuestStatusMetrics(vm, l, out);
    }
    out.Gauge("vmtime_vm_health_score", "", l, vm.score.score);
    for (int c = 0; c < scoring::kComponentCount; ++c) {
      if (!vm.score.measured[c]) continue;  // input not collected: no series
      Labels cl = l;
      cl.emplace_back("component",
                      std::string(scoring::ComponentName(static_cast<scoring::Component>(c))));
      out.Gauge("vmtime_vm_health_component_score", "", cl, vm.score.components[c]);
    }
    for (auto r : vm.score.reasons) {
      Labels rl = l;
      rl.emplace_back("reason", std::string(scoring::ReasonName(r)));
      out.Gauge("vmtime_vm_health_reason", "", rl, 1);
    }
  }
}

std::vector<prometheus::MetricFamily> RenderFamilies(const Snapshot& s) {
  FamilyBuilder out;
  AppendSelfMetrics(s, out);
  AppendTimexMetrics(s, out);
  AppendChronyMetrics(s, out);
  AppendNtpMetrics(s, out);
  AppendVmMetrics(s, out);
  auto families = out.Take();
  // Families declared but left without samples are dropped: promtool and
  // Prometheus accept them, but they add noise.
  std::erase_if(families, [](const prometheus::MetricFamily& f) { return f.metric.empty(); });
  return families;
}

std::string RenderText(const Snapshot& s) {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(RenderFamilies(s));
}

std::vector<prometheus::MetricFamily> SnapshotCollectable::Collect() const {
  try {
    auto snap = holder_.Get();
    return RenderFamilies(*snap);
  } catch (const std::exception& e) {
    spdlog::error("rendering metrics failed: {}", e.what());
  } catch (...) {
    spdlog::error("rendering metrics failed");
  }
  return {};
}

}  // namespace vmtime::exposition
