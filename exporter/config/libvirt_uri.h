// Whether a libvirt connection URI reaches the libvirtd of this machine or
// of another one. The exporter brackets each guest clock reading between two
// readings of its own CLOCK_REALTIME, so the offsets it measures are
// "guest minus this machine". On the hypervisor that runs the guests that is
// the guest-vs-host offset; through a remote URI it is guest vs the exporter
// machine (network delay included, bounded by the bracket), and the
// hypervisor's own clock is not involved. Remote URIs are therefore refused
// unless the user opts in (libvirt.allow_remote, --libvirt.allow-remote).
//
// libvirt URIs are driver[+transport]://[user@][host][:port]/[path][?params]
// (https://libvirt.org/uri.html). Local: no host part and no transport, or
// the unix transport (qemu:///system, qemu:///session, test:///default,
// qemu+unix:///system?socket=...). Remote: any host part (plain
// qemu://host/system defaults to the tls transport), and the ssh, libssh,
// libssh2, tcp, tls and ext transports. What cannot be classified (no
// "scheme://", e.g. a libvirt.conf alias, or an unknown transport) counts
// as remote: it may name another machine.
#pragma once

#include <string>
#include <string_view>

#include "exporter/core/result.h"

namespace vmtime {

struct LibvirtUriLocality {
  bool remote = false;
  std::string reason;  // why it is remote ("host 'h'", "transport 'ssh'"); empty when local
};

LibvirtUriLocality ClassifyLibvirtUri(std::string_view uri);

// Ok for a local `uri`, or a remote one with `allow_remote`; otherwise an
// error naming the URI, why it is remote, why that is refused and the opt-in.
Status CheckLibvirtUri(std::string_view uri, bool allow_remote);

}  // namespace vmtime
