// The JSON API (docs/api.md) and the HTML status page, rendered from a
// Snapshot (see views.h). Unknown values are JSON null, never a guess.
#include "exporter/exposition/views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "exporter/core/build_info.h"
#include "scoring/score.h"

namespace vmtime::exposition {
namespace {

using nlohmann::json;

json OptNum(const std::optional<double>& v) {
  return v && std::isfinite(*v) ? json(*v) : json(nullptr);
}

json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

int UsableServers(const NtpObservation& ntp) {
  int usable = 0;
  for (const auto& srv : ntp.servers) usable += srv.usable ? 1 : 0;
  return usable;
}

std::string Band(const VmView& vm) { return std::string(scoring::BandName(vm.score.band)); }

json GuestJson(const VmView& vm) {
  if (!vm.guest) return nullptr;
  const auto& g = vm.guest->status;
  json gj;
  gj["daemon"] = vm.guest->daemon;
  gj["synchronised"] = g.state == scoring::SyncState::kUnknown
                           ? json(nullptr)
                           : json(g.state == scoring::SyncState::kSynchronised);
  gj["stratum"] = g.stratum ? json(*g.stratum) : json(nullptr);
  gj["leap_status"] =
      g.leap == scoring::LeapStatus::kUnknown ? json(nullptr) : json(static_cast<int>(g.leap));
  gj["error"] = vm.guest->error;
  return gj;
}

void AddScoreJson(const VmView& vm, json& j) {
  j["health_score"] = Num(vm.score.score);
  j["band"] = Band(vm);
  json comps = json::object();
  for (int c = 0; c < scoring::kComponentCount; ++c) {
    comps[std::string(scoring::ComponentName(static_cast<scoring::Component>(c)))] =
        vm.score.measured[c] ? Num(vm.score.components[c]) : json(nullptr);  // null: not collected
  }
  j["components"] = comps;
  json reasons = json::array();
  for (auto r : vm.score.reasons) reasons.push_back(std::string(scoring::ReasonName(r)));
  j["reasons"] = reasons;
}

json VmJson(const VmView& vm) {
  json j;
  j["domain"] = vm.name;
  j["uuid"] = vm.uuid;
  j["state"] = DomainStateName(vm.state);
  j["group"] = vm.group.empty() ? json(nullptr) : json(vm.group);
  json labels = json::object();
  for (const auto& [name, value] : vm.labels) labels[name] = value;
  j["labels"] = labels;
  // null before the first agent attempt: neither up nor down.
  j["agent_up"] = vm.agent_attempted ? json(vm.agent_up) : json(nullptr);
  j["agent_error"] = vm.agent_error;
  const auto& ls = vm.last_sample;
  j["offset_seconds"] = ls ? Num(ls->offset_s) : json(nullptr);
  j["offset_uncertainty_seconds"] = ls ? Num(ls->uncertainty_s) : json(nullptr);
  j["utc_offset_seconds"] = OptNum(vm.utc_offset_s);
  j["drift_ratio"] = vm.score.drift ? Num(vm.score.drift->ratio) : json(nullptr);
  j["clock_stopped"] = vm.score.clock_stopped;
  j["steps_total"] = {{"forward", vm.steps_total.forward}, {"backward", vm.steps_total.backward}};
  j["agent_rtt_seconds"] = ls ? Num(vm.rtt_s) : json(nullptr);
  j["last_sample_timestamp_seconds"] =
      ls ? Num(static_cast<double>(ls->host_real_ns) / 1e9) : json(nullptr);
  j["guest"] = GuestJson(vm);
  AddScoreJson(vm, j);
  return j;
}

json HostJson(const Snapshot& s) {
  json host;
  if (s.host_reference) {
    host["reference"] = {
        {"source", s.host_reference->source},
        {"synchronised", s.host_reference->state == scoring::SyncState::kSynchronised}};
  } else {
    host["reference"] = nullptr;
  }
  if (s.timex) {
    host["timex"] = {{"synchronised", s.timex->synchronised},
                     {"offset_seconds", Num(s.timex->offset_s)},
                     {"maxerror_seconds", Num(s.timex->max_error_s)}};
  } else {
    host["timex"] = nullptr;
  }
  if (s.chrony) {
    const auto& t = s.chrony->tracking;
    host["chrony"] = {{"up", s.chrony_up},
                      {"stratum", t.stratum},
                      {"leap_status", t.leap_status},
                      {"system_time_seconds", Num(t.system_time_offset_s)},
                      {"root_delay_seconds", Num(t.root_delay_s)},
                      {"root_dispersion_seconds", Num(t.root_dispersion_s)},
                      {"reference", t.reference_name}};
  } else {
    host["chrony"] = nullptr;
  }
  if (s.ntp) {
    host["ntp"] = {{"configured_sources", s.ntp_configured},
                   {"usable_sources", UsableServers(*s.ntp)}};
  } else {
    host["ntp"] = nullptr;
  }
  return host;
}

}  // namespace

json RenderJson(const Snapshot& s) {
  json j;
  j["generated_at_unix"] = static_cast<double>(s.built_real_ns) / 1e9;
  j["exporter"] = {{"version", kVersion}, {"revision", kRevision}};
  j["libvirt"] = {{"enabled", s.libvirt_enabled}, {"connected", s.libvirt_connected}};
  j["host"] = HostJson(s);
  json vms = json::array();
  for (const auto& vm : s.vms) vms.push_back(VmJson(vm));
  j["vms"] = vms;
  json groups = json::array();
  for (const GroupView& g : s.groups) {
    groups.push_back(
        {{"group", g.name},
         {"members", g.members},
         {"measured_members", g.measured},
         {"offset_spread_seconds", g.measured >= 2 ? Num(g.spread_s) : json(nullptr)}});
  }
  j["groups"] = groups;
  return j;
}

}  // namespace vmtime::exposition
