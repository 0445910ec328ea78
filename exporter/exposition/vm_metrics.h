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

// The pieces AppendVmText is made of, for the incremental gzip body
// (gzip_body.h): whether a family is written for this snapshot, and one
// family's samples of a run of VMs, without the HELP/TYPE lines (a family's
// text is its header followed by the samples of every run, in order; the
// header is left out when no VM has a sample).
bool FamilyWanted(const Snapshot& s, const VmFamily& family);
void AppendVmFamilySamples(const VmFamily& family, std::span<const VmView> vms, std::string& out);

// Appends a compact key of everything the per-VM families write for `vm`
// (name, uuid, and every sample's family, label and value bits): two VMs
// with equal keys render byte-identical text. Values are compared as bits,
// so equal keys are exact, and a VmView field that no family reads (the
// freshness age that grows with every build) does not change the key.
void AppendVmExpositionKey(const VmView& vm, bool component_scores, std::string& out);
void AppendVmMetrics(const Snapshot& s, FamilyBuilder& out);

}  // namespace vmtime::exposition
