// WorkerPool: the exporter's one way to run blocking work on threads.
//
// Every thread that may block in I/O it cannot interrupt (a libvirt call
// into a hung guest agent, a guest-exec) is a worker of a WorkerPool: the
// poller's collector runs, the libvirt collector's guest-clock samples and
// the guest_status collector's probes. One pool gives them one story:
//
// - Bounded: `workers` live threads take jobs from one FIFO queue; an urgent
//   job goes to the front. A job may carry a key: at most one job per key is
//   queued (submitting it again urgently moves it to the front).
// - Watchdog: a running job has a deadline (host monotonic, from the
//   injected Clock). Tick() abandons every job past its deadline: its thread
//   is detached and keeps blocking, the job's on_abandon callback runs, and
//   a replacement worker starts as long as at most `max_stuck` abandoned
//   jobs exist (the stuck budget). When an abandoned job finally returns, its
//   thread exits and frees its place in the budget. Tick() runs on a
//   background watchdog thread (watchdog_period > 0) or is called by the
//   owner (tests with FakeClock, or an owner with a loop of its own).
// - Ownership: what a worker touches after a blocking call is either
//   co-owned (the pool's control block, shared_ptr captures of the job) or
//   reached only through a Lease (JobContext::Enter), which keeps the pool's
//   owner alive while held and is refused once the pool has shut down.
// - Shutdown: stop accepting, drop queued jobs, give running jobs a bounded
//   grace period, then detach the ones still blocked. Shutdown returns only
//   when no lease is held, so after it returns nothing the owner frees is
//   touched by a pool thread again.
//
// Lock order: an owner may hold its own mutex while calling Submit, Stats or
// SetSize; the pool never calls owner code (jobs, on_abandon, on_tick) while
// holding its own mutex. Tick, WaitIdle and Shutdown must be called without
// owner locks a job or callback needs. The Clock must outlive every thread
// of the pool, detached ones included (production: SystemClock::Instance()).
// See docs/architecture.md "Threads and shutdown".
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "exporter/core/clock.h"

namespace vmtime {

constexpr int64_t kNoDeadline = INT64_MAX;

// Abandoned jobs whose thread has not returned yet, counted across every
// pool that shares this counter. Pools that share one share one stuck budget:
// a collector re-created by a reload gets the counter of the instance it
// replaces, so calls its predecessor left blocked in libvirt still count.
class StuckCounter {
 public:
  int count() const { return n_.load(); }
  void Add(int delta) { n_.fetch_add(delta); }

 private:
  std::atomic<int> n_{0};
};

struct WorkerPoolOptions {
  std::string name = "pool";  // names the pool in log lines
  int workers = 1;            // live workers kept (at least 1)
  int max_stuck = 0;          // abandoned jobs tolerated before no replacement starts
  // Set: the stuck budget counts this counter (every sharing pool's
  // abandoned jobs, including those of pools already shut down) instead of
  // this pool's own.
  std::shared_ptr<StuckCounter> shared_stuck;
  // > 0: a watchdog thread calls Tick() and then on_tick at this period.
  // 0: the owner calls Tick() itself (on_tick is then unused).
  std::chrono::milliseconds watchdog_period{0};
  std::function<void()> on_tick;
};

struct JobOptions {
  std::string key{};                 // non-empty: one queued job per key
  bool urgent = false;               // queue at the front
  int64_t timeout_ns = kNoDeadline;  // deadline = start + timeout (re-armed by the job)
  // Called once by Tick(), outside the pool's lock, when the watchdog gives
  // up on this job; never called at shutdown.
  std::function<void()> on_abandon{};
};

class JobContext;

class WorkerPool {
 public:
  using Job = std::function<void(JobContext&)>;
  enum class Submitted { kQueued, kAlreadyQueued, kRejected };
  struct Stats {
    int live = 0;       // workers not abandoned
    int busy = 0;       // live workers running a job
    int stuck = 0;      // abandoned jobs whose thread has not returned yet
    size_t queued = 0;  // jobs waiting for a worker
  };
  struct Core;    // control block co-owned by every worker thread
  struct Worker;  // one thread's state, co-owned by the thread

  WorkerPool(const Clock& clock, WorkerPoolOptions options);
  // Shutdown(kDefaultGrace) unless already shut down.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues a job (rejected after Shutdown began). With a key already queued
  // nothing is added; `urgent` then moves the queued job to the front.
  Submitted Submit(Job job, JobOptions options = {});
  // Watchdog pass: abandons jobs past their deadline (calling on_abandon),
  // starts replacement workers within the stuck budget, reaps exited threads.
  void Tick();
  // Changes the number of live workers and the stuck budget (idle workers
  // beyond the new size exit).
  void SetSize(int workers, int max_stuck);
  // Stops accepting and drops queued jobs, waits up to `grace` for running
  // jobs, detaches the rest (they count as abandoned, without on_abandon),
  // then waits until no lease is held. Returns true when no job was left
  // running. Idempotent; later calls return at once.
  bool Shutdown(std::chrono::milliseconds grace);
  // Bounded real-time wait (tests, benchmarks) until nothing is queued and
  // at most `allow_busy` live workers are busy.
  bool WaitIdle(std::chrono::milliseconds timeout, int allow_busy = 0);
  Stats stats() const;

  static constexpr std::chrono::milliseconds kDefaultGrace{500};

 private:
  std::shared_ptr<Core> core_;
  std::thread watchdog_;
};

// What a running job sees. Used only on the job's own thread.
class JobContext {
 public:
  // Keeps the pool's owner alive while held (Shutdown waits for it). Empty
  // once the pool has shut down: the job must then return without touching
  // anything of the owner's. Hold it briefly and never across a blocking call.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept : core_(std::move(other.core_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    explicit operator bool() const { return core_ != nullptr; }

   private:
    friend class JobContext;
    explicit Lease(std::shared_ptr<WorkerPool::Core> core) : core_(std::move(core)) {}
    std::shared_ptr<WorkerPool::Core> core_;
  };

  // Arms the watchdog for the next blocking step: it must end by
  // `deadline_mono_ns` (kNoDeadline: no limit). False when the job has
  // already been abandoned: return without starting the step.
  bool ArmDeadline(int64_t deadline_mono_ns);
  // Ends the blocking part: the watchdog no longer watches this job. True
  // when it ended in time, false when it had been abandoned (its result is
  // then late; on_abandon has run or runs before Enter() returns).
  bool Disarm();
  bool abandoned() const;
  // The pool is shutting down: finish quickly.
  bool stopping() const;
  // Waits for a pending on_abandon of this job to finish, then leases.
  Lease Enter();

 private:
  friend struct WorkerPool::Core;
  JobContext(std::shared_ptr<WorkerPool::Core> core, std::shared_ptr<WorkerPool::Worker> worker)
      : core_(std::move(core)), worker_(std::move(worker)) {}
  std::shared_ptr<WorkerPool::Core> core_;
  std::shared_ptr<WorkerPool::Worker> worker_;
};

}  // namespace vmtime
