// GuestAgent over libvirt and libvirt-qemu (see libvirt_guest_agent.h).
#include "exporter/collectors/guest_status/libvirt_guest_agent.h"

#include <libvirt/libvirt-qemu.h>

#include <cstdlib>

namespace vmtime::guest_status {

LibvirtGuestAgent::LibvirtGuestAgent(const libvirt::ConnectionPolicy& policy, const Clock& clock)
    : connection_(policy, clock, "guest_status") {}

Result<std::vector<RunningDomain>> LibvirtGuestAgent::ListRunning() {
  auto conn = connection_.Get();
  if (!conn) return conn.error();
  virDomainPtr* list = nullptr;
  int n = virConnectListAllDomains(
      conn->get(), &list, VIR_CONNECT_LIST_DOMAINS_ACTIVE | VIR_CONNECT_LIST_DOMAINS_RUNNING);
  if (n < 0) {
    Error e = libvirt::LibvirtError("virConnectListAllDomains", "", connection_.uri());
    connection_.Check(conn->get(), e.message);
    return e;
  }
  std::vector<RunningDomain> out;
  for (int i = 0; i < n; ++i) {
    libvirt::DomainPtr d(list[i]);
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    const char* name = virDomainGetName(d.get());
    if (name == nullptr || virDomainGetUUIDString(d.get(), uuid) < 0) continue;
    out.push_back({name, uuid});
  }
  std::free(list);
  return out;
}

Result<std::string> LibvirtGuestAgent::Command(const std::string& uuid, const std::string& json,
                                               int timeout_s) {
  auto conn = connection_.Get();
  if (!conn) return conn.error();
  libvirt::DomainPtr dom(virDomainLookupByUUIDString(conn->get(), uuid.c_str()));
  if (!dom) {
    Error e = libvirt::LibvirtError("virDomainLookupByUUIDString", "", uuid);
    connection_.Check(conn->get(), e.message);
    return e;
  }
  // The name first: every libvirt call (virDomainGetName too) resets the
  // thread's last error, which must survive until LibvirtError reads it.
  const char* name = virDomainGetName(dom.get());
  const std::string domain_name = name != nullptr ? name : uuid;
  char* reply =
      virDomainQemuAgentCommand(dom.get(), json.c_str(), timeout_s < 1 ? 1 : timeout_s, 0);
  if (reply == nullptr) {
    Error e = libvirt::LibvirtError("virDomainQemuAgentCommand", domain_name);
    connection_.Check(conn->get(), e.message);
    return e;
  }
  std::string out(reply);
  std::free(reply);
  return out;
}

}  // namespace vmtime::guest_status
