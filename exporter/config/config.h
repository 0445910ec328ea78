// Configuration: the YAML file (or the built-in default) parsed into plain
// structs. Durations are strings like "15s", "500ms", "2m". Unknown keys and
// wrong types are errors naming file:line:column. docs/configuration.md
// documents every key.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "exporter/config/collector_table.h"
#include "exporter/core/result.h"
#include "scoring/params.h"

namespace vmtime {

struct WebConfig {
  std::string listen_address = ":9958";
  std::string telemetry_path = "/metrics";
  std::string config_file;  // --web.config.file: basic auth and TLS (exporter-toolkit format)
  // Host header names served (web.allowed_hosts); empty: any. Others get 421.
  std::vector<std::string> allowed_hosts;

  bool operator==(const WebConfig&) const = default;
};

struct LibvirtConfig {
  std::string uri = "qemu:///system";
  // Accept a remote `uri` (config/libvirt_uri.h): offsets are then guest vs
  // this machine, the UTC offset is not exported and the host reference is
  // not scored.
  bool allow_remote = false;
  int samples = 3;             // K bracketed GetTime calls, smallest round trip kept
  double agent_timeout_s = 2;  // virDomainAgentSetResponseTimeout; <= 0 leaves libvirt's default
  bool set_agent_timeout =
      true;                    // whether the exporter sets it (affects every client of the domain)
  double call_deadline_s = 5;  // exporter-side deadline of one guest call
  int concurrency = 4;         // concurrent guest calls (libvirtd max_client_requests is 5)
  int max_stuck_calls = 64;    // calls left blocked in libvirt before new domains wait
  double agent_retry_interval_s = 5;  // retry a failing agent this often...
  int agent_max_attempts = 32;        // ...this many times, then back off
  double agent_backoff_max_s = 300;   // ceiling of the backoff after attempts are spent
  double reconnect_backoff_max_s = 30;
  double keepalive_interval_s = 5;
  int keepalive_count = 3;

  bool operator==(const LibvirtConfig&) const = default;
};

struct ChronyConfig {
  std::string address = "unix:///run/chrony/chronyd.sock";  // or host:port (UDP)
  double timeout_s = 1;
  bool sources = true;

  bool operator==(const ChronyConfig&) const = default;
};

struct NtpConfig {
  std::vector<std::string> servers;  // host[:port]
  double timeout_s = 2;
  // A server is usable only at 0 < stratum <= max_stratum. Stratum 10 is the
  // conventional `local stratum 10` of a server that lost its sources.
  int max_stratum = 9;

  bool operator==(const NtpConfig&) const = default;
};

// Every command of the compiled-in guest command table, by config id.
std::vector<std::string> AllGuestCommandConfigIds();

struct GuestStatusConfig {
  // guest-exec is off by default: enabling it runs the fixed read-only
  // commands below inside guests through the agent.
  std::vector<std::string> commands = AllGuestCommandConfigIds();
  double exec_timeout_s = 5;
  size_t max_output_bytes = 65536;

  bool operator==(const GuestStatusConfig&) const = default;
};

// What /metrics carries beyond the fixed series (docs/metrics.md, "Series
// budget").
struct MetricsConfig {
  // vmtime_vm_health_component_score: up to 7 series per VM.
  bool component_scores = true;

  bool operator==(const MetricsConfig&) const = default;
};

// The audit trail (docs/audit.md). Events are kept in memory
// (/api/v1/events) and counted either way; the JSON-lines file is written
// only when `file` is set. Read at start; a reload (SIGHUP) reopens the file
// but other audit.* changes need a restart.
struct AuditConfig {
  std::string file;                        // empty: no trail file
  uint64_t max_size_bytes = 256ull << 20;  // 0: unbounded; at the bound events are dropped
  double sync_interval_s = 5;              // fdatasync at most this often; 0: every batch
  size_t queue_size = 10000;               // events waiting for the writer thread
  size_t ring_size = 1000;                 // events kept in memory for /api/v1/events

  bool operator==(const AuditConfig&) const = default;
};

struct Config {
  std::string source = "<built-in>";
  WebConfig web;
  LibvirtConfig libvirt;
  ChronyConfig chrony;
  NtpConfig ntp;
  GuestStatusConfig guest_status;
  MetricsConfig metrics;
  AuditConfig audit;
  // Every collector of the table, with its defaults unless configured.
  std::map<CollectorId, CollectorConfig> collectors = DefaultCollectorConfigs();
  size_t history_samples = 64;  // ring of clock samples kept per VM (scoring.drift_window_s
                                // bounds which of them drift uses)
  scoring::Params scoring;

  const CollectorConfig& Collector(CollectorId id) const;
  bool operator==(const Config&) const = default;
};

// True when every configuration section collector `id` reads (the table's
// `sections`) is equal in `a` and `b`: a reload keeps the running instance
// then, and builds a new one otherwise. Schedules (`collectors.<name>`) are
// not compared; the poller applies them to the running instance.
bool CollectorSettingsEqual(CollectorId id, const Config& a, const Config& b);

// One row per scoring::Params field: the YAML key under `scoring:` is the
// field's name. Exactly one of `dbl` and `integer` is set.
struct ScoringField {
  const char* name;
  enum Kind { kDuration, kNumber, kInteger } kind;
  double scoring::Params::*dbl = nullptr;
  int scoring::Params::*integer = nullptr;
};
const std::vector<ScoringField>& ScoringFields();

// The built-in default configuration as YAML text (also `--config.show-default`).
const char* DefaultConfigYaml();

// Parses YAML text; `source` names it in errors ("file.yaml:12:3: ...").
Result<Config> ParseConfig(const std::string& yaml_text, const std::string& source);
Result<Config> LoadConfigFile(const std::string& path);

}  // namespace vmtime
