// The snapshot differ (see differ.h; event types in docs/audit.md).
#include "exporter/events/differ.h"

#include <algorithm>
#include <set>
#include <utility>

namespace vmtime {
namespace {

using nlohmann::json;
using scoring::Reason;
using scoring::ReasonSet;

// Which input a reason depends on: it is compared only while that input is known.
enum class ReasonInput { kAgent, kGuest, kHost };

ReasonInput InputOf(Reason r) {
  switch (r) {
    case Reason::kUnsynchronised:
    case Reason::kGuestSyncUnknown:
    case Reason::kStratumHigh:
    case Reason::kLeapPending:
      return ReasonInput::kGuest;
    case Reason::kHostUnsynchronised:
    case Reason::kHostStratumHigh:
      return ReasonInput::kHost;
    default:
      return ReasonInput::kAgent;
  }
}

// Libvirt reported the state and, for a running domain, the agent was tried.
bool Known(const VmView& vm) {
  if (vm.state == DomainState::kUnknown) return false;
  return vm.agent_attempted || vm.state != DomainState::kRunning;
}

// Known, and for a running domain whose agent answers, the scorer has the
// history its detectors need (a drift estimate, or kSettleSamples samples
// seen): its reasons are then those of the VM, not of a short history.
bool Settled(const VmView& vm, int samples_seen) {
  if (!Known(vm)) return false;
  if (vm.state != DomainState::kRunning || !vm.agent_up) return true;
  return vm.score.drift.has_value() || samples_seen >= kSettleSamples;
}

ReasonSet ReasonsOf(const VmView& vm, ReasonInput input) {
  ReasonSet out;
  for (Reason r : vm.score.reasons) {
    if (InputOf(r) == input) out.insert(r);
  }
  return out;
}

json ReasonNames(const ReasonSet& reasons) {
  json out = json::array();
  for (Reason r : reasons) out.push_back(std::string(scoring::ReasonName(r)));
  return out;
}

json OptionalNumber(const std::optional<double>& v) { return v ? json(*v) : json(); }

json Measured(const VmView& vm) {
  json v = json::object();
  v["offset_s"] = OptionalNumber(vm.score.offset_used_s);
  v["uncertainty_s"] = vm.last_sample ? json(vm.last_sample->uncertainty_s) : json();
  v["score"] = vm.score.score;
  v["band"] = std::string(scoring::BandName(vm.score.band));
  return v;
}

json GuestJson(const VmView& vm) {
  if (!vm.guest) return json();
  json g = json::object();
  g["sync"] = SyncStateText(vm.guest->status.state);
  g["daemon"] = vm.guest->daemon;
  g["stratum"] = vm.guest->status.stratum ? json(*vm.guest->status.stratum) : json();
  return g;
}

json HostJson(const scoring::HostReference& h) {
  json j = json::object();
  j["sync"] = SyncStateText(h.state);
  j["source"] = h.source;
  j["stratum"] = h.stratum ? json(*h.stratum) : json();
  return j;
}

json VmStateJson(const VmView& vm) {
  json j = json::object();
  j["state"] = DomainStateName(vm.state);
  j["agent"] = !vm.agent_attempted ? "not_attempted" : vm.agent_up ? "up" : "down";
  j["reasons"] = ReasonNames(vm.score.reasons);
  j["guest"] = GuestJson(vm);
  j["steps_total"] = {{"forward", vm.steps_total.forward}, {"backward", vm.steps_total.backward}};
  return j;
}

class VmDiff {
 public:
  VmDiff(const Snapshot& snap, const VmView& vm, std::vector<Event>& out)
      : snap_(snap), vm_(vm), out_(out) {}

  Event Make(std::string type) const {
    Event e;
    e.time_real_ns = snap_.built_real_ns;
    e.type = std::move(type);
    e.domain = vm_.name.str();
    e.uuid = vm_.uuid.str();
    e.values = Measured(vm_);
    return e;
  }

  void Baseline(const char* aspect, json after) {
    Event e = Make("baseline");
    e.after = std::move(after);
    e.values["aspect"] = aspect;
    out_.push_back(std::move(e));
  }

  void State(DifferState::Vm& mem) {
    if (vm_.state == DomainState::kUnknown || vm_.state == mem.state) return;
    Event e = Make("domain_state_changed");
    e.before = DomainStateName(mem.state);
    e.after = DomainStateName(vm_.state);
    out_.push_back(std::move(e));
    mem.state = vm_.state;
  }

  void Agent(DifferState::Vm& mem) {
    if (!vm_.agent_attempted) return;
    if (mem.agent_attempted && mem.agent_up != vm_.agent_up) {
      Event e = Make(vm_.agent_up ? "agent_back" : "agent_lost");
      e.before = mem.agent_up ? "up" : "down";
      e.after = vm_.agent_up ? "up" : "down";
      if (!vm_.agent_up) e.values["error"] = vm_.agent_error;
      out_.push_back(std::move(e));
    }
    mem.agent_attempted = true;
    mem.agent_up = vm_.agent_up;
  }

  void Samples(DifferState::Vm& mem) {
    const std::optional<double> offset =
        vm_.last_sample ? std::optional<double>(vm_.last_sample->offset_s) : std::nullopt;
    const bool new_sample = vm_.last_sample && vm_.last_sample->host_mono_ns != mem.sample_mono_ns;
    if (new_sample && vm_.last_sample->after_interruption && mem.offset_s) {
      Event e = Make("clock_interrupted");
      e.values["offset_before_s"] = OptionalNumber(mem.offset_s);
      e.values["sample_offset_s"] = OptionalNumber(offset);
      out_.push_back(std::move(e));
    }
    Step(mem, "forward", mem.steps_total.forward, vm_.steps_total.forward, offset);
    Step(mem, "backward", mem.steps_total.backward, vm_.steps_total.backward, offset);
    mem.steps_total = vm_.steps_total;
    if (new_sample) {
      mem.sample_mono_ns = vm_.last_sample->host_mono_ns;
      mem.offset_s = offset;
    }
  }

  void Guest(DifferState::Vm& mem) {
    if (!vm_.guest) return;
    const scoring::SyncState now = vm_.guest->status.state;
    if (!mem.guest_known) {
      json after = GuestJson(vm_);
      after["reasons"] = ReasonNames(ReasonsOf(vm_, ReasonInput::kGuest));
      Baseline("guest", std::move(after));
    } else if (mem.guest_sync != now) {
      Event e = Make("guest_sync_changed");
      e.before = SyncStateText(mem.guest_sync);
      e.after = GuestJson(vm_);
      out_.push_back(std::move(e));
    }
    mem.guest_sync = now;
  }

  // Raised/cleared for the reasons of `input` when it is known in both the
  // remembered and the new observation; absorbed when newly known.
  void Reasons(DifferState::Vm& mem, ReasonInput input, bool known_before, bool known_now) {
    if (!known_now) return;  // keep the last known reasons of this input
    const ReasonSet now = ReasonsOf(vm_, input);
    ReasonSet before;
    for (Reason r : mem.reasons) {
      if (InputOf(r) == input) before.insert(r);
    }
    if (known_before) {
      for (Reason r : now) {
        if (!before.contains(r)) Reason1("reason_raised", r);
      }
      for (Reason r : before) {
        if (!now.contains(r)) Reason1("reason_cleared", r);
      }
    }
    for (Reason r : before) mem.reasons.erase(r);
    for (Reason r : now) mem.reasons.insert(r);
  }

 private:
  void Reason1(const char* type, Reason r) {
    Event e = Make(type);
    e.values["reason"] = std::string(scoring::ReasonName(r));
    out_.push_back(std::move(e));
  }

  void Step(const DifferState::Vm& mem, const char* direction, int before, int after,
            const std::optional<double>& offset) {
    if (after <= before) return;
    Event e = Make("step_detected");
    e.values["direction"] = direction;
    e.values["count"] = after - before;
    e.values["steps_total"] = {{"forward", vm_.steps_total.forward},
                               {"backward", vm_.steps_total.backward}};
    e.values["offset_before_s"] = OptionalNumber(mem.offset_s);
    e.values["sample_offset_s"] = OptionalNumber(offset);
    // The offset change between the two samples around the step (an
    // estimate: drift between them is included).
    e.values["step_s"] = mem.offset_s && offset ? json(*offset - *mem.offset_s) : json();
    out_.push_back(std::move(e));
  }

  const Snapshot& snap_;
  const VmView& vm_;
  std::vector<Event>& out_;
};

DifferState::Vm FirstMemory(const VmView& vm, bool host_known) {
  DifferState::Vm mem;
  mem.name = vm.name;
  mem.state = vm.state;
  mem.agent_attempted = vm.agent_attempted;
  mem.agent_up = vm.agent_up;
  mem.guest_known = vm.guest != nullptr;
  if (vm.guest) mem.guest_sync = vm.guest->status.state;
  mem.host_known = host_known;
  mem.reasons = vm.score.reasons;
  mem.steps_total = vm.steps_total;
  if (vm.last_sample) {
    mem.sample_mono_ns = vm.last_sample->host_mono_ns;
    mem.offset_s = vm.last_sample->offset_s;
  }
  return mem;
}

void DiffVms(DifferState& state, const Snapshot& next, std::vector<Event>& out) {
  const bool host_known = next.host_reference.has_value();
  // Listed in `next`: marked with this pass's number (no per-publish set of
  // 10,000 uuid copies).
  const uint64_t pass = ++state.pass;
  for (const VmView& vm : next.vms) {
    auto it = state.vms.find(vm.uuid);
    VmDiff diff(next, vm, out);
    if (it == state.vms.end()) {
      DifferState::Pending& p = state.pending[vm.uuid];
      p.seen_pass = pass;
      if (vm.last_sample && vm.last_sample->host_mono_ns != p.sample_mono_ns) {
        p.sample_mono_ns = vm.last_sample->host_mono_ns;
        ++p.samples;
      }
      if (!Settled(vm, p.samples)) continue;  // not judged yet: no baseline, no transition
      state.pending.erase(vm.uuid);
      DifferState::Vm mem = FirstMemory(vm, host_known);
      diff.Baseline("vm", VmStateJson(vm));
      mem.seen_pass = pass;
      state.vms.emplace(vm.uuid, std::move(mem));
      continue;
    }
    DifferState::Vm& mem = it->second;
    mem.seen_pass = pass;
    mem.name = vm.name;
    diff.State(mem);
    // The remembered agent-input reasons are from a settled observation
    // (unsettled ones leave them alone), so they always compare.
    diff.Reasons(mem, ReasonInput::kAgent, true, Known(vm));
    diff.Agent(mem);
    diff.Samples(mem);
    diff.Reasons(mem, ReasonInput::kGuest, mem.guest_known, vm.guest != nullptr);
    diff.Guest(mem);
    mem.guest_known = mem.guest_known || vm.guest != nullptr;
    diff.Reasons(mem, ReasonInput::kHost, mem.host_known, host_known);
    mem.host_known = mem.host_known || host_known;
  }
  std::erase_if(state.pending, [&](const auto& kv) { return kv.second.seen_pass != pass; });
  for (auto it = state.vms.begin(); it != state.vms.end();) {
    if (it->second.seen_pass == pass) {
      ++it;
      continue;
    }
    Event e;
    e.time_real_ns = next.built_real_ns;
    e.type = "domain_removed";
    e.domain = it->second.name.str();
    e.uuid = it->first.str();
    e.before = DomainStateName(it->second.state);
    out.push_back(std::move(e));
    it = state.vms.erase(it);
  }
}

Event HostEvent(const Snapshot& next, std::string type) {
  Event e;
  e.time_real_ns = next.built_real_ns;
  e.type = std::move(type);
  e.values = json::object();
  return e;
}

void DiffHost(DifferState& state, const Snapshot& next, std::vector<Event>& out) {
  if (next.host_reference) {
    const scoring::HostReference& h = *next.host_reference;
    if (!state.host || state.host->state != h.state) {
      Event e = HostEvent(next, state.host ? "host_sync_changed" : "baseline");
      if (state.host) e.before = HostJson(*state.host);
      e.after = HostJson(h);
      if (!state.host) e.values["aspect"] = "host";
      e.values["offset_s"] = OptionalNumber(h.offset_s);
      e.values["root_distance_s"] = OptionalNumber(h.root_distance_s);
      out.push_back(std::move(e));
    }
    state.host = h;
  }
  if (!next.ntp) return;
  std::map<std::string, bool> now;
  for (const NtpServerObservation& s : next.ntp->servers) {
    now[s.server] = s.usable;
    auto it = state.upstream_usable.find(s.server);
    if (it != state.upstream_usable.end() && it->second == s.usable) continue;
    const bool first = it == state.upstream_usable.end();
    Event e = HostEvent(next, first      ? "baseline"
                              : s.usable ? "upstream_usable"
                                         : "upstream_unusable");
    if (!first) e.before = it->second ? "usable" : "unusable";
    e.after = s.usable ? "usable" : "unusable";
    if (first) e.values["aspect"] = "upstream";
    e.values["server"] = s.server;
    e.values["error"] = s.error;
    e.values["stratum"] = s.stratum;
    e.values["offset_s"] = s.reachable ? json(s.offset_s) : json();
    e.values["delay_s"] = s.reachable ? json(s.delay_s) : json();
    out.push_back(std::move(e));
  }
  state.upstream_usable = std::move(now);
}

}  // namespace

const char* SyncStateText(scoring::SyncState s) {
  switch (s) {
    case scoring::SyncState::kSynchronised:
      return "synchronised";
    case scoring::SyncState::kUnsynchronised:
      return "unsynchronised";
    default:
      return "unknown";
  }
}

void DiffSnapshot(DifferState& state, const Snapshot& next, std::vector<Event>& out) {
  DiffHost(state, next, out);
  DiffVms(state, next, out);
}

}  // namespace vmtime
