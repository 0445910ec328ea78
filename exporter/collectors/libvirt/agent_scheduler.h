// AgentScheduler: decides when each domain's guest clock is sampled and runs
// the samples on a WorkerPool (core/worker_pool.h) of agent workers, so that
// one silent or hung guest agent never delays other domains or a scrape.
//
// - The domain table is reconciled with every list (Update); running domains
//   whose agent is healthy are queued once per round, in name order (the
//   snapshot's order, so a harvest publishes a run of neighbouring VMs and
//   the /metrics gzip body recompresses little), paused/stopped domains
//   never are.
// - Waiting domains sit in the scheduler's own backlog (16 bytes each); the
//   pool's queue is kept `concurrency` jobs deep and refilled from the
//   backlog as jobs start, so a round over 10,000 domains does not hold
//   10,000 queued jobs. Events submit to the pool's front directly.
// - A worker takes K bracketed virDomainGetTime calls (clock_bracket.h) and
//   keeps the one with the smallest round trip.
// - Every guest call has an exporter-side deadline (call_deadline_s). The
//   pool's watchdog abandons a call that overruns: its thread stays blocked
//   in libvirt, detached, and a replacement worker is started (at most
//   max_stuck_calls abandoned calls exist at once). The domain is reported
//   agent_up=false "guest agent call exceeded deadline" and is not queued
//   again until the stuck call returns, so calls never pile up behind it.
// - A failing agent is retried every agent_retry_interval_s for
//   agent_max_attempts consecutive failures, then with exponential backoff
//   capped at agent_backoff_max_s.
// - Events (resume, start, agent connected) queue that domain at the front,
//   bypassing the retry timer.
// - Fresh data: whenever a sample or an agent state change is stored, the
//   wakeup callback is called (once until the news is handed out by Update,
//   Current or Harvest), so the poller harvests and publishes it at once.
// - Agent attempted: false for a domain until its first attempt finishes,
//   and again while it is not running (paused, shut off, ...) and after it
//   starts running again until the next attempt finishes: such a domain is
//   neither up nor down.
// - Interruptions: a lifecycle event (suspend, resume, stop, start: pauses,
//   save/restore, migration, snapshot revert) or a running <-> not-running
//   change between two lists marks the first sample taken after it
//   (ClockSample::after_interruption).
// Time is read only through the injected Clock; the watchdog and retry timer
// (Tick) run on the pool's watchdog thread in production and by hand in
// tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "exporter/collectors/libvirt/libvirt_api.h"
#include "exporter/config/config.h"
#include "exporter/core/clock.h"
#include "exporter/core/worker_pool.h"
#include "exporter/model/observations.h"

namespace vmtime::libvirt {

struct SchedulerOptions {
  // Run Tick() every tick_interval on the pool's watchdog thread
  // (production). Tests turn this off and call Tick() themselves after
  // moving a FakeClock.
  bool background_tick = true;
  std::chrono::milliseconds tick_interval{200};
  // Abandoned calls still blocked in libvirt, counted against
  // libvirt.max_stuck_calls across every scheduler sharing it (production:
  // ProcessStuckAgentCalls(), so a reload does not restart the budget;
  // nullptr: this scheduler's own).
  std::shared_ptr<StuckCounter> stuck_calls;
};

// The process-wide count of abandoned agent calls (never freed).
std::shared_ptr<StuckCounter> ProcessStuckAgentCalls();

// Delay before the next attempt after `failures` consecutive failures
// (failures >= 1), in nanoseconds, per the retry policy above.
int64_t RetryDelayNs(const LibvirtConfig& config, int failures);

class AgentScheduler {
 public:
  AgentScheduler(const LibvirtConfig& config, const Clock& clock, std::shared_ptr<LibvirtApi> api,
                 SchedulerOptions options = {});
  // Shuts the pool down: calls still blocked in libvirt after
  // kShutdownGrace are left behind and touch nothing of the scheduler.
  ~AgentScheduler();
  AgentScheduler(const AgentScheduler&) = delete;
  AgentScheduler& operator=(const AgentScheduler&) = delete;

  // Reconciles the table with a fresh domain list, queues due domains and
  // returns one observation per listed domain, in list order. Each
  // observation's `sample` is the newest taken since it was last handed out
  // (by Update, Current or Harvest).
  std::vector<DomainObservation> Update(const std::vector<DomainInfo>& domains);

  // Observations of the last listed domains without a new list (libvirt
  // unreachable); samples are handed out as in Update. Queues nothing.
  std::vector<DomainObservation> Current();

  // Observations of the domains with news (a new sample or agent state)
  // since they were last handed out; no I/O, O(news).
  std::vector<DomainObservation> Harvest();

  // Watchdog and retry timer: abandons calls past their deadline, starts
  // replacement workers, queues failing domains whose retry time has come.
  void Tick();

  // A libvirt event for one domain (called on the event loop thread; never
  // blocks on guest calls).
  void OnEvent(const std::string& uuid, const std::string& name, DomainEvent event);

  // Called (from a worker or the watchdog thread) when news is stored.
  void SetWakeup(std::function<void()> wake);

  // Test helpers. WaitIdle waits (bounded, real time) until nothing is queued
  // and at most `allow_busy` workers that are not abandoned are busy.
  bool WaitIdle(std::chrono::milliseconds timeout, int allow_busy = 0);
  int StuckCalls() const;
  int LiveWorkers() const;
  // Domains waiting in the scheduler's backlog (void slots included) and
  // jobs waiting in the pool's queue (at most `concurrency` from the
  // backlog, plus urgent ones).
  struct QueueDepths {
    size_t backlog = 0;
    size_t pool = 0;
  };
  QueueDepths Queued() const;

  static constexpr std::chrono::milliseconds kShutdownGrace{500};

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmtime::libvirt
