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

std::string Escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string FormatOffset(double s) {
  char buf[64];
  const double a = std::fabs(s);
  if (a >= 60) {
    std::snprintf(buf, sizeof(buf), "%+.1f min", s / 60);
  } else if (a >= 1) {
    std::snprintf(buf, sizeof(buf), "%+.3f s", s);
  } else {
    std::snprintf(buf, sizeof(buf), "%+.3f ms", s * 1e3);
  }
  return buf;
}

std::string Bad(const std::string& text) { return "<span class=\"bad\">" + text + "</span>"; }

void AppendPageHead(const std::string& telemetry_path, std::string& h) {
  h += "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<title>vmtime-exporter</title><style>"
       "body{font-family:sans-serif;margin:1.5em;color:#222}"
       "table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;"
       "text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}"
       ".good{color:#17662c}.degraded{color:#9a6a00}.bad{color:#b3261e;font-weight:bold}"
       "</style></head><body>";
  h += "<h1>vmtime-exporter</h1><p>Version " + Escape(kVersion) + " (" + Escape(kRevision) +
       "). <a href=\"" + Escape(telemetry_path) +
       "\">Metrics</a> &middot; <a href=\"/api/v1/targets\">JSON</a> &middot; "
       "<a href=\"/healthz\">healthz</a> &middot; <a href=\"/readyz\">readyz</a></p>";
}

// The host's verdict first (what scoring used), then the readings behind it.
void AppendHostSection(const Snapshot& s, std::string& h) {
  h += "<h2>Host</h2><ul>";
  if (s.host_reference) {
    const bool synced = s.host_reference->state == scoring::SyncState::kSynchronised;
    h += "<li>host clock: " + (synced ? std::string("synchronised") : Bad("unsynchronised")) +
         " (decided by " + Escape(s.host_reference->source) + ")</li>";
  } else {
    h += "<li>host clock: unknown (neither chronyd nor the kernel was read)</li>";
  }
  if (s.chrony) {
    const auto& t = s.chrony->tracking;
    char buf[256];
    std::snprintf(buf, sizeof(buf), "chronyd %s: stratum %d, leap %d, system time %s",
                  s.chrony_up ? "up" : "DOWN", t.stratum, t.leap_status,
                  FormatOffset(t.system_time_offset_s).c_str());
    h += "<li>" + Escape(buf) + "</li>";
  } else {
    h += "<li>chronyd: no data</li>";
  }
  if (s.timex) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "kernel clock (adjtimex): maximum error %.3f s, %s",
                  s.timex->max_error_s,
                  s.timex->synchronised ? "synchronised" : "STA_UNSYNC set or TIME_ERROR");
    h += "<li>" + Escape(buf) + "</li>";
  }
  if (s.ntp) {
    h += "<li>upstream NTP: " + std::to_string(UsableServers(*s.ntp)) + " of " +
         std::to_string(s.ntp_configured) + " usable</li>";
  }
  if (s.libvirt_enabled) {
    h += std::string("<li>libvirt: ") + (s.libvirt_connected ? "connected" : Bad("disconnected")) +
         ", " + std::to_string(s.vms.size()) + " domains</li>";
  }
  h += "</ul>";
}

void AppendFleetRow(const VmView& vm, std::string& h) {
  const std::string band = Band(vm);
  char score[32];
  std::snprintf(score, sizeof(score), "%.0f", vm.score.score);
  std::string reasons;
  for (auto r : vm.score.reasons) {
    reasons += (reasons.empty() ? "" : ", ") + std::string(scoring::ReasonName(r));
  }
  h += "<tr><td title=\"" + Escape(vm.uuid) + "\">" + Escape(vm.name) + "</td><td>" +
       DomainStateName(vm.state) + "</td><td class=\"num " + band + "\">" + score +
       "</td><td class=\"" + band + "\">" + band + "</td>";
  if (vm.last_sample) {
    h += "<td class=\"num\">" + Escape(FormatOffset(vm.last_sample->offset_s)) +
         "</td><td class=\"num\">" + Escape(FormatOffset(vm.last_sample->uncertainty_s)) + "</td>";
  } else {
    h += "<td>&ndash;</td><td>&ndash;</td>";
  }
  const std::string agent = !vm.agent_attempted ? "not tried yet"
                            : vm.agent_up       ? "up"
                                                : Bad("down");
  h += "<td>" + agent + "</td><td>" + Escape(reasons.empty() ? "-" : reasons) + "</td></tr>";
}

// Fleet table, worst score first.
void AppendFleetTable(const Snapshot& s, std::string& h) {
  std::vector<const VmView*> order;
  order.reserve(s.vms.size());
  for (const auto& vm : s.vms) order.push_back(&vm);
  std::stable_sort(order.begin(), order.end(), [](const VmView* a, const VmView* b) {
    return a->score.score < b->score.score;
  });
  h += "<h2>Virtual machines</h2><table><tr><th>VM</th><th>State</th><th>Score</th>"
       "<th>Band</th><th>Offset vs host</th><th>&plusmn;</th><th>Agent</th><th>Reasons</th></tr>";
  for (const VmView* vm : order) AppendFleetRow(*vm, h);
  h += "</table>";
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
  return j;
}

std::string RenderStatusPage(const Snapshot& s, const std::string& telemetry_path) {
  std::string h;
  h.reserve(4096 + s.vms.size() * 256);
  AppendPageHead(telemetry_path, h);
  AppendHostSection(s, h);
  AppendFleetTable(s, h);
  h += "</body></html>\n";
  return h;
}

}  // namespace vmtime::exposition
