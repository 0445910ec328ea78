// See libvirt_handles.h.
#include "exporter/collectors/libvirt/libvirt_handles.h"

#include <fmt/format.h>

#include <mutex>

namespace vmtime::libvirt {

namespace {
void IgnoreError(void* /*user_data*/, virErrorPtr /*error*/) {}
}  // namespace

void SilenceLibvirtErrors() {
  static std::once_flag once;
  std::call_once(once, [] {
    virInitialize();
    virSetErrorFunc(nullptr, IgnoreError);
  });
}

LastError TakeLastError() {
  LastError out;
  virErrorPtr err = virGetLastError();
  if (err != nullptr) {
    out.code = err->code;
    out.domain = err->domain;
    out.message = err->message != nullptr ? err->message : "unknown libvirt error";
  }
  virResetLastError();
  return out;
}

Error LibvirtError(std::string_view call, std::string_view domain_name, std::string_view what) {
  LastError e = TakeLastError();
  std::string message = e.code != 0 ? e.message : "failed without a libvirt error message";
  if (e.code == VIR_ERR_OPERATION_DENIED && message.find("read only") != std::string::npos) {
    message +=
        " (the exporter needs a read-write libvirt connection: virDomainGetTime is refused on "
        "read-only connections)";
  }
  if (!domain_name.empty()) {
    return Error{fmt::format("{}(domain '{}'): {}", call, domain_name, message)};
  }
  if (!what.empty()) return Error{fmt::format("{}({}): {}", call, what, message)};
  return Error{fmt::format("{}: {}", call, message)};
}

}  // namespace vmtime::libvirt
