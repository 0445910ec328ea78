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
  // groups: read each domain's group and labels from its metadata in the
  // project's namespace (docs/libvirt.md, "Groups and labels"), and,
  // opt-in, OpenStack Nova's instance name, flavour and project.
  bool metadata = true;
  bool nova_metadata = false;

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

struct NtpdConfig {
  std::string address = "127.0.0.1:123";  // ntpd/ntpsec mode 6, host[:port] (UDP)
  double timeout_s = 1;
  bool peers = true;  // also read the association list and each peer

  bool operator==(const NtpdConfig&) const = default;
};

struct TimesyncdConfig {
  // D-Bus address of the bus timesyncd is on ("" = the system bus).
  std::string bus_address;
  bool dbus = true;  // false: the flag file only
  std::string flag_file = "/run/systemd/timesync/synchronized";
  double timeout_s = 1;  // D-Bus call timeout

  bool operator==(const TimesyncdConfig&) const = default;
};

// The host reference candidates (store/host_reference.h), by name.
std::vector<std::string> HostReferenceSourceNames();

struct HostConfig {
  // Which source decides the host reference: the first one in this order
  // whose collector answered its last run (docs/configuration.md, `host`).
  std::vector<std::string> reference_order = {"chrony", "ntpd", "timesyncd", "ptp", "kernel"};

  bool operator==(const HostConfig&) const = default;
};

// ptp: linuxptp's ptp4l over its management socket (docs/ptp.md).
struct PtpConfig {
  std::string socket = "/var/run/ptp4l";  // ptp4l's uds_address
  std::string client_dir;                 // where our client socket goes; "" = socket's directory
  int domain_number = 0;                  // ptp4l's domainNumber (it ignores other domains)
  double timeout_s = 1;                   // per request

  bool operator==(const PtpConfig&) const = default;
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

// remediation.*: opt-in correction of guest clocks (docs/remediation.md).
struct RemediationConfig {
  bool enabled = false;
  bool dry_run = false;    // log and audit the intent, change nothing
  double threshold_s = 1;  // |guest - host| beyond this is corrected
  // What arms a VM: "interruption" (resume, restore, migration, start: the
  // first sample after a lifecycle event) and "step" (a step counted).
  std::vector<std::string> triggers = {"interruption", "step"};
  double guest_daemon_grace_s = 60;  // a guest daemon reporting sync gets this long first
  double min_interval_s = 600;       // per-VM rate limit: one attempt per this interval
  double max_backward_step_s = 1;    // larger backward corrections need allow_large_backward
  bool allow_large_backward = false;
  std::vector<std::string> include;                     // domain name globs (empty: every domain)
  std::vector<std::string> exclude;                     // domain name globs
  std::map<std::string, std::string> include_metadata;  // every key must have this value
  std::map<std::string, std::string> exclude_metadata;  // any key with this value excludes
  double call_deadline_s = 10;       // exporter-side deadline of the set and of the re-measure
  double verify_tolerance_s = 0.05;  // added to the measured bound when judging the result
  int samples = 3;                   // re-measure: K brackets, smallest round trip kept
  int workers = 1;                   // concurrent remediation calls

  bool operator==(const RemediationConfig&) const = default;
};

// groups.rules: a domain without a group in its metadata joins the group of
// the first rule whose glob (fnmatch(3): * ? [...]) matches its name.
struct GroupRule {
  std::string match;
  std::string group;

  bool operator==(const GroupRule&) const = default;
};
struct GroupsConfig {
  std::vector<GroupRule> rules;

  bool operator==(const GroupsConfig&) const = default;
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
  NtpdConfig ntpd;
  TimesyncdConfig timesyncd;
  HostConfig host;
  PtpConfig ptp;
  GuestStatusConfig guest_status;
  MetricsConfig metrics;
  RemediationConfig remediation;
  GroupsConfig groups;
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
