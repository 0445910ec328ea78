// AgentScheduler: decides when each domain's guest clock is sampled and runs
// the samples on a bounded pool of agent worker threads, so that one silent
// or hung guest agent never delays other domains or a scrape.
//
// - The domain table is reconciled with every list (Update); running domains
//   whose agent is healthy are queued once per round, paused/stopped domains
//   never are.
// - A worker takes K bracketed virDomainGetTime calls (clock_bracket.h) and
//   keeps the one with the smallest round trip.
// - Every guest call has an exporter-side deadline (call_deadline_s). The
//   watchdog (Tick) abandons a call that overruns: its thread stays blocked in
//   libvirt, detached, and a replacement worker is started (at most
//   max_stuck_calls abandoned threads exist at once). The domain is reported
//   agent_up=false "guest agent call exceeded deadline" and is not queued
//   again until the stuck call returns, so calls never pile up behind it.
// - A failing agent is retried every agent_retry_interval_s for
//   agent_max_attempts consecutive failures, then with exponential backoff
//   capped at agent_backoff_max_s.
// - Events (resume, start, agent connected) queue that domain at the front,
//   bypassing the retry timer, and call the wakeup callback once its new
//   sample is stored, so the poller publishes it at once.
// Time is read only through the injected Clock; Tick() is driven by a
// background thread in production and by hand in tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "exporter/collectors/libvirt/libvirt_api.h"
#include "exporter/config/config.h"
#include "exporter/core/clock.h"
#include "exporter/model/observations.h"

namespace vmtime::libvirt {

struct SchedulerOptions {
  // Run Tick() every tick_interval on a background thread (production).
  // Tests turn this off and call Tick() themselves after moving a FakeClock.
  bool background_tick = true;
  std::chrono::milliseconds tick_interval{200};
};

// Delay before the next attempt after `failures` consecutive failures
// (failures >= 1), in nanoseconds, per the retry policy above.
int64_t RetryDelayNs(const LibvirtConfig& config, int failures);

class AgentScheduler {
 public:
  AgentScheduler(const LibvirtConfig& config, const Clock& clock, std::shared_ptr<LibvirtApi> api,
                 SchedulerOptions options = {});
  // Stops the workers. Threads blocked in libvirt are detached and exit when
  // libvirt lets them go; they touch only state they co-own.
  ~AgentScheduler();
  AgentScheduler(const AgentScheduler&) = delete;
  AgentScheduler& operator=(const AgentScheduler&) = delete;

  // Reconciles the table with a fresh domain list, queues due domains and
  // returns one observation per listed domain, in list order. Each
  // observation's `sample` is the newest taken since the previous Update or
  // Current (it is handed out once).
  std::vector<DomainObservation> Update(const std::vector<DomainInfo>& domains);

  // Observations of the last listed domains without a new list (libvirt
  // unreachable); samples are handed out as in Update. Queues nothing.
  std::vector<DomainObservation> Current();

  // Watchdog and retry timer: abandons calls past their deadline, starts
  // replacement workers, queues failing domains whose retry time has come.
  void Tick();

  // A libvirt event for one domain (called on the event loop thread; never
  // blocks on guest calls).
  void OnEvent(const std::string& uuid, const std::string& name, DomainEvent event);

  // Called (from a worker thread) after an event-triggered sample is stored.
  void SetWakeup(std::function<void()> wake);

  // Test helpers. WaitIdle waits (bounded, real time) until nothing is queued
  // and at most `allow_busy` workers that are not abandoned are busy.
  bool WaitIdle(std::chrono::milliseconds timeout, int allow_busy = 0);
  int StuckCalls() const;
  int LiveWorkers() const;

  struct Shared;  // state co-owned by the worker threads

 private:
  std::shared_ptr<Shared> shared_;
  std::thread tick_thread_;
};

}  // namespace vmtime::libvirt
