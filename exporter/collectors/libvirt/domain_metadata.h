// Domain metadata: a domain's group and labels from the XML it carries in
// libvirt's <metadata> (docs/libvirt.md, "Groups and labels").
//
// virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT) returns one element of a
// namespace as text; this module turns that text into a validated
// DomainMetadata. It is pure (no libvirt, no I/O), so the unit tests and the
// fuzz target (tests/fuzz/domain_metadata_fuzz.cc) drive it directly.
//
// - The project's own element, namespace kMetadataNamespace:
//     <vmtime><group>mysql</group><label name="team">db</label></vmtime>
// - OpenStack Nova's <instance> (opt-in, groups.nova_metadata): its
//   instance name, flavour and project become the labels nova_instance,
//   nova_flavor and nova_project; Nova sets no group.
//
// The XML reader is deliberately small (elements, attributes, text, the five
// predefined entities and character references, comments, CDATA; no DTD) and
// bounded (kMaxMetadataBytes of input, kMaxDepth levels, kMaxElements
// elements). Text that is not well-formed is an error; an entry that is
// well-formed but not acceptable (an unknown element, an oversized value, a
// label name Prometheus refuses, more than DomainMetadata::kMaxLabels labels,
// a second <group>) is left out and named in `problems`, the rest is kept.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "exporter/core/result.h"
#include "exporter/model/domain_labels.h"
#include "exporter/model/observations.h"

namespace vmtime::libvirt {

// The project's metadata namespace and the prefix (virsh --key) it suggests.
inline constexpr char kMetadataNamespace[] = "urn:vmtime-exporter:metadata:1";
inline constexpr char kMetadataKey[] = "vmtime";
// Nova's namespaces, newest first (groups.nova_metadata reads the first
// present).
inline constexpr const char* kNovaNamespaces[] = {
    "http://openstack.org/xmlns/libvirt/nova/1.1",
    "http://openstack.org/xmlns/libvirt/nova/1.0",
};

inline constexpr size_t kMaxMetadataBytes = 64 * 1024;
inline constexpr size_t kMaxDepth = 16;
inline constexpr size_t kMaxElements = 512;

struct ParsedMetadata {
  DomainMetadata metadata;
  std::vector<std::string> problems;  // entries left out, each with why
};

// Parses the project's <vmtime> element.
Result<ParsedMetadata> ParseVmtimeMetadata(std::string_view xml);
// Parses Nova's <instance> element into nova_* labels.
Result<ParsedMetadata> ParseNovaMetadata(std::string_view xml);

// Merges `extra` labels into `into` (names already present win), keeping
// the result sorted and within kMaxLabels; what does not fit is named in
// `problems`.
void MergeLabels(DomainMetadata& into, const DomainMetadata& extra,
                 std::vector<std::string>& problems);

}  // namespace vmtime::libvirt
