// LibvirtGuestAgent: GuestAgent over libvirt. Its own read-write connection
// to the configured URI, under the exporter's one libvirt connection policy
// (libvirt/connection.h: keepalive, close callback, reconnect with backoff;
// a second connection on purpose, so probes never take the clock samples'
// request slots in libvirtd). Agent commands go through
// virDomainQemuAgentCommand (libvirt-qemu) with a per-call timeout in
// seconds; libvirt marks a domain "tainted: custom-ga-command" the first
// time, which is expected. Thread-safe: libvirt connections accept
// concurrent calls.
#pragma once

#include <memory>
#include <string>

#include "exporter/collectors/guest_status/guest_agent.h"
#include "exporter/collectors/libvirt/connection.h"

namespace vmtime::guest_status {

class LibvirtGuestAgent final : public GuestAgent {
 public:
  LibvirtGuestAgent(const libvirt::ConnectionPolicy& policy, const Clock& clock);
  Result<std::string> Command(const std::string& uuid, const std::string& json,
                              int timeout_s) override;
  Result<std::vector<RunningDomain>> ListRunning() override;

 private:
  libvirt::Connection connection_;
};

}  // namespace vmtime::guest_status
