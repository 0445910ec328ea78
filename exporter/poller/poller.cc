#include "exporter/poller/poller.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <exception>

namespace vmtime {

Poller::Poller(const Clock& clock, Store& store, Publish publish)
    : clock_(clock), store_(store), publish_(std::move(publish)) {}

Poller::~Poller() { Stop(); }

void Poller::Configure(std::vector<PollerEntry> entries) {
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
      Slot slot{e.collector, Schedule(e.config, now), false, next_generation_++, {}};
      if (it != slots_.end() && it->second.schedule.in_flight()) {
        // The old instance is still running: the new one starts when it returns.
        slot.schedule.Start(now);
        slot.schedule.MarkOverdueReported();
      }
      slot.collector->SetWakeup([this, name] { Wake(name); });
      next.emplace(name, std::move(slot));
    }
  }
  slots_ = std::move(next);
  EnsureWorkersLocked();
  cv_.notify_all();
}

void Poller::EnsureWorkersLocked() {
  if (!started_) return;
  const size_t want = slots_.size() + 1;
  while (workers_.size() < want) workers_.emplace_back([this] { WorkerLoop(); });
}

void Poller::Start(bool threaded) {
  {
    std::lock_guard lock(mu_);
    if (started_) return;
    started_ = true;
    EnsureWorkersLocked();
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
  cv_.notify_all();
  jobs_cv_.notify_all();
  if (scheduler_.joinable()) scheduler_.join();
  // Idle workers exit at once; a worker blocked inside a collector (a hung
  // libvirt call) cannot be joined: after a 1 s grace period all are detached.
  bool idle = false;
  {
    std::unique_lock lock(mu_);
    idle = idle_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return busy_workers_ == 0; });
  }
  for (auto& w : workers_) {
    if (idle) {
      w.join();
    } else {
      w.detach();
    }
  }
  workers_.clear();
}

void Poller::Wake(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    auto it = slots_.find(name);
    if (it == slots_.end()) return;
    it->second.schedule.WakeNow(clock_.MonotonicNs());
    wake_pending_ = true;
  }
  cv_.notify_all();
}

void Poller::Submit(const std::string& name, Slot& slot, int64_t now) {
  slot.schedule.Start(now);
  auto collector = slot.collector;
  const uint64_t generation = slot.generation;
  jobs_.push_back([this, name, collector, generation] { RunJob(name, collector, generation); });
  jobs_cv_.notify_one();
}

int64_t Poller::RunOnce() {
  std::lock_guard lock(mu_);
  const int64_t now = clock_.MonotonicNs();
  bool changed = false;
  for (auto& [name, slot] : slots_) {
    if (slot.schedule.Overdue(now)) {
      slot.schedule.MarkOverdueReported();
      spdlog::warn(
          "collector {}: deadline exceeded; the run is abandoned and the collector "
          "is not started again until it returns",
          name);
      CollectorStatus st;
      st.name = name;
      st.success = false;
      st.error = "deadline exceeded";
      st.last_run_real_ns = clock_.RealtimeNs();
      store_.RecordRun(st);
      store_.MarkFailed(name);
      slot.ran_once = true;
      changed = true;
    }
  }
  for (auto& [name, slot] : slots_) {
    if (slot.schedule.Due(now)) Submit(name, slot, now);
  }
  wake_pending_ = false;
  if (changed) PublishLocked();
  int64_t next = Schedule::kNever;
  for (const auto& [name, slot] : slots_) next = std::min(next, slot.schedule.NextEvent());
  return next;
}

void Poller::RunJob(const std::string& name, std::shared_ptr<Collector> collector,
                    uint64_t generation) {
  const int64_t started = clock_.MonotonicNs();
  int64_t deadline = started;
  {
    std::lock_guard lock(mu_);
    auto it = slots_.find(name);
    if (it != slots_.end()) deadline = it->second.schedule.deadline();
  }
  Observations obs;
  bool ok = false;
  std::string error;
  try {
    CollectContext ctx{clock_, deadline, stop_.get_token()};
    Status st = collector->Collect(ctx, obs);
    ok = st.ok();
    if (!ok) error = st.message();
  } catch (const std::exception& e) {
    error = std::string("unexpected exception: ") + e.what();
  } catch (...) {
    error = "unexpected exception";
  }
  Finish(name, generation, ok, error, started, std::move(obs));
}

void Poller::Finish(const std::string& name, uint64_t generation, bool ok, const std::string& error,
                    int64_t started_mono, Observations obs) {
  std::lock_guard lock(mu_);
  const int64_t now = clock_.MonotonicNs();
  auto it = slots_.find(name);
  if (it == slots_.end() || it->second.generation != generation) {
    // Replaced by a reload while running: let the new instance start.
    if (it != slots_.end()) it->second.schedule.Finish(now, false);
    cv_.notify_all();
    return;
  }
  Slot& slot = it->second;
  const bool accepted = slot.schedule.Finish(now, ok);
  slot.ran_once = true;
  if (!accepted) {
    spdlog::warn("collector {}: late run returned after {:.3f}s; result discarded", name,
                 NsToSeconds(now - started_mono));
    cv_.notify_all();
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
  cv_.notify_all();
}

void Poller::PublishLocked() {
  if (publish_) publish_(store_.Build(clock_.MonotonicNs(), clock_.RealtimeNs()));
}

void Poller::WorkerLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    jobs_cv_.wait(lock, [&] { return !jobs_.empty() || !started_; });
    if (!started_ && jobs_.empty()) break;
    if (!started_) break;
    auto job = std::move(jobs_.front());
    jobs_.erase(jobs_.begin());
    ++busy_workers_;
    lock.unlock();
    job();
    lock.lock();
    --busy_workers_;
    idle_cv_.notify_all();
  }
}

void Poller::SchedulerLoop() {
  while (!stop_.stop_requested()) {
    const int64_t next = RunOnce();
    std::unique_lock lock(mu_);
    if (!started_) break;
    const int64_t now = clock_.MonotonicNs();
    // Bounded wait: at most 1 s, so a clock or config change is noticed.
    const int64_t wait_ns = std::clamp<int64_t>(next - now, 0, 1'000'000'000);
    if (wait_ns > 0 && !wake_pending_) {
      cv_.wait_for(lock, std::chrono::nanoseconds(wait_ns),
                   [&] { return !started_ || wake_pending_; });
    }
  }
}

bool Poller::WaitIdle(int timeout_ms) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    if (busy_workers_ != 0 || !jobs_.empty()) return false;
    return true;
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

}  // namespace vmtime
