// Configuration parsing: yaml-cpp nodes walked against a schema written as
// code. Every error names source:line:column (1-based) and the key path.
#include "exporter/config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "exporter/config/duration.h"
#include "exporter/model/domain_labels.h"
#include "exporter/model/guest_commands.h"

namespace vmtime {
namespace {

// The built-in default, before the `collectors:` part.
const char kDefaultYamlHead[] = R"(# vmtime-exporter built-in default configuration.
# Print it with --config.show-default; every key is documented in docs/configuration.md.
web:
  listen_address: ":9958"
  telemetry_path: /metrics
  allowed_hosts: []
libvirt:
  uri: qemu:///system
  allow_remote: false
  samples: 3
  set_agent_timeout: true
  agent_timeout: 2s
  call_deadline: 5s
  concurrency: 4
  max_stuck_calls: 64
  agent_retry_interval: 5s
  agent_max_attempts: 32
  agent_backoff_max: 5m
  reconnect_backoff_max: 30s
  keepalive_interval: 5s
  keepalive_count: 3
  metadata: true
  nova_metadata: false
chrony:
  address: unix:///run/chrony/chronyd.sock
  timeout: 1s
  sources: true
ntp:
  servers: []
  timeout: 2s
  max_stratum: 9
ntpd:
  address: 127.0.0.1:123
  timeout: 1s
  peers: true
timesyncd:
  dbus: true
  bus_address: ""
  flag_file: /run/systemd/timesync/synchronized
  timeout: 1s
host:
  reference_order: [chrony, ntpd, timesyncd, ptp, kernel]
ptp:
  socket: /var/run/ptp4l
  client_dir: ""
  domain_number: 0
  timeout: 1s
guest_status:
  commands: [chronyc_tracking, ntpq_rv, timedatectl_show, w32tm_status]
  exec_timeout: 5s
  max_output_bytes: 65536
history:
  samples: 64
metrics:
  component_scores: true
remediation:
  enabled: false
  dry_run: false
  threshold: 1s
  triggers: [interruption, step]
  guest_daemon_grace: 1m
  min_interval: 10m
  max_backward_step: 1s
  allow_large_backward: false
  include: []
  exclude: []
  include_metadata: {}
  exclude_metadata: {}
  call_deadline: 10s
  verify_tolerance: 50ms
  samples: 3
  workers: 1
groups:
  rules: []
audit:
  file: ""
  max_size_bytes: 268435456
  sync_interval: 5s
  queue_size: 10000
  ring_size: 1000
)";

// After the `collectors:` part, which CollectorsYaml() writes from the table.
const char kDefaultYamlScoring[] = R"(scoring:
  offset_full_s: 10ms
  offset_elevated_s: 50ms
  offset_warning_s: 30s
  offset_warning_value: 0.6
  offset_critical_s: 5m
  offset_critical_value: 0.2
  offset_zero_s: 15m
  stratum_full: 4
  stratum_zero: 10
  sync_unknown_value: 0.5
  drift_full_ratio: 50e-6
  drift_zero_ratio: 500e-6
  drift_min_samples: 4
  drift_window_s: 1h
  drift_confidence_sigmas: 2
  step_threshold_s: 1s
  stopped_ratio: 0.1
  stability_zero_events: 3
  stability_backward_step_events: 2
  freshness_full_intervals: 2
  freshness_zero_intervals: 10
  host_stratum_full: 4
  group_skew_s: 1s
  weight_offset: 0.40
  weight_sync_state: 0.15
  weight_stratum: 0.10
  weight_drift: 0.15
  weight_stability: 0.05
  weight_freshness: 0.10
  weight_host_reference: 0.05
  gate_clock_stopped_max: 10
  gate_offset_critical_max: 20
  gate_offset_high_max: 50
  gate_agent_unreachable_max: 50
  gate_stratum_max: 89
  gate_resumed_behind_max: 89
  explain_min_points: 2
  band_good_min: 90
  band_degraded_min: 60
)";

// `collectors:` with one flow mapping per row of the collector table.
std::string CollectorsYaml() {
  std::string out = "collectors:\n";
  for (const auto& c : CollectorTable()) {
    const CollectorConfig& d = c.defaults;
    out += "  " + std::string(c.name) + ": {enabled: " + (d.enabled ? "true" : "false") +
           ", interval: " + FormatDuration(d.interval_s) +
           ", timeout: " + FormatDuration(d.timeout_s) +
           ", max_retries: " + std::to_string(d.max_retries) +
           ", retry_backoff: " + FormatDuration(d.retry_backoff_s) + "}\n";
  }
  return out;
}

// Walks one YAML document, recording the first error with its position.
class Walker {
 public:
  explicit Walker(std::string source) : source_(std::move(source)) {}

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }

  void Fail(const YAML::Node& node, const std::string& path, const std::string& what) {
    if (failed()) return;
    std::ostringstream os;
    os << source_;
    const YAML::Mark mark = node.Mark();
    if (!mark.is_null()) os << ":" << mark.line + 1 << ":" << mark.column + 1;
    os << ": " << path << ": " << what;
    error_ = os.str();
  }

  // Calls `on_key` for every key of a mapping; unknown keys are errors.
  using KeyHandler =
      std::function<void(const std::string& key, const YAML::Node& value, const std::string& path)>;
  void Map(const YAML::Node& node, const std::string& path, const std::set<std::string>& known,
           const KeyHandler& on_key) {
    if (failed() || !node.IsDefined() || node.IsNull()) return;
    if (!node.IsMap()) {
      Fail(node, path.empty() ? "(top level)" : path, "expected a mapping");
      return;
    }
    for (const auto& kv : node) {
      if (failed()) return;
      const std::string key = kv.first.Scalar();
      const std::string child = path.empty() ? key : path + "." + key;
      if (!known.empty() && !known.contains(key)) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        Fail(kv.first, child, "unknown key (known: " + list + ")");
        return;
      }
      on_key(key, kv.second, child);
    }
  }

  std::optional<std::string> Scalar(const YAML::Node& n, const std::string& path) {
    if (failed()) return std::nullopt;
    if (!n.IsScalar()) {
      Fail(n, path, "expected a scalar value");
      return std::nullopt;
    }
    return n.Scalar();
  }

  void String(const YAML::Node& n, const std::string& path, std::string* out) {
    if (auto s = Scalar(n, path)) *out = *s;
  }

  void Bool(const YAML::Node& n, const std::string& path, bool* out) {
    auto s = Scalar(n, path);
    if (!s) return;
    if (*s == "true" || *s == "yes" || *s == "on") {
      *out = true;
    } else if (*s == "false" || *s == "no" || *s == "off") {
      *out = false;
    } else {
      Fail(n, path, "expected true or false, got '" + *s + "'");
    }
  }

  void Double(const YAML::Node& n, const std::string& path, double* out, double min, double max) {
    auto s = Scalar(n, path);
    if (!s) return;
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(s->c_str(), &end);
    if (s->empty() || end != s->c_str() + s->size() || errno != 0 || !std::isfinite(v)) {
      Fail(n, path, "expected a number, got '" + *s + "'");
      return;
    }
    if (v < min || v > max) {
      std::ostringstream os;
      os << "value " << v << " out of range [" << min << ", " << max << "]";
      Fail(n, path, os.str());
      return;
    }
    *out = v;
  }

  template <typename Int>
  void Integer(const YAML::Node& n, const std::string& path, Int* out, long long min,
               long long max) {
    auto s = Scalar(n, path);
    if (!s) return;
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s->c_str(), &end, 10);
    if (s->empty() || end != s->c_str() + s->size() || errno != 0) {
      Fail(n, path, "expected an integer, got '" + *s + "'");
      return;
    }
    if (v < min || v > max) {
      Fail(n, path,
           "value " + std::to_string(v) + " out of range [" + std::to_string(min) + ", " +
               std::to_string(max) + "]");
      return;
    }
    *out = static_cast<Int>(v);
  }

  void Duration(const YAML::Node& n, const std::string& path, double* out, double min_s = 0) {
    auto s = Scalar(n, path);
    if (!s) return;
    auto d = ParseDurationSeconds(*s);
    if (!d) {
      Fail(n, path, d.error().message);
      return;
    }
    if (*d < min_s) {
      Fail(n, path, "duration " + *s + " is below the minimum " + FormatDuration(min_s));
      return;
    }
    *out = *d;
  }

  void StringList(const YAML::Node& n, const std::string& path, std::vector<std::string>* out) {
    if (failed()) return;
    if (n.IsNull()) {
      out->clear();
      return;
    }
    if (!n.IsSequence()) {
      Fail(n, path, "expected a list");
      return;
    }
    std::vector<std::string> result;
    for (size_t i = 0; i < n.size(); ++i) {
      auto s = Scalar(n[i], path + "[" + std::to_string(i) + "]");
      if (!s) return;
      result.push_back(*s);
    }
    *out = std::move(result);
  }

 private:
  std::string source_;
  std::string error_;
};

}  // namespace

const std::vector<ScoringField>& ScoringFields() {
  using P = scoring::Params;
  static const std::vector<ScoringField> kFields = {
      {"offset_full_s", ScoringField::kDuration, &P::offset_full_s},
      {"offset_elevated_s", ScoringField::kDuration, &P::offset_elevated_s},
      {"offset_warning_s", ScoringField::kDuration, &P::offset_warning_s},
      {"offset_warning_value", ScoringField::kNumber, &P::offset_warning_value},
      {"offset_critical_s", ScoringField::kDuration, &P::offset_critical_s},
      {"offset_critical_value", ScoringField::kNumber, &P::offset_critical_value},
      {"offset_zero_s", ScoringField::kDuration, &P::offset_zero_s},
      {"stratum_full", ScoringField::kInteger, nullptr, &P::stratum_full},
      {"stratum_zero", ScoringField::kInteger, nullptr, &P::stratum_zero},
      {"sync_unknown_value", ScoringField::kNumber, &P::sync_unknown_value},
      {"drift_full_ratio", ScoringField::kNumber, &P::drift_full_ratio},
      {"drift_zero_ratio", ScoringField::kNumber, &P::drift_zero_ratio},
      {"drift_min_samples", ScoringField::kInteger, nullptr, &P::drift_min_samples},
      {"drift_window_s", ScoringField::kDuration, &P::drift_window_s},
      {"drift_confidence_sigmas", ScoringField::kNumber, &P::drift_confidence_sigmas},
      {"step_threshold_s", ScoringField::kDuration, &P::step_threshold_s},
      {"stopped_ratio", ScoringField::kNumber, &P::stopped_ratio},
      {"stability_zero_events", ScoringField::kInteger, nullptr, &P::stability_zero_events},
      {"stability_backward_step_events", ScoringField::kNumber, &P::stability_backward_step_events},
      {"freshness_full_intervals", ScoringField::kNumber, &P::freshness_full_intervals},
      {"freshness_zero_intervals", ScoringField::kNumber, &P::freshness_zero_intervals},
      {"host_stratum_full", ScoringField::kInteger, nullptr, &P::host_stratum_full},
      {"group_skew_s", ScoringField::kDuration, &P::group_skew_s},
      {"weight_offset", ScoringField::kNumber, &P::weight_offset},
      {"weight_sync_state", ScoringField::kNumber, &P::weight_sync_state},
      {"weight_stratum", ScoringField::kNumber, &P::weight_stratum},
      {"weight_drift", ScoringField::kNumber, &P::weight_drift},
      {"weight_stability", ScoringField::kNumber, &P::weight_stability},
      {"weight_freshness", ScoringField::kNumber, &P::weight_freshness},
      {"weight_host_reference", ScoringField::kNumber, &P::weight_host_reference},
      {"gate_clock_stopped_max", ScoringField::kNumber, &P::gate_clock_stopped_max},
      {"gate_offset_critical_max", ScoringField::kNumber, &P::gate_offset_critical_max},
      {"gate_offset_high_max", ScoringField::kNumber, &P::gate_offset_high_max},
      {"gate_agent_unreachable_max", ScoringField::kNumber, &P::gate_agent_unreachable_max},
      {"gate_stratum_max", ScoringField::kNumber, &P::gate_stratum_max},
      {"gate_resumed_behind_max", ScoringField::kNumber, &P::gate_resumed_behind_max},
      {"explain_min_points", ScoringField::kNumber, &P::explain_min_points},
      {"band_good_min", ScoringField::kNumber, &P::band_good_min},
      {"band_degraded_min", ScoringField::kNumber, &P::band_degraded_min},
  };
  return kFields;
}

namespace {

// ---- the schema: one table of keys per section ----

// One key of a section of type S: its YAML name and how its value is read.
template <typename S>
struct Key {
  std::string_view name;
  std::function<void(Walker& w, const YAML::Node& value, const std::string& path, S& out)> read;
};

template <typename S>
Key<S> StringKey(std::string_view name, std::string S::*field) {
  return {name, [field](Walker& w, const YAML::Node& n, const std::string& p, S& s) {
            w.String(n, p, &(s.*field));
          }};
}

template <typename S>
Key<S> BoolKey(std::string_view name, bool S::*field) {
  return {name, [field](Walker& w, const YAML::Node& n, const std::string& p, S& s) {
            w.Bool(n, p, &(s.*field));
          }};
}

template <typename S, typename Int>
Key<S> IntegerKey(std::string_view name, Int S::*field, long long min, long long max) {
  return {name, [field, min, max](Walker& w, const YAML::Node& n, const std::string& p, S& s) {
            w.Integer(n, p, &(s.*field), min, max);
          }};
}

template <typename S>
Key<S> DurationKey(std::string_view name, double S::*field, double min_s = 0) {
  return {name, [field, min_s](Walker& w, const YAML::Node& n, const std::string& p, S& s) {
            w.Duration(n, p, &(s.*field), min_s);
          }};
}

template <typename S>
Key<S> StringListKey(std::string_view name, std::vector<std::string> S::*field) {
  return {name, [field](Walker& w, const YAML::Node& n, const std::string& p, S& s) {
            w.StringList(n, p, &(s.*field));
          }};
}

// Reads the mapping `node` into `out` through `keys`; other keys are errors.
template <typename S>
void ReadKeys(Walker& w, const YAML::Node& node, const std::string& path,
              const std::vector<Key<S>>& keys, S& out) {
  std::set<std::string> known;
  for (const auto& k : keys) known.emplace(k.name);
  w.Map(node, path, known,
        [&](const std::string& name, const YAML::Node& value, const std::string& p) {
          for (const auto& k : keys) {
            if (k.name == name) k.read(w, value, p, out);
          }
        });
}

const std::vector<Key<WebConfig>>& WebKeys() {
  using W = WebConfig;
  static const std::vector<Key<W>> kKeys = {
      StringKey("listen_address", &W::listen_address),
      StringKey("telemetry_path", &W::telemetry_path),
      StringListKey("allowed_hosts", &W::allowed_hosts),
  };
  return kKeys;
}

const std::vector<Key<LibvirtConfig>>& LibvirtKeys() {
  using L = LibvirtConfig;
  static const std::vector<Key<L>> kKeys = {
      StringKey("uri", &L::uri),
      BoolKey("allow_remote", &L::allow_remote),
      IntegerKey("samples", &L::samples, 1, 32),
      BoolKey("set_agent_timeout", &L::set_agent_timeout),
      DurationKey("agent_timeout", &L::agent_timeout_s),
      DurationKey("call_deadline", &L::call_deadline_s, 0.01),
      IntegerKey("concurrency", &L::concurrency, 1, 64),
      IntegerKey("max_stuck_calls", &L::max_stuck_calls, 0, 100000),
      DurationKey("agent_retry_interval", &L::agent_retry_interval_s),
      IntegerKey("agent_max_attempts", &L::agent_max_attempts, 1, 1000000),
      DurationKey("agent_backoff_max", &L::agent_backoff_max_s),
      DurationKey("reconnect_backoff_max", &L::reconnect_backoff_max_s, 0.01),
      DurationKey("keepalive_interval", &L::keepalive_interval_s),
      IntegerKey("keepalive_count", &L::keepalive_count, 0, 1000),
      BoolKey("metadata", &L::metadata),
      BoolKey("nova_metadata", &L::nova_metadata),
  };
  return kKeys;
}

const std::vector<Key<ChronyConfig>>& ChronyKeys() {
  using C = ChronyConfig;
  static const std::vector<Key<C>> kKeys = {
      StringKey("address", &C::address),
      DurationKey("timeout", &C::timeout_s, 0.001),
      BoolKey("sources", &C::sources),
  };
  return kKeys;
}

const std::vector<Key<NtpConfig>>& NtpKeys() {
  using N = NtpConfig;
  static const std::vector<Key<N>> kKeys = {
      StringListKey("servers", &N::servers),
      DurationKey("timeout", &N::timeout_s, 0.001),
      IntegerKey("max_stratum", &N::max_stratum, 1, 15),
  };
  return kKeys;
}

const std::vector<Key<NtpdConfig>>& NtpdKeys() {
  using N = NtpdConfig;
  static const std::vector<Key<N>> kKeys = {
      StringKey("address", &N::address),
      DurationKey("timeout", &N::timeout_s, 0.001),
      BoolKey("peers", &N::peers),
  };
  return kKeys;
}

const std::vector<Key<TimesyncdConfig>>& TimesyncdKeys() {
  using T = TimesyncdConfig;
  static const std::vector<Key<T>> kKeys = {
      BoolKey("dbus", &T::dbus),
      StringKey("bus_address", &T::bus_address),
      StringKey("flag_file", &T::flag_file),
      DurationKey("timeout", &T::timeout_s, 0.001),
  };
  return kKeys;
}

// host.reference_order: known source names, each at most once, at least one.
void ReadReferenceOrder(Walker& w, const YAML::Node& n, const std::string& p, HostConfig& h) {
  w.StringList(n, p, &h.reference_order);
  const auto known = HostReferenceSourceNames();
  std::set<std::string> seen;
  for (size_t i = 0; i < h.reference_order.size() && !w.failed(); ++i) {
    const std::string& name = h.reference_order[i];
    const std::string at = p + "[" + std::to_string(i) + "]";
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      w.Fail(n.IsSequence() ? n[i] : n, at,
             "unknown host reference source '" + name + "' (known: " + list + ")");
    } else if (!seen.insert(name).second) {
      w.Fail(n.IsSequence() ? n[i] : n, at, "host reference source '" + name + "' listed twice");
    }
  }
  if (!w.failed() && h.reference_order.empty()) w.Fail(n, p, "must name at least one source");
}

const std::vector<Key<HostConfig>>& HostKeys() {
  static const std::vector<Key<HostConfig>> kKeys = {
      {"reference_order", ReadReferenceOrder},
  };
  return kKeys;
}

const std::vector<Key<PtpConfig>>& PtpKeys() {
  using P = PtpConfig;
  static const std::vector<Key<P>> kKeys = {
      StringKey("socket", &P::socket),
      StringKey("client_dir", &P::client_dir),
      IntegerKey("domain_number", &P::domain_number, 0, 255),
      DurationKey("timeout", &P::timeout_s, 0.001),
  };
  return kKeys;
}

// guest_status.commands: only ids of the compiled-in command table.
void ReadGuestCommands(Walker& w, const YAML::Node& n, const std::string& p, GuestStatusConfig& g) {
  w.StringList(n, p, &g.commands);
  for (size_t i = 0; i < g.commands.size() && !w.failed(); ++i) {
    if (guest_status::IsKnownGuestCommand(g.commands[i])) continue;
    std::string known;
    for (const auto& id : AllGuestCommandConfigIds()) known += (known.empty() ? "" : ", ") + id;
    w.Fail(n.IsSequence() ? n[i] : n, p + "[" + std::to_string(i) + "]",
           "unknown guest command '" + g.commands[i] + "' (the list is fixed: " + known + ")");
  }
}

const std::vector<Key<GuestStatusConfig>>& GuestStatusKeys() {
  using G = GuestStatusConfig;
  static const std::vector<Key<G>> kKeys = {
      {"commands", ReadGuestCommands},
      DurationKey("exec_timeout", &G::exec_timeout_s, 0.1),
      IntegerKey("max_output_bytes", &G::max_output_bytes, 256, 16 * 1024 * 1024),
  };
  return kKeys;
}

const std::vector<Key<MetricsConfig>>& MetricsKeys() {
  using M = MetricsConfig;
  static const std::vector<Key<M>> kKeys = {
      BoolKey("component_scores", &M::component_scores),
  };
  return kKeys;
}

// remediation.triggers: only the known trigger names.
void ReadRemediationTriggers(Walker& w, const YAML::Node& n, const std::string& p,
                             RemediationConfig& r) {
  w.StringList(n, p, &r.triggers);
  for (size_t i = 0; i < r.triggers.size() && !w.failed(); ++i) {
    if (r.triggers[i] == "interruption" || r.triggers[i] == "step") continue;
    w.Fail(n.IsSequence() ? n[i] : n, p + "[" + std::to_string(i) + "]",
           "unknown trigger '" + r.triggers[i] + "' (known: interruption, step)");
  }
}

// remediation.{include,exclude}_metadata: a mapping of metadata key -> value.
Key<RemediationConfig> MetadataKey(std::string_view name,
                                   std::map<std::string, std::string> RemediationConfig::*field) {
  return {name,
          [field](Walker& w, const YAML::Node& n, const std::string& p, RemediationConfig& r) {
            std::map<std::string, std::string> out;
            w.Map(n, p, {}, [&](const std::string& k, const YAML::Node& v, const std::string& kp) {
              if (auto s = w.Scalar(v, kp)) out[k] = *s;
            });
            r.*field = std::move(out);
          }};
}

const std::vector<Key<RemediationConfig>>& RemediationKeys() {
  using R = RemediationConfig;
  static const std::vector<Key<R>> kKeys = {
      BoolKey("enabled", &R::enabled),
      BoolKey("dry_run", &R::dry_run),
      DurationKey("threshold", &R::threshold_s, 0.001),
      {"triggers", ReadRemediationTriggers},
      DurationKey("guest_daemon_grace", &R::guest_daemon_grace_s),
      DurationKey("min_interval", &R::min_interval_s),
      DurationKey("max_backward_step", &R::max_backward_step_s),
      BoolKey("allow_large_backward", &R::allow_large_backward),
      StringListKey("include", &R::include),
      StringListKey("exclude", &R::exclude),
      MetadataKey("include_metadata", &R::include_metadata),
      MetadataKey("exclude_metadata", &R::exclude_metadata),
      DurationKey("call_deadline", &R::call_deadline_s, 0.01),
      DurationKey("verify_tolerance", &R::verify_tolerance_s),
      IntegerKey("samples", &R::samples, 1, 32),
      IntegerKey("workers", &R::workers, 1, 16),
  };
  return kKeys;
}

const std::vector<Key<AuditConfig>>& AuditKeys() {
  using A = AuditConfig;
  static const std::vector<Key<A>> kKeys = {
      StringKey("file", &A::file),
      IntegerKey("max_size_bytes", &A::max_size_bytes, 0, 1LL << 50),
      DurationKey("sync_interval", &A::sync_interval_s),
      IntegerKey("queue_size", &A::queue_size, 1, 10000000),
      IntegerKey("ring_size", &A::ring_size, 1, 1000000),
  };
  return kKeys;
}

const std::vector<Key<Config>>& HistoryKeys() {
  static const std::vector<Key<Config>> kKeys = {
      IntegerKey("samples", &Config::history_samples, 2, 4096),
  };
  return kKeys;
}

const std::vector<Key<CollectorConfig>>& CollectorKeys() {
  using C = CollectorConfig;
  static const std::vector<Key<C>> kKeys = {
      BoolKey("enabled", &C::enabled),
      DurationKey("interval", &C::interval_s, 0.1),
      DurationKey("timeout", &C::timeout_s, 0.01),
      IntegerKey("max_retries", &C::max_retries, 0, 10),
      DurationKey("retry_backoff", &C::retry_backoff_s),
  };
  return kKeys;
}

// collectors.<name>: one CollectorKeys() mapping per collector of the table.
void ReadCollectors(Walker& w, const YAML::Node& node, const std::string& path, Config& c) {
  std::set<std::string> names;
  for (const auto& def : CollectorTable()) names.emplace(def.name);
  w.Map(node, path, names,
        [&](const std::string& name, const YAML::Node& value, const std::string& p) {
          ReadKeys(w, value, p, CollectorKeys(), c.collectors[*CollectorIdFromName(name)]);
        });
}

// scoring: one key per ScoringFields() row, then scoring::Validate.
void ReadScoring(Walker& w, const YAML::Node& node, const std::string& path, Config& c) {
  std::set<std::string> names;
  for (const auto& f : ScoringFields()) names.insert(f.name);
  w.Map(node, path, names, [&](const std::string& k, const YAML::Node& x, const std::string& p) {
    for (const auto& f : ScoringFields()) {
      if (k != f.name) continue;
      switch (f.kind) {
        case ScoringField::kDuration:
          w.Duration(x, p, &(c.scoring.*f.dbl));
          break;
        case ScoringField::kNumber:
          w.Double(x, p, &(c.scoring.*f.dbl), 0, 1e12);
          break;
        case ScoringField::kInteger:
          w.Integer(x, p, &(c.scoring.*f.integer), 0, 1000000);
          break;
      }
    }
  });
  if (!w.failed()) {
    const std::string bad = scoring::Validate(c.scoring);
    if (!bad.empty()) w.Fail(node, path, bad);
  }
}

// The top-level sections: how each is read, and how two configurations
// compare on it (CollectorSettingsEqual, for CollectorDefinition::sections).
struct Section {
  std::string_view name;
  void (*read)(Walker& w, const YAML::Node& node, const std::string& path, Config& c);
  bool (*equal)(const Config& a, const Config& b);
};

// A section that is the member `M` of Config, read through the key table `keys`.
template <auto M, auto keys>
void ReadMember(Walker& w, const YAML::Node& node, const std::string& path, Config& c) {
  ReadKeys(w, node, path, keys(), c.*M);
}

template <auto M>
bool MemberEqual(const Config& a, const Config& b) {
  return a.*M == b.*M;
}

// groups.rules: a list of {match: <glob>, group: <name>}.
void ReadGroupRules(Walker& w, const YAML::Node& n, const std::string& p, GroupsConfig& g) {
  if (w.failed() || n.IsNull()) {
    if (n.IsNull()) g.rules.clear();
    return;
  }
  if (!n.IsSequence()) {
    w.Fail(n, p, "expected a list of {match, group}");
    return;
  }
  std::vector<GroupRule> rules;
  for (size_t i = 0; i < n.size() && !w.failed(); ++i) {
    const std::string at = p + "[" + std::to_string(i) + "]";
    GroupRule rule;
    w.Map(n[i], at, {"match", "group"},
          [&](const std::string& key, const YAML::Node& v, const std::string& kp) {
            w.String(v, kp, key == "match" ? &rule.match : &rule.group);
          });
    if (w.failed()) return;
    if (!n[i].IsMap() || rule.match.empty()) {
      w.Fail(n[i], at + ".match", "missing or empty (a glob of domain names)");
      return;
    }
    if (std::string bad = CheckGroupName(rule.group); !bad.empty()) {
      w.Fail(n[i], at + ".group", bad);
      return;
    }
    rules.push_back(std::move(rule));
  }
  g.rules = std::move(rules);
}

const std::vector<Key<GroupsConfig>>& GroupsKeys() {
  static const std::vector<Key<GroupsConfig>> kKeys = {
      {"rules", ReadGroupRules},
  };
  return kKeys;
}

void ReadHistory(Walker& w, const YAML::Node& node, const std::string& path, Config& c) {
  ReadKeys(w, node, path, HistoryKeys(), c);
}

constexpr Section kSections[] = {
    {"web", ReadMember<&Config::web, WebKeys>, MemberEqual<&Config::web>},
    {"libvirt", ReadMember<&Config::libvirt, LibvirtKeys>, MemberEqual<&Config::libvirt>},
    {"chrony", ReadMember<&Config::chrony, ChronyKeys>, MemberEqual<&Config::chrony>},
    {"ntp", ReadMember<&Config::ntp, NtpKeys>, MemberEqual<&Config::ntp>},
    {"ntpd", ReadMember<&Config::ntpd, NtpdKeys>, MemberEqual<&Config::ntpd>},
    {"timesyncd", ReadMember<&Config::timesyncd, TimesyncdKeys>, MemberEqual<&Config::timesyncd>},
    {"host", ReadMember<&Config::host, HostKeys>, MemberEqual<&Config::host>},
    {"ptp", ReadMember<&Config::ptp, PtpKeys>, MemberEqual<&Config::ptp>},
    {"guest_status", ReadMember<&Config::guest_status, GuestStatusKeys>,
     MemberEqual<&Config::guest_status>},
    {"history", ReadHistory, MemberEqual<&Config::history_samples>},
    {"metrics", ReadMember<&Config::metrics, MetricsKeys>, MemberEqual<&Config::metrics>},
    {"remediation", ReadMember<&Config::remediation, RemediationKeys>,
     MemberEqual<&Config::remediation>},
    {"groups", ReadMember<&Config::groups, GroupsKeys>, MemberEqual<&Config::groups>},
    {"audit", ReadMember<&Config::audit, AuditKeys>, MemberEqual<&Config::audit>},
    {"collectors", ReadCollectors, MemberEqual<&Config::collectors>},
    {"scoring", ReadScoring, MemberEqual<&Config::scoring>},
};

const Section* FindSection(std::string_view name) {
  for (const auto& s : kSections) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

void ParseDocument(const YAML::Node& root, Walker& w, Config& c) {
  std::set<std::string> names;
  for (const auto& s : kSections) names.emplace(s.name);
  w.Map(root, "", names, [&](const std::string& key, const YAML::Node& v, const std::string& path) {
    FindSection(key)->read(w, v, path, c);
  });
}

}  // namespace

std::vector<std::string> HostReferenceSourceNames() {
  return {"chrony", "ntpd", "timesyncd", "ptp", "kernel"};
}

std::vector<std::string> AllGuestCommandConfigIds() {
  std::vector<std::string> ids;
  for (const auto& command : guest_status::AllGuestCommands()) {
    ids.emplace_back(command.config_id);
  }
  return ids;
}

const CollectorConfig& Config::Collector(CollectorId id) const {
  auto it = collectors.find(id);
  return it == collectors.end() ? CollectorDefinitionOf(id).defaults : it->second;
}

bool CollectorSettingsEqual(CollectorId id, const Config& a, const Config& b) {
  std::string_view rest = CollectorDefinitionOf(id).sections;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view name = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (name.starts_with(' ')) name.remove_prefix(1);
    const Section* section = FindSection(name);
    if (section == nullptr || !section->equal(a, b)) return false;  // unknown: rebuild
  }
  return true;
}

const char* DefaultConfigYaml() {
  static const std::string text = kDefaultYamlHead + CollectorsYaml() + kDefaultYamlScoring;
  return text.c_str();
}

Result<Config> ParseConfig(const std::string& yaml_text, const std::string& source) {
  Config c;
  c.source = source;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    std::ostringstream os;
    os << source;
    if (!e.mark.is_null()) os << ":" << e.mark.line + 1 << ":" << e.mark.column + 1;
    os << ": invalid YAML: " << e.msg;
    return Error{os.str()};
  }
  Walker w(source);
  try {
    ParseDocument(root, w, c);
  } catch (const YAML::Exception& e) {
    std::ostringstream os;
    os << source;
    if (!e.mark.is_null()) os << ":" << e.mark.line + 1 << ":" << e.mark.column + 1;
    os << ": " << e.msg;
    return Error{os.str()};
  }
  if (w.failed()) return Error{w.error()};
  return c;
}

Result<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path + ": cannot open config file: " + std::strerror(errno)};
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error{path + ": read error"};
  return ParseConfig(ss.str(), path);
}

}  // namespace vmtime
