// The snapshot differ: start-up produces baselines, not transitions; then
// every change of a VM's or the host's clock state is one event with the
// documented fields (docs/audit.md).
#include <gtest/gtest.h>

#include <algorithm>

#include "exporter/events/differ.h"

namespace vmtime {
namespace {

using scoring::Reason;
constexpr int64_t kS = 1'000'000'000;

VmView Vm(DomainState state, bool attempted, bool up) {
  VmView v;
  v.name = "web-1";
  v.uuid = "u-1";
  v.state = state;
  v.agent_attempted = attempted;
  v.agent_up = up;
  v.score.score = 100;
  v.score.band = scoring::Band::kGood;
  return v;
}

void WithSample(VmView& v, int64_t t_s, double offset_s, bool after_interruption = false) {
  scoring::ClockSample s;
  s.host_mono_ns = t_s * kS;
  s.offset_s = offset_s;
  s.uncertainty_s = 0.0004;
  s.after_interruption = after_interruption;
  v.last_sample = s;
  v.score.offset_used_s = offset_s;
}

Snapshot Snap(int64_t t_s, std::vector<VmView> vms) {
  Snapshot s;
  s.built_real_ns = 1'767'225'600 * kS + t_s * kS;
  s.vms = std::move(vms);
  return s;
}

std::vector<Event> Diff(DifferState& st, const Snapshot& s) {
  std::vector<Event> out;
  DiffSnapshot(st, s, out);
  return out;
}

std::vector<std::string> Types(const std::vector<Event>& es) {
  std::vector<std::string> t;
  for (const auto& e : es) t.push_back(e.type);
  return t;
}

TEST(EventDiffer, StartUpGivesOneBaselineAndNoFalseTransitions) {
  DifferState st;
  // Listed, agent not tried yet: no_data and nothing known; no event.
  VmView v = Vm(DomainState::kRunning, false, false);
  v.score.reasons = {Reason::kNoData};
  EXPECT_TRUE(Diff(st, Snap(0, {v})).empty());
  EXPECT_TRUE(Diff(st, Snap(1, {v})).empty());
  // First attempt done, agent up, but one sample: the detectors that need
  // history (clock_stopped, steps, drift) cannot speak yet; no baseline.
  v = Vm(DomainState::kRunning, true, true);
  WithSample(v, 2, 0.2);
  v.score.reasons = {Reason::kOffsetElevated};
  EXPECT_TRUE(Diff(st, Snap(2, {v})).empty());
  // A drift estimate: settled, the baseline carries the state.
  v.score.drift = scoring::DriftEstimate{1e-6, 1e-7, 4};
  auto es = Diff(st, Snap(2, {v}));
  ASSERT_EQ(Types(es), (std::vector<std::string>{"baseline"}));
  EXPECT_EQ(es[0].after["state"], "running");
  EXPECT_EQ(es[0].after["agent"], "up");
  EXPECT_EQ(es[0].after["reasons"], nlohmann::json::array({"offset_elevated"}));
  EXPECT_EQ(es[0].values["aspect"], "vm");
  EXPECT_EQ(es[0].uuid, "u-1");
  EXPECT_EQ(es[0].time_real_ns, Snap(2, {}).built_real_ns);
  // The same state again: nothing.
  EXPECT_TRUE(Diff(st, Snap(3, {v})).empty());
}

TEST(EventDiffer, SettlesAfterEnoughSamplesWithoutADriftEstimate) {
  DifferState st;
  VmView v = Vm(DomainState::kRunning, true, true);
  v.score.reasons = {Reason::kClockStopped};
  for (int i = 0; i < kSettleSamples - 1; ++i) {
    WithSample(v, i, -i);
    EXPECT_TRUE(Diff(st, Snap(i, {v})).empty());
    EXPECT_TRUE(Diff(st, Snap(i, {v})).empty());  // the same sample again does not count
  }
  WithSample(v, kSettleSamples, -kSettleSamples);
  auto es = Diff(st, Snap(kSettleSamples, {v}));
  ASSERT_EQ(Types(es), (std::vector<std::string>{"baseline"}));
  EXPECT_EQ(es[0].after["reasons"], nlohmann::json::array({"clock_stopped"}));
}

// A settled VM with an answering agent (drift known).
VmView Settled() {
  VmView v = Vm(DomainState::kRunning, true, true);
  v.score.drift = scoring::DriftEstimate{0, 1e-7, 8};
  return v;
}

TEST(EventDiffer, ReasonRaisedThenClearedWithOffsetAndUncertainty) {
  DifferState st;
  VmView v = Settled();
  WithSample(v, 0, 0.001);
  Diff(st, Snap(0, {v}));
  WithSample(v, 15, -480);
  v.score.reasons = {Reason::kOffsetCritical, Reason::kStepBackward};
  v.score.score = 10;
  v.score.band = scoring::Band::kBad;
  auto es = Diff(st, Snap(15, {v}));
  ASSERT_EQ(Types(es), (std::vector<std::string>{"reason_raised", "reason_raised"}));
  EXPECT_EQ(es[0].values["reason"], "offset_critical");
  EXPECT_EQ(es[0].values["offset_s"], -480);
  EXPECT_EQ(es[0].values["uncertainty_s"], 0.0004);
  EXPECT_EQ(es[0].values["band"], "bad");
  EXPECT_EQ(es[1].values["reason"], "step_backward");
  WithSample(v, 30, 0.002);
  v.score.reasons = {};
  es = Diff(st, Snap(30, {v}));
  ASSERT_EQ(Types(es), (std::vector<std::string>{"reason_cleared", "reason_cleared"}));
  EXPECT_EQ(es[0].values["offset_s"], 0.002);
}

TEST(EventDiffer, StepDetectedWithSizeAndDirection) {
  DifferState st;
  VmView v = Settled();
  WithSample(v, 0, 0.001);
  Diff(st, Snap(0, {v}));
  WithSample(v, 15, -479.999);
  v.steps_total.backward = 1;
  auto es = Diff(st, Snap(15, {v}));
  ASSERT_EQ(Types(es), (std::vector<std::string>{"step_detected"}));
  EXPECT_EQ(es[0].values["direction"], "backward");
  EXPECT_EQ(es[0].values["count"], 1);
  EXPECT_NEAR(es[0].values["step_s"].get<double>(), -480.0, 1e-9);
  EXPECT_EQ(es[0].values["steps_total"]["backward"], 1);
}

TEST(EventDiffer, AgentLostAndBackDomainStateAndInterruption) {
  DifferState st;
  VmView v = Settled();
  WithSample(v, 0, 0.001);
  Diff(st, Snap(0, {v}));
  v.agent_up = false;
  v.agent_error = "agent not responding";
  auto es = Diff(st, Snap(15, {v}));
  ASSERT_EQ(Types(es), (std::vector<std::string>{"agent_lost"}));
  EXPECT_EQ(es[0].values["error"], "agent not responding");
  v.agent_up = true;
  EXPECT_EQ(Types(Diff(st, Snap(30, {v}))), (std::vector<std::string>{"agent_back"}));
  v.state = DomainState::kPaused;
  es = Diff(st, Snap(45, {v}));
  ASSERT_EQ(Types(es), (std::vector<std::string>{"domain_state_changed"}));
  EXPECT_EQ(es[0].before, "running");
  EXPECT_EQ(es[0].after, "paused");
  v.state = DomainState::kRunning;
  WithSample(v, 60, -20, /*after_interruption=*/true);
  es = Diff(st, Snap(60, {v}));
  ASSERT_EQ(Types(es), (std::vector<std::string>{"domain_state_changed", "clock_interrupted"}));
  EXPECT_EQ(es[1].values["sample_offset_s"], -20);
  EXPECT_EQ(es[1].values["offset_before_s"], 0.001);
}

TEST(EventDiffer, UnsettledInterimNeitherRaisesNorClears) {
  DifferState st;
  VmView v = Settled();
  WithSample(v, 0, 0.001);
  v.score.reasons = {Reason::kOffsetElevated};
  Diff(st, Snap(0, {v}));
  // Libvirt lost the state for a moment (unknown), reasons look different.
  VmView unknown = v;
  unknown.state = DomainState::kUnknown;
  unknown.agent_attempted = false;
  unknown.score.reasons = {Reason::kNoData};
  EXPECT_TRUE(Diff(st, Snap(15, {unknown})).empty());
  // Back: still offset_elevated, nothing happened.
  EXPECT_TRUE(Diff(st, Snap(30, {v})).empty());
}

TEST(EventDiffer, GuestStatusFirstKnownIsABaselineThenChangesAreEvents) {
  DifferState st;
  VmView v = Settled();
  WithSample(v, 0, 0.001);
  Diff(st, Snap(0, {v}));
  GuestStatusObservation g;
  g.daemon = "chrony";
  g.status.state = scoring::SyncState::kUnsynchronised;
  v.guest = std::make_shared<const GuestStatusObservation>(g);
  v.score.reasons = {Reason::kUnsynchronised};
  auto es = Diff(st, Snap(15, {v}));
  ASSERT_EQ(Types(es), (std::vector<std::string>{"baseline"}));  // no reason_raised
  EXPECT_EQ(es[0].values["aspect"], "guest");
  EXPECT_EQ(es[0].after["sync"], "unsynchronised");
  EXPECT_EQ(es[0].after["reasons"], nlohmann::json::array({"unsynchronised"}));
  g.status.state = scoring::SyncState::kSynchronised;
  v.guest = std::make_shared<const GuestStatusObservation>(g);
  v.score.reasons = {};
  es = Diff(st, Snap(30, {v}));
  ASSERT_EQ(Types(es), (std::vector<std::string>{"reason_cleared", "guest_sync_changed"}));
  EXPECT_EQ(es[1].before, "unsynchronised");
  EXPECT_EQ(es[1].after["sync"], "synchronised");
}

TEST(EventDiffer, HostSyncAndUpstreamServers) {
  DifferState st;
  Snapshot s = Snap(0, {});
  scoring::HostReference h;
  h.state = scoring::SyncState::kSynchronised;
  h.source = "chrony";
  s.host_reference = h;
  NtpServerObservation n;
  n.server = "127.0.0.1:12300";
  n.usable = true;
  n.reachable = true;
  s.ntp = NtpObservation{{n}};
  auto es = Diff(st, s);
  ASSERT_EQ(Types(es), (std::vector<std::string>{"baseline", "baseline"}));
  EXPECT_EQ(es[0].values["aspect"], "host");
  EXPECT_EQ(es[1].values["aspect"], "upstream");
  EXPECT_TRUE(es[0].domain.empty());
  EXPECT_TRUE(Diff(st, s).empty());
  s.host_reference->state = scoring::SyncState::kUnsynchronised;
  s.ntp->servers[0].usable = false;
  s.ntp->servers[0].error = "timeout";
  es = Diff(st, s);
  ASSERT_EQ(Types(es), (std::vector<std::string>{"host_sync_changed", "upstream_unusable"}));
  EXPECT_EQ(es[0].before["sync"], "synchronised");
  EXPECT_EQ(es[0].after["sync"], "unsynchronised");
  EXPECT_EQ(es[1].values["server"], "127.0.0.1:12300");
  EXPECT_EQ(es[1].values["error"], "timeout");
  s.ntp->servers[0].usable = true;
  EXPECT_EQ(Types(Diff(st, s)), (std::vector<std::string>{"upstream_usable"}));
}

TEST(EventDiffer, RemovedDomain) {
  DifferState st;
  VmView v = Vm(DomainState::kShutoff, false, false);
  EXPECT_EQ(Types(Diff(st, Snap(0, {v}))), (std::vector<std::string>{"baseline"}));
  auto es = Diff(st, Snap(15, {}));
  ASSERT_EQ(Types(es), (std::vector<std::string>{"domain_removed"}));
  EXPECT_EQ(es[0].before, "shutoff");
  EXPECT_EQ(es[0].domain, "web-1");
}

}  // namespace
}  // namespace vmtime
