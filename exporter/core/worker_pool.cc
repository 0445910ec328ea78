// See worker_pool.h.
#include "exporter/core/worker_pool.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <exception>
#include <list>
#include <mutex>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vmtime {

struct WorkerPool::Worker {
  std::thread thread;
  bool busy = false;
  bool abandoned = false;        // given up by the watchdog or by Shutdown; thread detached
  bool abandon_pending = false;  // its on_abandon is running
  bool disarmed = false;         // past its blocking part: never abandoned any more
  bool retire = false;           // exit when idle (the pool shrank)
  bool exited = false;
  int64_t deadline = kNoDeadline;
  std::function<void()> on_abandon;
};

namespace {

struct Queued {
  WorkerPool::Job job;
  JobOptions options;
};

int64_t DeadlineAfter(int64_t now, int64_t timeout_ns) {
  if (timeout_ns == kNoDeadline || now > kNoDeadline - timeout_ns) return kNoDeadline;
  return now + std::max<int64_t>(0, timeout_ns);
}

}  // namespace

struct WorkerPool::Core {
  Core(const Clock& c, WorkerPoolOptions o) : clock(c), options(std::move(o)) {}

  const Clock& clock;
  WorkerPoolOptions options;  // workers/max_stuck change under `mu` (SetSize)

  mutable std::mutex mu;
  std::condition_variable work_cv;      // queue grew, closing, or a worker must retire
  std::condition_variable state_cv;     // job done, worker exited, lease or abandon callback ended
  std::condition_variable watchdog_cv;  // closing
  std::list<Queued> queue;
  std::unordered_map<std::string, std::list<Queued>::iterator> keyed;
  std::list<std::shared_ptr<Worker>> workers;  // not abandoned (exited ones until reaped)
  int stuck = 0;
  int leases = 0;
  int ticks_in_callbacks = 0;  // Tick() calls running on_abandon callbacks
  std::atomic<bool> closing{false};
  bool closed = false;  // no more leases
  bool clean_shutdown = true;
  bool budget_logged = false;

  int LiveLocked() const {
    int n = 0;
    for (const auto& w : workers) n += (!w->exited && !w->retire) ? 1 : 0;
    return n;
  }

  // Abandoned jobs the budget counts: the shared counter when there is one.
  int StuckLocked() const { return options.shared_stuck ? options.shared_stuck->count() : stuck; }

  // One more (+1) or one fewer (-1) abandoned job still blocked.
  void CountStuckLocked(int delta) {
    stuck += delta;
    if (options.shared_stuck) options.shared_stuck->Add(delta);
  }

  int BusyLocked() const {
    int n = 0;
    for (const auto& w : workers) n += w->busy ? 1 : 0;
    return n;
  }

  // Starts workers until `workers` are live, within the stuck budget.
  void EnsureWorkersLocked(const std::shared_ptr<Core>& self) {
    if (closing) return;
    const int want = std::max(1, options.workers);
    const int budget = std::max(0, options.max_stuck);
    while (LiveLocked() < want) {
      if (LiveLocked() + StuckLocked() >= want + budget) {
        if (!budget_logged) {
          budget_logged = true;
          spdlog::error(
              "{}: {} stuck job(s) (stuck budget {}{}): no replacement workers are started until "
              "some return",
              options.name, StuckLocked(), budget,
              options.shared_stuck ? ", shared across reloads" : "");
        }
        return;
      }
      auto w = std::make_shared<Worker>();
      try {
        w->thread = std::thread([self, w] { Run(self, w); });
      } catch (const std::system_error& e) {
        spdlog::error("{}: cannot start a worker thread: {}", options.name, e.what());
        return;
      }
      workers.push_back(std::move(w));
    }
  }

  // Threads of exited workers, removed from the list (joined by the caller
  // outside the lock; they are about to return).
  std::vector<std::thread> ReapLocked() {
    std::vector<std::thread> out;
    for (auto it = workers.begin(); it != workers.end();) {
      if ((*it)->exited) {
        out.push_back(std::move((*it)->thread));
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }

  static void Run(std::shared_ptr<Core> self, std::shared_ptr<Worker> w);
};

void WorkerPool::Core::Run(std::shared_ptr<Core> self, std::shared_ptr<Worker> w) {
  std::unique_lock lock(self->mu);
  while (true) {
    self->work_cv.wait(lock, [&] { return self->closing || w->retire || !self->queue.empty(); });
    if (self->closing || w->retire) break;
    Queued q = std::move(self->queue.front());
    self->queue.pop_front();
    if (!q.options.key.empty()) self->keyed.erase(q.options.key);
    w->busy = true;
    w->disarmed = false;
    w->deadline = DeadlineAfter(self->clock.MonotonicNs(), q.options.timeout_ns);
    w->on_abandon = std::move(q.options.on_abandon);
    lock.unlock();
    {
      JobContext ctx(self, w);
      try {
        q.job(ctx);
      } catch (const std::exception& e) {
        spdlog::error("{}: a job ended with an exception: {}", self->options.name, e.what());
      } catch (...) {
        spdlog::error("{}: a job ended with an unknown exception", self->options.name);
      }
    }
    q = Queued{};  // the job's captures are released outside the lock
    lock.lock();
    if (w->abandoned) {
      // Detached: the watchdog (or Shutdown) already counted this job as
      // stuck and replaced the thread. Free the budget and leave.
      self->CountStuckLocked(-1);
      if (self->StuckLocked() < std::max(0, self->options.max_stuck)) self->budget_logged = false;
      self->EnsureWorkersLocked(self);
      self->state_cv.notify_all();
      return;
    }
    w->busy = false;
    w->deadline = kNoDeadline;
    w->on_abandon = nullptr;
    self->state_cv.notify_all();
  }
  w->exited = true;
  self->state_cv.notify_all();
}

WorkerPool::WorkerPool(const Clock& clock, WorkerPoolOptions options)
    : core_(std::make_shared<Core>(clock, std::move(options))) {
  {
    std::lock_guard lock(core_->mu);
    core_->EnsureWorkersLocked(core_);
  }
  const auto period = core_->options.watchdog_period;
  if (period.count() > 0) {
    // Joined by Shutdown before the pool (and its owner) goes away.
    watchdog_ = std::thread([this, period] {
      Core& core = *core_;
      std::unique_lock lock(core.mu);
      while (!core.closing) {
        core.watchdog_cv.wait_for(lock, period, [&] { return core.closing.load(); });
        if (core.closing) break;
        lock.unlock();
        Tick();
        if (core.options.on_tick) {
          try {
            core.options.on_tick();
          } catch (const std::exception& e) {
            spdlog::error("{}: periodic task failed: {}", core.options.name, e.what());
          }
        }
        lock.lock();
      }
    });
  }
}

WorkerPool::~WorkerPool() { Shutdown(kDefaultGrace); }

WorkerPool::Submitted WorkerPool::Submit(Job job, JobOptions options) {
  Core& c = *core_;
  std::lock_guard lock(c.mu);
  if (c.closing) return Submitted::kRejected;
  if (!options.key.empty()) {
    auto it = c.keyed.find(options.key);
    if (it != c.keyed.end()) {
      if (options.urgent) c.queue.splice(c.queue.begin(), c.queue, it->second);
      return Submitted::kAlreadyQueued;
    }
  }
  const std::string key = options.key;
  const bool urgent = options.urgent;
  auto pos = urgent ? c.queue.begin() : c.queue.end();
  auto it = c.queue.insert(pos, Queued{std::move(job), std::move(options)});
  if (!key.empty()) c.keyed.emplace(key, it);
  c.work_cv.notify_one();
  return Submitted::kQueued;
}

void WorkerPool::Tick() {
  Core& c = *core_;
  std::vector<std::pair<std::shared_ptr<Worker>, std::function<void()>>> fired;
  std::vector<std::thread> reaped;
  {
    std::lock_guard lock(c.mu);
    if (c.closing) return;
    const int64_t now = c.clock.MonotonicNs();
    for (auto it = c.workers.begin(); it != c.workers.end();) {
      Worker& w = **it;
      if (w.busy && !w.abandoned && !w.disarmed && now >= w.deadline) {
        w.abandoned = true;
        w.abandon_pending = true;
        w.thread.detach();  // it keeps blocking; it co-owns what it touches
        c.CountStuckLocked(1);
        fired.emplace_back(*it, std::move(w.on_abandon));
        it = c.workers.erase(it);
      } else {
        ++it;
      }
    }
    reaped = c.ReapLocked();
    c.EnsureWorkersLocked(core_);
    if (!fired.empty()) ++c.ticks_in_callbacks;  // Shutdown waits for them
  }
  for (auto& t : reaped) {
    if (t.joinable()) t.join();
  }
  if (fired.empty()) return;
  for (auto& [w, fn] : fired) {
    if (!fn) continue;
    try {
      fn();
    } catch (const std::exception& e) {
      spdlog::error("{}: abandon callback failed: {}", c.options.name, e.what());
    }
  }
  std::lock_guard lock(c.mu);
  for (auto& [w, fn] : fired) w->abandon_pending = false;
  --c.ticks_in_callbacks;
  c.state_cv.notify_all();
}

void WorkerPool::SetSize(int workers, int max_stuck) {
  Core& c = *core_;
  std::lock_guard lock(c.mu);
  c.options.workers = workers;
  c.options.max_stuck = max_stuck;
  int excess = c.LiveLocked() - std::max(1, workers);
  // Idle workers retire first; busy ones after their current job.
  for (bool busy : {false, true}) {
    for (auto& w : c.workers) {
      if (excess <= 0) break;
      if (w->busy == busy && !w->retire && !w->exited) {
        w->retire = true;
        --excess;
      }
    }
  }
  c.EnsureWorkersLocked(core_);
  c.work_cv.notify_all();
}

bool WorkerPool::Shutdown(std::chrono::milliseconds grace) {
  Core& c = *core_;
  std::list<Queued> dropped;
  {
    std::lock_guard lock(c.mu);
    if (c.closing) return c.clean_shutdown;
    c.closing = true;
    dropped.swap(c.queue);
    c.keyed.clear();
    c.work_cv.notify_all();
    c.watchdog_cv.notify_all();
  }
  dropped.clear();
  if (watchdog_.joinable()) watchdog_.join();
  std::vector<std::thread> joinable;
  {
    std::unique_lock lock(c.mu);
    const auto until = std::chrono::steady_clock::now() + grace;
    const bool clean = c.state_cv.wait_until(lock, until, [&] { return c.BusyLocked() == 0; });
    for (auto& w : c.workers) {
      if (w->busy) {
        w->abandoned = true;
        w->thread.detach();
        c.CountStuckLocked(1);
      } else {
        joinable.push_back(std::move(w->thread));  // idle: exits at once
      }
    }
    if (!clean) {
      spdlog::warn("{}: {} job(s) still blocked after the {} ms shutdown grace period; left behind",
                   c.options.name, c.stuck, grace.count());
    }
    c.workers.clear();
    c.clean_shutdown = clean;
    c.closed = true;
    // Leases and abandon callbacks are short (bookkeeping only): after this
    // nothing of the owner's is touched by a pool thread.
    c.state_cv.wait(lock, [&] { return c.leases == 0 && c.ticks_in_callbacks == 0; });
  }
  for (auto& t : joinable) {
    if (t.joinable()) t.join();
  }
  return c.clean_shutdown;
}

bool WorkerPool::WaitIdle(std::chrono::milliseconds timeout, int allow_busy) {
  Core& c = *core_;
  std::unique_lock lock(c.mu);
  return c.state_cv.wait_for(lock, timeout,
                             [&] { return c.queue.empty() && c.BusyLocked() <= allow_busy; });
}

WorkerPool::Stats WorkerPool::stats() const {
  const Core& c = *core_;
  std::lock_guard lock(c.mu);
  Stats s;
  s.live = c.LiveLocked();
  s.busy = c.BusyLocked();
  s.stuck = c.stuck;
  s.queued = c.queue.size();
  return s;
}

JobContext::Lease::~Lease() {
  if (!core_) return;
  std::lock_guard lock(core_->mu);
  if (--core_->leases == 0) core_->state_cv.notify_all();
}

bool JobContext::ArmDeadline(int64_t deadline_mono_ns) {
  std::lock_guard lock(core_->mu);
  if (worker_->abandoned) return false;
  worker_->deadline = deadline_mono_ns;
  worker_->disarmed = false;
  return true;
}

bool JobContext::Disarm() {
  std::lock_guard lock(core_->mu);
  worker_->disarmed = true;
  return !worker_->abandoned;
}

bool JobContext::abandoned() const {
  std::lock_guard lock(core_->mu);
  return worker_->abandoned;
}

bool JobContext::stopping() const { return core_->closing.load(); }

JobContext::Lease JobContext::Enter() {
  std::unique_lock lock(core_->mu);
  core_->state_cv.wait(lock, [&] { return !worker_->abandon_pending; });
  if (core_->closed) return Lease();
  ++core_->leases;
  return Lease(core_);
}

}  // namespace vmtime
