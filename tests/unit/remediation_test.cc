// Remediation (issue 15 item 3): the pure decision (policy.h) driven by
// snapshots and FakeClock times, and the engine (engine.h) against a fake
// LibvirtApi that sets a simulated guest clock, fails, or hangs.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "exporter/remediation/engine.h"
#include "exporter/remediation/policy.h"

namespace vmtime::remediation {
namespace {

constexpr int64_t kSec = 1'000'000'000;

RemediationConfig Enabled() {
  RemediationConfig p;
  p.enabled = true;
  p.threshold_s = 1;
  p.min_interval_s = 600;
  p.guest_daemon_grace_s = 60;
  p.max_backward_step_s = 1;
  return p;
}

// One running VM whose newest sample was taken at `mono_ns` with `offset_s`.
VmView Vm(const std::string& name, int64_t mono_ns, double offset_s, bool after_interruption,
          int steps = 0) {
  VmView v;
  v.name = name;
  v.uuid = "uuid-" + name;
  v.state = DomainState::kRunning;
  v.agent_up = true;
  v.agent_attempted = true;
  scoring::ClockSample s;
  s.host_mono_ns = mono_ns;
  s.host_real_ns = 1'700'000'000 * kSec + mono_ns;
  s.offset_s = offset_s;
  s.uncertainty_s = 0.002;
  s.after_interruption = after_interruption;
  v.last_sample = s;
  v.steps_total.backward = steps;
  return v;
}

Snapshot Snap(std::vector<VmView> vms) {
  Snapshot s;
  s.vms = std::move(vms);
  return s;
}

TEST(RemediationPolicy, OffByDefaultAndWhenDisabled) {
  EXPECT_FALSE(RemediationConfig{}.enabled);
  Memory m;
  RemediationConfig p = Enabled();
  p.enabled = false;
  Decide(Snap({Vm("a", 1 * kSec, 0, false)}), p, {}, 1 * kSec, m);
  EXPECT_TRUE(Decide(Snap({Vm("a", 2 * kSec, -480, false, 1)}), p, {}, 2 * kSec, m).empty());
}

TEST(RemediationPolicy, StepBeyondThresholdIsSetOnceAndRateLimited) {
  Memory m;
  const RemediationConfig p = Enabled();
  EXPECT_TRUE(Decide(Snap({Vm("a", 1 * kSec, 0.01, false)}), p, {}, 1 * kSec, m).empty());
  auto acts = Decide(Snap({Vm("a", 16 * kSec, -480, false, 1)}), p, {}, 16 * kSec, m);
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].kind, ActionKind::kSet);
  EXPECT_EQ(acts[0].reason, "step");
  EXPECT_DOUBLE_EQ(acts[0].offset_before_s, -480);
  EXPECT_TRUE(m["uuid-a"].in_flight);
  // In flight: nothing more for the same snapshot or a later one.
  EXPECT_TRUE(Decide(Snap({Vm("a", 16 * kSec, -480, false, 1)}), p, {}, 17 * kSec, m).empty());
  m["uuid-a"].in_flight = false;  // the engine finishes the attempt
  m["uuid-a"].last_done_mono_ns = 18 * kSec;
  // Not corrected, stepped again: rate limited until min_interval passed.
  EXPECT_TRUE(Decide(Snap({Vm("a", 31 * kSec, -480, false, 2)}), p, {}, 31 * kSec, m).empty());
  acts = Decide(Snap({Vm("a", 617 * kSec, -480, false, 2)}), p, {}, 617 * kSec, m);
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].kind, ActionKind::kSet);
}

TEST(RemediationPolicy, NoTriggerNoAction) {
  // Off by 8 minutes since the exporter started, but no resume or step seen.
  Memory m;
  EXPECT_TRUE(Decide(Snap({Vm("a", 1 * kSec, -480, false)}), Enabled(), {}, 1 * kSec, m).empty());
  EXPECT_TRUE(Decide(Snap({Vm("a", 2 * kSec, -480, false)}), Enabled(), {}, 2 * kSec, m).empty());
}

TEST(RemediationPolicy, InterruptionTriggersAndFreshGoodSampleDisarms) {
  Memory m;
  const RemediationConfig p = Enabled();
  Decide(Snap({Vm("a", 1 * kSec, 0, false)}), p, {}, 1 * kSec, m);
  auto acts = Decide(Snap({Vm("a", 30 * kSec, -20, true)}), p, {}, 30 * kSec, m);
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].reason, "interruption");
  // A resume after which the guest is fine: disarmed, and a later offset
  // without a new trigger does nothing.
  Memory m2;
  Decide(Snap({Vm("b", 1 * kSec, 0, false)}), p, {}, 1 * kSec, m2);
  EXPECT_TRUE(Decide(Snap({Vm("b", 30 * kSec, 0.2, true)}), p, {}, 30 * kSec, m2).empty());
  EXPECT_TRUE(Decide(Snap({Vm("b", 45 * kSec, -5, false)}), p, {}, 45 * kSec, m2).empty());
}

TEST(RemediationPolicy, TriggersCanBeLimited) {
  Memory m;
  RemediationConfig p = Enabled();
  p.triggers = {"interruption"};
  Decide(Snap({Vm("a", 1 * kSec, 0, false)}), p, {}, 1 * kSec, m);
  EXPECT_TRUE(Decide(Snap({Vm("a", 16 * kSec, -480, false, 1)}), p, {}, 16 * kSec, m).empty());
}

TEST(RemediationPolicy, DryRunAndBackwardRefusal) {
  RemediationConfig p = Enabled();
  p.dry_run = true;
  Memory m;
  Decide(Snap({Vm("a", 1 * kSec, 0, false)}), p, {}, 1 * kSec, m);
  auto acts = Decide(Snap({Vm("a", 16 * kSec, -480, false, 1)}), p, {}, 16 * kSec, m);
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].kind, ActionKind::kDryRun);
  EXPECT_FALSE(m["uuid-a"].in_flight);
  // Guest 2 minutes ahead: the correction steps it back by 120 s > 1 s.
  p.dry_run = false;
  Memory m2;
  Decide(Snap({Vm("a", 1 * kSec, 0, false)}), p, {}, 1 * kSec, m2);
  acts = Decide(Snap({Vm("a", 16 * kSec, 120, false, 1)}), p, {}, 16 * kSec, m2);
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].kind, ActionKind::kRefuseBackward);
  p.allow_large_backward = true;
  Memory m3;
  Decide(Snap({Vm("a", 1 * kSec, 0, false)}), p, {}, 1 * kSec, m3);
  acts = Decide(Snap({Vm("a", 16 * kSec, 120, false, 1)}), p, {}, 16 * kSec, m3);
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].kind, ActionKind::kSet);
  // A small backward correction (0.5 s <= max_backward_step) needs no opt-in.
  p.allow_large_backward = false;
  p.threshold_s = 0.1;
  Memory m4;
  Decide(Snap({Vm("a", 1 * kSec, 0, false)}), p, {}, 1 * kSec, m4);
  acts = Decide(Snap({Vm("a", 16 * kSec, 0.5, true)}), p, {}, 16 * kSec, m4);
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].kind, ActionKind::kSet);
}

TEST(RemediationPolicy, IncludeExcludeByNameAndMetadata) {
  RemediationConfig p = Enabled();
  p.include = {"web-*", "db-?"};
  p.exclude = {"web-canary*"};
  EXPECT_TRUE(NameSelected(p, "web-1"));
  EXPECT_TRUE(NameSelected(p, "db-1"));
  EXPECT_FALSE(NameSelected(p, "db-12"));
  EXPECT_FALSE(NameSelected(p, "web-canary-2"));
  EXPECT_FALSE(NameSelected(p, "mail"));
  p.include_metadata = {{"tier", "prod"}};
  p.exclude_metadata = {{"remediate", "never"}};
  EXPECT_TRUE(MetadataSelected(p, {{"tier", "prod"}}));
  EXPECT_FALSE(MetadataSelected(p, {}));  // unknown metadata: not included
  EXPECT_FALSE(MetadataSelected(p, {{"tier", "dev"}}));
  EXPECT_FALSE(MetadataSelected(p, {{"tier", "prod"}, {"remediate", "never"}}));

  // Through Decide: the excluded VM is left alone and disarmed.
  Memory m;
  MetadataByUuid md = {{"uuid-web-1", {{"tier", "prod"}}}, {"uuid-web-canary", {{"tier", "prod"}}}};
  Decide(Snap({Vm("web-1", 1 * kSec, 0, false), Vm("web-canary", 1 * kSec, 0, false)}), p, md,
         1 * kSec, m);
  auto acts = Decide(
      Snap({Vm("web-1", 16 * kSec, -480, false, 1), Vm("web-canary", 16 * kSec, -480, false, 1)}),
      p, md, 16 * kSec, m);
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].name, "web-1");
  EXPECT_TRUE(m["uuid-web-canary"].trigger.empty());
}

// The snapshot's own metadata: the domain's labels and its group, as the
// libvirt metadata reader and groups.rules give them.
TEST(RemediationPolicy, MetadataComesFromTheVmsLabelsAndGroup) {
  RemediationConfig p = Enabled();
  p.exclude_metadata = {{"group", "mysql"}};
  p.include_metadata = {{"tier", "prod"}};
  auto vm = [](const char* name, int64_t t, double off, const char* group, const char* tier) {
    VmView v = Vm(name, t, off, false, off == 0 ? 0 : 1);
    v.group = group;
    if (tier[0] != 0) v.labels = {{"tier", tier}};
    return v;
  };
  Memory m;
  Decide(Snap({vm("a", 1 * kSec, 0, "web", "prod"), vm("b", 1 * kSec, 0, "mysql", "prod"),
               vm("c", 1 * kSec, 0, "", "dev"), vm("d", 1 * kSec, 0, "", "")}),
         p, {}, 1 * kSec, m);
  auto acts = Decide(
      Snap({vm("a", 16 * kSec, -480, "web", "prod"), vm("b", 16 * kSec, -480, "mysql", "prod"),
            vm("c", 16 * kSec, -480, "", "dev"), vm("d", 16 * kSec, -480, "", "")}),
      p, {}, 16 * kSec, m);
  ASSERT_EQ(acts.size(), 1u);
  EXPECT_EQ(acts[0].name, "a");  // b: excluded group; c: wrong tier; d: no metadata
  EXPECT_EQ(VmMetadata(vm("x", 0, 0, "g", "t"), {{"tier", "u"}}),
            (std::map<std::string, std::string>{{"group", "g"}, {"tier", "u"}}));
}

TEST(RemediationPolicy, GuestDaemonReportingSyncGetsItsGrace) {
  RemediationConfig p = Enabled();
  Memory m;
  VmView v = Vm("a", 1 * kSec, 0, false);
  GuestStatusObservation g;
  g.daemon = "chrony";
  g.status.state = scoring::SyncState::kSynchronised;
  v.guest = std::make_shared<const GuestStatusObservation>(g);
  Decide(Snap({v}), p, {}, 1 * kSec, m);
  VmView stepped = Vm("a", 16 * kSec, -480, false, 1);
  stepped.guest = std::make_shared<const GuestStatusObservation>(g);
  EXPECT_TRUE(Decide(Snap({stepped}), p, {}, 16 * kSec, m).empty());  // armed at 16 s
  stepped.last_sample->host_mono_ns = 31 * kSec;
  EXPECT_TRUE(Decide(Snap({stepped}), p, {}, 31 * kSec, m).empty());
  stepped.last_sample->host_mono_ns = 76 * kSec;  // 60 s later, still off: act
  auto acts = Decide(Snap({stepped}), p, {}, 76 * kSec, m);
  ASSERT_EQ(acts.size(), 1u);
  // An unsynchronised daemon is not fixing it: no grace.
  Memory m2;
  g.status.state = scoring::SyncState::kUnsynchronised;
  v.guest = std::make_shared<const GuestStatusObservation>(g);
  stepped = Vm("a", 16 * kSec, -480, false, 1);
  stepped.guest = std::make_shared<const GuestStatusObservation>(g);
  Decide(Snap({v}), p, {}, 1 * kSec, m2);
  EXPECT_EQ(Decide(Snap({stepped}), p, {}, 16 * kSec, m2).size(), 1u);
}

TEST(RemediationPolicy, NotRunningAgentDownOrStaleSampleWaits) {
  const RemediationConfig p = Enabled();
  Memory m;
  Decide(Snap({Vm("a", 1 * kSec, 0, false)}), p, {}, 1 * kSec, m);
  VmView v = Vm("a", 16 * kSec, -480, false, 1);
  v.state = DomainState::kPaused;
  EXPECT_TRUE(Decide(Snap({v}), p, {}, 16 * kSec, m).empty());
  v.state = DomainState::kRunning;
  v.agent_up = false;
  EXPECT_TRUE(Decide(Snap({v}), p, {}, 17 * kSec, m).empty());
  v.agent_up = true;
  m["uuid-a"].last_done_mono_ns = 20 * kSec;  // the sample predates the last attempt
  EXPECT_TRUE(Decide(Snap({v}), p, {}, 21 * kSec, m).empty());
  // Vanished VMs are forgotten.
  Decide(Snap({}), p, {}, 22 * kSec, m);
  EXPECT_TRUE(m.empty());
}

// ---- the engine ----

// A guest clock `offset_ns` away from the FakeClock; SetTime sets it. Can
// fail or block until released.
class FakeApi : public libvirt::LibvirtApi {
 public:
  explicit FakeApi(FakeClock& clock) : clock_(clock) {}
  Result<std::vector<libvirt::DomainInfo>> ListDomains() override {
    return std::vector<libvirt::DomainInfo>{};
  }
  bool Connected() const override { return true; }
  uint64_t ConnectionGeneration() const override { return 1; }
  Result<libvirt::GuestTime> GetTime(const std::string&, const std::string&) override {
    std::lock_guard lock(mu_);
    const int64_t g = clock_.RealtimeNs() + offset_ns_;
    return libvirt::GuestTime{g / kSec, static_cast<uint32_t>(g % kSec)};
  }
  Status SetTime(const std::string&, const std::string& name,
                 const libvirt::GuestTime& t) override {
    std::unique_lock lock(mu_);
    ++set_calls_;
    if (hang_) cv_.wait(lock, [&] { return !hang_; });
    if (!fail_.empty()) return Error{"domain '" + name + "': " + fail_};
    offset_ns_ = (t.seconds * kSec + t.nanoseconds) - clock_.RealtimeNs() + set_lag_ns_;
    return Status::Ok();
  }
  Status SetAgentTimeout(const std::string&, const std::string&, int) override {
    return Status::Ok();
  }
  void SetEventHandler(libvirt::DomainEventHandler) override {}

  void SetOffset(int64_t ns) {
    std::lock_guard l(mu_);
    offset_ns_ = ns;
  }
  int64_t offset_ns() {
    std::lock_guard l(mu_);
    return offset_ns_;
  }
  void Fail(std::string why) {
    std::lock_guard l(mu_);
    fail_ = std::move(why);
  }
  void SetLag(int64_t ns) {
    std::lock_guard l(mu_);
    set_lag_ns_ = ns;
  }
  void Hang(bool h) {
    {
      std::lock_guard l(mu_);
      hang_ = h;
    }
    cv_.notify_all();
  }
  int set_calls() {
    std::lock_guard l(mu_);
    return set_calls_;
  }

 private:
  FakeClock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t offset_ns_ = 0;
  int64_t set_lag_ns_ = 0;
  std::string fail_;
  bool hang_ = false;
  int set_calls_ = 0;
};

class RecordingSink : public EventSink {
 public:
  void Emit(Event e) override {
    std::lock_guard l(mu);
    events.push_back(std::move(e));
  }
  std::vector<Event> Take() {
    std::lock_guard l(mu);
    return std::exchange(events, {});
  }
  std::mutex mu;
  std::vector<Event> events;
};

struct EngineFixture : ::testing::Test {
  FakeClock clock;
  std::shared_ptr<FakeApi> api = std::make_shared<FakeApi>(clock);
  std::shared_ptr<RecordingSink> sink = std::make_shared<RecordingSink>();
  std::mutex mu;
  std::vector<RemediationResult> results;
  std::unique_ptr<RemediationEngine> engine;

  void Start(RemediationConfig p) {
    EngineOptions o;
    o.background_tick = false;
    engine = std::make_unique<RemediationEngine>(
        p, clock, api, sink,
        [this](const std::string&, RemediationResult r) {
          std::lock_guard l(mu);
          results.push_back(r);
        },
        o);
  }
  // A clean snapshot, then one showing a step to `offset_s`.
  void Step(double offset_s) {
    const int64_t now = clock.MonotonicNs();
    engine->OnSnapshot(std::make_shared<Snapshot>(Snap({Vm("a", now, 0, false)})));
    ASSERT_TRUE(engine->WaitIdle(std::chrono::seconds(5)));
    clock.AdvanceSeconds(15);
    engine->OnSnapshot(
        std::make_shared<Snapshot>(Snap({Vm("a", clock.MonotonicNs(), offset_s, false, 1)})));
  }
  std::vector<RemediationResult> Results() {
    std::lock_guard l(mu);
    return results;
  }
};

TEST_F(EngineFixture, SetsTheGuestFromTheHostAndReportsOk) {
  Start(Enabled());
  api->SetOffset(-480 * kSec);
  Step(-480);
  ASSERT_TRUE(engine->WaitIdle(std::chrono::seconds(5)));
  EXPECT_EQ(api->offset_ns(), 0);
  ASSERT_EQ(Results(), std::vector<RemediationResult>{RemediationResult::kOk});
  auto events = sink->Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, "remediation");
  EXPECT_EQ(events[0].domain, "a");
  EXPECT_EQ(events[0].values["result"], "ok");
  EXPECT_EQ(events[0].values["reason"], "step");
  EXPECT_EQ(events[0].values["dry_run"], false);
  EXPECT_DOUBLE_EQ(events[0].values["offset_before_s"].get<double>(), -480);
  EXPECT_DOUBLE_EQ(events[0].values["offset_after_s"].get<double>(), 0);
  EXPECT_EQ(events[0].values["set_time_real_ns"].get<int64_t>(), clock.RealtimeNs());
}

TEST_F(EngineFixture, OffsetStillBeyondTheBoundIsNotCorrected) {
  Start(Enabled());
  api->SetLag(-2 * kSec);  // the guest ends up 2 s behind (beyond 0 + 0 + 50 ms)
  Step(-480);
  ASSERT_TRUE(engine->WaitIdle(std::chrono::seconds(5)));
  EXPECT_EQ(Results(), std::vector<RemediationResult>{RemediationResult::kNotCorrected});
}

TEST_F(EngineFixture, DryRunChangesNothing) {
  RemediationConfig p = Enabled();
  p.dry_run = true;
  Start(p);
  api->SetOffset(-480 * kSec);
  Step(-480);
  ASSERT_TRUE(engine->WaitIdle(std::chrono::seconds(5)));
  EXPECT_EQ(api->set_calls(), 0);
  EXPECT_EQ(api->offset_ns(), -480 * kSec);
  EXPECT_EQ(Results(), std::vector<RemediationResult>{RemediationResult::kDryRun});
  auto events = sink->Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].values["dry_run"], true);
}

TEST_F(EngineFixture, FailedSetIsAFailedAttempt) {
  Start(Enabled());
  api->Fail("guest agent is not responding");
  Step(-480);
  ASSERT_TRUE(engine->WaitIdle(std::chrono::seconds(5)));
  EXPECT_EQ(Results(), std::vector<RemediationResult>{RemediationResult::kFailed});
  auto events = sink->Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_NE(events[0].values["error"].get<std::string>().find("not responding"), std::string::npos);
  EXPECT_TRUE(events[0].values["offset_after_s"].is_null());
}

TEST_F(EngineFixture, HungAgentIsAbandonedAtTheDeadlineAndRecordedFailed) {
  RemediationConfig p = Enabled();
  p.call_deadline_s = 10;
  Start(p);
  api->Hang(true);
  Step(-480);
  for (int i = 0; i < 500 && api->set_calls() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the worker to reach SetTime
  }
  ASSERT_EQ(api->set_calls(), 1);
  engine->Tick();
  EXPECT_TRUE(Results().empty());  // not yet past the deadline
  clock.AdvanceSeconds(11);
  engine->Tick();
  EXPECT_EQ(Results(), std::vector<RemediationResult>{RemediationResult::kFailed});
  // Decisions keep being made while the call hangs (on a replacement
  // worker), and the stuck VM is not tried again until its call returns.
  engine->OnSnapshot(
      std::make_shared<Snapshot>(Snap({Vm("a", clock.MonotonicNs(), -480, false, 2)})));
  ASSERT_TRUE(engine->WaitIdle(std::chrono::seconds(5)));
  EXPECT_EQ(api->set_calls(), 1);
  api->Hang(false);
  engine.reset();  // shutdown with the late return racing: must not crash or hang
  EXPECT_EQ(Results().size(), 1u);
}

}  // namespace
}  // namespace vmtime::remediation
