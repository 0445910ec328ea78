// Poller: runs the collectors in the background, each on its own interval,
// with a deadline per run and retries with backoff (see schedule.h). After
// every run it merges the observations into the Store, builds a new Snapshot
// and hands it to `publish`. Scrapes never wait for a collector.
//
// Runs execute on a WorkerPool (core/worker_pool.h) of one worker per
// collector. A run still going at its deadline is reported failed
// ("deadline exceeded") by the pool's watchdog, its worker is left blocked
// and replaced, and the collector is not started again until the late run
// returns (its result is then discarded).
//
// Fresh data: a collector that measures between runs (libvirt: its agent
// workers) rings its wakeup callback; the poller then harvests it
// (Collector::Harvest, no I/O) and publishes, at most once per
// kHarvestGapNs, so a sample reaches the snapshot within a fraction of a
// second instead of at the next run. The callbacks ring a co-owned doorbell,
// never the Poller itself, so they are safe from any thread at any time.
//
// Threads: the scheduler thread (RunOnce in a loop; it also drives the
// pool's watchdog and does the harvests) and the pool's workers. Stop()
// stops the scheduler, signals CollectContext::stop, gives running
// collectors kStopGrace to return and leaves the others behind; they touch
// nothing of the Poller afterwards. See docs/architecture.md.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "exporter/collectors/collector.h"
#include "exporter/core/worker_pool.h"
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
  // already running under that name keep their schedule. Returns the
  // collectors it replaced or dropped, released by the poller outside its
  // lock: the caller's copies may be the last references, whose destructors
  // (a collector's own pool shutdown, waiting up to its grace period for
  // calls blocked in libvirt) then run wherever the caller drops them, never
  // under the poller's lock (FirstRoundDone, i.e. /readyz, keeps answering).
  std::vector<std::shared_ptr<Collector>> Configure(std::vector<PollerEntry> entries);
  // Builds a snapshot from the store and publishes it now, ordered with the
  // poller's own publishes (all of them build and publish under its lock),
  // so a change written to the store before this call (e.g. the reload
  // status) is in the snapshot left published, never overwritten by an
  // older one built concurrently.
  void PublishNow();
  // Starts the workers and the scheduler thread (`threaded` false: tests
  // drive RunOnce()).
  void Start(bool threaded = true);
  // Stops scheduling, signals CollectContext::stop, waits up to kStopGrace
  // for running collectors and leaves the ones still blocked behind.
  void Stop();
  // One scheduling pass at clock.MonotonicNs(): watchdog (reports overdue
  // runs), harvests, submits due runs. Returns the next time something needs
  // attention.
  int64_t RunOnce();
  // `name` has news (thread safe, cheap, never blocks): harvest it, or run
  // it out of turn when it has no harvest path.
  void Wake(const std::string& name);
  // Blocks until no run is in flight (late ones included) or `timeout_ms`
  // passed (tests).
  bool WaitIdle(int timeout_ms);
  // True once every enabled collector has finished at least one run.
  bool FirstRoundDone() const;
  std::vector<std::string> Names() const;
  // Snapshots published so far (tests and measurements).
  uint64_t publishes() const;

  // Harvests publish at most once per gap (host monotonic): at least
  // kHarvestGapNs (at most four harvest publishes per second), and at least
  // kPublishCostFactor times what the previous publish took (Store::Build
  // and the publish callback, wall time), so that harvest publishes cost at
  // most about 1/kPublishCostFactor of a core whatever the fleet's size; at
  // most kMaxHarvestGapNs and at most 1/kIntervalFraction of the harvested
  // collector's interval (never below kHarvestGapNs), which bounds how long
  // a new sample waits: the wait stays small against the freshness knot
  // (whole intervals), so a slow publish on a starved machine cannot make a
  // healthy VM's newest sample look stale.
  static constexpr int64_t kHarvestGapNs = 250'000'000;
  static constexpr int64_t kPublishCostFactor = 20;
  static constexpr int64_t kMaxHarvestGapNs = 2'000'000'000;
  static constexpr int64_t kIntervalFraction = 8;
  // The gap after a publish that took `publish_cost_ns`, for a collector
  // whose interval is `interval_ns`.
  static int64_t HarvestGapNs(int64_t publish_cost_ns, int64_t interval_ns);
  static constexpr std::chrono::milliseconds kStopGrace{1000};

 private:
  struct Doorbell;  // co-owned by the collectors' wakeup callbacks
  struct Slot {
    std::shared_ptr<Collector> collector;
    Schedule schedule;
    bool ran_once = false;
    uint64_t generation = 0;  // bumps when the slot is replaced
    std::string last_error;   // of the previous run; repeats are logged at debug
    bool harvest_pending = false;
  };
  void SubmitLocked(const std::string& name, Slot& slot, int64_t now);
  void HarvestLocked(const std::string& name, Slot& slot, int64_t now);
  void ReportOverdue(const std::string& name, uint64_t generation);
  void Finish(const std::string& name, uint64_t generation, bool ok, const std::string& error,
              int64_t started_mono, Observations obs);
  void PublishLocked();
  void SchedulerLoop();
  void ResizePoolLocked();

  const Clock& clock_;
  Store& store_;
  Publish publish_;
  const std::shared_ptr<Doorbell> doorbell_;
  mutable std::mutex mu_;
  std::condition_variable idle_cv_;  // a run finished
  std::map<std::string, Slot> slots_;
  std::unique_ptr<WorkerPool> pool_;  // while started
  std::thread scheduler_;
  std::stop_source stop_;
  bool started_ = false;
  uint64_t next_generation_ = 1;
  int64_t next_harvest_mono_ns_ = INT64_MIN;
  uint64_t publishes_ = 0;
  int64_t last_publish_cost_ns_ = 0;  // wall time of the newest publish
};

}  // namespace vmtime
