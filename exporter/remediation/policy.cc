// See policy.h.
#include "exporter/remediation/policy.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "exporter/core/clock.h"

namespace vmtime::remediation {
namespace {

bool Matches(const std::vector<std::string>& globs, const std::string& name) {
  return std::any_of(globs.begin(), globs.end(), [&](const std::string& g) {
    return fnmatch(g.c_str(), name.c_str(), 0) == 0;
  });
}

bool HasTrigger(const RemediationConfig& policy, const char* trigger) {
  return std::find(policy.triggers.begin(), policy.triggers.end(), trigger) !=
         policy.triggers.end();
}

bool Running(DomainState s) { return s == DomainState::kRunning || s == DomainState::kBlocked; }

// Arms `m` from what is new in `vm` since the last snapshot looked at.
void Observe(const VmView& vm, const RemediationConfig& policy, int64_t now, VmMemory& m) {
  const int steps = vm.steps_total.forward + vm.steps_total.backward;
  const auto& s = vm.last_sample;
  const bool new_sample = s && s->host_mono_ns > m.seen_sample_mono_ns;
  auto arm = [&](const char* why) {
    if (m.trigger.empty()) m.armed_mono_ns = now;
    m.trigger = why;
  };
  if (m.seen && steps > m.seen_steps && HasTrigger(policy, "step")) arm("step");
  if (new_sample && s->after_interruption && HasTrigger(policy, "interruption")) {
    arm("interruption");
  }
  m.seen = true;
  m.seen_steps = steps;
  if (new_sample) m.seen_sample_mono_ns = s->host_mono_ns;
  // A fresh sample within the threshold: nothing to put right.
  if (new_sample && std::fabs(s->offset_s) <= policy.threshold_s) m.trigger.clear();
}

}  // namespace

bool NameSelected(const RemediationConfig& policy, const std::string& name) {
  if (!policy.include.empty() && !Matches(policy.include, name)) return false;
  return !Matches(policy.exclude, name);
}

bool MetadataSelected(const RemediationConfig& policy,
                      const std::map<std::string, std::string>& metadata) {
  for (const auto& [k, v] : policy.include_metadata) {
    auto it = metadata.find(k);
    if (it == metadata.end() || it->second != v) return false;
  }
  for (const auto& [k, v] : policy.exclude_metadata) {
    auto it = metadata.find(k);
    if (it != metadata.end() && it->second == v) return false;
  }
  return true;
}

std::map<std::string, std::string> VmMetadata(const VmView& vm,
                                              const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> out(vm.labels.begin(), vm.labels.end());
  if (!vm.group.empty()) out["group"] = vm.group;
  for (const auto& [k, v] : extra) out[k] = v;
  return out;
}

std::vector<Action> Decide(const Snapshot& snapshot, const RemediationConfig& policy,
                           const MetadataByUuid& metadata, int64_t now_mono_ns, Memory& memory) {
  static const std::map<std::string, std::string> kNoMetadata;
  std::vector<Action> actions;
  std::set<std::string_view> listed;  // the snapshot's uuids, alive while it is
  for (const VmView& vm : snapshot.vms) {
    listed.insert(vm.uuid);
    VmMemory& m = memory[vm.uuid];
    Observe(vm, policy, now_mono_ns, m);
    if (!policy.enabled || m.trigger.empty() || m.in_flight) continue;
    const auto& s = vm.last_sample;
    if (!Running(vm.state) || !vm.agent_up || !s || s->host_mono_ns <= m.last_done_mono_ns ||
        std::fabs(s->offset_s) <= policy.threshold_s) {
      continue;
    }
    auto md = metadata.find(vm.uuid);
    if (!NameSelected(policy, vm.name.str()) ||
        !MetadataSelected(policy,
                          VmMetadata(vm, md == metadata.end() ? kNoMetadata : md->second))) {
      m.trigger.clear();  // left alone by policy
      continue;
    }
    if (m.last_attempt_mono_ns != 0 &&
        now_mono_ns - m.last_attempt_mono_ns < SecondsToNs(policy.min_interval_s)) {
      continue;  // rate limited: stays armed
    }
    if (vm.guest && vm.guest->status.state == scoring::SyncState::kSynchronised &&
        now_mono_ns - m.armed_mono_ns < SecondsToNs(policy.guest_daemon_grace_s)) {
      continue;  // the guest's daemon gets its chance first
    }
    Action a;
    a.uuid = vm.uuid;
    a.name = vm.name;
    a.reason = m.trigger;
    a.offset_before_s = s->offset_s;
    a.uncertainty_before_s = s->uncertainty_s;
    a.sample_host_real_ns = s->host_real_ns;
    // Guest ahead (offset > 0): the correction steps the guest back.
    if (s->offset_s > policy.max_backward_step_s && !policy.allow_large_backward) {
      a.kind = ActionKind::kRefuseBackward;
    } else if (policy.dry_run) {
      a.kind = ActionKind::kDryRun;
    } else {
      a.kind = ActionKind::kSet;
      m.in_flight = true;
    }
    m.trigger.clear();
    m.last_attempt_mono_ns = now_mono_ns;
    if (a.kind != ActionKind::kSet) m.last_done_mono_ns = now_mono_ns;
    actions.push_back(std::move(a));
  }
  std::erase_if(memory, [&](const auto& kv) { return !listed.contains(kv.first); });
  return actions;
}

}  // namespace vmtime::remediation
