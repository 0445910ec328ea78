// WorkerPool with FakeClock and fake blocking jobs: FIFO with urgent
// front-insert and keys, the deadline watchdog and its stuck budget, leases,
// resizing, and shutdown with jobs still blocked. Deadlines are decided by
// the FakeClock moved by hand and Tick() called by the test; the only real
// waits are bounded waits for worker threads to reach a state.
#include "exporter/core/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vmtime {
namespace {

using std::chrono::milliseconds;
constexpr auto kWait = milliseconds(10'000);  // bound of every wait for a thread
constexpr int64_t kS = 1'000'000'000;

// A latch a fake job blocks on until the test opens it; shared_ptr so a
// detached job never outlives it.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int entered = 0;
  void Block() {
    std::unique_lock lock(mu);
    ++entered;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
  }
  void Open() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  bool WaitEntered(int n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, kWait, [&] { return entered >= n; });
  }
};

// Records the order in which jobs ran.
struct Log {
  std::mutex mu;
  std::vector<std::string> order;
  void Add(const std::string& s) {
    std::lock_guard lock(mu);
    order.push_back(s);
  }
  std::vector<std::string> Get() {
    std::lock_guard lock(mu);
    return order;
  }
};

WorkerPoolOptions Opts(int workers, int max_stuck) {
  WorkerPoolOptions o;
  o.name = "test";
  o.workers = workers;
  o.max_stuck = max_stuck;
  return o;
}

TEST(WorkerPool, FifoWithUrgentFrontInsertAndKeys) {
  FakeClock clock;
  WorkerPool pool(clock, Opts(1, 0));
  auto gate = std::make_shared<Gate>();
  auto log = std::make_shared<Log>();
  pool.Submit([gate](JobContext&) { gate->Block(); });
  ASSERT_TRUE(gate->WaitEntered(1));  // the only worker is busy: the rest queue up
  auto job = [log](std::string s) { return [log, s](JobContext&) { log->Add(s); }; };
  EXPECT_EQ(pool.Submit(job("a")), WorkerPool::Submitted::kQueued);
  EXPECT_EQ(pool.Submit(job("b"), {.key = "b"}), WorkerPool::Submitted::kQueued);
  EXPECT_EQ(pool.Submit(job("c")), WorkerPool::Submitted::kQueued);
  EXPECT_EQ(pool.Submit(job("urgent"), {.urgent = true}), WorkerPool::Submitted::kQueued);
  // The same key again: not queued twice; urgent moves the queued one first.
  EXPECT_EQ(pool.Submit(job("b-again"), {.key = "b"}), WorkerPool::Submitted::kAlreadyQueued);
  EXPECT_EQ(pool.Submit(job("b-again"), {.key = "b", .urgent = true}),
            WorkerPool::Submitted::kAlreadyQueued);
  EXPECT_EQ(pool.stats().queued, 4u);
  gate->Open();
  ASSERT_TRUE(pool.WaitIdle(kWait));
  EXPECT_EQ(log->Get(), (std::vector<std::string>{"b", "urgent", "a", "c"}));
  // Once it has started, the key can be queued again.
  EXPECT_EQ(pool.Submit(job("b2"), {.key = "b"}), WorkerPool::Submitted::kQueued);
  ASSERT_TRUE(pool.WaitIdle(kWait));
}

TEST(WorkerPool, WatchdogAbandonsStuckJobAndStartsReplacement) {
  FakeClock clock;
  WorkerPool pool(clock, Opts(1, 2));
  auto gate = std::make_shared<Gate>();
  auto abandons = std::make_shared<std::atomic<int>>(0);
  auto late = std::make_shared<std::atomic<int>>(-1);  // Disarm()'s answer in the stuck job
  auto leased = std::make_shared<std::atomic<bool>>(false);
  auto saw_abandon_first = std::make_shared<std::atomic<bool>>(false);
  pool.Submit(
      [=](JobContext& ctx) {
        gate->Block();
        *late = ctx.Disarm() ? 1 : 0;
        auto lease = ctx.Enter();  // after on_abandon has finished
        *saw_abandon_first = abandons->load() == 1;
        *leased = static_cast<bool>(lease);
      },
      {.timeout_ns = 5 * kS, .on_abandon = [abandons] { ++*abandons; }});
  ASSERT_TRUE(gate->WaitEntered(1));
  clock.AdvanceSeconds(4.9);
  pool.Tick();
  EXPECT_EQ(pool.stats().stuck, 0);
  EXPECT_EQ(*abandons, 0);
  clock.AdvanceSeconds(0.1);  // exactly at the deadline
  pool.Tick();
  EXPECT_EQ(*abandons, 1);
  auto s = pool.stats();
  EXPECT_EQ(s.stuck, 1);
  EXPECT_EQ(s.live, 1);  // replaced
  EXPECT_EQ(s.busy, 0);
  // The replacement serves others while the stuck one blocks.
  auto ran = std::make_shared<std::atomic<bool>>(false);
  pool.Submit([ran](JobContext&) { *ran = true; });
  ASSERT_TRUE(pool.WaitIdle(kWait));
  EXPECT_TRUE(*ran);
  pool.Tick();  // abandoned only once
  EXPECT_EQ(*abandons, 1);
  // The stuck job returns: it learns it was late, may still lease (the pool
  // is alive), and frees its place in the stuck budget.
  gate->Open();
  for (int i = 0; i < 10'000 && pool.stats().stuck != 0; ++i) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(pool.stats().stuck, 0);
  EXPECT_EQ(*late, 0);
  EXPECT_TRUE(*leased);
  EXPECT_TRUE(*saw_abandon_first);
  EXPECT_EQ(pool.stats().live, 1);
}

TEST(WorkerPool, ArmDeadlineRearmsPerStepAndDisarmEndsWatching) {
  FakeClock clock;
  WorkerPool pool(clock, Opts(1, 1));
  auto step1 = std::make_shared<Gate>();
  auto step2 = std::make_shared<Gate>();
  auto finished_in_time = std::make_shared<std::atomic<int>>(-1);
  pool.Submit([=, &clock](JobContext& ctx) {
    if (!ctx.ArmDeadline(clock.MonotonicNs() + 3 * kS)) return;
    step1->Block();
    if (!ctx.ArmDeadline(clock.MonotonicNs() + 3 * kS)) return;
    step2->Block();
    *finished_in_time = ctx.Disarm() ? 1 : 0;
  });
  ASSERT_TRUE(step1->WaitEntered(1));
  clock.AdvanceSeconds(2);
  pool.Tick();
  step1->Open();
  ASSERT_TRUE(step2->WaitEntered(1));
  clock.AdvanceSeconds(2);  // 4 s into the job, 2 s into step 2: still in time
  pool.Tick();
  EXPECT_EQ(pool.stats().stuck, 0);
  step2->Open();
  ASSERT_TRUE(pool.WaitIdle(kWait));
  EXPECT_EQ(*finished_in_time, 1);
}

TEST(WorkerPool, StuckBudgetLimitsReplacements) {
  FakeClock clock;
  WorkerPool pool(clock, Opts(1, 1));
  auto h1 = std::make_shared<Gate>();
  auto h2 = std::make_shared<Gate>();
  auto ok = std::make_shared<std::atomic<bool>>(false);
  pool.Submit([h1](JobContext&) { h1->Block(); }, {.timeout_ns = kS});
  pool.Submit([h2](JobContext&) { h2->Block(); }, {.timeout_ns = kS});
  pool.Submit([ok](JobContext&) { *ok = true; });
  ASSERT_TRUE(h1->WaitEntered(1));
  clock.AdvanceSeconds(1);
  pool.Tick();  // h1 abandoned; one replacement (budget 1) takes h2
  ASSERT_TRUE(h2->WaitEntered(1));
  clock.AdvanceSeconds(1);
  pool.Tick();  // h2 abandoned; budget spent: no worker left
  auto s = pool.stats();
  EXPECT_EQ(s.stuck, 2);
  EXPECT_EQ(s.live, 0);
  EXPECT_EQ(s.queued, 1u);
  EXPECT_FALSE(*ok);
  h1->Open();  // a stuck job returning frees budget: a worker comes back
  ASSERT_TRUE(pool.WaitIdle(kWait));
  EXPECT_TRUE(*ok);
  h2->Open();
}

// Pools sharing a StuckCounter share one budget: a pool created after
// another was shut down with a call still blocked (a collector re-created by
// a reload) counts that call, and gets its place back when it returns.
TEST(WorkerPool, SharedStuckBudgetOutlivesAPoolAcrossReplacement) {
  FakeClock clock;
  auto shared = std::make_shared<StuckCounter>();
  WorkerPoolOptions o = Opts(1, 1);
  o.shared_stuck = shared;
  auto h1 = std::make_shared<Gate>();
  auto h2 = std::make_shared<Gate>();
  {
    WorkerPool old_pool(clock, o);
    old_pool.Submit([h1](JobContext&) { h1->Block(); }, {.timeout_ns = kS});
    ASSERT_TRUE(h1->WaitEntered(1));
    clock.AdvanceSeconds(1);
    old_pool.Tick();  // abandoned: blocked for good, as far as anyone knows
    EXPECT_EQ(shared->count(), 1);
    old_pool.Shutdown(milliseconds(0));
  }
  EXPECT_EQ(shared->count(), 1);  // the old pool is gone, its stuck call is not
  WorkerPool pool(clock, o);
  auto ok = std::make_shared<std::atomic<bool>>(false);
  pool.Submit([h2](JobContext&) { h2->Block(); }, {.timeout_ns = kS});
  ASSERT_TRUE(h2->WaitEntered(1));
  clock.AdvanceSeconds(1);
  pool.Tick();  // h2 abandoned: with h1 that is 2 > budget 1, no replacement
  pool.Submit([ok](JobContext&) { *ok = true; });
  EXPECT_EQ(shared->count(), 2);
  EXPECT_EQ(pool.stats().stuck, 1);  // its own
  EXPECT_EQ(pool.stats().live, 0);   // a per-pool budget would have replaced it
  EXPECT_FALSE(*ok);
  h1->Open();  // the old pool's call returns: the budget frees up
  for (int i = 0; i < 10'000 && shared->count() != 1; ++i)
    std::this_thread::sleep_for(milliseconds(1));
  EXPECT_EQ(shared->count(), 1);
  pool.Tick();  // the watchdog pass starts the replacement
  ASSERT_TRUE(pool.WaitIdle(kWait));
  EXPECT_TRUE(*ok);
  h2->Open();
  for (int i = 0; i < 10'000 && shared->count() != 0; ++i)
    std::this_thread::sleep_for(milliseconds(1));
  EXPECT_EQ(shared->count(), 0);
}

TEST(WorkerPool, ShutdownIsBoundedAndStuckJobsTouchNothingAfterwards) {
  FakeClock clock;
  auto gate = std::make_shared<Gate>();
  auto after_shutdown = std::make_shared<std::atomic<int>>(-1);  // 1: leased, 0: refused
  auto dropped_ran = std::make_shared<std::atomic<bool>>(false);
  auto stopping = std::make_shared<std::atomic<bool>>(false);
  {
    WorkerPool pool(clock, Opts(1, 1));
    pool.Submit([=](JobContext& ctx) {
      gate->Block();
      auto lease = ctx.Enter();
      *stopping = ctx.stopping();
      *after_shutdown = lease ? 1 : 0;
    });
    ASSERT_TRUE(gate->WaitEntered(1));
    pool.Submit([dropped_ran](JobContext&) { *dropped_ran = true; });
    EXPECT_FALSE(pool.Shutdown(milliseconds(20)));  // the blocked job is left behind
    EXPECT_EQ(pool.Submit([](JobContext&) {}), WorkerPool::Submitted::kRejected);
    EXPECT_FALSE(pool.Shutdown(milliseconds(20)));  // idempotent
  }  // the pool object is gone; the detached thread co-owns the control block
  gate->Open();
  for (int i = 0; i < 10'000 && *after_shutdown < 0; ++i) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(*after_shutdown, 0);  // refused: the owner may be gone
  EXPECT_TRUE(*stopping);
  EXPECT_FALSE(*dropped_ran);  // queued jobs are dropped, never started
}

TEST(WorkerPool, ShutdownWaitsForLeaseHolders) {
  FakeClock clock;
  WorkerPool pool(clock, Opts(1, 0));
  auto in_lease = std::make_shared<Gate>();
  auto done = std::make_shared<std::atomic<bool>>(false);
  pool.Submit([=](JobContext& ctx) {
    auto lease = ctx.Enter();
    if (!lease) return;
    in_lease->Block();  // stands for bookkeeping under the lease
    *done = true;
  });
  ASSERT_TRUE(in_lease->WaitEntered(1));
  bool done_when_returned = false;
  std::thread stopper([&] {
    pool.Shutdown(milliseconds(0));  // grace over at once, but the lease is held
    done_when_returned = *done;
  });
  in_lease->Open();
  stopper.join();
  EXPECT_TRUE(done_when_returned);
}

TEST(WorkerPool, GracefulShutdownJoinsJobsThatFinishInTime) {
  FakeClock clock;
  WorkerPool pool(clock, Opts(2, 0));
  auto gate = std::make_shared<Gate>();
  auto leased = std::make_shared<std::atomic<bool>>(false);
  pool.Submit([=](JobContext& ctx) {
    gate->Block();
    *leased = static_cast<bool>(ctx.Enter());
  });
  ASSERT_TRUE(gate->WaitEntered(1));
  std::thread opener([gate] { gate->Open(); });
  EXPECT_TRUE(pool.Shutdown(kWait));  // the job returns within the grace period
  opener.join();
  EXPECT_TRUE(*leased);  // still allowed during the grace period
}

TEST(WorkerPool, SetSizeGrowsAndShrinks) {
  FakeClock clock;
  WorkerPool pool(clock, Opts(1, 0));
  EXPECT_EQ(pool.stats().live, 1);
  pool.SetSize(3, 1);
  EXPECT_EQ(pool.stats().live, 3);
  auto gate = std::make_shared<Gate>();
  for (int i = 0; i < 3; ++i) pool.Submit([gate](JobContext&) { gate->Block(); });
  ASSERT_TRUE(gate->WaitEntered(3));  // three run at once
  pool.SetSize(1, 0);
  EXPECT_EQ(pool.stats().live, 1);
  gate->Open();
  ASSERT_TRUE(pool.WaitIdle(kWait));
  pool.Tick();  // reaps the retired threads
  EXPECT_EQ(pool.stats().live, 1);
}

TEST(WorkerPool, ThrowingJobDoesNotKillItsWorker) {
  FakeClock clock;
  WorkerPool pool(clock, Opts(1, 0));
  pool.Submit([](JobContext&) { throw std::runtime_error("boom"); });
  auto ran = std::make_shared<std::atomic<bool>>(false);
  pool.Submit([ran](JobContext&) { *ran = true; });
  ASSERT_TRUE(pool.WaitIdle(kWait));
  EXPECT_TRUE(*ran);
  EXPECT_EQ(pool.stats().live, 1);
}

TEST(WorkerPool, BackgroundWatchdogRunsTickAndOnTick) {
  FakeClock clock;
  auto ticks = std::make_shared<std::atomic<int>>(0);
  auto abandoned = std::make_shared<std::atomic<bool>>(false);
  WorkerPoolOptions o = Opts(1, 1);
  o.watchdog_period = milliseconds(5);
  o.on_tick = [ticks] { ++*ticks; };
  WorkerPool pool(clock, o);
  auto gate = std::make_shared<Gate>();
  pool.Submit([gate](JobContext&) { gate->Block(); },
              {.timeout_ns = kS, .on_abandon = [abandoned] { *abandoned = true; }});
  ASSERT_TRUE(gate->WaitEntered(1));
  clock.AdvanceSeconds(1);
  for (int i = 0; i < 10'000 && !(*abandoned && *ticks > 0); ++i) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_TRUE(*abandoned);
  EXPECT_GT(*ticks, 0);
  gate->Open();
}

}  // namespace
}  // namespace vmtime
