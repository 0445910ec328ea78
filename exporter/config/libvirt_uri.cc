// libvirt URI classification (see libvirt_uri.h).
#include "exporter/config/libvirt_uri.h"

#include <array>

namespace vmtime {
namespace {

// Transports that reach libvirtd over a network or through a command.
constexpr std::array<std::string_view, 6> kRemoteTransports = {"ssh", "libssh", "libssh2",
                                                               "tcp", "tls",    "ext"};

LibvirtUriLocality Remote(std::string reason) { return {true, std::move(reason)}; }

}  // namespace

LibvirtUriLocality ClassifyLibvirtUri(std::string_view uri) {
  const size_t sep = uri.find("://");
  if (sep == std::string_view::npos || sep == 0) {
    return Remote(
        "not of the form driver[+transport]://[host]/path, so it may be an alias of "
        "another machine's URI");
  }
  const std::string_view scheme = uri.substr(0, sep);
  const size_t plus = scheme.find('+');
  if (plus != std::string_view::npos) {
    const std::string_view transport = scheme.substr(plus + 1);
    for (std::string_view t : kRemoteTransports) {
      if (transport == t) return Remote("transport '" + std::string(transport) + "'");
    }
    if (transport != "unix") return Remote("unknown transport '" + std::string(transport) + "'");
  }
  // The authority: up to the path or the query.
  std::string_view rest = uri.substr(sep + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  if (!authority.empty()) return Remote("host part '" + std::string(authority) + "'");
  return {};
}

Status CheckLibvirtUri(std::string_view uri, bool allow_remote) {
  const LibvirtUriLocality loc = ClassifyLibvirtUri(uri);
  if (!loc.remote || allow_remote) return Status::Ok();
  return Error{
      "libvirt.uri '" + std::string(uri) + "' is not local (" + loc.reason +
      "): the exporter compares guest clocks with the clock of the machine it runs on, so "
      "through a remote connection the offsets would be measured against this machine's "
      "clock, not the clock of the hypervisor that runs the guests. Run the exporter on the "
      "hypervisor with a local URI (qemu:///system), or accept guest-vs-this-machine offsets "
      "with --libvirt.allow-remote (config libvirt.allow_remote: true; "
      "vmtime_vm_clock_utc_offset_seconds is then not exported and the host reference is not "
      "scored, see docs/libvirt.md)"};
}

}  // namespace vmtime
