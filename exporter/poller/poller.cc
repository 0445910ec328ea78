// See poller.h.
#include "exporter/poller/poller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <set>

namespace vmtime {

// Where wakeups land: a leaf lock and a condition variable the scheduler
// thread waits on. Collectors hold it through their callbacks, so a late
// wakeup after the Poller is gone rings a bell nobody listens to.
struct Poller::Doorbell {
  std::mutex mu;
  std::condition_variable cv;
  bool rung = false;
  std::set<std::string> names;

  void Ring(const std::string& name) {
    {
      std::lock_guard lock(mu);
      names.insert(name);
      rung = true;
    }
    cv.notify_all();
  }
  void Ring() {
    {
      std::lock_guard lock(mu);
      rung = true;
    }
    cv.notify_all();
  }
  std::set<std::string> Take() {
    std::lock_guard lock(mu);
    rung = false;
    return std::exchange(names, {});
  }
  void Wait(int64_t ns) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::nanoseconds(ns), [&] { return rung; });
  }
};

namespace {

// The body of one collector run on a pool worker. Touches only what it
// co-owns (the collector, the stop token) and the Clock until it holds a
// lease; `finish` is called under the lease.
template <typename Finish>
void RunCollector(JobContext& ctx, const Clock& clock, Collector& collector, int64_t deadline,
                  std::stop_token stop, Finish finish) {
  ctx.ArmDeadline(deadline);
  const int64_t started = clock.MonotonicNs();
  Observations obs;
  bool ok = false;
  std::string error;
  try {
    CollectContext cc{clock, deadline, std::move(stop)};
    Status st = collector.Collect(cc, obs);
    ok = st.ok();
    if (!ok) error = st.message();
  } catch (const std::exception& e) {
    error = std::string("unexpected exception: ") + e.what();
  } catch (...) {
    error = "unexpected exception";
  }
  ctx.Disarm();  // a late run was reported by ReportOverdue; Finish discards it
  auto lease = ctx.Enter();
  if (!lease) return;  // the poller stopped: touch nothing of it
  finish(ok, error, started, std::move(obs));
}

bool HasData(const Observations& o) {
  return o.timex || o.chrony || o.ntp || o.libvirt || o.guest_status;
}

}  // namespace

Poller::Poller(const Clock& clock, Store& store, Publish publish)
    : clock_(clock),
      store_(store),
      publish_(std::move(publish)),
      doorbell_(std::make_shared<Doorbell>()) {}

Poller::~Poller() { Stop(); }

std::vector<std::shared_ptr<Collector>> Poller::Configure(std::vector<PollerEntry> entries) {
  // Replaced collectors leave the slot table under the lock and are handed
  // to the caller: the last reference runs the collector's destructor, which
  // shuts its own pool down and may wait on libvirt, so it must never run
  // under mu_ (the HTTP readiness check and every publish take it).
  std::map<std::string, Slot> replaced;
  {
    std::lock_guard lock(mu_);
    const int64_t now = clock_.MonotonicNs();
    std::map<std::string, Slot> next;
    for (auto& e : entries) {
      const std::string name(e.collector->Name());
      auto it = slots_.find(name);
      if (it != slots_.end() && it->second.collector == e.collector) {
        Slot slot = std::move(it->second);
        slot.schedule.SetConfig(e.config);
        next.emplace(name, std::move(slot));
      } else {
        Slot slot{e.collector, Schedule(e.config, now), false, next_generation_++, {}, false};
        if (it != slots_.end() && it->second.schedule.in_flight()) {
          // The old instance is still running: the new one starts when it returns.
          slot.schedule.Start(now);
          slot.schedule.MarkOverdueReported();
        }
        slot.collector->SetWakeup([bell = doorbell_, name] { bell->Ring(name); });
        next.emplace(name, std::move(slot));
      }
    }
    replaced.swap(slots_);
    slots_ = std::move(next);
    ResizePoolLocked();
  }
  doorbell_->Ring();
  std::vector<std::shared_ptr<Collector>> retired;
  for (auto& [name, slot] : replaced) {
    if (slot.collector) retired.push_back(std::move(slot.collector));  // kept ones were moved out
  }
  entries.clear();  // the new table's references: the slots hold their own
  return retired;
}

void Poller::PublishNow() {
  std::lock_guard lock(mu_);
  PublishLocked();
}

void Poller::ResizePoolLocked() {
  if (!pool_) return;
  // One worker per collector (a collector never has two runs in flight);
  // each may leave one stuck run behind.
  const int n = std::max<int>(1, static_cast<int>(slots_.size()));
  pool_->SetSize(n, n);
}

void Poller::Start(bool threaded) {
  {
    std::lock_guard lock(mu_);
    if (started_) return;
    started_ = true;
    stop_ = std::stop_source();
    WorkerPoolOptions o;
    o.name = "poller";
    o.workers = std::max<int>(1, static_cast<int>(slots_.size()));
    o.max_stuck = o.workers;
    o.watchdog_period = std::chrono::milliseconds(0);  // RunOnce drives the watchdog
    pool_ = std::make_unique<WorkerPool>(clock_, o);
  }
  if (threaded) scheduler_ = std::thread([this] { SchedulerLoop(); });
}

void Poller::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!started_) return;
    started_ = false;
    stop_.request_stop();
  }
  doorbell_->Ring();
  if (scheduler_.joinable()) scheduler_.join();
  std::unique_ptr<WorkerPool> pool;
  {
    std::lock_guard lock(mu_);
    pool = std::move(pool_);
  }
  // Collectors see the stop token and return; one blocked in a call it
  // cannot interrupt is left behind after the grace period.
  if (pool) pool->Shutdown(kStopGrace);
}

void Poller::Wake(const std::string& name) { doorbell_->Ring(name); }

void Poller::SubmitLocked(const std::string& name, Slot& slot, int64_t now) {
  slot.schedule.Start(now);
  std::shared_ptr<Collector> collector = slot.collector;
  const uint64_t generation = slot.generation;
  const int64_t deadline = slot.schedule.deadline();
  const Clock& clock = clock_;
  JobOptions options;
  options.on_abandon = [this, name, generation] { ReportOverdue(name, generation); };
  auto job = [this, &clock, name, collector, generation, deadline,
              stop = stop_.get_token()](JobContext& ctx) {
    RunCollector(ctx, clock, *collector, deadline, stop,
                 [&](bool ok, const std::string& error, int64_t started, Observations obs) {
                   Finish(name, generation, ok, error, started, std::move(obs));
                 });
  };
  if (pool_->Submit(std::move(job), std::move(options)) == WorkerPool::Submitted::kRejected) {
    slot.schedule.Finish(now, false);  // stopping
    idle_cv_.notify_all();
  }
}

void Poller::HarvestLocked(const std::string& name, Slot& slot, int64_t now) {
  Observations obs;
  bool supported = false;
  try {
    supported = slot.collector->Harvest(obs);
  } catch (const std::exception& e) {
    spdlog::warn("collector {}: harvest failed: {}", name, e.what());
  } catch (...) {
    spdlog::warn("collector {}: harvest failed", name);
  }
  slot.harvest_pending = false;
  if (!supported) {
    slot.schedule.WakeNow(now);  // no harvest path: run it out of turn
    return;
  }
  next_harvest_mono_ns_ = now + HarvestGapNs(last_publish_cost_ns_, slot.schedule.interval_ns());
  if (!HasData(obs)) return;
  store_.Apply(obs);
  PublishLocked();
}

int64_t Poller::RunOnce() {
  {
    std::lock_guard lock(mu_);
    if (!pool_) return Schedule::kNever;
  }
  // The watchdog first: it calls ReportOverdue for runs past their deadline.
  // (pool_ changes only in Start/Stop, which do not run concurrently with
  // the scheduler thread or a test driving RunOnce.)
  pool_->Tick();
  const std::set<std::string> rung = doorbell_->Take();
  std::lock_guard lock(mu_);
  const int64_t now = clock_.MonotonicNs();
  for (const auto& name : rung) {
    if (auto it = slots_.find(name); it != slots_.end()) it->second.harvest_pending = true;
  }
  bool harvest_waiting = false;
  for (auto& [name, slot] : slots_) {
    if (!slot.harvest_pending) continue;
    // A run in flight hands out everything itself; harvest after it.
    if (slot.schedule.in_flight()) continue;
    if (now < next_harvest_mono_ns_) {
      harvest_waiting = true;
      continue;
    }
    HarvestLocked(name, slot, now);
  }
  for (auto& [name, slot] : slots_) {
    if (slot.schedule.Due(now)) SubmitLocked(name, slot, now);
  }
  int64_t next = harvest_waiting ? next_harvest_mono_ns_ : Schedule::kNever;
  for (const auto& [name, slot] : slots_) next = std::min(next, slot.schedule.NextEvent());
  return next;
}

void Poller::ReportOverdue(const std::string& name, uint64_t generation) {
  std::lock_guard lock(mu_);
  auto it = slots_.find(name);
  if (it == slots_.end() || it->second.generation != generation) return;
  Slot& slot = it->second;
  if (!slot.schedule.in_flight()) return;
  slot.schedule.MarkOverdueReported();
  spdlog::warn(
      "collector {}: deadline exceeded; the run is abandoned and the collector is not started "
      "again until it returns",
      name);
  CollectorStatus st;
  st.name = name;
  st.success = false;
  st.error = "deadline exceeded";
  st.last_run_real_ns = clock_.RealtimeNs();
  store_.RecordRun(st);
  store_.MarkFailed(name);
  slot.ran_once = true;
  PublishLocked();
}

void Poller::Finish(const std::string& name, uint64_t generation, bool ok, const std::string& error,
                    int64_t started_mono, Observations obs) {
  std::lock_guard lock(mu_);
  doorbell_->Ring();  // the schedule changes: let the scheduler look again
  idle_cv_.notify_all();
  const int64_t now = clock_.MonotonicNs();
  auto it = slots_.find(name);
  if (it == slots_.end() || it->second.generation != generation) {
    // Replaced by a reload while running: let the new instance start.
    if (it != slots_.end()) it->second.schedule.Finish(now, false);
    return;
  }
  Slot& slot = it->second;
  const bool accepted = slot.schedule.Finish(now, ok);
  slot.ran_once = true;
  if (!accepted) {
    spdlog::warn("collector {}: late run returned after {:.3f}s; result discarded", name,
                 NsToSeconds(now - started_mono));
    return;
  }
  CollectorStatus st;
  st.name = name;
  st.success = ok;
  st.duration_s = NsToSeconds(now - started_mono);
  st.last_run_real_ns = clock_.RealtimeNs();
  st.error = error;
  // A failed run may still have observed something (the NTP collector
  // reports every server even when none is usable): keep what it saw.
  store_.Apply(obs);
  if (ok) {
    if (!slot.last_error.empty()) {
      spdlog::info("collector {}: recovered", name);
    } else {
      spdlog::debug("collector {}: ok in {:.3f}s", name, st.duration_s);
    }
    slot.last_error.clear();
  } else {
    store_.MarkFailed(name);
    // A state change is a warning; the same failure again is only debug,
    // so a missing chronyd does not fill the log every interval.
    const auto level = slot.last_error == error ? spdlog::level::debug : spdlog::level::warn;
    spdlog::log(level, "collector {}: failed after {:.3f}s: {}", name, st.duration_s, error);
    slot.last_error = error;
  }
  store_.RecordRun(st);
  PublishLocked();
}

int64_t Poller::HarvestGapNs(int64_t publish_cost_ns, int64_t interval_ns) {
  const int64_t cap = std::clamp(std::max<int64_t>(0, interval_ns) / kIntervalFraction,
                                 kHarvestGapNs, kMaxHarvestGapNs);
  if (publish_cost_ns <= 0) return kHarvestGapNs;
  const int64_t scaled =
      publish_cost_ns > cap / kPublishCostFactor ? cap : publish_cost_ns * kPublishCostFactor;
  return std::clamp(scaled, kHarvestGapNs, cap);
}

void Poller::PublishLocked() {
  ++publishes_;
  if (!publish_) return;
  const int64_t start = clock_.MonotonicNs();
  publish_(store_.Build(start, clock_.RealtimeNs()));
  last_publish_cost_ns_ = clock_.MonotonicNs() - start;
}

void Poller::SchedulerLoop() {
  while (true) {
    const int64_t next = RunOnce();
    {
      std::lock_guard lock(mu_);
      if (!started_) break;
    }
    // Bounded wait: at most 1 s, so a clock or config change is noticed;
    // a wakeup, a finished run or Stop() rings the doorbell.
    const int64_t wait_ns = std::clamp<int64_t>(next - clock_.MonotonicNs(), 0, 1'000'000'000);
    if (wait_ns > 0) doorbell_->Wait(wait_ns);
  }
}

bool Poller::WaitIdle(int timeout_ms) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    return std::none_of(slots_.begin(), slots_.end(),
                        [](const auto& s) { return s.second.schedule.in_flight(); });
  });
}

bool Poller::FirstRoundDone() const {
  std::lock_guard lock(mu_);
  for (const auto& [name, slot] : slots_) {
    if (!slot.ran_once) return false;
  }
  return true;
}

std::vector<std::string> Poller::Names() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, slot] : slots_) names.push_back(name);
  return names;
}

uint64_t Poller::publishes() const {
  std::lock_guard lock(mu_);
  return publishes_;
}

}  // namespace vmtime
