// Store: what it remembers across domain lists. A domain libvirt stops
// listing is not exported, but its history is kept (drift_window_s, bounded)
// so that a transient domain saved and restored, or migrated away and back,
// continues where it was: the first sample after it returns is marked
// after_interruption, and the lag it left reads resumed_behind.
#include "exporter/store/store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "exporter/exposition/metrics.h"
#include "scoring/types.h"

namespace vmtime {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr char kUuid[] = "11111111-1111-1111-1111-111111111111";

Config TestConfig() {
  Config c;
  c.scoring.drift_window_s = 600;
  return c;
}

// A running domain with a sample at host time `t_s` and `offset_s` (guest -
// host); the guest clock is host + offset.
Observations Listed(double t_s, double offset_s) {
  DomainObservation d;
  d.name = "web-1";
  d.uuid = kUuid;
  d.state = DomainState::kRunning;
  d.agent_up = d.agent_attempted = true;
  scoring::ClockSample s;
  s.host_mono_ns = static_cast<int64_t>(t_s * kS);
  s.host_real_ns = 1'767'225'600 * kS + s.host_mono_ns;
  s.offset_s = offset_s;
  s.guest_real_ns = s.host_real_ns + static_cast<int64_t>(offset_s * kS);
  s.uncertainty_s = 0.0005;
  d.sample = s;
  Observations obs;
  obs.libvirt = LibvirtObservation{};
  obs.libvirt->connected = true;
  obs.libvirt->domains = {d};
  return obs;
}

Observations Unlisted() {
  Observations obs;
  obs.libvirt = LibvirtObservation{};
  obs.libvirt->connected = true;
  return obs;
}

bool Has(const VmView& vm, scoring::Reason r) {
  return std::find(vm.score.reasons.begin(), vm.score.reasons.end(), r) != vm.score.reasons.end();
}

TEST(Store, ReturnedTransientDomainContinuesWithAnInterruption) {
  Store store(TestConfig());
  for (int i = 1; i <= 6; ++i) store.Apply(Listed(15.0 * i, 0.001));
  store.Apply(Unlisted());  // saved: a transient domain is gone from the list
  EXPECT_EQ(store.vm_count(), 0u);
  EXPECT_TRUE(store.Build(100 * kS, 0)->vms.empty()) << "an unlisted domain is not exported";
  // Restored 40 s later; its clock lost those 40 s.
  store.Apply(Listed(130, -40.0));
  const auto snap = store.Build(131 * kS, 0);
  ASSERT_EQ(snap->vms.size(), 1u);
  const VmView& vm = snap->vms[0];
  EXPECT_TRUE(Has(vm, scoring::Reason::kResumedBehind));
  EXPECT_FALSE(Has(vm, scoring::Reason::kStepBackward));
  EXPECT_FALSE(Has(vm, scoring::Reason::kClockStopped));
  EXPECT_EQ(vm.steps_total.backward, 0) << "the interrupted pair is not a step";
  ASSERT_TRUE(vm.last_sample.has_value());
  EXPECT_TRUE(vm.last_sample->after_interruption);
}

TEST(Store, OnlyTheFirstSampleAfterTheReturnIsMarked) {
  Store store(TestConfig());
  for (int i = 1; i <= 4; ++i) store.Apply(Listed(15.0 * i, 0.001));
  store.Apply(Unlisted());
  store.Apply(Listed(100, -30.0));
  store.Apply(Listed(115, -30.0));
  const auto snap = store.Build(116 * kS, 0);
  ASSERT_EQ(snap->vms.size(), 1u);
  EXPECT_FALSE(snap->vms[0].last_sample->after_interruption);
  EXPECT_TRUE(Has(snap->vms[0], scoring::Reason::kResumedBehind)) << "the lag lasts";
}

TEST(Store, GoneDomainsAreForgottenAfterTheDriftWindow) {
  Store store(TestConfig());
  store.Apply(Listed(15, 0.001));
  store.Apply(Listed(30, 0.001));
  store.Apply(Unlisted());
  // Another domain keeps the store's notion of time moving past the window.
  Observations other = Listed(30 + 601, 0.0);
  other.libvirt->domains[0].uuid = "22222222-2222-2222-2222-222222222222";
  store.Apply(other);
  store.Apply(Listed(30 + 602, -5.0));  // back too late: a new history
  const auto snap = store.Build((30 + 603) * kS, 0);
  const auto it = std::find_if(snap->vms.begin(), snap->vms.end(),
                               [](const VmView& v) { return v.uuid == kUuid; });
  ASSERT_NE(it, snap->vms.end());
  EXPECT_FALSE(it->last_sample->after_interruption);
  EXPECT_FALSE(Has(*it, scoring::Reason::kResumedBehind));
}

TEST(Store, NewDomainIsNotMarked) {
  Store store(TestConfig());
  store.Apply(Listed(15, 0.001));
  store.Apply(Listed(30, 0.001));
  const auto snap = store.Build(31 * kS, 0);
  ASSERT_EQ(snap->vms.size(), 1u);
  EXPECT_FALSE(snap->vms[0].last_sample->after_interruption);
}

// Through a remote libvirt URI (libvirt.allow_remote) the offsets are guest
// vs this machine: this machine's chronyd says nothing about the guests'
// hypervisor, so no UTC offset is derived and the host reference is not
// scored; with a local URI the same observations give both.
TEST(Store, RemoteLibvirtUriHasNoUtcOffsetAndNoHostReference) {
  Observations obs = Listed(15, 0.002);
  ChronyObservation chrony;
  chrony.tracking.stratum = 3;
  chrony.tracking.system_time_offset_s = 0.0005;
  obs.chrony = chrony;

  Store local(TestConfig());
  local.Apply(obs);
  const auto l = local.Build(16 * kS, 0);
  ASSERT_EQ(l->vms.size(), 1u);
  ASSERT_TRUE(l->vms[0].utc_offset_s.has_value());
  EXPECT_DOUBLE_EQ(*l->vms[0].utc_offset_s, 0.0025);
  constexpr int kHost = static_cast<int>(scoring::Component::kHostReference);
  EXPECT_TRUE(l->vms[0].score.measured[kHost]);
  EXPECT_NE(exposition::RenderText(*l).find("vmtime_vm_clock_utc_offset_seconds{"),
            std::string::npos);

  Config remote_config = TestConfig();
  remote_config.libvirt.uri = "qemu+ssh://user@hv1/system?keyfile=/k";
  remote_config.libvirt.allow_remote = true;
  Store remote(remote_config);
  remote.Apply(obs);
  const auto r = remote.Build(16 * kS, 0);
  ASSERT_EQ(r->vms.size(), 1u);
  EXPECT_FALSE(r->vms[0].utc_offset_s.has_value());
  EXPECT_FALSE(r->vms[0].score.measured[kHost]);
  ASSERT_TRUE(r->vms[0].last_sample.has_value());
  EXPECT_DOUBLE_EQ(r->vms[0].last_sample->offset_s, 0.002) << "the guest offset is still there";
  ASSERT_TRUE(r->host_reference.has_value()) << "this machine's own sync state is still shown";
  const std::string text = exposition::RenderText(*r);
  EXPECT_EQ(text.find("vmtime_vm_clock_utc_offset_seconds{"), std::string::npos) << text;
  EXPECT_EQ(text.find("component=\"host_reference\""), std::string::npos) << text;
  EXPECT_NE(text.find("vmtime_vm_clock_offset_seconds{"), std::string::npos) << text;
}

TEST(Store, CountsRemediationsPerVmFromTheFirstAttempt) {
  Store store(TestConfig());
  store.Apply(Listed(10, 0));
  EXPECT_EQ(store.Build(11 * kS, 0)->vms.at(0).remediations_total, nullptr);
  const auto before = store.Build(11 * kS, 0);
  store.RecordRemediation(kUuid, RemediationResult::kOk);
  const auto mid = store.Build(11 * kS, 0);
  store.RecordRemediation(kUuid, RemediationResult::kFailed);
  store.RecordRemediation(kUuid, RemediationResult::kFailed);
  store.RecordRemediation("00000000-0000-0000-0000-000000000000", RemediationResult::kOk);
  const auto counts = store.Build(12 * kS, 0)->vms.at(0).remediations_total;
  ASSERT_NE(counts, nullptr);
  // An older snapshot keeps what it was built with (counts are replaced, not changed).
  EXPECT_EQ(before->vms.at(0).remediations_total, nullptr);
  ASSERT_NE(mid->vms.at(0).remediations_total, nullptr);
  EXPECT_EQ((*mid->vms.at(0).remediations_total)[static_cast<size_t>(RemediationResult::kFailed)],
            0u);
  EXPECT_EQ((*counts)[static_cast<size_t>(RemediationResult::kOk)], 1u);
  EXPECT_EQ((*counts)[static_cast<size_t>(RemediationResult::kFailed)], 2u);
  EXPECT_EQ((*counts)[static_cast<size_t>(RemediationResult::kDryRun)], 0u);
}

}  // namespace
}  // namespace vmtime

namespace vmtime {
namespace {

// The drift fit's sample count of the only VM (history in the window).
int DriftSamples(const Store& store, double now_s) {
  auto snap = store.Build(static_cast<int64_t>(now_s * kS), 0);
  if (snap->vms.size() != 1 || !snap->vms[0].score.drift) return 0;
  return snap->vms[0].score.drift->samples;
}

TEST(Store, HistorySamplesFollowAReload) {
  Config c = TestConfig();
  c.history_samples = 12;
  Store store(c);
  for (int i = 1; i <= 20; ++i) store.Apply(Listed(15.0 * i, 0.001 * i));
  EXPECT_EQ(DriftSamples(store, 300), 12);
  c.history_samples = 6;  // reload: shorter
  store.SetConfig(c);
  EXPECT_EQ(DriftSamples(store, 300), 6);
  store.Apply(Listed(315, 0.021));
  EXPECT_EQ(DriftSamples(store, 315), 6);
  c.history_samples = 10;  // reload: longer; the ring grows as samples come
  store.SetConfig(c);
  for (int i = 22; i <= 30; ++i) store.Apply(Listed(15.0 * i, 0.001 * i));
  EXPECT_EQ(DriftSamples(store, 450), 10);
}

TEST(Store, ANonFiniteSampleIsNotKept) {
  Store store(TestConfig());
  for (int i = 1; i <= 10; ++i) store.Apply(Listed(15.0 * i, 0.001 * i));
  const int before = DriftSamples(store, 150);
  Observations bad = Listed(165, 0);
  bad.libvirt->domains[0].sample->offset_s = std::numeric_limits<double>::quiet_NaN();
  store.Apply(bad);
  bad = Listed(180, 0);
  bad.libvirt->domains[0].sample->uncertainty_s = std::numeric_limits<double>::infinity();
  store.Apply(bad);
  EXPECT_EQ(DriftSamples(store, 180), before);
  auto snap = store.Build(180 * kS, 0);
  ASSERT_TRUE(snap->vms[0].last_sample);
  EXPECT_EQ(snap->vms[0].last_sample->host_mono_ns, 150 * kS);  // the last good one
}

}  // namespace
}  // namespace vmtime
