// The snapshot differ: what changed between the state the previous snapshots
// established and a new Snapshot, as events (types and fields in
// docs/audit.md). A pure function of (DifferState, Snapshot): no clock, no
// I/O; the event time is the snapshot's build time.
//
// Start-up and restart (docs/audit.md, "Restart semantics"): nothing is
// known after start, and a value first learnt is a baseline, never a
// transition. A VM is settled once libvirt reported its state and, when it
// runs, its first agent attempt finished and, if the agent answers, the
// scorer has the history its detectors need; its first settled snapshot emits
// one `baseline` event with its whole state, and raised/cleared, agent and
// step events only come from comparing two settled observations. Reasons
// are compared by the input they depend on: the guest daemon's (guest
// status), the host reference's, or the agent's samples; a reason whose input
// was not known in the previous observation is absorbed into the state
// silently (and shown by a `baseline` event of that aspect).
#pragma once

#include <bit>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "exporter/events/event.h"
#include "exporter/model/snapshot.h"

namespace vmtime {

// A running VM with an answering agent is settled (its baseline taken) once
// the scorer has a drift estimate or the differ has seen this many samples.
inline constexpr int kSettleSamples = 8;

struct DifferState {
  struct Vm {
    SharedString name;
    DomainState state = DomainState::kUnknown;
    bool agent_attempted = false;
    bool agent_up = false;
    bool guest_known = false;
    scoring::SyncState guest_sync = scoring::SyncState::kUnknown;
    bool host_known = false;  // the host reference was part of this VM's score
    scoring::ReasonSet reasons;
    scoring::StepCounts steps_total;
    int64_t sample_mono_ns = INT64_MIN;  // newest sample seen (INT64_MIN: none)
    std::optional<double> offset_s;
    uint64_t seen_pass = 0;  // the last DiffSnapshot whose snapshot listed it
  };
  std::map<SharedString, Vm, std::less<>> vms;  // settled VMs, by uuid
  struct Pending {
    int samples = 0;  // distinct samples seen while not settled
    int64_t sample_mono_ns = INT64_MIN;
    uint64_t seen_pass = 0;
  };
  std::map<SharedString, Pending, std::less<>> pending;  // listed VMs not settled yet, by uuid
  std::optional<scoring::HostReference> host;
  std::map<std::string, bool> upstream_usable;  // ntp server -> usable
  uint64_t pass = 0;                            // DiffSnapshot calls so far
};

// Appends to `out` the events between `state` and `next`, and updates
// `state` to `next`.
void DiffSnapshot(DifferState& state, const Snapshot& next, std::vector<Event>& out);

// "synchronised", "unsynchronised", "unknown".
const char* SyncStateText(scoring::SyncState s);

}  // namespace vmtime
