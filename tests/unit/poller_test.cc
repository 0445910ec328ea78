// Poller and Schedule with a FakeClock: cadence, retries with backoff,
// deadlines, wakeups. No sleeps decide any outcome: the fake clock is moved
// by hand and RunOnce() is called directly; the only waits are for worker
// threads to finish jobs the test released (bounded by WaitIdle).
#include "exporter/poller/poller.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "exporter/exposition/snapshot_holder.h"
#include "exporter/poller/schedule.h"

namespace vmtime {
namespace {

constexpr int64_t kS = 1'000'000'000;

CollectorConfig Cfg(double interval, double timeout, int retries, double backoff) {
  CollectorConfig c;
  c.interval_s = interval;
  c.timeout_s = timeout;
  c.max_retries = retries;
  c.retry_backoff_s = backoff;
  return c;
}

TEST(Schedule, RunsOnCadenceAndSkipsMissedSlots) {
  Schedule s(Cfg(15, 5, 0, 1), 100 * kS);
  EXPECT_TRUE(s.Due(100 * kS));
  s.Start(100 * kS);
  EXPECT_FALSE(s.Due(200 * kS));  // in flight
  EXPECT_TRUE(s.Finish(101 * kS, true));
  EXPECT_EQ(s.next_due(), 115 * kS);
  // Started late (at 147 s): the missed slots 115..145 are skipped.
  s.Start(147 * kS);
  EXPECT_TRUE(s.Finish(148 * kS, true));
  EXPECT_EQ(s.next_due(), 160 * kS);
}

TEST(Schedule, RetriesWithDoublingBackoffThenWaitsForCadence) {
  Schedule s(Cfg(60, 5, 3, 1), 0);
  s.Start(0);
  s.Finish(1 * kS, false);
  EXPECT_EQ(s.next_due(), 2 * kS);  // +1 s
  s.Start(2 * kS);
  s.Finish(2 * kS, false);
  EXPECT_EQ(s.next_due(), 4 * kS);  // +2 s
  s.Start(4 * kS);
  s.Finish(4 * kS, false);
  EXPECT_EQ(s.next_due(), 8 * kS);  // +4 s
  s.Start(8 * kS);
  s.Finish(8 * kS, false);  // retries spent
  EXPECT_EQ(s.next_due(), 60 * kS);
  s.Start(60 * kS);
  s.Finish(60 * kS, false);  // a new round retries again
  EXPECT_EQ(s.next_due(), 61 * kS);
}

TEST(Schedule, RetryNeverLaterThanNextRegularRun) {
  Schedule s(Cfg(10, 5, 5, 8), 0);
  s.Start(0);
  s.Finish(1 * kS, false);
  EXPECT_EQ(s.next_due(), 9 * kS);
  s.Start(9 * kS);
  s.Finish(9 * kS, false);
  EXPECT_EQ(s.next_due(), 10 * kS);  // 9 + 16 capped at the cadence
}

TEST(Schedule, DeadlineReportedOnceAndNoRestartUntilReturn) {
  Schedule s(Cfg(15, 5, 2, 1), 0);
  s.Start(0);
  EXPECT_FALSE(s.Overdue(4 * kS));
  EXPECT_TRUE(s.Overdue(5 * kS));
  s.MarkOverdueReported();
  EXPECT_FALSE(s.Overdue(6 * kS));
  EXPECT_FALSE(s.Due(100 * kS));           // still in flight: never started twice
  EXPECT_FALSE(s.Finish(100 * kS, true));  // late result is discarded
  EXPECT_TRUE(s.Due(100 * kS));
}

// A collector whose runs block until the test releases them.
class GatedCollector final : public Collector {
 public:
  explicit GatedCollector(std::string name) : name_(std::move(name)) {}
  std::string_view Name() const override { return name_; }
  Status Collect(const CollectContext& ctx, Observations& out) override {
    std::unique_lock lock(mu_);
    ++started_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_ > finished_ || ctx.stop.stop_requested(); });
    ++finished_;
    if (fail_) return Error{"gated failure"};
    TimexObservation t;
    t.offset_s = static_cast<double>(finished_);
    out.timex = t;
    return Status::Ok();
  }
  void Release() {
    std::lock_guard lock(mu_);
    ++released_;
    cv_.notify_all();
  }
  bool WaitStarted(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return started_ >= n; });
  }
  int started() {
    std::lock_guard lock(mu_);
    return started_;
  }
  void set_fail(bool f) {
    std::lock_guard lock(mu_);
    fail_ = f;
  }

 private:
  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  int started_ = 0;
  int released_ = 0;
  int finished_ = 0;
  bool fail_ = false;
};

class PollerTest : public testing::Test {
 protected:
  PollerTest() : store_(Config{}), poller_(clock_, store_, [this](auto s) { holder_.Set(s); }) {}
  ~PollerTest() override { poller_.Stop(); }

  const CollectorStatus* Status(const std::string& name) {
    snap_ = holder_.Get();
    for (const auto& c : snap_->collectors) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }

  FakeClock clock_;
  Store store_;
  SnapshotHolder holder_;
  Poller poller_;
  std::shared_ptr<const Snapshot> snap_;
};

TEST_F(PollerTest, HungCollectorIsReportedAtDeadlineAndOthersKeepRunning) {
  auto hung = std::make_shared<GatedCollector>("libvirt");
  auto fast = std::make_shared<GatedCollector>("timex");
  poller_.Configure({{hung, Cfg(15, 5, 0, 1)}, {fast, Cfg(15, 5, 0, 1)}});
  poller_.Start(/*threaded=*/false);
  poller_.RunOnce();
  ASSERT_TRUE(hung->WaitStarted(1));
  ASSERT_TRUE(fast->WaitStarted(1));
  fast->Release();
  // Let the fast job finish (it is released, so this wait is bounded).
  for (int i = 0; i < 1000 && !Status("timex"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_NE(Status("timex"), nullptr);
  EXPECT_TRUE(Status("timex")->success);
  EXPECT_EQ(Status("libvirt"), nullptr);

  clock_.AdvanceSeconds(5);  // the hung run reaches its deadline
  poller_.RunOnce();
  ASSERT_NE(Status("libvirt"), nullptr);
  EXPECT_FALSE(Status("libvirt")->success);
  EXPECT_EQ(Status("libvirt")->error, "deadline exceeded");

  clock_.AdvanceSeconds(10);  // next cadence: timex runs again, libvirt is not restarted
  poller_.RunOnce();
  ASSERT_TRUE(fast->WaitStarted(2));
  EXPECT_EQ(hung->started(), 1);
  fast->Release();
  hung->Release();
  ASSERT_TRUE(poller_.WaitIdle(10000));
  // The late result of the hung run was discarded: still reported failed.
  EXPECT_FALSE(Status("libvirt")->success);
  clock_.AdvanceSeconds(15);
  poller_.RunOnce();
  ASSERT_TRUE(hung->WaitStarted(2));  // restarted after it returned
  hung->Release();
  fast->Release();
  ASSERT_TRUE(poller_.WaitIdle(10000));
}

TEST_F(PollerTest, FailureRetriesAfterBackoffAndWakeRunsOutOfTurn) {
  auto c = std::make_shared<GatedCollector>("timex");
  c->set_fail(true);
  poller_.Configure({{c, Cfg(60, 5, 1, 2)}});
  poller_.Start(false);
  poller_.RunOnce();
  ASSERT_TRUE(c->WaitStarted(1));
  c->Release();
  ASSERT_TRUE(poller_.WaitIdle(10000));
  EXPECT_FALSE(Status("timex")->success);
  EXPECT_EQ(Status("timex")->error, "gated failure");
  clock_.AdvanceSeconds(1);
  poller_.RunOnce();
  EXPECT_EQ(c->started(), 1);  // backoff is 2 s
  clock_.AdvanceSeconds(1);
  c->set_fail(false);
  poller_.RunOnce();
  ASSERT_TRUE(c->WaitStarted(2));
  c->Release();
  ASSERT_TRUE(poller_.WaitIdle(10000));
  EXPECT_TRUE(Status("timex")->success);
  // Next regular run is at 60 s; a wakeup runs it now.
  clock_.AdvanceSeconds(1);
  poller_.RunOnce();
  EXPECT_EQ(c->started(), 2);
  poller_.Wake("timex");
  poller_.RunOnce();
  ASSERT_TRUE(c->WaitStarted(3));
  c->Release();
  ASSERT_TRUE(poller_.WaitIdle(10000));
  EXPECT_TRUE(poller_.FirstRoundDone());
}

TEST_F(PollerTest, ReconfigureKeepsTheRunningInstance) {
  auto a = std::make_shared<GatedCollector>("timex");
  poller_.Configure({{a, Cfg(15, 5, 0, 1)}});
  poller_.Start(false);
  poller_.RunOnce();
  ASSERT_TRUE(a->WaitStarted(1));
  a->Release();
  ASSERT_TRUE(poller_.WaitIdle(10000));
  // The same instance keeps its slot: not due again before its next run at 15 s.
  poller_.Configure({{a, Cfg(30, 5, 0, 1)}});
  poller_.RunOnce();
  EXPECT_EQ(a->started(), 1);
  clock_.AdvanceSeconds(15);
  poller_.RunOnce();
  ASSERT_TRUE(a->WaitStarted(2));
  a->Release();
  ASSERT_TRUE(poller_.WaitIdle(10000));
  auto b = std::make_shared<GatedCollector>("timex");
  poller_.Configure({{b, Cfg(30, 5, 0, 1)}});  // another instance: `b` replaces `a`, runs now
  poller_.RunOnce();
  ASSERT_TRUE(b->WaitStarted(1));
  EXPECT_EQ(a->started(), 2);
  b->Release();
  ASSERT_TRUE(poller_.WaitIdle(10000));
}

// A collector with a harvest path: Collect() blocks until released (like
// GatedCollector); Harvest() hands out what the test put aside, without I/O.
class HarvestingCollector final : public Collector {
 public:
  std::string_view Name() const override { return "libvirt"; }
  Status Collect(const CollectContext& ctx, Observations& out) override {
    std::unique_lock lock(mu_);
    ++started_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_ > finished_ || ctx.stop.stop_requested(); });
    ++finished_;
    out.libvirt = LibvirtObservation{};
    return Status::Ok();
  }
  bool Harvest(Observations& out) override {
    std::lock_guard lock(mu_);
    ++harvests_;
    if (pending_ == 0) return true;  // nothing new
    LibvirtObservation lv;
    lv.partial = true;
    DomainObservation d;
    d.name = "vm";
    d.uuid = "uuid-vm";
    d.state = DomainState::kRunning;
    d.agent_up = true;
    d.agent_attempted = true;
    scoring::ClockSample sample;
    sample.host_mono_ns = ++sample_mono_;
    d.sample = sample;
    lv.domains.push_back(d);
    out.libvirt = lv;
    pending_ = 0;
    return true;
  }
  void SetWakeup(std::function<void()> wake) override {
    std::lock_guard lock(mu_);
    wake_ = std::move(wake);
  }
  // A sample arrived: ring the poller as the libvirt scheduler does.
  void NewSample() {
    std::function<void()> wake;
    {
      std::lock_guard lock(mu_);
      ++pending_;
      wake = wake_;
    }
    if (wake) wake();
  }
  void Release() {
    std::lock_guard lock(mu_);
    ++released_;
    cv_.notify_all();
  }
  bool WaitStarted(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return started_ >= n; });
  }
  int harvests() {
    std::lock_guard lock(mu_);
    return harvests_;
  }
  int started() {
    std::lock_guard lock(mu_);
    return started_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> wake_;
  int started_ = 0;
  int released_ = 0;
  int finished_ = 0;
  int harvests_ = 0;
  int pending_ = 0;
  int64_t sample_mono_ = 0;
};

TEST_F(PollerTest, WakeupHarvestsAndPublishesWithoutARunCoalesced) {
  auto c = std::make_shared<HarvestingCollector>();
  poller_.Configure({{c, Cfg(60, 5, 0, 1)}});
  poller_.Start(false);
  poller_.RunOnce();
  ASSERT_TRUE(c->WaitStarted(1));
  c->Release();
  ASSERT_TRUE(poller_.WaitIdle(10000));
  const uint64_t after_run = poller_.publishes();

  // A sample between runs: the next pass harvests and publishes it.
  c->NewSample();
  poller_.RunOnce();
  EXPECT_EQ(c->harvests(), 1);
  EXPECT_EQ(poller_.publishes(), after_run + 1);
  EXPECT_EQ(c->started(), 1);  // no run for it
  ASSERT_EQ(holder_.Get()->vms.size(), 1u);
  EXPECT_TRUE(holder_.Get()->vms[0].last_sample.has_value());

  // More samples within the gap wait for it: one harvest, one publish.
  c->NewSample();
  c->NewSample();
  const int64_t next = poller_.RunOnce();
  EXPECT_EQ(c->harvests(), 1);
  EXPECT_EQ(next, clock_.MonotonicNs() + Poller::kHarvestGapNs);
  clock_.Advance(Poller::kHarvestGapNs);
  poller_.RunOnce();
  EXPECT_EQ(c->harvests(), 2);
  EXPECT_EQ(poller_.publishes(), after_run + 2);
  poller_.RunOnce();  // nothing rang: no harvest, no publish
  EXPECT_EQ(c->harvests(), 2);
  EXPECT_EQ(poller_.publishes(), after_run + 2);

  // A wakeup with nothing new harvests but publishes nothing.
  clock_.Advance(Poller::kHarvestGapNs);
  poller_.Wake("libvirt");
  poller_.RunOnce();
  EXPECT_EQ(c->harvests(), 3);
  EXPECT_EQ(poller_.publishes(), after_run + 2);
}

TEST(PollerHarvestGapTest, ScalesWithWhatAPublishCosts) {
  constexpr int64_t k60s = 60'000'000'000;
  EXPECT_EQ(Poller::HarvestGapNs(0, k60s), Poller::kHarvestGapNs);
  EXPECT_EQ(Poller::HarvestGapNs(1'000'000, k60s), Poller::kHarvestGapNs);  // 1 ms: the floor
  EXPECT_EQ(Poller::HarvestGapNs(40'000'000, k60s), 40'000'000 * Poller::kPublishCostFactor);
  EXPECT_EQ(Poller::HarvestGapNs(5'000'000'000, k60s), Poller::kMaxHarvestGapNs);
  EXPECT_EQ(Poller::HarvestGapNs(INT64_MAX, k60s), Poller::kMaxHarvestGapNs);  // no overflow
  EXPECT_EQ(Poller::HarvestGapNs(-1, k60s), Poller::kHarvestGapNs);
}

TEST(PollerHarvestGapTest, NeverMoreThanAnEighthOfTheInterval) {
  // A 15 s interval: at most 1.875 s, whatever a publish cost.
  EXPECT_EQ(Poller::HarvestGapNs(1'000'000'000, 15'000'000'000), 1'875'000'000);
  EXPECT_EQ(Poller::HarvestGapNs(40'000'000, 15'000'000'000), 800'000'000);
  // A 2 s interval (a starved machine's 100 ms publish included): the floor,
  // so the newest sample of a healthy VM never waits long against the
  // freshness knot of two intervals.
  EXPECT_EQ(Poller::HarvestGapNs(100'000'000, 2'000'000'000), Poller::kHarvestGapNs);
  EXPECT_EQ(Poller::HarvestGapNs(INT64_MAX, 2'000'000'000), Poller::kHarvestGapNs);
  // Intervals shorter than 8 x the floor keep the floor; bad ones too.
  EXPECT_EQ(Poller::HarvestGapNs(1'000'000'000, 1), Poller::kHarvestGapNs);
  EXPECT_EQ(Poller::HarvestGapNs(1'000'000'000, 0), Poller::kHarvestGapNs);
  EXPECT_EQ(Poller::HarvestGapNs(1'000'000'000, -5), Poller::kHarvestGapNs);
  EXPECT_EQ(Poller::HarvestGapNs(1'000'000'000, INT64_MAX), Poller::kMaxHarvestGapNs);
}

// A poller whose every publish takes `cost_ns` of (fake) time, with one
// harvesting collector on `interval_s`, after its first run and a first
// harvest publish; a second sample is waiting. Tests read when the next
// harvest is due.
struct CostlyPublishRig {
  CostlyPublishRig(int64_t cost_ns, double interval_s)
      : cost(cost_ns), poller(clock, store, [this](auto s) {
          holder.Set(s);
          clock.Advance(cost);
        }) {
    poller.Configure({{c, Cfg(interval_s, 1, 0, 1)}});
    poller.Start(false);
    poller.RunOnce();
    EXPECT_TRUE(c->WaitStarted(1));
    c->Release();
    EXPECT_TRUE(poller.WaitIdle(10000));
    c->NewSample();
    poller.RunOnce();  // harvests and publishes (`cost`)
    EXPECT_EQ(c->harvests(), 1);
    c->NewSample();
    harvested_at = clock.MonotonicNs() - cost;
  }
  ~CostlyPublishRig() { poller.Stop(); }

  const int64_t cost;
  FakeClock clock;
  Store store{Config{}};
  SnapshotHolder holder;
  Poller poller;
  std::shared_ptr<HarvestingCollector> c = std::make_shared<HarvestingCollector>();
  int64_t harvested_at = 0;
};

TEST(PollerHarvestGapTest, ACostlyPublishWidensTheGapBeforeTheNextHarvest) {
  // Each publish takes 40 ms, as Store::Build does at a large fleet:
  // harvest publishes then come 800 ms apart, not 250 ms.
  CostlyPublishRig r(40'000'000, 60);
  const int64_t next = r.poller.RunOnce();
  EXPECT_EQ(r.c->harvests(), 1);
  EXPECT_EQ(next, r.harvested_at + r.cost * Poller::kPublishCostFactor);
  r.clock.Advance(next - r.clock.MonotonicNs() - 1);
  r.poller.RunOnce();
  EXPECT_EQ(r.c->harvests(), 1);  // 1 ns early
  r.clock.Advance(1);
  r.poller.RunOnce();
  EXPECT_EQ(r.c->harvests(), 2);
}

TEST(PollerHarvestGapTest, AShortIntervalKeepsTheGapShortHoweverSlowThePublish) {
  // Publishes of 100 ms (a starved machine) at a 2 s interval: the next
  // harvest still comes 250 ms later, not 2 s, so a sample does not sit
  // unpublished long enough to push a healthy VM past the freshness knot.
  CostlyPublishRig r(100'000'000, 2);
  EXPECT_EQ(r.poller.RunOnce(), r.harvested_at + Poller::kHarvestGapNs);
}

TEST_F(PollerTest, HarvestWaitsForARunInFlight) {
  auto c = std::make_shared<HarvestingCollector>();
  poller_.Configure({{c, Cfg(60, 5, 0, 1)}});
  poller_.Start(false);
  poller_.RunOnce();
  ASSERT_TRUE(c->WaitStarted(1));  // in flight, blocked
  c->NewSample();
  poller_.RunOnce();
  EXPECT_EQ(c->harvests(), 0);  // the run hands out everything itself
  c->Release();
  ASSERT_TRUE(poller_.WaitIdle(10000));
  poller_.RunOnce();
  EXPECT_EQ(c->harvests(), 1);
}

// A collector stuck in a call that ignores the stop token (a hung libvirt
// call). Shared state lives in a shared_ptr so it outlives the poller.
struct StuckState {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false;
  bool released = false;
  bool returned = false;
};
class StuckCollector final : public Collector {
 public:
  explicit StuckCollector(std::shared_ptr<StuckState> st) : st_(std::move(st)) {}
  std::string_view Name() const override { return "libvirt"; }
  Status Collect(const CollectContext&, Observations& out) override {
    std::unique_lock lock(st_->mu);
    st_->entered = true;
    st_->cv.notify_all();
    st_->cv.wait(lock, [&] { return st_->released; });
    st_->returned = true;
    st_->cv.notify_all();
    out.timex = TimexObservation{};
    return Status::Ok();
  }

 private:
  std::shared_ptr<StuckState> st_;
};

// A collector whose destructor blocks until released, like a real one
// waiting for its pool's grace period with calls stuck in libvirt.
struct DestructorLatch {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false;
  bool released = false;
};

class SlowToDestroyCollector final : public Collector {
 public:
  explicit SlowToDestroyCollector(std::shared_ptr<DestructorLatch> latch)
      : latch_(std::move(latch)) {}
  ~SlowToDestroyCollector() override {
    std::unique_lock lock(latch_->mu);
    latch_->entered = true;
    latch_->cv.notify_all();
    latch_->cv.wait(lock, [&] { return latch_->released; });
  }
  std::string_view Name() const override { return "libvirt"; }
  Status Collect(const CollectContext&, Observations& out) override {
    out.libvirt = LibvirtObservation{};
    return Status::Ok();
  }

 private:
  std::shared_ptr<DestructorLatch> latch_;
};

// Reload replaces a collector whose destructor blocks: the poller's lock is
// free meanwhile, so the readiness query (/readyz), the names and a
// scheduling pass all answer; the destructor runs where the caller drops
// the collectors Configure handed back.
TEST_F(PollerTest, ReplacedCollectorIsDestroyedOutsideThePollersLock) {
  auto latch = std::make_shared<DestructorLatch>();
  auto old_one = std::make_shared<SlowToDestroyCollector>(latch);
  poller_.Configure({{old_one, Cfg(15, 5, 0, 1)}});
  poller_.Start(false);
  poller_.RunOnce();
  ASSERT_TRUE(poller_.WaitIdle(10000));
  EXPECT_TRUE(poller_.FirstRoundDone());
  old_one.reset();  // the poller holds the last reference now

  auto next = std::make_shared<GatedCollector>("libvirt");
  std::thread reload([&] {
    auto retired = poller_.Configure({{next, Cfg(15, 5, 0, 1)}});
    EXPECT_EQ(retired.size(), 1u);
    retired.clear();  // runs the blocking destructor, after Configure returned
  });
  {
    std::unique_lock lock(latch->mu);
    ASSERT_TRUE(latch->cv.wait_for(lock, std::chrono::seconds(10), [&] { return latch->entered; }));
  }
  // The destructor is blocked right now. Each query runs on its own thread
  // so that a regression (destruction under the lock) fails instead of
  // hanging the test.
  auto ready = std::async(std::launch::async, [&] { return poller_.FirstRoundDone(); });
  auto names = std::async(std::launch::async, [&] { return poller_.Names(); });
  const bool answered = ready.wait_for(std::chrono::seconds(10)) == std::future_status::ready &&
                        names.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  {
    std::lock_guard lock(latch->mu);
    latch->released = true;
    latch->cv.notify_all();
  }
  reload.join();
  ASSERT_TRUE(answered) << "the poller's queries blocked behind a collector's destructor";
  EXPECT_FALSE(ready.get());  // the new instance has not run yet
  EXPECT_EQ(names.get(), std::vector<std::string>{"libvirt"});
  poller_.RunOnce();
  ASSERT_TRUE(next->WaitStarted(1));
  next->Release();
  ASSERT_TRUE(poller_.WaitIdle(10000));
  EXPECT_TRUE(poller_.FirstRoundDone());
}

// Reload status reaches the published snapshot through PublishNow(), ordered
// with the poller's own publishes: a poller publish that built its snapshot
// before the store learned the new status cannot land after it. The
// publish callback of a harvest is held after its Build, a reload writes
// its status and publishes, then the held one is released: the snapshot
// left published carries the reload status.
TEST(PollerPublishTest, ReloadStatusIsNotOverwrittenByAnOlderSnapshot) {
  FakeClock clock;
  Store store{Config{}};
  SnapshotHolder holder;
  std::mutex mu;
  std::condition_variable cv;
  bool hold_next = false, held = false, release = false;
  Poller poller(clock, store, [&](std::shared_ptr<const Snapshot> s) {
    std::unique_lock lock(mu);
    if (hold_next) {
      hold_next = false;
      held = true;
      cv.notify_all();
      cv.wait(lock, [&] { return release; });
    }
    holder.Set(std::move(s));
  });
  {
    std::lock_guard lock(mu);
    hold_next = true;
  }
  std::thread poller_publish([&] { poller.PublishNow(); });  // e.g. a harvest
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return held; }));
  }
  ReloadStatus rs;
  rs.last_successful = false;
  rs.source = "/etc/vmtime/new.yml";
  store.SetReload(rs);
  std::thread reload_publish([&] { poller.PublishNow(); });
  // Give a regression (a publish that does not wait for the held one) the
  // time to overtake it; the correct outcome does not depend on this pause.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  {
    std::lock_guard lock(mu);
    release = true;
    cv.notify_all();
  }
  poller_publish.join();
  reload_publish.join();
  EXPECT_EQ(holder.Get()->reload.source, "/etc/vmtime/new.yml");
  EXPECT_FALSE(holder.Get()->reload.last_successful);
  EXPECT_EQ(poller.publishes(), 2u);
}

// Stop() is bounded with a run blocked for good, and the run, when it
// finally returns after the poller (and its store) are gone, touches
// neither: it holds only the collector it co-owns.
TEST(PollerShutdownTest, StuckRunIsLeftBehindAndTouchesNothingAfterwards) {
  auto st = std::make_shared<StuckState>();
  auto publishes_after_stop = std::make_shared<std::atomic<int>>(0);
  auto stopped = std::make_shared<std::atomic<bool>>(false);
  {
    FakeClock clock;
    auto store = std::make_unique<Store>(Config{});
    auto poller = std::make_unique<Poller>(clock, *store, [=](auto) {
      if (*stopped) ++*publishes_after_stop;
    });
    poller->Configure({{std::make_shared<StuckCollector>(st), Cfg(15, 5, 0, 1)}});
    poller->Start(/*threaded=*/false);
    poller->RunOnce();
    {
      std::unique_lock lock(st->mu);
      ASSERT_TRUE(st->cv.wait_for(lock, std::chrono::seconds(10), [&] { return st->entered; }));
    }
    poller->Stop();  // grace period, then the blocked worker is left behind
    *stopped = true;
    poller.reset();
    store.reset();
  }
  {
    std::unique_lock lock(st->mu);
    st->released = true;
    st->cv.notify_all();
    ASSERT_TRUE(st->cv.wait_for(lock, std::chrono::seconds(10), [&] { return st->returned; }));
  }
  // The worker leaves right after Collect returns; give it a bounded moment
  // to try (it must find its lease refused and publish nothing).
  for (int i = 0; i < 100 && st.use_count() > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(st.use_count(), 1);  // the job and its collector are gone
  EXPECT_EQ(*publishes_after_stop, 0);
}

}  // namespace
}  // namespace vmtime
