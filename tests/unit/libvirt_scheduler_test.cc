// Scheduling of guest-clock samples with a fake libvirt API and FakeClock:
// hung agents, deadlines, retry/backoff, events, paused and vanished domains.
// Worker threads are real; time is FakeClock, advanced by the test. The only
// real-time waits are bounded waits for worker threads to reach a state.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "exporter/collectors/libvirt/libvirt_collector.h"
#include "exporter/exposition/snapshot_holder.h"
#include "exporter/poller/poller.h"

namespace vmtime::libvirt {
namespace {

using std::chrono::milliseconds;
constexpr auto kWait = milliseconds(10'000);  // bound of every thread wait

// A LibvirtApi whose domains, guest offsets, round trips, failures and hangs
// are chosen by the test. GetTime advances the FakeClock by the scripted
// round trip and returns host time at the midpoint plus the domain's offset.
class FakeApi : public LibvirtApi {
 public:
  struct Behavior {
    int64_t offset_ns = 0;                    // guest - host
    std::vector<int64_t> rtts_ns{1'000'000};  // cycled per call
    bool fail = false;
    bool hang = false;  // block until Release()
  };

  explicit FakeApi(FakeClock& clock) : clock_(clock) {}

  void SetDomains(std::vector<DomainInfo> d) {
    std::lock_guard lock(mu_);
    domains_ = std::move(d);
  }
  void SetBehavior(const std::string& uuid, Behavior b) {
    std::lock_guard lock(mu_);
    behavior_[uuid] = std::move(b);
  }
  void Release(const std::string& uuid) {
    std::lock_guard lock(mu_);
    behavior_[uuid].hang = false;
    cv_.notify_all();
  }
  int Calls(const std::string& uuid) {
    std::lock_guard lock(mu_);
    return calls_[uuid];
  }
  bool WaitCalls(const std::string& uuid, int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return calls_[uuid] >= n; });
  }
  void Fire(const std::string& uuid, const std::string& name, DomainEvent e) {
    DomainEventHandler h;
    {
      std::lock_guard lock(mu_);
      h = handler_;
    }
    if (h) h(uuid, name, e);
  }

  Result<std::vector<DomainInfo>> ListDomains() override {
    std::lock_guard lock(mu_);
    ++lists_;
    if (list_error_) return Error{"virConnectGetAllDomainStats(test): boom"};
    return domains_;
  }
  bool Connected() const override { return true; }
  uint64_t ConnectionGeneration() const override { return 1; }
  Result<GuestTime> GetTime(const std::string& uuid, const std::string& name) override {
    std::unique_lock lock(mu_);
    Behavior& b = behavior_[uuid];
    int n = calls_[uuid]++;
    call_order_.push_back(name);
    cv_.notify_all();
    if (b.hang) {
      cv_.wait(lock, [&] { return !behavior_[uuid].hang; });
      return Error{"virDomainGetTime(domain '" + name + "'): released after hang"};
    }
    if (b.fail)
      return Error{"virDomainGetTime(domain '" + name + "'): Guest agent is not responding"};
    const int64_t rtt = b.rtts_ns[n % b.rtts_ns.size()];
    clock_.Advance(rtt / 2);
    const int64_t guest = clock_.RealtimeNs() + b.offset_ns;
    clock_.Advance(rtt - rtt / 2);
    return GuestTime{guest / kNsPerSecond, static_cast<uint32_t>(guest % kNsPerSecond)};
  }
  Status SetAgentTimeout(const std::string&, const std::string&, int seconds) override {
    std::lock_guard lock(mu_);
    timeouts_set_++;
    last_timeout_ = seconds;
    return Status::Ok();
  }
  void SetEventHandler(DomainEventHandler handler) override {
    std::lock_guard lock(mu_);
    handler_ = std::move(handler);
  }

  int Lists() {
    std::lock_guard lock(mu_);
    return lists_;
  }
  std::vector<std::string> CallOrder() {
    std::lock_guard lock(mu_);
    return call_order_;
  }

  bool list_error_ = false;
  int timeouts_set_ = 0;
  int last_timeout_ = 0;

 private:
  FakeClock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<DomainInfo> domains_;
  std::map<std::string, Behavior> behavior_;
  std::map<std::string, int> calls_;
  std::vector<std::string> call_order_;  // domain names, one per GetTime
  DomainEventHandler handler_;
  int lists_ = 0;
};

DomainInfo Dom(const std::string& name, DomainState s = DomainState::kRunning) {
  return DomainInfo{"uuid-" + name, name, s};
}

class LibvirtSchedulerTest : public ::testing::Test {
 protected:
  void Make(int concurrency = 2, int samples = 1) {
    config_.concurrency = concurrency;
    config_.samples = samples;
    api_ = std::make_shared<FakeApi>(clock_);
    SchedulerOptions opts;
    opts.background_tick = false;
    collector_ = std::make_unique<LibvirtCollector>(config_, clock_, api_, opts);
  }
  void TearDown() override {
    // Let hung fake calls go so every worker can exit.
    if (api_) {
      for (const auto& d : domains_) api_->Release(d.uuid.str());
    }
    collector_.reset();
  }
  void SetDomains(std::vector<DomainInfo> d) {
    domains_ = d;
    api_->SetDomains(std::move(d));
  }
  // One Collect; returns the observations keyed by name.
  std::map<std::string, DomainObservation> Collect(Status* status = nullptr) {
    Observations out;
    CollectContext ctx{clock_, clock_.MonotonicNs() + kNsPerSecond, {}};
    Status st = collector_->Collect(ctx, out);
    if (status != nullptr) *status = st;
    std::map<std::string, DomainObservation> m;
    if (out.libvirt) {
      for (auto& d : out.libvirt->domains) m[d.name.str()] = d;
    }
    return m;
  }
  // One Harvest (no list); the domains with news keyed by name.
  std::map<std::string, DomainObservation> Harvest() {
    Observations out;
    EXPECT_TRUE(collector_->Harvest(out));
    std::map<std::string, DomainObservation> m;
    if (out.libvirt) {
      EXPECT_TRUE(out.libvirt->partial);
      for (auto& d : out.libvirt->domains) m[d.name.str()] = d;
    }
    return m;
  }
  bool Idle() { return collector_->scheduler().WaitIdle(kWait); }
  template <typename F>
  bool Eventually(F f) {  // bounded wait for another thread's progress
    auto end = std::chrono::steady_clock::now() + kWait;
    while (!f()) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(milliseconds(1));
    }
    return true;
  }

  FakeClock clock_;
  LibvirtConfig config_;
  std::shared_ptr<FakeApi> api_;
  std::unique_ptr<LibvirtCollector> collector_;
  std::vector<DomainInfo> domains_;
};

TEST_F(LibvirtSchedulerTest, KeepsSampleWithSmallestRoundTrip) {
  Make(/*concurrency=*/1, /*samples=*/3);
  SetDomains({Dom("a")});
  api_->SetBehavior(
      "uuid-a", {.offset_ns = -300 * kNsPerSecond, .rtts_ns = {6'000'000, 2'000'000, 4'000'000}});
  Collect();
  ASSERT_TRUE(Idle());
  EXPECT_EQ(api_->Calls("uuid-a"), 3);
  auto m = Collect();
  ASSERT_TRUE(m["a"].sample.has_value());
  EXPECT_TRUE(m["a"].agent_up);
  EXPECT_NEAR(m["a"].sample->offset_s, -300.0, 1e-9);
  EXPECT_NEAR(m["a"].sample->uncertainty_s, 1e-3, 1e-12);
  EXPECT_NEAR(m["a"].rtt_s, 2e-3, 1e-12);
  EXPECT_EQ(api_->timeouts_set_, 1);  // agent timeout applied once, before the first call
  EXPECT_EQ(api_->last_timeout_, 2);
}

// A round samples in name order whatever order libvirt lists in, so that
// one harvest's samples are neighbours in the snapshot (gzip_body.h).
TEST_F(LibvirtSchedulerTest, RoundSamplesInNameOrder) {
  Make(/*concurrency=*/1, /*samples=*/1);
  SetDomains({Dom("vm-c"), Dom("vm-a"), Dom("vm-d"), Dom("vm-b")});
  Collect();
  ASSERT_TRUE(Idle());
  EXPECT_EQ(api_->CallOrder(), (std::vector<std::string>{"vm-a", "vm-b", "vm-c", "vm-d"}));
}

// A round over many domains waits in the scheduler's backlog, not as one
// queued pool job per domain: the pool's queue stays `concurrency` deep.
TEST_F(LibvirtSchedulerTest, ARoundWaitsInTheBacklogNotInThePool) {
  Make(/*concurrency=*/1, /*samples=*/1);
  std::vector<DomainInfo> doms{Dom("vm-000")};
  for (int i = 1; i <= 200; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "vm-%03d", i);
    doms.push_back(Dom(name));
  }
  SetDomains(doms);
  api_->SetBehavior("uuid-vm-000", {.hang = true});
  Collect();
  ASSERT_TRUE(api_->WaitCalls("uuid-vm-000", 1));  // the one worker blocks on it
  const auto q = collector_->scheduler().Queued();
  EXPECT_EQ(q.pool, 1u);
  EXPECT_EQ(q.backlog, 199u);
  api_->Release("uuid-vm-000");
  ASSERT_TRUE(Idle());
  std::vector<std::string> names;
  for (const auto& d : doms) names.push_back(d.name.str());
  EXPECT_EQ(api_->CallOrder(), names);  // every domain once, in name order
  EXPECT_EQ(collector_->scheduler().Queued().backlog, 0u);
}

// Domains that vanish while waiting leave the backlog and are never called;
// the ones still listed are sampled once.
TEST_F(LibvirtSchedulerTest, VanishedDomainsLeaveTheBacklog) {
  Make(/*concurrency=*/1, /*samples=*/1);
  SetDomains({Dom("a"), Dom("b"), Dom("c"), Dom("d"), Dom("e")});
  api_->SetBehavior("uuid-a", {.hang = true});
  Collect();
  ASSERT_TRUE(api_->WaitCalls("uuid-a", 1));
  clock_.AdvanceSeconds(15);
  SetDomains({Dom("a"), Dom("d")});
  auto m = Collect();
  EXPECT_EQ(m.count("b"), 0u);
  EXPECT_EQ(m.count("e"), 0u);
  EXPECT_LE(collector_->scheduler().Queued().backlog, 1u);  // d (b may sit in the pool)
  api_->Release("uuid-a");
  ASSERT_TRUE(Idle());
  EXPECT_EQ(api_->Calls("uuid-b"), 0);
  EXPECT_EQ(api_->Calls("uuid-c"), 0);
  EXPECT_EQ(api_->Calls("uuid-e"), 0);
  EXPECT_EQ(api_->Calls("uuid-d"), 1);
}

// An event for a domain waiting in the backlog samples it next, ahead of
// the round, and only once.
TEST_F(LibvirtSchedulerTest, AnEventJumpsTheBacklogOnce) {
  Make(/*concurrency=*/1, /*samples=*/1);
  SetDomains({Dom("a"), Dom("b"), Dom("c"), Dom("d"), Dom("e")});
  api_->SetBehavior("uuid-a", {.hang = true});
  Collect();
  ASSERT_TRUE(api_->WaitCalls("uuid-a", 1));
  api_->Fire("uuid-e", "e", DomainEvent::kAgentConnected);
  api_->Release("uuid-a");
  ASSERT_TRUE(Idle());
  EXPECT_EQ(api_->CallOrder(), (std::vector<std::string>{"a", "e", "b", "c", "d"}));
}

// One collect late by more than a third of the interval (a slow list) does
// not make the next, on-time collect skip its round; a collect right after
// a round (a manual poll) still does not start another.
TEST_F(LibvirtSchedulerTest, ALateCollectDoesNotSkipTheNextRound) {
  Make();
  SetDomains({Dom("a")});
  int calls = 0;
  for (int i = 0; i < 4; ++i) {  // rounds at 0, 15, 30, 45 s
    if (i > 0) clock_.AdvanceSeconds(15);
    Collect();
    ASSERT_TRUE(Idle());
    EXPECT_EQ(api_->Calls("uuid-a"), ++calls);
  }
  clock_.AdvanceSeconds(21);  // 66 s: 6 s late
  Collect();
  ASSERT_TRUE(Idle());
  EXPECT_EQ(api_->Calls("uuid-a"), ++calls);
  clock_.AdvanceSeconds(9);  // 75 s: on time, 9 s after the late one
  Collect();
  ASSERT_TRUE(Idle());
  EXPECT_EQ(api_->Calls("uuid-a"), ++calls);
  clock_.AdvanceSeconds(1);  // a manual poll 1 s later: no new round
  Collect();
  ASSERT_TRUE(Idle());
  EXPECT_EQ(api_->Calls("uuid-a"), calls);
}

TEST_F(LibvirtSchedulerTest, SampleIsHandedOutOnce) {
  Make();
  SetDomains({Dom("a")});
  Collect();
  ASSERT_TRUE(Idle());
  clock_.AdvanceSeconds(15);
  EXPECT_TRUE(Collect()["a"].sample.has_value());  // round 1's sample; starts round 2
  ASSERT_TRUE(Idle());
  EXPECT_TRUE(Collect()["a"].sample.has_value());  // round 2's sample; too soon for a round
  ASSERT_TRUE(Idle());
  auto m = Collect();
  EXPECT_FALSE(m["a"].sample.has_value());
  EXPECT_TRUE(m["a"].agent_up);
  EXPECT_EQ(api_->Calls("uuid-a"), 2);
}

TEST_F(LibvirtSchedulerTest, HungAgentDoesNotDelayOthersAndIsAbandonedAtDeadline) {
  Make(/*concurrency=*/2);
  SetDomains({Dom("hung"), Dom("b"), Dom("c"), Dom("d")});
  api_->SetBehavior("uuid-hung", {.hang = true});
  Collect();
  ASSERT_TRUE(api_->WaitCalls("uuid-hung", 1));
  // One worker is blocked; the other serves everyone else.
  ASSERT_TRUE(api_->WaitCalls("uuid-b", 1));
  ASSERT_TRUE(api_->WaitCalls("uuid-c", 1));
  ASSERT_TRUE(api_->WaitCalls("uuid-d", 1));
  ASSERT_TRUE(collector_->scheduler().WaitIdle(kWait, /*allow_busy=*/1));
  clock_.AdvanceSeconds(1);
  auto m = Collect();
  EXPECT_TRUE(m["b"].sample.has_value());
  EXPECT_TRUE(m["d"].sample.has_value());
  EXPECT_FALSE(m["hung"].agent_up);
  EXPECT_EQ(collector_->scheduler().StuckCalls(), 0);
  // (FakeClock jumps must not land while healthy calls are in flight.)
  ASSERT_TRUE(collector_->scheduler().WaitIdle(kWait, /*allow_busy=*/1));

  // Past the 5 s deadline the call is abandoned and its worker replaced.
  clock_.AdvanceSeconds(5);
  collector_->scheduler().Tick();
  EXPECT_EQ(collector_->scheduler().StuckCalls(), 1);
  EXPECT_EQ(collector_->scheduler().LiveWorkers(), 2);
  m = Collect();
  EXPECT_FALSE(m["hung"].agent_up);
  EXPECT_EQ(m["hung"].agent_error, "guest agent call exceeded deadline");
  EXPECT_EQ(m["hung"].agent_failures, 1);
  ASSERT_TRUE(Idle());

  // Later rounds and retry ticks do not queue it again while it is stuck.
  for (int i = 0; i < 4; ++i) {
    clock_.AdvanceSeconds(15);
    Collect();
    collector_->scheduler().Tick();
    ASSERT_TRUE(api_->WaitCalls("uuid-b", 2 + i));
    ASSERT_TRUE(Idle());
  }
  EXPECT_EQ(api_->Calls("uuid-hung"), 1);
  m = Collect();
  EXPECT_EQ(m["hung"].agent_error, "guest agent call exceeded deadline");

  // When the stuck call returns the domain is polled again.
  api_->Release("uuid-hung");
  ASSERT_TRUE(Eventually([&] { return collector_->scheduler().StuckCalls() == 0; }));
  clock_.AdvanceSeconds(15);
  Collect();
  ASSERT_TRUE(api_->WaitCalls("uuid-hung", 2));
  ASSERT_TRUE(Idle());
  clock_.AdvanceSeconds(15);
  m = Collect();
  EXPECT_TRUE(m["hung"].agent_up);
  EXPECT_TRUE(m["hung"].sample.has_value());
  EXPECT_EQ(m["hung"].agent_failures, 0);
}

TEST_F(LibvirtSchedulerTest, StuckBudgetLimitsReplacementWorkers) {
  config_.max_stuck_calls = 1;
  Make(/*concurrency=*/1);
  SetDomains({Dom("h1"), Dom("h2"), Dom("ok")});
  api_->SetBehavior("uuid-h1", {.hang = true});
  api_->SetBehavior("uuid-h2", {.hang = true});
  Collect();
  ASSERT_TRUE(api_->WaitCalls("uuid-h1", 1));
  clock_.AdvanceSeconds(6);
  collector_->scheduler().Tick();  // h1 abandoned, one replacement (budget 1)
  ASSERT_TRUE(api_->WaitCalls("uuid-h2", 1));
  clock_.AdvanceSeconds(6);
  collector_->scheduler().Tick();  // h2 abandoned, budget spent: no worker left
  EXPECT_EQ(collector_->scheduler().StuckCalls(), 2);
  EXPECT_EQ(collector_->scheduler().LiveWorkers(), 0);
  EXPECT_EQ(api_->Calls("uuid-ok"), 0);
  // A stuck call returning frees budget: a worker comes back and serves "ok".
  api_->Release("uuid-h1");
  ASSERT_TRUE(api_->WaitCalls("uuid-ok", 1));
}

// A reload re-creates the collector while one of its calls is blocked in
// libvirt: with the shared counter (production: ProcessStuckAgentCalls())
// that call still counts against libvirt.max_stuck_calls in the new
// instance, which therefore starts no replacement beyond the budget.
TEST_F(LibvirtSchedulerTest, StuckBudgetIsSharedAcrossCollectorInstances) {
  config_.max_stuck_calls = 1;
  config_.concurrency = 1;
  config_.samples = 1;
  auto stuck = std::make_shared<StuckCounter>();
  SchedulerOptions opts;
  opts.background_tick = false;
  opts.stuck_calls = stuck;
  api_ = std::make_shared<FakeApi>(clock_);
  collector_ = std::make_unique<LibvirtCollector>(config_, clock_, api_, opts);
  SetDomains({Dom("h1")});
  api_->SetBehavior("uuid-h1", {.hang = true});
  Collect();
  ASSERT_TRUE(api_->WaitCalls("uuid-h1", 1));
  clock_.AdvanceSeconds(6);
  collector_->scheduler().Tick();  // h1 abandoned
  EXPECT_EQ(stuck->count(), 1);

  collector_ = std::make_unique<LibvirtCollector>(config_, clock_, api_, opts);  // the reload
  EXPECT_EQ(stuck->count(), 1);  // the old instance's call is still blocked
  SetDomains({Dom("h2"), Dom("ok")});
  api_->SetBehavior("uuid-h2", {.hang = true});
  Collect();
  ASSERT_TRUE(api_->WaitCalls("uuid-h2", 1));
  clock_.AdvanceSeconds(6);
  collector_->scheduler().Tick();  // h2 abandoned: 2 stuck in the process, budget 1
  EXPECT_EQ(stuck->count(), 2);
  EXPECT_EQ(collector_->scheduler().StuckCalls(), 1);   // its own
  EXPECT_EQ(collector_->scheduler().LiveWorkers(), 0);  // a fresh budget would have replaced it
  EXPECT_EQ(api_->Calls("uuid-ok"), 0);
  api_->Release("uuid-h1");  // the old instance's call returns: budget frees up
  ASSERT_TRUE(Eventually([&] { return stuck->count() == 1; }));
  collector_->scheduler().Tick();
  ASSERT_TRUE(api_->WaitCalls("uuid-ok", 1));
}

TEST_F(LibvirtSchedulerTest, FailingAgentRetryScheduleThenBackoff) {
  config_.agent_max_attempts = 3;
  config_.agent_retry_interval_s = 5;
  config_.agent_backoff_max_s = 30;
  Make(/*concurrency=*/1);
  SetDomains({Dom("f")});
  api_->SetBehavior("uuid-f", {.fail = true});
  Collect();
  ASSERT_TRUE(Idle());
  auto m = Collect();
  EXPECT_FALSE(m["f"].agent_up);  // down after the first failure
  EXPECT_EQ(m["f"].agent_error, "virDomainGetTime(domain 'f'): Guest agent is not responding");
  EXPECT_EQ(m["f"].agent_failures, 1);
  // Expected delays after failure n: 5, 5 (n < 3), then 10, 20, 30, 30.
  const double delays[] = {5, 5, 10, 20, 30, 30};
  int calls = 1;
  for (double d : delays) {
    clock_.AdvanceSeconds(d - 0.5);
    collector_->scheduler().Tick();
    ASSERT_TRUE(Idle());
    EXPECT_EQ(api_->Calls("uuid-f"), calls) << "retried early, delay " << d;
    clock_.AdvanceSeconds(0.5);
    collector_->scheduler().Tick();
    ASSERT_TRUE(api_->WaitCalls("uuid-f", calls + 1)) << "no retry after " << d;
    ASSERT_TRUE(Idle());
    ++calls;
  }
  EXPECT_EQ(Collect()["f"].agent_failures, calls);
  // Recovery resets the failure count.
  api_->SetBehavior("uuid-f", {});
  clock_.AdvanceSeconds(30);
  collector_->scheduler().Tick();
  ASSERT_TRUE(Idle());
  m = Collect();
  EXPECT_TRUE(m["f"].agent_up);
  EXPECT_EQ(m["f"].agent_failures, 0);
  EXPECT_TRUE(m["f"].agent_error.empty());
}

TEST_F(LibvirtSchedulerTest, ResumeEventPollsThatDomainAndWakesPoller) {
  Make();
  SetDomains({Dom("a"), Dom("b")});
  std::mutex mu;
  std::condition_variable cv;
  int wakes = 0;
  collector_->SetWakeup([&] {
    std::lock_guard lock(mu);
    ++wakes;
    cv.notify_all();
  });
  Collect();
  ASSERT_TRUE(Idle());
  // Paused: the next round does not sample it.
  SetDomains({Dom("a", DomainState::kPaused), Dom("b")});
  clock_.AdvanceSeconds(15);
  auto m = Collect();
  ASSERT_TRUE(Idle());
  EXPECT_EQ(api_->Calls("uuid-a"), 1);
  EXPECT_EQ(api_->Calls("uuid-b"), 2);
  EXPECT_FALSE(m["a"].agent_up);
  EXPECT_EQ(m["a"].agent_error, "domain is paused (not sampled)");
  // Routine samples wake the poller too (once until handed out); the
  // poller would now harvest them.
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return wakes >= 1; }));
  }
  Observations harvested;
  ASSERT_TRUE(collector_->Harvest(harvested));
  int wakes_before;
  {
    std::lock_guard lock(mu);
    wakes_before = wakes;
  }
  // Resume 5 s later with the guest clock 5 s behind: polled at once, out of round.
  clock_.AdvanceSeconds(5);
  SetDomains({Dom("a"), Dom("b")});
  api_->SetBehavior("uuid-a", {.offset_ns = -5 * kNsPerSecond});
  api_->Fire("uuid-a", "a", DomainEvent::kResumed);
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return wakes == wakes_before + 1; }));
  }
  ASSERT_TRUE(Idle());
  EXPECT_EQ(api_->Calls("uuid-a"), 2);
  const int b_calls = api_->Calls("uuid-b");
  m = Collect();  // the wakeup-triggered Collect
  ASSERT_TRUE(m["a"].sample.has_value());
  EXPECT_NEAR(m["a"].sample->offset_s, -5.0, 1e-9);
  EXPECT_TRUE(m["a"].sample->after_interruption);  // the first sample after the pause
  EXPECT_TRUE(m["a"].agent_up);
  ASSERT_TRUE(Idle());
  EXPECT_EQ(api_->Calls("uuid-b"), b_calls);  // no extra full round for the wakeup
}

TEST_F(LibvirtSchedulerTest, AgentConnectedEventResetsBackoff) {
  config_.agent_max_attempts = 1;
  config_.agent_backoff_max_s = 300;
  Make(1);
  SetDomains({Dom("a")});
  api_->SetBehavior("uuid-a", {.fail = true});
  Collect();
  ASSERT_TRUE(Idle());
  api_->SetBehavior("uuid-a", {});
  api_->Fire("uuid-a", "a", DomainEvent::kAgentConnected);
  ASSERT_TRUE(api_->WaitCalls("uuid-a", 2));
  ASSERT_TRUE(Idle());
  auto m = Collect();
  EXPECT_TRUE(m["a"].agent_up);
  EXPECT_TRUE(m["a"].sample.has_value());
}

TEST_F(LibvirtSchedulerTest, VanishedDomainIsAbsentAndListErrorKeepsLastKnown) {
  Make();
  SetDomains({Dom("a"), Dom("b")});
  Collect();
  ASSERT_TRUE(Idle());
  clock_.AdvanceSeconds(15);
  SetDomains({Dom("b")});
  auto m = Collect();
  EXPECT_EQ(m.count("a"), 0u);
  EXPECT_EQ(m.count("b"), 1u);
  ASSERT_TRUE(Idle());
  api_->list_error_ = true;
  Status st;
  m = Collect(&st);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("boom"), std::string::npos);
  EXPECT_EQ(m.count("b"), 1u);
}

TEST_F(LibvirtSchedulerTest, ShutoffDomainsAreListedNotSampled) {
  Make();
  SetDomains({Dom("off", DomainState::kShutoff), Dom("on")});
  Collect();
  ASSERT_TRUE(Idle());
  auto m = Collect();
  EXPECT_EQ(api_->Calls("uuid-off"), 0);
  EXPECT_EQ(m["off"].state, DomainState::kShutoff);
  EXPECT_FALSE(m["off"].agent_up);
  EXPECT_TRUE(m["on"].agent_up);
}

// Lifecycle events (pause/resume, save/restore) mark the first sample taken
// after them, and only that one.
TEST_F(LibvirtSchedulerTest, InterruptionEventsMarkTheFirstSampleAfterThem) {
  Make();
  SetDomains({Dom("a")});
  Collect();
  ASSERT_TRUE(Idle());
  auto h = Harvest();
  ASSERT_TRUE(h["a"].sample.has_value());
  EXPECT_FALSE(h["a"].sample->after_interruption);

  // Paused and resumed (virsh suspend / resume).
  api_->Fire("uuid-a", "a", DomainEvent::kSuspended);
  h = Harvest();
  EXPECT_EQ(h["a"].state, DomainState::kPaused);  // published at once
  EXPECT_FALSE(h["a"].sample.has_value());
  clock_.AdvanceSeconds(20);
  api_->Fire("uuid-a", "a", DomainEvent::kResumed);
  ASSERT_TRUE(api_->WaitCalls("uuid-a", 2));
  ASSERT_TRUE(Idle());
  h = Harvest();
  ASSERT_TRUE(h["a"].sample.has_value());
  EXPECT_TRUE(h["a"].sample->after_interruption);

  // The next routine sample is ordinary again.
  clock_.AdvanceSeconds(15);
  Collect();
  ASSERT_TRUE(api_->WaitCalls("uuid-a", 3));
  ASSERT_TRUE(Idle());
  h = Harvest();
  ASSERT_TRUE(h["a"].sample.has_value());
  EXPECT_FALSE(h["a"].sample->after_interruption);

  // Saved and restored (virsh save / restore): stopped, then started.
  api_->Fire("uuid-a", "a", DomainEvent::kStopped);
  clock_.AdvanceSeconds(30);
  api_->Fire("uuid-a", "a", DomainEvent::kStarted);
  ASSERT_TRUE(api_->WaitCalls("uuid-a", 4));
  ASSERT_TRUE(Idle());
  h = Harvest();
  ASSERT_TRUE(h["a"].sample.has_value());
  EXPECT_TRUE(h["a"].sample->after_interruption);

  // A marked sample replaced by a newer one before it is handed out passes
  // its mark on (the consumer never saw the marked one).
  api_->Fire("uuid-a", "a", DomainEvent::kSuspended);
  api_->Fire("uuid-a", "a", DomainEvent::kResumed);
  ASSERT_TRUE(api_->WaitCalls("uuid-a", 5));
  ASSERT_TRUE(Idle());
  api_->Fire("uuid-a", "a", DomainEvent::kAgentConnected);  // a second sample, not marked itself
  ASSERT_TRUE(api_->WaitCalls("uuid-a", 6));
  ASSERT_TRUE(Idle());
  h = Harvest();
  ASSERT_TRUE(h["a"].sample.has_value());
  EXPECT_TRUE(h["a"].sample->after_interruption);

  // An agent reconnecting is not an interruption of the guest clock.
  api_->Fire("uuid-a", "a", DomainEvent::kAgentConnected);
  ASSERT_TRUE(api_->WaitCalls("uuid-a", 7));
  ASSERT_TRUE(Idle());
  h = Harvest();
  ASSERT_TRUE(h["a"].sample.has_value());
  EXPECT_FALSE(h["a"].sample->after_interruption);
}

// Without events (none registered, or missed), a running -> paused ->
// running change between lists marks the first sample after it.
TEST_F(LibvirtSchedulerTest, StateChangeBetweenListsMarksTheNextSample) {
  Make();
  SetDomains({Dom("a"), Dom("b")});
  Collect();
  ASSERT_TRUE(Idle());
  clock_.AdvanceSeconds(15);
  SetDomains({Dom("a", DomainState::kPaused), Dom("b")});
  auto m = Collect();
  EXPECT_FALSE(m["a"].sample.has_value() && m["a"].sample->after_interruption);
  ASSERT_TRUE(Idle());
  clock_.AdvanceSeconds(15);
  SetDomains({Dom("a"), Dom("b")});
  Collect();  // running again: queued in this round
  ASSERT_TRUE(Idle());
  m = Collect();
  ASSERT_TRUE(m["a"].sample.has_value());
  EXPECT_TRUE(m["a"].sample->after_interruption);
  ASSERT_TRUE(m["b"].sample.has_value());
  EXPECT_FALSE(m["b"].sample->after_interruption);  // b ran throughout
  ASSERT_TRUE(Idle());
  clock_.AdvanceSeconds(15);
  Collect();
  ASSERT_TRUE(Idle());
  m = Collect();
  ASSERT_TRUE(m["a"].sample.has_value());
  EXPECT_FALSE(m["a"].sample->after_interruption);
}

// A pause and resume while a call is in flight: the call returns after
// them (here failing), the domain is polled again at once, and that sample
// is the marked one.
TEST_F(LibvirtSchedulerTest, InterruptionDuringACallMarksTheNextSample) {
  Make();
  SetDomains({Dom("a")});
  Collect();
  ASSERT_TRUE(Idle());
  Harvest();
  api_->SetBehavior("uuid-a", {.hang = true});
  clock_.AdvanceSeconds(15);
  Collect();
  ASSERT_TRUE(api_->WaitCalls("uuid-a", 2));
  api_->Fire("uuid-a", "a", DomainEvent::kSuspended);
  api_->Fire("uuid-a", "a", DomainEvent::kResumed);  // in flight: polled again after it
  api_->Release("uuid-a");
  ASSERT_TRUE(api_->WaitCalls("uuid-a", 3));
  ASSERT_TRUE(Idle());
  auto h = Harvest();
  ASSERT_TRUE(h["a"].sample.has_value());
  EXPECT_TRUE(h["a"].sample->after_interruption);
  EXPECT_TRUE(h["a"].agent_up);
}

// agent_attempted: false until the first attempt finishes, false again
// while the domain does not run and after it runs again until the next
// attempt; a failure is an attempt.
TEST_F(LibvirtSchedulerTest, AgentAttemptedExactlyAfterAFinishedAttempt) {
  Make(/*concurrency=*/1);
  SetDomains({Dom("a"), Dom("f")});
  api_->SetBehavior("uuid-f", {.fail = true});
  auto m = Collect();  // observations are built before any worker can start
  EXPECT_FALSE(m["a"].agent_attempted);
  EXPECT_FALSE(m["a"].agent_up);
  EXPECT_TRUE(m["a"].agent_error.empty());
  EXPECT_FALSE(m["f"].agent_attempted);
  ASSERT_TRUE(Idle());
  m = Collect();
  EXPECT_TRUE(m["a"].agent_attempted);
  EXPECT_TRUE(m["a"].agent_up);
  EXPECT_TRUE(m["f"].agent_attempted);
  EXPECT_FALSE(m["f"].agent_up);  // down: tried and failed
  ASSERT_TRUE(Idle());

  clock_.AdvanceSeconds(15);
  SetDomains({Dom("a", DomainState::kPaused), Dom("f", DomainState::kShutoff)});
  m = Collect();
  EXPECT_FALSE(m["a"].agent_attempted);  // not running: neither up nor down
  EXPECT_FALSE(m["a"].agent_up);
  EXPECT_EQ(m["a"].agent_error, "domain is paused (not sampled)");
  EXPECT_FALSE(m["f"].agent_attempted);
  EXPECT_EQ(m["f"].agent_error, "domain is shutoff (not sampled)");
  EXPECT_EQ(m["f"].agent_failures, 0);
  ASSERT_TRUE(Idle());

  clock_.AdvanceSeconds(15);
  SetDomains({Dom("a"), Dom("f")});
  m = Collect();  // running again, not tried yet
  EXPECT_FALSE(m["a"].agent_attempted);
  EXPECT_TRUE(m["a"].agent_error.empty());
  EXPECT_FALSE(m["f"].agent_attempted);
  ASSERT_TRUE(Idle());
  m = Collect();
  EXPECT_TRUE(m["a"].agent_attempted);
  EXPECT_TRUE(m["a"].agent_up);
  EXPECT_TRUE(m["f"].agent_attempted);
  EXPECT_FALSE(m["f"].agent_up);

  // A suspend event says "not running" at once, before the next list.
  api_->Fire("uuid-a", "a", DomainEvent::kSuspended);
  Observations h;
  ASSERT_TRUE(collector_->Harvest(h));
  ASSERT_TRUE(h.libvirt.has_value());
  ASSERT_EQ(h.libvirt->domains.size(), 1u);
  EXPECT_EQ(h.libvirt->domains[0].state, DomainState::kPaused);
  EXPECT_FALSE(h.libvirt->domains[0].agent_attempted);
}

// A routine sample is handed out by Harvest without listing the domains
// again; each sample once; nothing new gives an empty harvest.
TEST_F(LibvirtSchedulerTest, HarvestHandsOutNewsWithoutListing) {
  Make();
  SetDomains({Dom("a"), Dom("b")});
  Collect();
  ASSERT_TRUE(Idle());
  EXPECT_EQ(api_->Lists(), 1);
  Observations h;
  ASSERT_TRUE(collector_->Harvest(h));
  ASSERT_TRUE(h.libvirt.has_value());
  EXPECT_TRUE(h.libvirt->partial);
  ASSERT_EQ(h.libvirt->domains.size(), 2u);
  for (const auto& d : h.libvirt->domains) {
    EXPECT_TRUE(d.sample.has_value()) << d.name;
    EXPECT_TRUE(d.agent_attempted);
  }
  EXPECT_EQ(api_->Lists(), 1);  // no RPC
  Observations again;
  ASSERT_TRUE(collector_->Harvest(again));
  EXPECT_FALSE(again.libvirt.has_value());
  auto m = Collect();  // already handed out
  EXPECT_FALSE(m["a"].sample.has_value());
}

// The poller publishes a routine sample without waiting for the next
// libvirt run: the scheduler's wakeup rings the poller, which harvests (no
// list) and publishes. The interval is an hour, so only the harvest can
// bring the sample; the waits are bounded and nothing is timed.
TEST_F(LibvirtSchedulerTest, PollerPublishesRoutineSampleWithoutWaitingForTheInterval) {
  Make();
  SetDomains({Dom("a"), Dom("b")});
  Store store{Config{}};
  SnapshotHolder holder;
  Poller poller(clock_, store, [&](auto snap) { holder.Set(snap); });
  CollectorConfig cc;
  cc.interval_s = 3600;
  cc.timeout_s = 5;
  std::shared_ptr<LibvirtCollector> shared(collector_.get(), [](LibvirtCollector*) {});
  poller.Configure({{shared, cc}});
  poller.Start(/*threaded=*/true);
  // The FakeClock moves 50 ms per look so harvests (at most one per
  // Poller::kHarvestGapNs of host time) are not held back; the hour-long
  // interval is far away.
  auto sampled = [&] {
    clock_.Advance(50'000'000);
    auto snap = holder.Get();
    int n = 0;
    for (const auto& v : snap->vms) n += v.last_sample.has_value() ? 1 : 0;
    return n == 2;
  };
  ASSERT_TRUE(Eventually(sampled));
  EXPECT_EQ(api_->Lists(), 1);  // the first run listed; the samples came by harvest
  EXPECT_GE(poller.publishes(), 2u);
  const auto snap = holder.Get();  // held: a range-for would drop the temporary
  for (const auto& v : snap->vms) {
    EXPECT_TRUE(v.agent_attempted) << v.name;
    EXPECT_TRUE(v.agent_up) << v.name;
  }
  // An event's sample takes the same path.
  api_->SetBehavior("uuid-a", {.offset_ns = -7 * kNsPerSecond});
  api_->Fire("uuid-a", "a", DomainEvent::kResumed);
  auto behind = [&] {
    clock_.Advance(50'000'000);
    const auto snap = holder.Get();
    for (const auto& v : snap->vms) {
      if (v.name == "a" && v.last_sample && v.last_sample->offset_s < -6.9) {
        return v.last_sample->after_interruption;
      }
    }
    return false;
  };
  ASSERT_TRUE(Eventually(behind));
  EXPECT_EQ(api_->Lists(), 1);
  poller.Stop();
}

// Destroying the collector while a guest call hangs is bounded; the call,
// when it returns later, touches nothing of the destroyed scheduler.
TEST_F(LibvirtSchedulerTest, DestroyWithHungCallLeavesItBehind) {
  Make(/*concurrency=*/1);
  SetDomains({Dom("hung")});
  api_->SetBehavior("uuid-hung", {.hang = true});
  Collect();
  ASSERT_TRUE(api_->WaitCalls("uuid-hung", 1));
  collector_.reset();  // grace period, then the blocked worker is left behind
  api_->Release("uuid-hung");
  // The fake API (co-owned by the late job) is released once it is done.
  ASSERT_TRUE(Eventually([&] { return api_.use_count() == 1; }));
}

}  // namespace
}  // namespace vmtime::libvirt
