// Remediation policy: which VMs get their clock set from the host, and when.
//
// A pure decision (no I/O, no clock reads): Decide() looks at one published
// Snapshot, the remediation.* configuration, the host monotonic time passed
// in and the per-VM memory it keeps between calls, and returns the actions
// the engine (engine.h) should carry out. Unit tested with FakeClock times.
//
// A VM is acted on when all of these hold (docs/remediation.md):
//  1. a trigger is armed: "interruption" (its newest sample is the first
//     after a resume, restore, start or migration; ClockSample::after_interruption)
//     or "step" (the store counted a new step in vmtime_vm_clock_steps_total);
//     an armed trigger is disarmed by a fresh sample within the threshold;
//  2. it is running, its agent is up, and its newest sample was taken after
//     the end of its last attempt, with |offset| > threshold;
//  3. its name matches `include` (empty: all) and no `exclude` glob, and its
//     metadata has every include_metadata pair and no exclude_metadata pair;
//  4. no attempt started within min_interval (the per-VM rate limit);
//  5. where the guest's own daemon reports synchronised, the trigger has
//     been armed for guest_daemon_grace without the daemon fixing it.
// A correction that would step the guest back (guest ahead) by more than
// max_backward_step is refused unless allow_large_backward is set.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "exporter/config/config.h"
#include "exporter/model/remediation_result.h"
#include "exporter/model/snapshot.h"

namespace vmtime::remediation {

// Domain metadata per VM uuid (key -> value), as the groups work reads it
// from libvirt; empty when unknown.
using MetadataByUuid = std::map<std::string, std::map<std::string, std::string>, std::less<>>;

// What Decide remembers about one VM between snapshots.
struct VmMemory {
  bool seen = false;
  int64_t seen_sample_mono_ns = 0;   // newest sample already looked at
  int seen_steps = 0;                // forward + backward steps already looked at
  std::string trigger;               // armed trigger ("interruption", "step"); empty: none
  int64_t armed_mono_ns = 0;         // when it was armed
  bool in_flight = false;            // an attempt is running (set by Decide, cleared by the engine)
  int64_t last_attempt_mono_ns = 0;  // start of the last attempt (rate limit); 0: none
  int64_t last_done_mono_ns = 0;     // end of the last attempt: older samples do not count
};
using Memory = std::map<SharedString, VmMemory, std::less<>>;  // by uuid

enum class ActionKind { kSet, kDryRun, kRefuseBackward };

struct Action {
  ActionKind kind = ActionKind::kSet;
  std::string uuid;
  std::string name;
  std::string reason;               // the trigger: "interruption" or "step"
  double offset_before_s = 0;       // guest - host of the sample decided on
  double uncertainty_before_s = 0;  // its +- bound
  int64_t sample_host_real_ns = 0;  // when that sample was taken (host realtime)
};

// Glob match of a domain name against include/exclude (fnmatch(3) rules).
bool NameSelected(const RemediationConfig& policy, const std::string& name);
// Metadata match: every include_metadata pair present with that value, and
// no exclude_metadata pair present with its value.
bool MetadataSelected(const RemediationConfig& policy,
                      const std::map<std::string, std::string>& metadata);

// The metadata include_/exclude_metadata match against: the VM's labels
// from its domain metadata (`<label name="k">v</label>`, VmView::labels),
// `group` = its group (metadata or groups.rules) when it has one, and
// `extra` (RemediationEngine::SetMetadata) over them.
std::map<std::string, std::string> VmMetadata(const VmView& vm,
                                              const std::map<std::string, std::string>& extra);

// The decision for one snapshot at host monotonic `now_mono_ns`. Updates
// `memory` (forgets VMs the snapshot no longer lists) and returns the
// actions, in snapshot order. Marks kSet actions in_flight; the engine clears
// that and sets last_done_mono_ns when the attempt ends.
std::vector<Action> Decide(const Snapshot& snapshot, const RemediationConfig& policy,
                           const MetadataByUuid& metadata, int64_t now_mono_ns, Memory& memory);

}  // namespace vmtime::remediation
