// Poller: runs the collectors in the background, each on its own interval,
// on a bounded pool of worker threads, with a deadline per run and retries
// with backoff (see schedule.h). After every run it merges the observations
// into the Store, builds a new Snapshot and hands it to `publish`. Scrapes
// never wait for a collector.
//
// A collector stuck past its deadline is reported failed and not started
// again until it returns; its worker stays blocked, so the pool holds one
// worker per collector plus a spare and the others keep their cadence.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "exporter/collectors/collector.h"
#include "exporter/poller/schedule.h"
#include "exporter/store/store.h"

namespace vmtime {

struct PollerEntry {
  std::shared_ptr<Collector> collector;  // the running instance, kept on reload, keeps its slot
  CollectorConfig config;
};

class Poller {
 public:
  using Publish = std::function<void(std::shared_ptr<const Snapshot>)>;
  Poller(const Clock& clock, Store& store, Publish publish);
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  // Installs the collector table. Entries whose collector is the instance
  // already running under that name keep their schedule.
  void Configure(std::vector<PollerEntry> entries);
  // Starts the scheduler thread (`threaded` false: tests drive RunOnce()).
  void Start(bool threaded = true);
  // Stops scheduling and joins the threads that are not stuck in a
  // collector; stuck ones are detached (the process is exiting).
  void Stop();
  // One scheduling pass at clock.MonotonicNs(): reports overdue runs and
  // submits due ones. Returns the next time something needs attention.
  int64_t RunOnce();
  // Requests an out-of-turn run of `name` (thread safe, cheap).
  void Wake(const std::string& name);
  // Blocks until no run is in flight or `timeout_ms` passed (tests).
  bool WaitIdle(int timeout_ms);
  // True once every enabled collector has finished at least one run.
  bool FirstRoundDone() const;
  std::vector<std::string> Names() const;

 private:
  struct Slot {
    std::shared_ptr<Collector> collector;
    Schedule schedule;
    bool ran_once = false;
    uint64_t generation = 0;  // bumps when the slot is replaced
    std::string last_error;   // of the previous run; repeats are logged at debug
  };
  void Submit(const std::string& name, Slot& slot, int64_t now);
  void RunJob(const std::string& name, std::shared_ptr<Collector> collector, uint64_t generation);
  void Finish(const std::string& name, uint64_t generation, bool ok, const std::string& error,
              int64_t started_mono, Observations obs);
  void PublishLocked();
  void WorkerLoop();
  void SchedulerLoop();
  void EnsureWorkersLocked();

  const Clock& clock_;
  Store& store_;
  Publish publish_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // scheduler wakeups
  std::condition_variable jobs_cv_;  // workers
  std::condition_variable idle_cv_;
  std::map<std::string, Slot> slots_;
  std::vector<std::function<void()>> jobs_;
  std::vector<std::thread> workers_;
  size_t busy_workers_ = 0;
  std::thread scheduler_;
  std::stop_source stop_;
  bool started_ = false;
  bool wake_pending_ = false;
  uint64_t next_generation_ = 1;
};

}  // namespace vmtime
