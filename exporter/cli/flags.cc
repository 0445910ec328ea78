#include "exporter/cli/flags.h"

#include <CLI/CLI.hpp>

#include "exporter/core/build_info.h"

namespace vmtime {

FlagsOutcome ParseFlags(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  FlagsOutcome r;
  Flags& f = r.flags;
  CLI::App app{
      "vmtime-exporter: tells, for every virtual machine on a libvirt hypervisor, whether its "
      "clock can be trusted, and why not. Serves Prometheus metrics, a JSON API and a status "
      "page.",
      "vmtime_exporter"};
  app.get_formatter()->column_width(40);
  bool version = false;
  std::string listen, telemetry, uri, chrony;
  app.add_option("--config.file", f.config_file,
                 "YAML configuration file (default: built-in, see --config.show-default)");
  app.add_flag("--config.check", f.config_check,
               "Validate the configuration and flags, then exit (0 valid, 2 invalid)");
  app.add_flag("--config.show-default", f.show_default,
               "Print the built-in default configuration and exit");
  auto* o_listen = app.add_option("--web.listen-address", listen,
                                  "Address to listen on (default :9958; e.g. 127.0.0.1:9958)");
  auto* o_path =
      app.add_option("--web.telemetry-path", telemetry, "Path of the metrics (default /metrics)");
  app.add_option(
      "--web.config.file", f.web_config_file,
      "Exporter-toolkit web config file: basic_auth_users, tls_server_config (README \"TLS\")");
  app.add_flag("--web.enable-lifecycle", f.enable_lifecycle,
               "Enable POST /-/reload (default off: 403; SIGHUP always reloads)");
  auto* o_uri = app.add_option("--libvirt.uri", uri,
                               "libvirt connection URI, read-write (default qemu:///system)");
  app.add_flag("--libvirt.allow-remote", f.libvirt_allow_remote,
               "Accept a remote --libvirt.uri (qemu+ssh://, qemu+tcp://, qemu://host/...): "
               "offsets are then guest vs this machine's clock, see docs/libvirt.md");
  auto* o_chrony =
      app.add_option("--chrony.address", chrony,
                     "chronyd command socket: unix:///path or host:port (UDP, default port 323)");
  app.add_option("--ntp.server", f.ntp_servers,
                 "Upstream NTP server to probe, host[:port]; repeatable (replaces the config list)")
      ->take_all()
      ->allow_extra_args(false);
  app.add_option("--log.level", f.log_level, "Log level: debug, info, warn, error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  app.add_option("--log.format", f.log_format, "Log format: logfmt, json")
      ->check(CLI::IsMember({"logfmt", "json"}));
  app.add_flag("--version", version, "Print version and exit");
  std::map<CollectorId, bool> on, off;
  for (const auto& c : CollectorTable()) {
    const std::string name(c.name);
    app.add_flag("--collector." + name, on[c.id],
                 "Enable the " + name + " collector (default " +
                     (c.defaults.enabled ? "on" : "off") + "): " + std::string(c.help));
    app.add_flag("--no-collector." + name, off[c.id], "Disable the " + name + " collector");
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    out << app.help();
    r.exit_code = 0;
    return r;
  } catch (const CLI::ParseError& e) {
    err << "vmtime_exporter: " << e.what() << "\nRun with --help for usage.\n";
    r.exit_code = 2;
    return r;
  }
  if (version) {
    out << "vmtime_exporter, version " << kVersion << " (revision: " << kRevision << ")\n";
    r.exit_code = 0;
    return r;
  }
  if (o_listen->count() > 0) f.listen_address = listen;
  if (o_path->count() > 0) f.telemetry_path = telemetry;
  if (o_uri->count() > 0) f.libvirt_uri = uri;
  if (o_chrony->count() > 0) f.chrony_address = chrony;
  for (const auto& c : CollectorTable()) {
    if (on[c.id] && off[c.id]) {
      err << "vmtime_exporter: --collector." << c.name << " and --no-collector." << c.name
          << " contradict each other\n";
      r.exit_code = 2;
      return r;
    }
    if (on[c.id]) f.collectors[c.id] = true;
    if (off[c.id]) f.collectors[c.id] = false;
  }
  return r;
}

void ApplyFlags(const Flags& flags, Config& config) {
  if (flags.listen_address) config.web.listen_address = *flags.listen_address;
  if (flags.telemetry_path) config.web.telemetry_path = *flags.telemetry_path;
  config.web.config_file = flags.web_config_file;
  if (flags.libvirt_uri) config.libvirt.uri = *flags.libvirt_uri;
  if (flags.libvirt_allow_remote) config.libvirt.allow_remote = true;
  if (flags.chrony_address) config.chrony.address = *flags.chrony_address;
  if (!flags.ntp_servers.empty()) config.ntp.servers = flags.ntp_servers;
  for (const auto& [id, enabled] : flags.collectors) config.collectors[id].enabled = enabled;
}

}  // namespace vmtime
