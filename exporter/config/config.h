// Configuration: the YAML file (or the built-in default) parsed into plain
// structs. Durations are strings like "15s", "500ms", "2m". Unknown keys and
// wrong types are errors naming file:line:column. docs/configuration.md
// documents every key.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "exporter/core/result.h"
#include "scoring/params.h"

namespace vmtime {

// Per-collector scheduling, under `collectors.<name>:`.
struct CollectorConfig {
  bool enabled = true;
  double interval_s = 15;
  double timeout_s = 10;       // deadline of one Collect() call
  int max_retries = 2;         // retries within a round after a failure
  double retry_backoff_s = 1;  // first retry delay, doubled per retry
};

struct WebConfig {
  std::string listen_address = ":9958";
  std::string telemetry_path = "/metrics";
  std::string config_file;  // --web.config.file: basic auth (TLS refused, see docs)
};

struct LibvirtConfig {
  std::string uri = "qemu:///system";
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
};

struct ChronyConfig {
  std::string address = "unix:///run/chrony/chronyd.sock";  // or host:port (UDP)
  double timeout_s = 1;
  bool sources = true;
};

struct NtpConfig {
  std::vector<std::string> servers;  // host[:port]
  double timeout_s = 2;
};

struct GuestStatusConfig {
  // guest-exec is off by default: enabling it runs the fixed read-only
  // commands below inside guests through the agent.
  std::vector<std::string> commands = {"chronyc_tracking", "ntpq_rv", "timedatectl_show",
                                       "w32tm_status"};
  double exec_timeout_s = 5;
  size_t max_output_bytes = 65536;
};

struct Config {
  std::string source = "<built-in>";
  WebConfig web;
  LibvirtConfig libvirt;
  ChronyConfig chrony;
  NtpConfig ntp;
  GuestStatusConfig guest_status;
  std::map<std::string, CollectorConfig> collectors;  // keyed by collector name
  size_t history_samples = 64;  // ring of clock samples kept per VM (scoring.drift_window_s
                                // bounds which of them drift uses)
  scoring::Params scoring;

  const CollectorConfig& Collector(const std::string& name) const;
};

// The built-in default configuration as YAML text (also `--config.show-default`).
const char* DefaultConfigYaml();

// Parses YAML text; `source` names it in errors ("file.yaml:12:3: ...").
Result<Config> ParseConfig(const std::string& yaml_text, const std::string& source);
Result<Config> LoadConfigFile(const std::string& path);

}  // namespace vmtime
