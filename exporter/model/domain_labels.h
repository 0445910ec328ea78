// The rules a group name and a domain label must follow before they become
// label values of vmtime_vm_info (docs/libvirt.md, "Groups and labels").
// Shared by the metadata parser (collectors/libvirt/domain_metadata.h) and
// the configuration's groups.rules, so both refuse the same things.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace vmtime {

inline constexpr size_t kMaxGroupBytes = 64;
inline constexpr size_t kMaxLabelNameBytes = 64;
inline constexpr size_t kMaxLabelValueBytes = 128;

// Each returns an empty string when valid, else why not.
// A group: 1..kMaxGroupBytes of [A-Za-z0-9_.:-] (it appears in URLs and
// alert labels as it is).
std::string CheckGroupName(std::string_view group);
// A label name: a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*) of at most
// kMaxLabelNameBytes, not starting with "__" (reserved).
std::string CheckLabelName(std::string_view name);
// A label value: 1..kMaxLabelValueBytes of valid UTF-8 without control
// characters.
std::string CheckLabelValue(std::string_view value);

}  // namespace vmtime
