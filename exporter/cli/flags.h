// Command-line flags after the Prometheus exporter conventions
// (--config.file, --web.listen-address, --log.level, ...), parsed with
// CLI11. `--collector.<name>` / `--no-collector.<name>` come from the
// collector table (config/collector_table.h). Flags override the
// configuration file.
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "exporter/config/config.h"

namespace vmtime {

struct Flags {
  std::string config_file;  // empty: built-in default
  bool config_check = false;
  bool show_default = false;
  std::optional<std::string> listen_address;
  std::optional<std::string> telemetry_path;
  std::string web_config_file;
  bool enable_lifecycle = false;  // --web.enable-lifecycle: POST /-/reload
  std::optional<std::string> libvirt_uri;
  bool libvirt_allow_remote = false;  // --libvirt.allow-remote: sets libvirt.allow_remote
  std::optional<std::string> chrony_address;
  std::vector<std::string> ntp_servers;  // non-empty replaces the config's list
  std::string log_level = "info";
  std::string log_format = "logfmt";
  std::map<CollectorId, bool> collectors;  // explicit --[no-]collector.<name>
};

struct FlagsOutcome {
  std::optional<int> exit_code;  // set: print nothing more and exit with it
  Flags flags;
};

// Parses argv. --help and --version print to `out` and exit 0; bad flags
// print the reason to `err` and exit 2.
FlagsOutcome ParseFlags(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

// Applies flag overrides to a parsed configuration.
void ApplyFlags(const Flags& flags, Config& config);

}  // namespace vmtime
