// The per-VM family table and its two sinks (see vm_metrics.h).
#include "exporter/exposition/vm_metrics.h"

#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "exporter/exposition/guest_status_metrics.h"
#include "exporter/exposition/text_writer.h"
#include "scoring/score.h"

namespace vmtime::exposition {
namespace {

using prometheus::MetricType;

double Seconds(int64_t real_ns) { return static_cast<double>(real_ns) / 1e9; }

// ---- one VM's samples of each family ----

void Info(const VmView& vm, VmSeriesSink& out) {
  if (vm.group.empty() && vm.labels.empty()) {
    out.Add(vm, "state", DomainStateName(vm.state), 1);
    return;
  }
  std::vector<std::pair<std::string, std::string>> labels;
  labels.reserve(2 + vm.labels.size());
  labels.emplace_back("state", DomainStateName(vm.state));
  if (!vm.group.empty()) labels.emplace_back("group", vm.group);
  for (const auto& [name, value] : vm.labels) labels.emplace_back("label_" + name, value);
  out.Add(vm, labels, 1);
}
void AgentUp(const VmView& vm, VmSeriesSink& out) {
  // Before the first agent attempt the agent is neither up nor down.
  if (vm.agent_attempted) out.Add(vm, vm.agent_up ? 1 : 0);
}
void Offset(const VmView& vm, VmSeriesSink& out) {
  if (vm.last_sample) out.Add(vm, vm.last_sample->offset_s);
}
void Uncertainty(const VmView& vm, VmSeriesSink& out) {
  if (vm.last_sample) out.Add(vm, vm.last_sample->uncertainty_s);
}
void UtcOffset(const VmView& vm, VmSeriesSink& out) {
  if (vm.utc_offset_s) out.Add(vm, *vm.utc_offset_s);
}
void Drift(const VmView& vm, VmSeriesSink& out) {
  if (vm.score.drift) out.Add(vm, vm.score.drift->ratio);
}
void Stopped(const VmView& vm, VmSeriesSink& out) { out.Add(vm, vm.score.clock_stopped ? 1 : 0); }
void Steps(const VmView& vm, VmSeriesSink& out) {
  out.Add(vm, "direction", "forward", static_cast<double>(vm.steps_total.forward));
  out.Add(vm, "direction", "backward", static_cast<double>(vm.steps_total.backward));
}
void Rtt(const VmView& vm, VmSeriesSink& out) {
  if (vm.last_sample) out.Add(vm, vm.rtt_s);
}
void LastSample(const VmView& vm, VmSeriesSink& out) {
  if (vm.last_sample) out.Add(vm, Seconds(vm.last_sample->host_real_ns));
}
void GuestSynchronised(const VmView& vm, VmSeriesSink& out) {
  if (!vm.guest || vm.guest->status.state == scoring::SyncState::kUnknown) return;
  out.Add(vm, vm.guest->status.state == scoring::SyncState::kSynchronised ? 1 : 0);
}
void GuestStratum(const VmView& vm, VmSeriesSink& out) {
  if (vm.guest && vm.guest->status.stratum) out.Add(vm, *vm.guest->status.stratum);
}
void GuestLeap(const VmView& vm, VmSeriesSink& out) {
  if (!vm.guest || vm.guest->status.leap == scoring::LeapStatus::kUnknown) return;
  out.Add(vm, static_cast<int>(vm.guest->status.leap));
}
void Score(const VmView& vm, VmSeriesSink& out) { out.Add(vm, vm.score.score); }
void Band(const VmView& vm, VmSeriesSink& out) { out.Add(vm, static_cast<int>(vm.score.band)); }
void Components(const VmView& vm, VmSeriesSink& out) {
  for (int c = 0; c < scoring::kComponentCount; ++c) {
    if (!vm.score.measured[c]) continue;  // input not collected: no series
    out.Add(vm, "component", scoring::ComponentName(static_cast<scoring::Component>(c)),
            vm.score.components[c]);
  }
}
void Reasons(const VmView& vm, VmSeriesSink& out) {
  for (auto r : vm.score.reasons) out.Add(vm, "reason", scoring::ReasonName(r), 1);
}
void Remediations(const VmView& vm, VmSeriesSink& out) {
  if (!vm.remediations_total) return;
  for (size_t r = 0; r < kRemediationResultCount; ++r) {
    out.Add(vm, "result", RemediationResultName(static_cast<RemediationResult>(r)),
            static_cast<double>((*vm.remediations_total)[r]));
  }
}
void GuestSource(const VmView& vm, VmSeriesSink& out) {
  if (vm.guest) out.Add(vm, "daemon", vm.guest->daemon, 1);
}

const std::array<VmFamily, 20>& Table() {
  static const std::array<VmFamily, 20> kTable = {{
      {"vmtime_vm_info", "Domain known to libvirt (1), with its state.", MetricType::Gauge, Info},
      {"vmtime_vm_agent_up",
       "1 when the last guest-get-time through the guest agent succeeded; absent before the "
       "first attempt.",
       MetricType::Gauge, AgentUp},
      {"vmtime_vm_clock_offset_seconds",
       "Guest clock minus host CLOCK_REALTIME (positive = guest ahead).", MetricType::Gauge,
       Offset},
      {"vmtime_vm_clock_offset_uncertainty_seconds",
       "Half the round trip of the offset measurement: the true offset is within +/- this.",
       MetricType::Gauge, Uncertainty},
      {"vmtime_vm_clock_utc_offset_seconds",
       "Guest clock minus UTC (VM-vs-host offset plus host-vs-UTC from chronyd).",
       MetricType::Gauge, UtcOffset},
      {"vmtime_vm_clock_drift_ratio",
       "Least-squares slope of the guest offset over the drift window (1e-6 = 1 ppm).",
       MetricType::Gauge, Drift},
      {"vmtime_vm_clock_stopped", "1 when the guest clock stopped advancing.", MetricType::Gauge,
       Stopped},
      {"vmtime_vm_clock_steps_total", "Guest clock steps beyond the step threshold, by direction.",
       MetricType::Counter, Steps},
      {"vmtime_vm_agent_rtt_seconds", "Round trip of the kept virDomainGetTime call.",
       MetricType::Gauge, Rtt},
      {"vmtime_vm_last_sample_timestamp_seconds",
       "Unix time (host) of the last good guest clock sample.", MetricType::Gauge, LastSample},
      {"vmtime_vm_guest_synchronised", "Guest time daemon reports synchronised (1) or not (0).",
       MetricType::Gauge, GuestSynchronised},
      {"vmtime_vm_guest_stratum", "Stratum the guest time daemon reports.", MetricType::Gauge,
       GuestStratum},
      {"vmtime_vm_guest_leap_status",
       "Guest leap status: 0 normal, 1 insert, 2 delete, 3 unsynchronised.", MetricType::Gauge,
       GuestLeap},
      {"vmtime_vm_health_score", "Guest clock sync health score, 0..100 (docs/scoring.md).",
       MetricType::Gauge, Score},
      {"vmtime_vm_health_band",
       "Health band of the score: 0 good, 1 degraded, 2 bad (docs/scoring.md).", MetricType::Gauge,
       Band},
      {"vmtime_vm_health_component_score", "Score component, 0..1.", MetricType::Gauge, Components,
       /*component_scores=*/true},
      {"vmtime_vm_health_reason", "1 while the named reason is active.", MetricType::Gauge,
       Reasons},
      {"vmtime_vm_guest_status_source", "1 for the guest daemon the status came from.",
       MetricType::Gauge, GuestSource},
      GuestStatusErrorFamily(),
      {"vmtime_vm_remediations_total",
       "Remediation attempts (guest clock set from the host), by result (docs/remediation.md); "
       "absent until the VM's first attempt.",
       MetricType::Counter, Remediations},
  }};
  return kTable;
}

// Writes one family's samples as text; the HELP/TYPE lines come with the
// first sample, so a family without samples is not written (as
// FamilyBuilder::Take drops it).
class TextSink final : public VmSeriesSink {
 public:
  // `with_header`: write the HELP/TYPE lines before the first sample.
  TextSink(std::string& out, const VmFamily& family, bool with_header = true)
      : out_(out), family_(family), started_(!with_header) {}

  void Add(const VmView& vm, double value) override {
    Begin(vm);
    out_ += "\"} ";
    End(value);
  }
  void Add(const VmView& vm, std::string_view label, std::string_view label_value,
           double value) override {
    Begin(vm);
    out_ += "\",";
    out_ += label;
    out_ += "=\"";
    AppendLabelValue(out_, label_value);
    out_ += "\"} ";
    End(value);
  }
  void Add(const VmView& vm, std::span<const std::pair<std::string, std::string>> labels,
           double value) override {
    Begin(vm);
    for (const auto& [name, label_value] : labels) {
      out_ += "\",";
      out_ += name;
      out_ += "=\"";
      AppendLabelValue(out_, label_value);
    }
    out_ += "\"} ";
    End(value);
  }

 private:
  void Begin(const VmView& vm) {
    if (!started_) AppendFamilyHeader(out_, family_.name, family_.help, family_.type);
    started_ = true;
    out_ += family_.name;
    out_ += "{domain=\"";
    AppendLabelValue(out_, vm.name);
    out_ += "\",uuid=\"";
    AppendLabelValue(out_, vm.uuid);
  }
  void End(double value) {
    AppendValue(out_, value);
    out_ += '\n';
  }

  std::string& out_;
  const VmFamily& family_;
  bool started_;
};

// Appends what one VM's samples are made of (see AppendVmExpositionKey):
// per sample the family's index, the extra label and its value, and the
// value's bits.
class KeySink final : public VmSeriesSink {
 public:
  explicit KeySink(std::string& out) : out_(out) {}
  void SetFamily(size_t index) { family_ = static_cast<char>(index); }

  void Add(const VmView&, double value) override {
    out_ += family_;
    AppendBits(value);
  }
  void Add(const VmView&, std::string_view label, std::string_view label_value,
           double value) override {
    out_ += static_cast<char>(family_ | 0x80);
    AppendSized(label);
    AppendSized(label_value);
    AppendBits(value);
  }
  // vmtime_vm_info's group and label_<name> labels: part of the key, so a
  // metadata change re-renders the VM's chunk.
  void Add(const VmView&, std::span<const std::pair<std::string, std::string>> labels,
           double value) override {
    out_ += static_cast<char>(family_ | 0x40);
    AppendSized(std::to_string(labels.size()));
    for (const auto& [name, label_value] : labels) {
      AppendSized(name);
      AppendSized(label_value);
    }
    AppendBits(value);
  }
  void AppendSized(std::string_view s) {
    const auto n = static_cast<uint32_t>(s.size());
    out_.append(reinterpret_cast<const char*>(&n), sizeof n);
    out_ += s;
  }

 private:
  void AppendBits(double value) {
    out_.append(reinterpret_cast<const char*>(&value), sizeof value);
  }

  std::string& out_;
  char family_ = 0;
};

// Adds one family's samples to a FamilyBuilder family.
class BuilderSink final : public VmSeriesSink {
 public:
  explicit BuilderSink(Family family) : family_(family) {}

  void Add(const VmView& vm, double value) override {
    family_.Add({{"domain", vm.name.str()}, {"uuid", vm.uuid.str()}}, value);
  }
  void Add(const VmView& vm, std::string_view label, std::string_view label_value,
           double value) override {
    family_.Add({{"domain", vm.name.str()},
                 {"uuid", vm.uuid.str()},
                 {std::string(label), std::string(label_value)}},
                value);
  }
  void Add(const VmView& vm, std::span<const std::pair<std::string, std::string>> labels,
           double value) override {
    Labels all{{"domain", vm.name.str()}, {"uuid", vm.uuid.str()}};
    all.insert(all.end(), labels.begin(), labels.end());
    family_.Add(all, value);
  }

 private:
  Family family_;
};

bool Wanted(const Snapshot& s, const VmFamily& f) {
  return !f.component_scores || s.component_scores;
}

}  // namespace

std::span<const VmFamily> VmFamilies() { return Table(); }

void AppendVmText(const Snapshot& s, std::string& out) {
  if (!s.libvirt_enabled) return;
  for (const VmFamily& f : Table()) {
    if (!Wanted(s, f)) continue;
    TextSink sink(out, f);
    for (const VmView& vm : s.vms) f.emit(vm, sink);
  }
}

bool FamilyWanted(const Snapshot& s, const VmFamily& family) {
  return s.libvirt_enabled && Wanted(s, family);
}

void AppendVmFamilySamples(const VmFamily& family, std::span<const VmView> vms, std::string& out) {
  TextSink sink(out, family, /*with_header=*/false);
  for (const VmView& vm : vms) family.emit(vm, sink);
}

void AppendVmExpositionKey(const VmView& vm, bool component_scores, std::string& out) {
  KeySink sink(out);
  sink.AppendSized(vm.name);
  sink.AppendSized(vm.uuid);
  const auto& table = Table();
  static_assert(std::tuple_size_v<std::decay_t<decltype(table)>> < 0x80);
  for (size_t i = 0; i < table.size(); ++i) {
    if (table[i].component_scores && !component_scores) continue;
    sink.SetFamily(i);
    table[i].emit(vm, sink);
  }
}

void AppendVmMetrics(const Snapshot& s, FamilyBuilder& out) {
  if (!s.libvirt_enabled) return;
  for (const VmFamily& f : Table()) {
    if (!Wanted(s, f)) continue;
    const std::string name(f.name), help(f.help);
    BuilderSink sink(f.type == MetricType::Counter ? out.Counter(name, help)
                                                   : out.Gauge(name, help));
    for (const VmView& vm : s.vms) f.emit(vm, sink);
  }
}

}  // namespace vmtime::exposition
