// Snapshot: the immutable view exposition renders. Built by the poller after
// each collector run (observations + store history + scoring) and swapped
// atomically; scrapes read it without locks held during rendering and never
// do I/O.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "exporter/model/observations.h"
#include "scoring/types.h"

namespace vmtime {

struct VmView {
  std::string name;
  std::string uuid;
  DomainState state = DomainState::kUnknown;
  bool agent_up = false;
  bool agent_attempted = false;  // false: not tried yet, neither up nor down
  std::string agent_error;
  std::optional<scoring::ClockSample> last_sample;  // newest good sample
  double rtt_s = 0;                                 // of last_sample
  std::optional<double> utc_offset_s;               // guest - UTC when host offset known
  scoring::StepCounts steps_total;                  // since exporter start
  std::optional<GuestStatusObservation> guest;      // guest daemon status
  scoring::ScoreResult score;
};

struct CollectorStatus {
  std::string name;
  bool success = false;
  double duration_s = 0;
  int64_t last_run_real_ns = 0;
  std::string error;  // empty when success
};

struct ReloadStatus {
  bool last_successful = true;
  int64_t last_success_real_ns = 0;
  std::string source;  // config file path or "<built-in>"
};

// The audit trail's counters (exporter/events/audit_sink.h) as of the
// snapshot's build: vmtime_events_total{type}, vmtime_events_dropped_total{reason}.
struct EventCounters {
  std::map<std::string, uint64_t> total_by_type;
  std::map<std::string, uint64_t> dropped_by_reason;  // queue_full, write_error, size_limit
};

struct Snapshot {
  int64_t built_real_ns = 0;
  std::optional<TimexObservation> timex;
  uint64_t timex_kvm_artifacts_total = 0;
  bool chrony_up = false;
  std::optional<ChronyObservation> chrony;  // last good
  std::optional<NtpObservation> ntp;        // last round
  size_t ntp_configured = 0;
  // The host's sync state as scoring saw it (chronyd when it answers, else the
  // kernel); absent when neither was collected. Renders vmtime_host_synchronised{source}.
  std::optional<scoring::HostReference> host_reference;
  bool libvirt_enabled = false;
  bool libvirt_connected = false;
  // Config metrics.component_scores: whether /metrics carries
  // vmtime_vm_health_component_score (the scores are computed either way).
  bool component_scores = true;
  std::vector<VmView> vms;                  // sorted by name
  std::vector<CollectorStatus> collectors;  // sorted by name
  ReloadStatus reload;
  EventCounters events;  // audit trail counters (empty when no sink is attached)
};

}  // namespace vmtime
