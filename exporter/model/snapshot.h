// Snapshot: the immutable view exposition renders. Built by the poller after
// each collector run (observations + store history + scoring) and swapped
// atomically; scrapes read it without locks held during rendering and never
// do I/O.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "exporter/model/observations.h"
#include "exporter/model/remediation_result.h"
#include "scoring/types.h"

namespace vmtime {

struct VmView {
  SharedString name;  // shared with the store's and the scheduler's copies
  SharedString uuid;
  DomainState state = DomainState::kUnknown;
  bool agent_up = false;
  bool agent_attempted = false;                     // false: not tried yet, neither up nor down
  SharedString agent_error;                         // shared with the store's and the scheduler's
  std::optional<scoring::ClockSample> last_sample;  // newest good sample
  double rtt_s = 0;                                 // of last_sample
  std::optional<double> utc_offset_s;               // guest - UTC when host offset known
  scoring::StepCounts steps_total;                  // since exporter start
  // Guest daemon status; shared with the store and the other snapshots
  // (immutable once made), not copied per snapshot.
  std::shared_ptr<const GuestStatusObservation> guest;
  // Group (metadata, else the first matching groups.rules entry; empty: none)
  // and the domain's metadata labels: labels of vmtime_vm_info only.
  SharedString group;  // shared by the group's members
  std::vector<std::pair<std::string, std::string>> labels;
  scoring::ScoreResult score;
  // Remediation attempts by result since exporter start; absent until the
  // first attempt (vmtime_vm_remediations_total is then written).
  // Shared with the store (replaced, not changed, at each attempt).
  std::shared_ptr<const RemediationCounts> remediations_total;
};

// One group's members on this host (vmtime_group_*).
struct GroupView {
  SharedString name;
  int members = 0;   // domains of the group listed by libvirt, any state
  int measured = 0;  // of those, running with a sample that is not stale
  // Max minus min offset (guest - host) of the measured members, >= 0;
  // meaningful with measured >= 2 (0 otherwise).
  double spread_s = 0;
  SharedString min_domain;  // the member furthest behind
  SharedString max_domain;  // the member furthest ahead
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
  bool ntpd_up = false;                           // ntpd answered the last run
  std::optional<NtpdObservation> ntpd;            // last good
  bool timesyncd_up = false;                      // timesyncd present at the last run
  std::optional<TimesyncdObservation> timesyncd;  // last good
  // ptp: whether ptp4l answered the last run, its state then (absent when
  // it did not) and what that state means for the host (store/host_reference_ptp.h).
  bool ptp_enabled = false;  // the ptp collector is enabled (vmtime_host_ptp_up is rendered)
  bool ptp_up = false;
  std::optional<PtpObservation> ptp;
  std::optional<scoring::HostReference> ptp_host_reference;
  // The host's sync state as scoring saw it (the first present source of
  // host.reference_order, store/host_reference.h); absent when none is. Renders
  // vmtime_host_synchronised{source}.
  std::optional<scoring::HostReference> host_reference;
  bool libvirt_enabled = false;
  bool libvirt_connected = false;
  // Config metrics.component_scores: whether /metrics carries
  // vmtime_vm_health_component_score (the scores are computed either way).
  bool component_scores = true;
  std::vector<VmView> vms;                  // sorted by name
  std::vector<GroupView> groups;            // sorted by spread, largest first, then name
  std::vector<CollectorStatus> collectors;  // sorted by name
  ReloadStatus reload;
  EventCounters events;  // audit trail counters (empty when no sink is attached)
};

}  // namespace vmtime
