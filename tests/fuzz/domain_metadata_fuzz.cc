// libFuzzer target: the domain metadata parsers (collectors/libvirt/
// domain_metadata.h) over arbitrary text, the project's <vmtime> element and
// Nova's <instance>. Whatever they accept must already obey the label rules
// (so nothing unbounded or invalid can reach vmtime_vm_info); a refusal must
// say why.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "exporter/collectors/libvirt/domain_metadata.h"
#include "exporter/model/domain_labels.h"

namespace {

void Check(const vmtime::Result<vmtime::libvirt::ParsedMetadata>& r) {
  if (!r.ok()) {
    if (r.error().message.empty()) std::abort();
    return;
  }
  const vmtime::DomainMetadata& m = r->metadata;
  if (!m.group.empty() && !vmtime::CheckGroupName(m.group).empty()) std::abort();
  if (m.labels.size() > vmtime::DomainMetadata::kMaxLabels) std::abort();
  for (size_t i = 0; i < m.labels.size(); ++i) {
    if (!vmtime::CheckLabelName(m.labels[i].first).empty()) std::abort();
    if (!vmtime::CheckLabelValue(m.labels[i].second).empty()) std::abort();
    if (i > 0 && !(m.labels[i - 1].first < m.labels[i].first)) std::abort();  // sorted, unique
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view xml(reinterpret_cast<const char*>(data), size);
  Check(vmtime::libvirt::ParseVmtimeMetadata(xml));
  Check(vmtime::libvirt::ParseNovaMetadata(xml));
  return 0;
}
