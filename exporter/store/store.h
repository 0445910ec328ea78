// Store: what the exporter remembers between collector runs, and the
// builder of the immutable Snapshot exposition renders.
//
// Per VM (keyed by uuid) it keeps a bounded ring of clock samples (for drift
// and step detection), monotonic step counters, the guest status and the
// agent state; VMs libvirt no longer lists are forgotten on the next
// successful libvirt run. Host sections keep the last observation. Thread
// safe: Apply*/Record* and Build may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "exporter/config/config.h"
#include "exporter/model/snapshot.h"
#include "exporter/store/sample_history.h"

namespace vmtime {

class Store {
 public:
  explicit Store(const Config& config);

  // Takes new scoring parameters, history size and intervals (on reload).
  void SetConfig(const Config& config);
  // Merges the observations of one successful collector run.
  void Apply(const Observations& obs);
  // Records the outcome of one collector run (success or failure).
  void RecordRun(const CollectorStatus& status);
  // Marks a collector's data as unavailable after a failed run
  // (e.g. chrony down: vmtime_host_chrony_up 0).
  void MarkFailed(const std::string& collector);
  void SetReload(const ReloadStatus& reload);
  // Counts one remediation attempt of VM `uuid` (ignored for unknown VMs).
  void RecordRemediation(const std::string& uuid, RemediationResult result);
  // Where Build reads the audit counters from (the AuditSink; called with
  // the store's lock held, so it must not call back into the store).
  void SetEventCountersSource(std::function<EventCounters()> source);
  // Scores every VM at `now` and returns a new immutable snapshot.
  std::shared_ptr<const Snapshot> Build(int64_t now_mono_ns, int64_t now_real_ns) const;

  size_t vm_count() const;

 private:
  struct VmState {
    SharedString name;
    SharedString uuid;
    DomainState state = DomainState::kUnknown;
    bool agent_up = false;
    bool agent_attempted = false;
    SharedString agent_error;
    SampleHistory samples;  // oldest first, <= history_samples, packed
    double rtt_s = 0;
    scoring::StepCounts steps_total;
    // Shared with the snapshots built since it arrived (not copied per build).
    std::shared_ptr<const GuestStatusObservation> guest;
    // The domain vanished from libvirt's list and came back (a transient
    // domain saved and restored, or migrated away and back): its next sample
    // is marked after_interruption.
    bool returned = false;
    bool listed = false;  // in the libvirt list being applied (ApplyLibvirt)
    // Absent until the first attempt; replaced (copy on write) at each
    // attempt, so snapshots share it.
    std::shared_ptr<const RemediationCounts> remediations;
  };
  // A domain libvirt stopped listing, kept (not exported) so that its history
  // continues if it comes back: a transient domain is unlisted while saved.
  struct GoneVm {
    VmState vm;
    int64_t last_mono_ns = 0;  // its newest sample, or when it was seen last
  };
  // Takes `uuid` back from gone_ (marked returned) or starts a new VmState.
  VmState Revive(const SharedString& uuid);
  void ForgetGoneLocked();
  void ApplyLibvirt(const LibvirtObservation& lv);
  void MergeDomain(VmState& vm, const DomainObservation& d);
  void AddSample(VmState& vm, const scoring::ClockSample& s, double rtt_s);
  std::optional<scoring::HostReference> HostReferenceLocked() const;
  // The VM's group: its metadata's, else the first matching groups.rules
  // entry's, else empty.
  SharedString GroupOfLocked(const VmState& vm, const DomainMetadata* meta) const;
  // Fills snap.groups from snap.vms (group already set); returns each group's
  // spread for scoring, by name (only groups with >= 2 measured members).
  std::map<SharedString, double, std::less<>> BuildGroupsLocked(Snapshot& snap,
                                                                int64_t now_mono_ns) const;

  mutable std::mutex mu_;
  scoring::Params params_;
  size_t history_samples_ = 64;
  double libvirt_interval_s_ = 15;
  std::set<CollectorId> enabled_;
  size_t ntp_configured_ = 0;
  bool component_scores_ = true;  // config metrics.component_scores, copied into snapshots
  // Config groups.rules: glob, group (one text shared by the members).
  std::vector<std::pair<std::string, SharedString>> group_rules_;
  // Metadata by uuid (libvirt collector); kept while the VM is listed.
  std::map<SharedString, DomainMetadata, std::less<>> metadata_;
  std::pair<bool, bool> metadata_sources_{true, false};  // libvirt.metadata, nova_metadata
  std::map<SharedString, VmState, std::less<>> vms_;     // by uuid
  std::map<SharedString, GoneVm, std::less<>>
      gone_;                    // by uuid, at most kMaxGone, for drift_window_s
  int64_t newest_mono_ns_ = 0;  // newest sample time the store has seen
  std::optional<TimexObservation> timex_;
  uint64_t kvm_artifacts_ = 0;
  std::optional<ChronyObservation> chrony_;
  bool chrony_up_ = false;
  std::optional<PtpObservation> ptp_;  // last answer of ptp4l
  bool ptp_up_ = false;
  std::optional<NtpObservation> ntp_;
  std::optional<NtpdObservation> ntpd_;
  bool ntpd_up_ = false;
  std::optional<TimesyncdObservation> timesyncd_;
  bool timesyncd_up_ = false;
  std::vector<std::string> reference_order_;  // host.reference_order
  bool libvirt_connected_ = false;
  // libvirt.uri is remote (allowed by libvirt.allow_remote): no UTC offset
  // and no host reference for the VMs.
  bool remote_libvirt_ = false;
  std::map<std::string, CollectorStatus> runs_;
  ReloadStatus reload_;
  std::function<EventCounters()> event_counters_;
  // Unpacked history of the VM being scored (reused: no allocation per VM).
  mutable std::vector<scoring::ClockSample> unpacked_;
};

}  // namespace vmtime
