// LibvirtGuestAgent: GuestAgent over libvirt. Its own read-write connection
// to the configured URI (virDomainQemuAgentCommand is refused on read-only
// ones), opened on first use and reopened when it is found dead. Agent
// commands go through virDomainQemuAgentCommand (libvirt-qemu) with a
// per-call timeout in seconds; libvirt marks a domain "tainted:
// custom-ga-command" the first time, which is expected. Thread-safe:
// libvirt connections accept concurrent calls.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "exporter/collectors/guest_status/guest_agent.h"
#include "exporter/collectors/libvirt/libvirt_handles.h"

namespace vmtime::guest_status {

class LibvirtGuestAgent final : public GuestAgent {
 public:
  explicit LibvirtGuestAgent(std::string uri);
  Result<std::string> Command(const std::string& uuid, const std::string& json,
                              int timeout_s) override;
  Result<std::vector<RunningDomain>> ListRunning() override;

 private:
  Result<std::shared_ptr<virConnect>> Connection();
  void Drop(const std::shared_ptr<virConnect>& dead);

  const std::string uri_;
  std::mutex mu_;
  std::shared_ptr<virConnect> conn_;
};

}  // namespace vmtime::guest_status
