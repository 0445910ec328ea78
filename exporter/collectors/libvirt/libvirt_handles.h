// RAII owners for libvirt handles and the conversion of libvirt's
// thread-local last error into vmtime::Error.
//
// libvirt prints every error to stderr by default; SilenceLibvirtErrors()
// installs a no-op handler once per process so errors surface only as values
// (and in our own log lines, with the domain and call named).
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <memory>
#include <string>
#include <string_view>

#include "exporter/core/result.h"

namespace vmtime::libvirt {

struct ConnectDeleter {
  void operator()(virConnectPtr c) const noexcept { virConnectClose(c); }
};
using ConnectPtr = std::unique_ptr<virConnect, ConnectDeleter>;

struct DomainDeleter {
  void operator()(virDomainPtr d) const noexcept { virDomainFree(d); }
};
using DomainPtr = std::unique_ptr<virDomain, DomainDeleter>;

// A second owning reference to `d` (virDomainRef).
inline DomainPtr RefDomain(virDomainPtr d) {
  if (d == nullptr) return nullptr;
  virDomainRef(d);
  return DomainPtr(d);
}

// Installs a silent global libvirt error handler (idempotent, thread-safe).
void SilenceLibvirtErrors();

// libvirt's last error on this thread, if any.
struct LastError {
  int code = 0;    // virErrorNumber, 0 when there was none
  int domain = 0;  // virErrorDomain
  std::string message;
};
LastError TakeLastError();

// "<call>(domain '<name>'): <libvirt message>" from the last error on this
// thread; `domain_name` may be empty for connection-level calls, then
// `what` (e.g. the URI) is named instead.
Error LibvirtError(std::string_view call, std::string_view domain_name, std::string_view what = {});

}  // namespace vmtime::libvirt
