// GuestAgent over libvirt and libvirt-qemu (see libvirt_guest_agent.h).
#include "exporter/collectors/guest_status/libvirt_guest_agent.h"

#include <libvirt/libvirt-qemu.h>

#include <cstdlib>

namespace vmtime::guest_status {

LibvirtGuestAgent::LibvirtGuestAgent(std::string uri) : uri_(std::move(uri)) {
  libvirt::SilenceLibvirtErrors();
}

Result<std::shared_ptr<virConnect>> LibvirtGuestAgent::Connection() {
  std::lock_guard lock(mu_);
  if (conn_ && virConnectIsAlive(conn_.get()) == 1) return conn_;
  conn_.reset();
  virConnectPtr c = virConnectOpen(uri_.c_str());
  if (c == nullptr) return libvirt::LibvirtError("virConnectOpen", "", uri_);
  conn_ = std::shared_ptr<virConnect>(c, [](virConnectPtr p) { virConnectClose(p); });
  return conn_;
}

void LibvirtGuestAgent::Drop(const std::shared_ptr<virConnect>& dead) {
  std::lock_guard lock(mu_);
  if (conn_ == dead) conn_.reset();
}

Result<std::vector<RunningDomain>> LibvirtGuestAgent::ListRunning() {
  auto conn = Connection();
  if (!conn) return conn.error();
  virDomainPtr* list = nullptr;
  int n = virConnectListAllDomains(
      conn->get(), &list, VIR_CONNECT_LIST_DOMAINS_ACTIVE | VIR_CONNECT_LIST_DOMAINS_RUNNING);
  if (n < 0) {
    Error e = libvirt::LibvirtError("virConnectListAllDomains", "", uri_);
    if (virConnectIsAlive(conn->get()) != 1) Drop(*conn);
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
  auto conn = Connection();
  if (!conn) return conn.error();
  libvirt::DomainPtr dom(virDomainLookupByUUIDString(conn->get(), uuid.c_str()));
  if (!dom) {
    Error e = libvirt::LibvirtError("virDomainLookupByUUIDString", "", uuid);
    if (virConnectIsAlive(conn->get()) != 1) Drop(*conn);
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
    if (virConnectIsAlive(conn->get()) != 1) Drop(*conn);
    return e;
  }
  std::string out(reply);
  std::free(reply);
  return out;
}

}  // namespace vmtime::guest_status
