// See targets.h.
#include "dashboards/zabbix/check/targets.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

namespace vmtime::zabbix {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 7> kComponents = {
    "offset", "sync_state", "stratum", "drift", "stability", "freshness", "host_reference"};
// The reason names of the contract (scoring/types.h, docs/metrics.md).
constexpr std::array<std::string_view, 18> kReasons = {
    "offset_elevated", "offset_high",        "offset_critical",     "resumed_behind",
    "clock_stopped",   "step_backward",      "step_forward",        "drift_high",
    "unsynchronised",  "guest_sync_unknown", "stratum_high",        "leap_pending",
    "stale",           "agent_unreachable",  "host_unsynchronised", "host_stratum_high",
    "no_data",         "group_skew"};
// Band names in the order of their vmtime_vm_health_band value (0, 1, 2).
constexpr std::array<std::string_view, 3> kBands = {"good", "degraded", "bad"};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

std::string VmName(const json& vm) { return vm.value("domain", std::string("?")); }

Lookup Ok(std::string value) {
  Lookup l;
  l.ok = true;
  l.value = std::move(value);
  return l;
}

Lookup Fail(LookupError kind, std::string message) {
  Lookup l;
  l.failure = {kind, std::move(message)};
  return l;
}

// Walks a dotted path ("guest.stratum") in `vm`; nullptr when a step is
// missing or null.
const json* Path(const json& vm, std::initializer_list<std::string_view> path) {
  const json* cur = &vm;
  for (std::string_view p : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(p);
    if (it == cur->end() || it->is_null()) return nullptr;
    cur = &*it;
  }
  return cur;
}

std::string JoinPath(std::initializer_list<std::string_view> path) {
  std::string out;
  for (std::string_view p : path) out += (out.empty() ? "" : ".") + std::string(p);
  return out;
}

// `key` has no value now: `path` is null or absent.
Lookup UnknownNow(const json& vm, std::string_view key,
                  std::initializer_list<std::string_view> path) {
  return Fail(LookupError::kUnknownValue, "VM '" + VmName(vm) + "': " + std::string(key) +
                                              " is unknown now (" + JoinPath(path) +
                                              " is null or absent in /api/v1/targets)");
}

// `path` holds `v`, which is not of the `expected` type.
Lookup WrongType(const json& vm, std::initializer_list<std::string_view> path, const json& v,
                 std::string_view expected) {
  return Fail(LookupError::kBadDocument, "VM '" + VmName(vm) + "': " + JoinPath(path) + " is " +
                                             v.type_name() + ", expected " + std::string(expected));
}

Lookup Number(const json& vm, std::string_view key, std::initializer_list<std::string_view> path) {
  const json* v = Path(vm, path);
  if (v == nullptr) return UnknownNow(vm, key, path);
  if (v->is_boolean()) return Ok(v->get<bool>() ? "1" : "0");
  if (!v->is_number()) return WrongType(vm, path, *v, "a number");
  if (v->is_number_integer()) return Ok(v->dump());
  return Ok(FormatNumber(v->get<double>()));
}

Lookup Text(const json& vm, std::string_view key, std::initializer_list<std::string_view> path) {
  const json* v = Path(vm, path);
  if (v == nullptr) return UnknownNow(vm, key, path);
  if (!v->is_string()) return WrongType(vm, path, *v, "a string");
  return Ok(v->get<std::string>());
}

Result<std::vector<std::string>> Reasons(const json& vm) {
  std::vector<std::string> out;
  auto it = vm.find("reasons");
  if (it == vm.end() || it->is_null()) return out;
  if (!it->is_array())
    return Error{"reasons is " + std::string(it->type_name()) + ", expected an array"};
  for (const json& r : *it) {
    if (!r.is_string()) return Error{"reasons holds a " + std::string(r.type_name())};
    out.push_back(r.get<std::string>());
  }
  return out;
}

}  // namespace

Result<json> ParseTargets(std::string_view body) {
  json doc;
  try {
    doc = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {  // parse_error carries the byte position
    return Error{std::string("/api/v1/targets is not valid JSON: ") + e.what()};
  }
  if (!doc.is_object()) {
    return Error{std::string("/api/v1/targets: top level is ") + doc.type_name() +
                 ", expected an object"};
  }
  auto vms = doc.find("vms");
  if (vms == doc.end() || !vms->is_array()) {
    return Error{"/api/v1/targets: \"vms\" is missing or not an array"};
  }
  for (size_t i = 0; i < vms->size(); ++i) {
    const json& vm = (*vms)[i];
    const std::string where = "/api/v1/targets: vms[" + std::to_string(i) + "]";
    if (!vm.is_object()) return Error{where + " is " + vm.type_name() + ", expected an object"};
    for (const char* field : {"domain", "uuid"}) {
      auto f = vm.find(field);
      if (f == vm.end() || !f->is_string()) {
        return Error{where + "." + field + ": expected a string"};
      }
    }
  }
  return doc;
}

const json* FindVm(const json& doc, std::string_view name_or_uuid) {
  const json& vms = doc["vms"];
  for (const json& vm : vms) {
    if (vm["domain"].get_ref<const std::string&>() == name_or_uuid) return &vm;
  }
  for (const json& vm : vms) {
    if (EqualsIgnoreCase(vm["uuid"].get_ref<const std::string&>(), name_or_uuid)) return &vm;
  }
  return nullptr;
}

std::string DiscoveryJson(const json& doc) {
  json out = json::array();
  for (const json& vm : doc["vms"]) {
    json row = json::object();
    row["{#VM.NAME}"] = vm["domain"];
    row["{#VM.UUID}"] = vm["uuid"];
    row["{#VM.STATE}"] = vm.value("state", std::string("unknown"));
    out.push_back(std::move(row));
  }
  return out.dump();
}

const std::vector<std::string>& KnownKeys() {
  static const std::vector<std::string> kKeys = {"score",
                                                 "band",
                                                 "effective_offset",
                                                 "offset",
                                                 "utc_offset",
                                                 "uncertainty",
                                                 "drift",
                                                 "stopped",
                                                 "agent_up",
                                                 "agent_error",
                                                 "agent_rtt",
                                                 "state",
                                                 "reasons",
                                                 "reasons_count",
                                                 "steps_forward",
                                                 "steps_backward",
                                                 "last_sample",
                                                 "sample_age",
                                                 "guest_daemon",
                                                 "guest_synchronised",
                                                 "guest_stratum",
                                                 "guest_leap_status",
                                                 "uuid",
                                                 "name",
                                                 "component.<name>",
                                                 "reason.<name>"};
  return kKeys;
}

// Keys that read one JSON field of the VM as it is: a number (booleans as
// 0/1) or a text.
struct FieldKey {
  std::string_view key;
  bool text;
  std::string_view field;
  std::string_view subfield;  // empty: `field` is read directly
};
constexpr FieldKey kFieldKeys[] = {
    {"score", false, "health_score", ""},
    {"offset", false, "offset_seconds", ""},
    {"utc_offset", false, "utc_offset_seconds", ""},
    {"uncertainty", false, "offset_uncertainty_seconds", ""},
    {"drift", false, "drift_ratio", ""},
    {"stopped", false, "clock_stopped", ""},
    {"agent_up", false, "agent_up", ""},
    {"agent_rtt", false, "agent_rtt_seconds", ""},
    {"last_sample", false, "last_sample_timestamp_seconds", ""},
    {"steps_forward", false, "steps_total", "forward"},
    {"steps_backward", false, "steps_total", "backward"},
    {"guest_stratum", false, "guest", "stratum"},
    {"guest_leap_status", false, "guest", "leap_status"},
    {"guest_daemon", true, "guest", "daemon"},
    {"state", true, "state", ""},
    {"uuid", true, "uuid", ""},
    {"name", true, "domain", ""},
};

Lookup FieldValue(const json& vm, const FieldKey& f) {
  if (f.subfield.empty()) {
    return f.text ? Text(vm, f.key, {f.field}) : Number(vm, f.key, {f.field});
  }
  return f.text ? Text(vm, f.key, {f.field, f.subfield}) : Number(vm, f.key, {f.field, f.subfield});
}

// The JSON band name as the number vmtime_vm_health_band exports.
Lookup BandValue(const json& vm, std::string_view key) {
  Lookup name = Text(vm, key, {"band"});
  if (!name.ok) return name;
  auto it = std::find(kBands.begin(), kBands.end(), name.value);
  if (it == kBands.end()) {
    return Fail(LookupError::kBadDocument, "VM '" + VmName(vm) + "': band is '" + name.value +
                                               "', expected good, degraded or bad");
  }
  return Ok(std::to_string(it - kBands.begin()));
}

// Seconds between the newest good sample and the document (both host
// realtime as the exporter read it).
Lookup SampleAge(const json& doc, const json& vm) {
  const json* last = Path(vm, {"last_sample_timestamp_seconds"});
  const json* now = Path(doc, {"generated_at_unix"});
  if (last == nullptr || now == nullptr) {
    return Fail(LookupError::kUnknownValue,
                "VM '" + VmName(vm) + "': sample_age is unknown now (no good sample yet)");
  }
  if (!last->is_number() || !now->is_number()) {
    return Fail(LookupError::kBadDocument,
                "VM '" + VmName(vm) +
                    "': last_sample_timestamp_seconds or generated_at_unix is not a number");
  }
  return Ok(FormatNumber(now->get<double>() - last->get<double>()));
}

// `reasons` (comma-separated), `reasons_count`, `reason.<name>` (1 or 0).
Lookup ReasonValue(const json& vm, std::string_view key) {
  const bool one = key.rfind("reason.", 0) == 0;
  const std::string_view name = one ? key.substr(7) : std::string_view();
  if (one && std::find(kReasons.begin(), kReasons.end(), name) == kReasons.end()) {
    return Fail(LookupError::kUnknownKey,
                "unknown reason '" + std::string(name) + "' in key '" + std::string(key) + "'");
  }
  auto reasons = Reasons(vm);
  if (!reasons) {
    return Fail(LookupError::kBadDocument, "VM '" + VmName(vm) + "': " + reasons.error().message);
  }
  if (key == "reasons_count") return Ok(std::to_string(reasons->size()));
  if (key == "reasons") {
    std::string joined;
    for (const std::string& r : *reasons) joined += (joined.empty() ? "" : ",") + r;
    return Ok(joined);
  }
  return Ok(std::find(reasons->begin(), reasons->end(), name) != reasons->end() ? "1" : "0");
}

Lookup ComponentValue(const json& vm, std::string_view key) {
  std::string_view name = key.substr(10);
  if (std::find(kComponents.begin(), kComponents.end(), name) == kComponents.end()) {
    return Fail(LookupError::kUnknownKey,
                "unknown component '" + std::string(name) + "' in key '" + std::string(key) + "'");
  }
  return Number(vm, key, {"components", name});
}

Lookup VmValue(const json& doc, const json& vm, std::string_view key) {
  for (const FieldKey& f : kFieldKeys) {
    if (f.key == key) return FieldValue(vm, f);
  }
  if (key == "band") return BandValue(vm, key);
  if (key == "effective_offset") {
    // Guest minus UTC when known, else guest minus host (what the offset
    // alerts and triggers use).
    if (Path(vm, {"utc_offset_seconds"}) != nullptr) return Number(vm, key, {"utc_offset_seconds"});
    return Number(vm, key, {"offset_seconds"});
  }
  if (key == "guest_synchronised") {
    // Exporters before the spelling change name the field "synchronized".
    if (Path(vm, {"guest", "synchronised"}) == nullptr &&
        Path(vm, {"guest", "synchronized"}) != nullptr)
      return Number(vm, key, {"guest", "synchronized"});
    return Number(vm, key, {"guest", "synchronised"});
  }
  if (key == "agent_error") {
    if (Path(vm, {"agent_error"}) == nullptr) return Ok("");
    return Text(vm, key, {"agent_error"});
  }
  if (key == "sample_age") return SampleAge(doc, vm);
  if (key == "reasons" || key == "reasons_count" || key.rfind("reason.", 0) == 0) {
    return ReasonValue(vm, key);
  }
  if (key.rfind("component.", 0) == 0) return ComponentValue(vm, key);
  std::string known;
  for (const std::string& k : KnownKeys()) known += (known.empty() ? "" : ", ") + k;
  return Fail(LookupError::kUnknownKey,
              "unknown key '" + std::string(key) + "' (known keys: " + known + ")");
}

bool IsKnownKey(std::string_view key) {
  static const json kEmptyDoc = json::object();
  static const json kEmptyVm = json::object();
  Lookup l = VmValue(kEmptyDoc, kEmptyVm, key);
  return l.ok || l.failure.kind != LookupError::kUnknownKey;
}

std::string FormatNumber(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[64];
  // Fixed notation when it is exact and short, else the shortest round-trip
  // form (which may use an exponent; Zabbix accepts "1e-07").
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general);
  std::string shortest(buf, res.ptr);
  if (shortest.find('e') == std::string::npos) return shortest;
  auto fixed = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  if (fixed.ec == std::errc() && fixed.ptr - buf <= 24) return std::string(buf, fixed.ptr);
  return shortest;
}

}  // namespace vmtime::zabbix
