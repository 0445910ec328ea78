// The per-VM families of docs/metrics.md ("Per VM"), declared once in a
// table (name, HELP, type, and how one VM's samples are computed) and
// written by two sinks:
// - AppendVmText writes them straight from the snapshot into the /metrics
//   text, family by family (one pass over the VMs per family), escaping the
//   label values on the fly: no MetricFamily, no label vector, no
//   allocation per series (the output string grows, amortised).
// - AppendVmMetrics adds them to a FamilyBuilder as prometheus-cpp
//   MetricFamily values (SnapshotCollectable, and tests comparing both).
// Every per-VM series carries {domain, uuid} and at most one more label,
// except vmtime_vm_info: state, then group and label_<name> of the domain's
// metadata when it has them (the PromQL join in docs/metrics.md).
#pragma once

#include <prometheus/metric_type.h>

#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "exporter/exposition/families.h"
#include "exporter/model/snapshot.h"

namespace vmtime::exposition {

// Receives the samples of one family for one VM.
class VmSeriesSink {
 public:
  // A sample labelled {domain, uuid}.
  virtual void Add(const VmView& vm, double value) = 0;
  // A sample labelled {domain, uuid, `label`="`label_value`"}.
  virtual void Add(const VmView& vm, std::string_view label, std::string_view label_value,
                   double value) = 0;
  // A sample labelled {domain, uuid} and then `labels`, in order.
  virtual void Add(const VmView& vm, std::span<const std::pair<std::string, std::string>> labels,
                   double value) = 0;

 protected:
  ~VmSeriesSink() = default;
};

struct VmFamily {
  std::string_view name;
  std::string_view help;
  prometheus::MetricType type;
  void (*emit)(const VmView& vm, VmSeriesSink& out);
  // vmtime_vm_health_component_score: left out when
  // Snapshot::component_scores is false (config metrics.component_scores).
  bool component_scores = false;
};

// Every per-VM family, in output order.
std::span<const VmFamily> VmFamilies();

// Appends the per-VM series (nothing when libvirt is not enabled).
void AppendVmText(const Snapshot& s, std::string& out);
void AppendVmMetrics(const Snapshot& s, FamilyBuilder& out);

}  // namespace vmtime::exposition
